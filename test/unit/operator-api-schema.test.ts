// The CRDs themselves: their names and columns match the constants, the sample manifests pass their
// schemas, and the schemas' own hygiene holds (descriptions for kubectl explain, bounded strings and
// lists so CEL cost estimates fit, rule messages the docs quote). The TypeScript types are generated
// from these schemas (test/unit/generated-crd-types.test.ts keeps them in step).
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { dumpYaml } from '@kubernetes/client-node';
import test from 'ava';
import { load } from 'js-yaml';
import { RUNBOOK_FAILURE_CLASSES } from '../../src/contract/agent-process.ts';
import {
  API_VERSION,
  CLUSTER_CONTROL_PLANE,
  CONTROL_PLANE,
  CRD_NAME,
  GROUP,
  KIND,
  PLURAL,
  SHORT_NAMES,
  VERSION,
} from '../../src/operator/api/constants.ts';
import {
  type ControlPlaneResource,
  defaultedControlPlaneSpec,
} from '../../src/operator/api/control-planes.ts';
import {
  CONTROL_PLANE_CRD_PATHS,
  connectorSchema,
  type JsonSchema,
  loadConnectorCrd,
  loadCrd,
} from '../../src/operator/api/crd.ts';
import { type Connector, defaultedSpec } from '../../src/operator/api/types.ts';
import { PATTERNS } from '../../src/operator/api/validation.ts';
import { loadConnectorCrdModel } from '../helpers/crd-model.ts';

const SAMPLE_PATH = fileURLToPath(new URL('../../manifests/samples/connector.yaml', import.meta.url));
const DOC_PATH = fileURLToPath(new URL('../../docs/connector-resource.md', import.meta.url));

const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/**
 * Structural validation as the API server does it before CEL: types, required fields, enums,
 * patterns, lengths, formats, and fields that would be pruned. CEL rules run in the cluster tests.
 */
function structuralErrors(value: unknown, schema: JsonSchema, path: string): string[] {
  // The API server validates ObjectMeta itself; the CRD only declares it an object.
  if (path === '.metadata') return [];
  if (schema['x-kubernetes-int-or-string']) {
    if (typeof value === 'number' && Number.isInteger(value)) return [];
    return typeof value === 'string' ? [] : [`${path}: must be an integer or a string`];
  }
  const errors: string[] = [];
  switch (schema.type) {
    case 'object': {
      if (value === null || typeof value !== 'object' || Array.isArray(value))
        return [`${path}: must be an object`];
      const record = value as Record<string, unknown>;
      for (const key of schema.required ?? []) {
        if (!(key in record)) errors.push(`${path}.${key}: required`);
      }
      if (schema.maxProperties !== undefined && Object.keys(record).length > schema.maxProperties) {
        errors.push(`${path}: more than ${schema.maxProperties} entries`);
      }
      for (const [key, child] of Object.entries(record)) {
        const childSchema =
          schema.properties?.[key] ??
          (typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined);
        if (childSchema !== undefined) errors.push(...structuralErrors(child, childSchema, `${path}.${key}`));
        else if (!schema['x-kubernetes-preserve-unknown-fields'])
          errors.push(`${path}.${key}: unknown field`);
      }
      break;
    }
    case 'array':
      if (!Array.isArray(value)) return [`${path}: must be a list`];
      if (schema.maxItems !== undefined && value.length > schema.maxItems)
        errors.push(`${path}: too many items`);
      value.forEach((item, index) => {
        if (schema.items) errors.push(...structuralErrors(item, schema.items, `${path}[${index}]`));
      });
      break;
    case 'string':
      if (typeof value !== 'string') return [`${path}: must be a string`];
      if (schema.maxLength !== undefined && value.length > schema.maxLength) errors.push(`${path}: too long`);
      if (schema.minLength !== undefined && value.length < schema.minLength)
        errors.push(`${path}: too short`);
      if (schema.pattern !== undefined && !new RegExp(schema.pattern).test(value))
        errors.push(`${path}: pattern`);
      if (schema.format === 'date-time' && !DATE_TIME.test(value))
        errors.push(`${path}: not an RFC 3339 time`);
      break;
    case 'integer':
      if (!Number.isInteger(value)) return [`${path}: must be an integer`];
      if (schema.minimum !== undefined && (value as number) < schema.minimum)
        errors.push(`${path}: below minimum`);
      break;
    case 'boolean':
      if (typeof value !== 'boolean') return [`${path}: must be true or false`];
      break;
    default:
      errors.push(`${path}: schema has no type`);
  }
  if (schema.enum !== undefined && !schema.enum.includes(value))
    errors.push(`${path}: "${String(value)}" not allowed`);
  return errors;
}

