// The room a control plane's CA bundle has in a Connector's ConfigMap: the largest bundle the check
// accepts, with the largest configuration and URL the CRDs admit, still makes a ConfigMap Kubernetes
// takes; and the bounds that sum rests on are the CRDs' own.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { load } from 'js-yaml';
import { MAX_CONNECTOR_NAME_LENGTH, MAX_CONTROL_PLANE_URL_LENGTH } from '../../src/operator/api/constants.ts';
import { type Connector, defaultedSpec } from '../../src/operator/api/types.ts';
import {
  CA_BUNDLE_MAX_BYTES,
  CONFIG_MAP_DATA_LIMIT,
  CONNECTOR_CONFIG_RESERVE,
  caBundleSizeProblem,
  configMapDataBytes,
} from '../../src/operator/reconcile/config-map-budget.ts';
import { CA_KEY, desiredConfigMap } from '../../src/operator/reconcile/desired-objects.ts';

// biome-ignore lint/suspicious/noExplicitAny: a schema walked by path in a test
type Schema = any;
async function specSchema(file: string): Promise<Schema> {
  const path = fileURLToPath(new URL(`../../crds/${file}`, import.meta.url));
  const crd = load(await readFile(path, 'utf8')) as Schema;
  return crd.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties;
}

test('the bounds the reserve counts on are the CRDs’ own', async (t) => {
  const connector = (await specSchema('connectors.vaultpam.io.yaml')).connector.properties;
  t.is(connector.id.maxLength, 253);
  t.is(connector.org.maxLength, 253);
  t.is(connector.endpointId.maxLength, 253);
  t.is(connector.allowedNetworks.maxItems, 64);
  t.is(connector.allowedNetworks.items.maxLength, 43);
  const limit = `${CA_BUNDLE_MAX_BYTES.toLocaleString('en-US')} bytes`;
  for (const file of ['controlplanes.vaultpam.io.yaml', 'clustercontrolplanes.vaultpam.io.yaml']) {
    const schema = await specSchema(file);
    t.is(schema.url.maxLength, MAX_CONTROL_PLANE_URL_LENGTH, file);
    t.true(schema.caConfigMapRef.description.includes(limit), `${file} states the CA bundle's limit`);
  }
});

test('the largest CA bundle accepted, with the largest configuration and URL, fits in a Connector’s ConfigMap', (t) => {
  // Every field at its CRD bound, in the characters that take the most bytes: org and endpointId
  // count UTF-16 units (at most 253), so a BMP character of 3 bytes each is their worst; the URL's
  // bound is in characters, so 4 bytes each.
  const connector: Connector = {
    apiVersion: 'vaultpam.io/v1alpha1',
    kind: 'Connector',
    metadata: { namespace: 'n'.repeat(63), name: 'c'.repeat(MAX_CONNECTOR_NAME_LENGTH), uid: 'u' },
    spec: {
      connector: {
        id: `a${'.'.repeat(251)}z`,
        org: '€'.repeat(253),
        endpointId: '€'.repeat(253),
        allowedNetworks: Array(64).fill('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128'),
      },
    },
  };
  const host = 'https://cp.example/';
  const url = `${host}${'𝒳'.repeat(MAX_CONTROL_PLANE_URL_LENGTH - host.length)}`;
  t.is([...url].length, MAX_CONTROL_PLANE_URL_LENGTH);
  const caPem = '#'.repeat(CA_BUNDLE_MAX_BYTES);
  t.is(caBundleSizeProblem(caPem), undefined, 'the largest bundle accepted');
  t.truthy(caBundleSizeProblem(`${caPem}#`), 'one byte more is refused');

  const configMap = desiredConfigMap(connector, defaultedSpec(connector), { url, caPem });
  const bytes = configMapDataBytes(configMap.data);
  t.true(bytes <= CONFIG_MAP_DATA_LIMIT, `${bytes} bytes`);
  const rest = bytes - CA_BUNDLE_MAX_BYTES;
  t.true(rest <= 12_843, `the bound the reserve's comment gives: ${rest} bytes`);
  t.true(rest <= CONNECTOR_CONFIG_RESERVE);
  t.is(configMap.data?.[CA_KEY], caPem);
});

test('sizes are counted as Kubernetes counts them: bytes of keys and values', (t) => {
  t.is(configMapDataBytes({ a: 'bc', é: '€' }), 1 + 2 + 2 + 3);
  t.is(configMapDataBytes(undefined), 0);
});