/** The ControlPlane and ClusterControlPlane CRDs, in that order. */
function controlPlaneCrds() {
  return Promise.all(
    [CONTROL_PLANE, CLUSTER_CONTROL_PLANE].map((names) =>
      loadCrd(CONTROL_PLANE_CRD_PATHS[names.kind], names.crdName),
    ),
  );
}

async function schemas(): Promise<{ root: JsonSchema; spec: JsonSchema; status: JsonSchema }> {
  const root = connectorSchema(await loadConnectorCrd());
  const spec = root.properties?.spec;
  const status = root.properties?.status;
  if (!spec || !status) throw new Error('CRD schema lacks spec or status');
  return { root, spec, status };
}

/** Every [path, schema] pair in a schema tree, skipping passed-through subtrees. */
function walk(schema: JsonSchema, path: string): Array<[string, JsonSchema]> {
  const found: Array<[string, JsonSchema]> = [[path, schema]];
  if (schema['x-kubernetes-preserve-unknown-fields']) return found;
  for (const [key, value] of Object.entries(schema.properties ?? {}))
    found.push(...walk(value, `${path}.${key}`));
  if (schema.items) found.push(...walk(schema.items, `${path}[]`));
  if (typeof schema.additionalProperties === 'object')
    found.push(...walk(schema.additionalProperties, `${path}{}`));
  return found;
}

test('the CRD names the resource the way the constants do', async (t) => {
  const crd = await loadConnectorCrd();
  t.is(crd.metadata.name, CRD_NAME);
  t.is(crd.spec.group, GROUP);
  t.is(crd.spec.scope, 'Namespaced');
  t.is(crd.spec.names.kind, KIND);
  t.is(crd.spec.names.plural, PLURAL);
  t.deepEqual(crd.spec.names.shortNames, [...SHORT_NAMES]);
  t.deepEqual(crd.spec.names.categories, ['vaultpam']);
  const [version] = crd.spec.versions;
  t.is(version?.name, VERSION);
  t.deepEqual(version?.subresources, { status: {} });
  const columns = version?.additionalPrinterColumns?.map((c) => [
    c.name,
    c.jsonPath,
    c.type,
    c.priority ?? 0,
  ]);
  t.deepEqual(columns, [
    ['Phase', '.status.phase', 'string', 0],
    // The phase is the last one seen; Ready says whether it holds now (Unknown while the operator
    // cannot reach the control plane), and -o wide says why not.
    ['Ready', '.status.conditions[?(@.type=="Ready")].status', 'string', 0],
    ['Reason', '.status.conditions[?(@.type=="Ready")].reason', 'string', 1],
    ['Mode', '.status.mode', 'string', 0],
    ['Last Heartbeat', '.status.lastHeartbeatTime', 'date', 0],
    ['Age', '.metadata.creationTimestamp', 'date', 0],
    ['Connector ID', '.status.connectorId', 'string', 1],
    // A date column shows the age of a time, and a future expiry renders as <invalid>.
    ['Token Expiry', '.status.liveToken.expiresAt', 'string', 1],
  ]);
});

test('the runbook failure classes of the process contract are the CRD enum of status.diagnosis', async (t) => {
  const { status } = await schemas();
  const failureClass = status.properties?.diagnosis?.properties?.failureClass;
  t.deepEqual(failureClass?.enum, [...RUNBOOK_FAILURE_CLASSES]);
});

test('the sample manifest is a structurally valid Connector and defaults cleanly', async (t) => {
  const { root } = await schemas();
  const sample = load(await readFile(SAMPLE_PATH, 'utf8')) as Connector;
  t.is(sample.apiVersion, API_VERSION);
  t.is(sample.kind, KIND);
  t.deepEqual(structuralErrors(sample, root, ''), []);
  const defaulted = defaultedSpec(sample);
  t.is(defaulted.connector.id, 'vaultpam.dc1-connector');
  t.deepEqual(defaulted.storage, { kind: 'OperatorClaim', size: '1Gi', storageClassName: 'standard' });
  t.is(defaulted.tokenTTLSeconds, 3600);
});

test('structural validation refuses what the API server would refuse or prune', async (t) => {
  const { root } = await schemas();
  const sample = load(await readFile(SAMPLE_PATH, 'utf8')) as Connector;
  const broken = {
    ...sample,
    spec: {
      ...sample.spec,
      connector: { org: 'acme' },
      imagePullPolicy: 'Sometimes',
      storage: { size: 1 },
      resources: { limits: { memory: true } },
      tokenTTL: '4h',
    },
  };
  t.deepEqual(structuralErrors(broken, root, '').sort(), [
    '.spec.connector.endpointId: required',
    '.spec.imagePullPolicy: "Sometimes" not allowed',
    '.spec.resources.limits.memory: must be an integer or a string',
    '.spec.storage.size: must be a string',
    '.spec.tokenTTL: unknown field',
  ]);
});

test('every validation rule has a message that names the field and at least a dozen are distinct', async (t) => {
  const { root } = await schemas();
  const messages: string[] = [];
  for (const [path, schema] of walk(root, '')) {
    for (const rule of schema['x-kubernetes-validations'] ?? []) {
      t.truthy(rule.message, `${path}: rule ${rule.rule} has no message`);
      const message = rule.message ?? '';
      t.regex(message, /^(spec|metadata)[.:]/, `${path}: message should start with the field it is about`);
      t.false(message.includes('\n'), `${path}: message must be one line`);
      messages.push(message);
    }
  }
  t.true(new Set(messages).size >= 12, `only ${new Set(messages).size} distinct messages`);
  t.is(new Set(messages).size, messages.length, 'two rules share a message');
});

test('the CRDs quote each pattern the operator checks verbatim, and no other', async (t) => {
  const { root } = await schemas();
  const roots = [root, ...(await controlPlaneCrds()).map(connectorSchema)];
  const rules = roots.flatMap((schema) =>
    walk(schema, '').flatMap(([, node]) =>
      (node['x-kubernetes-validations'] ?? []).flatMap((rule) => [rule.rule, rule.messageExpression ?? '']),
    ),
  );
  const quoted = new Set(rules.flatMap((rule) => [...rule.matchAll(/r'([^']*)'/g)].map((m) => m[1] ?? '')));
  const known = new Set<string>([...Object.values(PATTERNS), '\\s']);
  for (const [name, pattern] of Object.entries(PATTERNS))
    t.true(quoted.has(pattern), `PATTERNS.${name} is not quoted in the CRDs`);
  t.deepEqual(
    [...quoted].filter((pattern) => !known.has(pattern)),
    [],
    'a pattern in the CRD that validation.ts does not check',
  );
  // A pattern with a backslash is a raw string, so what the file shows is what RE2 reads.
  for (const rule of rules) t.notRegex(rule, /matches\('[^']*\\/, rule);
});

test('every spec string, list and map is bounded so CEL cost estimates fit', async (t) => {
  const { spec } = await schemas();
  for (const [path, schema] of walk(spec, 'spec')) {
    if (schema.type === 'string' && schema.enum === undefined)
      t.not(schema.maxLength, undefined, `${path}: maxLength`);
    if (schema.type === 'array') t.not(schema.maxItems, undefined, `${path}: maxItems`);
    if (schema.type === 'object' && typeof schema.additionalProperties === 'object') {
      t.not(schema.maxProperties, undefined, `${path}: maxProperties`);
    }
  }
});

test('every spec and status field has a description for kubectl explain', async (t) => {
  const { spec, status } = await schemas();
  const undocumented = [...walk(spec, 'spec'), ...walk(status, 'status')]
    .filter(([path]) => !path.endsWith('[]') && !path.endsWith('{}'))
    .filter(([path]) => !path.startsWith('status.conditions') || path === 'status.conditions')
    .filter(([, schema]) => !schema.description)
    .map(([path]) => path);
  t.deepEqual(undocumented, []);
});

test('docs/connector-resource.md quotes every validation message and names every field', async (t) => {
  const { root, spec, status } = await schemas();
  const doc = await readFile(DOC_PATH, 'utf8');
  for (const [path, schema] of walk(root, '')) {
    for (const rule of schema['x-kubernetes-validations'] ?? []) {
      // Rules with a messageExpression are documented by an example of the message it builds.
      if (rule.messageExpression === undefined)
        t.true(doc.includes(rule.message ?? ''), `${path}: ${rule.message}`);
    }
  }
  const leafNames = [...walk(spec, 'spec'), ...walk(status, 'status')]
    .map(
      ([path]) =>
        path
          .replace(/\[\]|\{\}/g, '')
          .split('.')
          .at(-1) ?? '',
    )
    .filter((name) => name !== 'spec' && name !== 'status');
  for (const name of new Set(leafNames)) t.true(doc.includes(name), `field ${name} is not in the doc`);
});

test('the client model of the CRD serializes back to the file, validation rules and enums included', async (t) => {
  const raw = await loadConnectorCrd();
  // dumpYaml serializes the way the API client does before sending.
  t.deepEqual(load(dumpYaml(await loadConnectorCrdModel())), raw);
  // The plain YAML would lose its rules on the way: the reason loadConnectorCrdModel exists.
  const lossy = load(dumpYaml(raw)) as typeof raw;
  const spec = connectorSchema(lossy).properties?.spec;
  t.is(spec?.['x-kubernetes-validations'], undefined);
  t.is(spec?.properties?.imagePullPolicy?.enum, undefined);
});

// ---- ControlPlane and ClusterControlPlane ----

const CONTROL_PLANE_DOC = fileURLToPath(new URL('../../docs/control-planes.md', import.meta.url));

/** A schema without its descriptions: the two kinds differ only in where their Secret lives. */
function withoutDescriptions(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(withoutDescriptions);
  if (schema === null || typeof schema !== 'object') return schema;
  return Object.fromEntries(
    Object.entries(schema)
      .filter(([key]) => key !== 'description')
      .map(([key, value]) => [key, withoutDescriptions(value)]),
  );
}

test('the control-plane CRDs name their kinds as the constants do and print URL, Ready and Age', async (t) => {
  const crds = await controlPlaneCrds();
  for (const [crd, names, scope] of [
    [crds[0], CONTROL_PLANE, 'Namespaced'],
    [crds[1], CLUSTER_CONTROL_PLANE, 'Cluster'],
  ] as const) {
    t.is(crd?.metadata.name, names.crdName);
    t.is(crd?.spec.group, GROUP);
    t.is(crd?.spec.scope, scope);
    t.like(crd?.spec.names, { kind: names.kind, plural: names.plural, singular: names.singular });
    t.deepEqual(crd?.spec.names.shortNames, [...names.shortNames]);
    const version = crd?.spec.versions[0];
    t.is(version?.name, VERSION);
    t.deepEqual(version?.subresources, { status: {} });
    t.deepEqual(
      version?.additionalPrinterColumns?.filter((c) => !c.priority).map((c) => [c.name, c.jsonPath]),
      [
        ['URL', '.spec.url'],
        ['Ready', '.status.conditions[?(@.type=="Ready")].status'],
        ['Age', '.metadata.creationTimestamp'],
      ],
    );
  }
});

test('ControlPlane and ClusterControlPlane share one schema, the one the types are generated from', async (t) => {
  const [namespaced, cluster] = (await controlPlaneCrds()).map(connectorSchema);
  t.deepEqual(withoutDescriptions(namespaced), withoutDescriptions(cluster));
  const root = namespaced as JsonSchema;
  const child = (name: string) => root.properties?.[name] as JsonSchema;
  t.deepEqual(structuralErrors({ spec: { url: 'https://x' } }, root, ''), [
    '.spec.credentialSecretRef: required',
  ]);
  const undocumented = [...walk(child('spec'), 'spec'), ...walk(child('status'), 'status')]
    .filter(([path]) => !path.endsWith('[]') && !path.startsWith('status.conditions['))
    .filter(([, schema]) => !schema.description)
    .map(([path]) => path);
  t.deepEqual(undocumented, [], 'kubectl explain has a description for every field');
  for (const [path, schema] of walk(child('spec'), 'spec'))
    if (schema.type === 'string') t.not(schema.maxLength, undefined, `${path}: maxLength`);
});

test('every control-plane validation rule names its field and docs/control-planes.md quotes it', async (t) => {
  const doc = await readFile(CONTROL_PLANE_DOC, 'utf8');
  const messages = walk(connectorSchema((await controlPlaneCrds())[0] as never), '').flatMap(([, schema]) =>
    (schema['x-kubernetes-validations'] ?? []).map((rule) => rule.message ?? ''),
  );
  t.is(messages.length, 7);
  for (const message of messages) {
    t.regex(message, /^spec\./);
    t.true(doc.includes(message), message);
  }
});

test('the control-plane samples are structurally valid and default cleanly', async (t) => {
  const [namespaced, cluster] = (await controlPlaneCrds()).map(connectorSchema);
  for (const [file, schema] of [
    ['controlplane.yaml', namespaced],
    ['clustercontrolplane.yaml', cluster],
  ] as const) {
    const sample = load(
      await readFile(fileURLToPath(new URL(`../../manifests/samples/${file}`, import.meta.url)), 'utf8'),
    ) as ControlPlaneResource;
    t.deepEqual(structuralErrors(sample, schema as JsonSchema, ''), [], file);
    t.like(defaultedControlPlaneSpec(sample.spec), { credentialSecretRef: { key: 'credential' } }, file);
  }
});
