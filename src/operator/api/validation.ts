// The syntax Kubernetes requires of the names, labels, annotations, image and quantities a
// Connector passes into the objects the operator builds, checked the way the CRD's CEL rules check
// them. The patterns are written once, here, in the subset of regular expressions that JavaScript
// and RE2 (CEL's `matches`) read alike; the CRD quotes each one verbatim as a raw string r'...'
// (test/unit/operator-api-schema.test.ts checks that), so the operator refuses exactly what
// admission refuses when an object was stored before a rule existed.
import { Buffer } from 'node:buffer';
import { MAX_CONNECTOR_NAME_LENGTH, MAX_CONTROL_PLANE_URL_LENGTH } from './constants.ts';
import type { ConfigMapKeyRef, ConnectorSpec, Quantity, SecretKeyRef } from './crd-types.generated.ts';

const DNS_LABEL_PART = '[a-z0-9]([-a-z0-9]*[a-z0-9])?';
const SUBDOMAIN = `${DNS_LABEL_PART}(\\.${DNS_LABEL_PART})*`;
const LABEL_NAME = '[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?';
// Image reference, as github.com/distribution/reference reads it: [domain/]path[:tag][@digest].
// The domain is a host with a '.' or a port, localhost, or a bracketed IPv6 address; the path is
// lower case; a tag is at most 128 characters.
const DOMAIN_COMPONENT = '[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?';
const DOMAIN =
  `((${DOMAIN_COMPONENT}(\\.${DOMAIN_COMPONENT})+|localhost|\\[[0-9A-Fa-f:]+\\])(:[0-9]+)?` +
  `|${DOMAIN_COMPONENT}:[0-9]+)`;
const PATH_COMPONENT = '[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*';
const TAG = '[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}';
const DIGEST = '[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,}';

/** The patterns, as the CRD quotes them (r'...'); each is anchored. */
export const PATTERNS = {
  /** RFC 1123 label: a StatefulSet's name (and so a Connector's), at most 63 characters. */
  dnsLabel: '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$',
  /** RFC 1123 subdomain: names of Secrets, ConfigMaps, claims, classes, accounts (at most 253). */
  dnsSubdomain: `^${SUBDOMAIN}$`,
  /** Label key: optional DNS subdomain prefix (at most 253 characters) and '/', then a name of at most 63. */
  labelKey: `^(${SUBDOMAIN}/)?${LABEL_NAME}$`,
  /** Label value: empty, or at most 63 letters, digits, '-', '_', '.' starting and ending alphanumeric. */
  labelValue: `^(${LABEL_NAME})?$`,
  /** Annotation key: a label key whose prefix may be upper case (Kubernetes lower-cases it to check). */
  annotationKey: `^(${DOMAIN_COMPONENT}(\\.${DOMAIN_COMPONENT})*/)?${LABEL_NAME}$`,
  /** Key within a ConfigMap or Secret; also neither '.' nor starting with '..'. */
  configKey: '^[-._a-zA-Z0-9]+$',
  /** Resource names other than cpu, memory, ephemeral-storage and hugepages-<size>. */
  extendedResourceName: `^${SUBDOMAIN}/${LABEL_NAME}$`,
  imageReference: `^(${DOMAIN}/)?${PATH_COMPONENT}(/${PATH_COMPONENT})*(:${TAG})?(@${DIGEST})?$`,
} as const;

export const DNS_SUBDOMAIN_MAX_LENGTH = 253;
/**
 * Kubernetes' limit on the keys and values of one object's annotations together, in bytes of UTF-8,
 * less 1 KiB for the annotations the operator adds to the pod itself (config hash, restart marker).
 */
export const MAX_POD_ANNOTATIONS_BYTES = 255 * 1024;
export const STANDARD_RESOURCE_NAMES: readonly string[] = ['cpu', 'memory', 'ephemeral-storage'];
export const HUGEPAGES_PREFIX = 'hugepages-';

const regex = Object.fromEntries(
  Object.entries(PATTERNS).map(([name, source]) => [name, new RegExp(source)]),
) as Record<keyof typeof PATTERNS, RegExp>;

export const isDnsLabel = (value: string): boolean => regex.dnsLabel.test(value);
export const isDnsSubdomain = (value: string): boolean =>
  value.length <= DNS_SUBDOMAIN_MAX_LENGTH && regex.dnsSubdomain.test(value);
/** The prefix before '/' (if any) is at most 253 characters, as for CEL's `k.indexOf('/') <= 253`. */
const prefixFits = (key: string): boolean => key.indexOf('/') <= DNS_SUBDOMAIN_MAX_LENGTH;
export const isLabelKey = (key: string): boolean => regex.labelKey.test(key) && prefixFits(key);
export const isLabelValue = (value: string): boolean => regex.labelValue.test(value);
export const isAnnotationKey = (key: string): boolean => regex.annotationKey.test(key) && prefixFits(key);
export const isConfigKey = (key: string): boolean =>
  key.length <= DNS_SUBDOMAIN_MAX_LENGTH && regex.configKey.test(key) && key !== '.' && !key.startsWith('..');
export const isImageReference = (image: string): boolean => regex.imageReference.test(image);

/** Bytes of UTF-8 the keys and values of a map take together, as Kubernetes counts annotations. */
export function annotationsBytes(annotations: Record<string, string>): number {
  let total = 0;
  for (const [key, value] of Object.entries(annotations))
    total += Buffer.byteLength(key) + Buffer.byteLength(value);
  return total;
}

// ---- quantities ----

/** A parsed Kubernetes quantity, exactly: sign * digits * 10^exp10 * 2^exp2. */
export interface ParsedQuantity {
  sign: -1 | 0 | 1;
  digits: bigint;
  exp10: number;
  exp2: number;
}

const QUANTITY = /^([+-]?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?$/;
const DECIMAL_SUFFIXES: Record<string, number> = {
  n: -9,
  u: -6,
  m: -3,
  k: 3,
  M: 6,
  G: 9,
  T: 12,
  P: 15,
  E: 18,
};
const BINARY_SUFFIXES: Record<string, number> = { Ki: 10, Mi: 20, Gi: 30, Ti: 40, Pi: 50, Ei: 60 };
/**
 * Exponents beyond this are refused here though Kubernetes parses them: no real resource needs
 * 10^1000, and exact arithmetic on such numbers would be slow.
 */
const MAX_EXPONENT = 1000;

/** Parses a quantity as resource.ParseQuantity (and CEL's quantity()) does; undefined if it is none. */
export function parseQuantity(value: Quantity): ParsedQuantity | undefined {
  const text = typeof value === 'number' ? (Number.isInteger(value) ? String(value) : '') : value;
  const match = QUANTITY.exec(text);
  if (match === null) return undefined;
  const [, signText, number = '', suffix = ''] = match;
  const [whole = '', fraction = ''] = number.split('.');
  const digits = BigInt(`${whole}${fraction}` || '0');
  let exp10 = -fraction.length;
  let exp2 = 0;
  if (suffix in BINARY_SUFFIXES) exp2 = BINARY_SUFFIXES[suffix] ?? 0;
  else if (suffix in DECIMAL_SUFFIXES) exp10 += DECIMAL_SUFFIXES[suffix] ?? 0;
  else if (suffix !== '') exp10 += Number(suffix.slice(1));
  if (Math.abs(exp10) > MAX_EXPONENT) return undefined;
  const sign = digits === 0n ? 0 : signText === '-' ? -1 : 1;
  return { sign, digits, exp10, exp2 };
}

/** The quantity as a fraction numerator / denominator (denominator a power of ten). */
function fraction(q: ParsedQuantity): { numerator: bigint; denominator: bigint } {
  const magnitude = q.digits * 2n ** BigInt(q.exp2);
  const numerator = q.sign < 0 ? -magnitude : magnitude;
  return q.exp10 >= 0
    ? { numerator: numerator * 10n ** BigInt(q.exp10), denominator: 1n }
    : { numerator, denominator: 10n ** BigInt(-q.exp10) };
}

/** -1, 0 or 1, as CEL's `quantity(a).compareTo(quantity(b))`. */
export function compareQuantities(a: ParsedQuantity, b: ParsedQuantity): -1 | 0 | 1 {
  const x = fraction(a);
  const y = fraction(b);
  const left = x.numerator * y.denominator;
  const right = y.numerator * x.denominator;
  return left < right ? -1 : left > right ? 1 : 0;
}

/** Sizes stop below 10^15 bytes (1P), where the CRD's float comparison is still exact. */
export const MAX_STORAGE_BYTES = 10n ** 15n;

/** The CRD's rule for spec.storage.size: a whole number of bytes, below 10^15. */
export function isWholeBytes(q: ParsedQuantity): boolean {
  const { numerator, denominator } = fraction(q);
  return numerator % denominator === 0n && numerator / denominator < MAX_STORAGE_BYTES;
}

/**
 * A resource outside kubernetes.io (a device plugin's, such as example.com/gpu), as Kubernetes'
 * IsNativeResource tells it: a name with '/' that does not contain 'kubernetes.io/'.
 */
export const isExtendedResource = (name: string): boolean =>
  name.includes('/') && !name.includes('kubernetes.io/');
/** Kubernetes also reads an extended resource as the quota name requests.<name>: its prefix fits 253. */
const MAX_EXTENDED_RESOURCE_PREFIX = DNS_SUBDOMAIN_MAX_LENGTH - 'requests.'.length;

/** The quantity's value when it is a whole number below 10^15, the CRD's float-exact range. */
function wholeBelowLimit(q: ParsedQuantity): bigint | undefined {
  const { numerator, denominator } = fraction(q);
  return isWholeBytes(q) ? numerator / denominator : undefined;
}

/**
 * What Kubernetes requires of one amount of an extended resource (whole units) or of
 * hugepages-<size> (a whole multiple of a whole page size), as the CRD's rules check it; undefined
 * when it fits, or for any other resource.
 */
function amountProblem(name: string, q: ParsedQuantity): string | undefined {
  if (isExtendedResource(name))
    return wholeBelowLimit(q) === undefined
      ? 'is an extended resource, counted in whole units: its amount must be a whole number below 10^15'
      : undefined;
  if (!name.startsWith(HUGEPAGES_PREFIX)) return undefined;
  const page = parseQuantity(name.slice(HUGEPAGES_PREFIX.length));
  const pageBytes = page && page.sign > 0 ? wholeBelowLimit(page) : undefined;
  const bytes = wholeBelowLimit(q);
  return pageBytes === undefined || bytes === undefined || bytes % pageBytes !== 0n
    ? 'takes a whole multiple of its page size, itself a whole number of bytes'
    : undefined;
}

/** cpu, memory, ephemeral-storage, hugepages-<size> or `<domain>/<name>`, as a container may request. */
export function isContainerResourceName(name: string): boolean {
  if (STANDARD_RESOURCE_NAMES.includes(name)) return true;
  if (name.startsWith(HUGEPAGES_PREFIX))
    return parseQuantity(name.slice(HUGEPAGES_PREFIX.length)) !== undefined;
  return (
    regex.extendedResourceName.test(name) &&
    prefixFits(name) &&
    (!isExtendedResource(name) ||
      (!name.startsWith('requests.') && name.indexOf('/') <= MAX_EXTENDED_RESOURCE_PREFIX))
  );
}

// ---- the spec ----

/** A field and what is wrong with it: the CRD's rule for that field, in short. */
export type SpecProblem = [field: string, problem: string];

const quote = (value: string): string => JSON.stringify(value);

const LABEL_KEY_RULE =
  "a label key: an optional DNS subdomain prefix and '/', then at most 63 letters, digits, '-', '_' or '.' starting and ending with a letter or digit";
const LABEL_VALUE_RULE =
  "a label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit, or empty";
const DNS_SUBDOMAIN_RULE =
  "a DNS subdomain: at most 253 lower-case letters, digits, '-' and '.', starting and ending with a letter or digit";
const DNS_LABEL_RULE =
  "a DNS label: at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit";

function labelsProblem(field: string, labels: Record<string, string> | undefined): SpecProblem | undefined {
  for (const [key, value] of Object.entries(labels ?? {})) {
    if (!isLabelKey(key)) return [field, `${quote(key)} is not ${LABEL_KEY_RULE}`];
    if (!isLabelValue(value)) return [`${field}.${key}`, `${quote(value)} is not ${LABEL_VALUE_RULE}`];
  }
  return undefined;
}

function annotationsProblem(annotations: Record<string, string> | undefined): SpecProblem | undefined {
  const field = 'spec.podAnnotations';
  const key = Object.keys(annotations ?? {}).find((k) => !isAnnotationKey(k));
  if (key !== undefined) return [field, `${quote(key)} is not an annotation key (a label key, any case)`];
  const bytes = annotationsBytes(annotations ?? {});
  return bytes > MAX_POD_ANNOTATIONS_BYTES
    ? [field, `keys and values take ${bytes} bytes, more than ${MAX_POD_ANNOTATIONS_BYTES}`]
    : undefined;
}

function storageSizeProblem(size: string | undefined): SpecProblem | undefined {
  if (size === undefined) return undefined;
  const q = parseQuantity(size);
  return q === undefined || q.sign <= 0 || !isWholeBytes(q)
    ? [
        'spec.storage.size',
        `${quote(size)} is not a whole number of bytes greater than zero and below 10^15, e.g. 1Gi`,
      ]
    : undefined;
}

function nameProblem(field: string, value: string | undefined, label = false): SpecProblem | undefined {
  if (value === undefined) return undefined;
  if (label ? isDnsLabel(value) : isDnsSubdomain(value)) return undefined;
  return [field, `${quote(value)} is not ${label ? DNS_LABEL_RULE : DNS_SUBDOMAIN_RULE}`];
}

function keyProblem(field: string, value: string | undefined): SpecProblem | undefined {
  if (value === undefined || isConfigKey(value)) return undefined;
  return [
    field,
    `${quote(value)} is not a ConfigMap or Secret key: letters, digits, '-', '_' and '.', not '.' or '..'`,
  ];
}

function resourcesProblem(resources: ConnectorSpec['resources']): SpecProblem | undefined {
  const parsed: Record<'limits' | 'requests', Record<string, ParsedQuantity>> = { limits: {}, requests: {} };
  for (const kind of ['limits', 'requests'] as const) {
    for (const [name, value] of Object.entries(resources?.[kind] ?? {})) {
      const field = `spec.resources.${kind}`;
      if (!isContainerResourceName(name))
        return [
          field,
          `${quote(name)} is not a container resource name: use cpu, memory, ephemeral-storage, hugepages-<size> or a domain-qualified name such as example.com/gpu`,
        ];
      const q = parseQuantity(value);
      if (q === undefined || q.sign <= 0)
        return [
          `${field}.${name}`,
          `${quote(String(value))} is not a quantity greater than zero, e.g. 500m or 256Mi`,
        ];
      const amount = amountProblem(name, q);
      if (amount !== undefined) return [`${field}.${name}`, `${quote(String(value))} ${amount}`];
      parsed[kind][name] = q;
    }
  }
  for (const [name, request] of Object.entries(parsed.requests)) {
    const limit = parsed.limits[name];
    if (limit !== undefined && compareQuantities(request, limit) > 0)
      return [
        `spec.resources.requests.${name}`,
        'is larger than its limit; lower the request or raise the limit',
      ];
    // Kubernetes' IsOvercommitAllowed: neither hugepages nor an extended resource.
    if (
      (name.startsWith(HUGEPAGES_PREFIX) || isExtendedResource(name)) &&
      (limit === undefined || compareQuantities(request, limit) !== 0)
    )
      return [
        `spec.resources.requests.${name}`,
        'cannot be overcommitted: set the same amount in limits, or set the limit alone',
      ];
  }
  const all = [...Object.keys(parsed.requests), ...Object.keys(parsed.limits)];
  if (
    all.some((name) => name.startsWith(HUGEPAGES_PREFIX)) &&
    !all.some((name) => name === 'cpu' || name === 'memory')
  )
    return ['spec.resources', 'hugepages need a cpu or memory request or limit beside them'];
  return undefined;
}

function tolerationsProblem(tolerations: ConnectorSpec['tolerations']): SpecProblem | undefined {
  for (const [index, toleration] of (tolerations ?? []).entries()) {
    const field = `spec.tolerations[${index}]`;
    const { key = '', operator = 'Equal', value = '' } = toleration;
    if (key !== '' && !isLabelKey(key)) return [`${field}.key`, `${quote(key)} is not ${LABEL_KEY_RULE}`];
    if (key === '' && operator !== 'Exists') return [field, 'an empty key needs operator Exists'];
    if (operator === 'Exists' && value !== '') return [field, 'operator Exists takes no value'];
    if (!isLabelValue(value)) return [`${field}.value`, `${quote(value)} is not ${LABEL_VALUE_RULE}`];
    if (toleration.tolerationSeconds !== undefined && toleration.effect !== 'NoExecute')
      return [field, 'tolerationSeconds needs effect NoExecute'];
    // The CRD's maximum, for a Connector stored before it existed: a larger number is already
    // rounded here, and copied into the StatefulSet it is one no controller can read.
    if ((toleration.tolerationSeconds ?? 0) > Number.MAX_SAFE_INTEGER)
      return [`${field}.tolerationSeconds`, `is more than ${Number.MAX_SAFE_INTEGER}`];
  }
  return undefined;
}

function imageProblem(image: string | undefined): SpecProblem | undefined {
  if (image === undefined) return undefined;
  if (/\s/.test(image)) return ['spec.image', `${quote(image)} contains whitespace`];
  if (!isImageReference(image))
    return ['spec.image', `${quote(image)} is not an image reference [registry[:port]/]path[:tag][@digest]`];
  return undefined;
}

/** The control plane counts UTF-16 code units (JavaScript's length), the API server code points. */
function controlPlaneLengthProblem(field: string, value: string): SpecProblem | undefined {
  return value.length > 253
    ? [field, 'is longer than the 253 UTF-16 code units the control plane accepts']
    : undefined;
}

/** Why spec.controlPlane is refused, in the operator's words (the CRD's message says the same). */
export const CONTROL_PLANE_REMOVED =
  'this field was removed: a Connector no longer carries a URL or credential; ask an admin for a ControlPlane in this namespace or a ClusterControlPlane and set spec.controlPlaneRef';

/**
 * An absolute https URL with a host, as the CRD's `isURL(self) && url(self).getScheme() == 'https'
 * && url(self).getHostname() != ''` reads it: the admin credential and enrollment tokens travel over it.
 */
export function isHttpsUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return url.protocol === 'https:' && url.hostname !== '';
  } catch {
    return false;
  }
}

/** The first problem the CRD of a ControlPlane or ClusterControlPlane would report for its spec. */
export function controlPlaneSpecProblem(spec: {
  url?: unknown;
  caConfigMapRef?: ConfigMapKeyRef;
  credentialSecretRef?: SecretKeyRef;
}): SpecProblem | undefined {
  if (typeof spec.url !== 'string' || !isHttpsUrl(spec.url))
    return ['spec.url', 'is not an absolute https:// URL such as https://vaultpam.example.com'];
  // Counted as the CRD's maxLength counts: in characters (code points).
  if ([...spec.url].length > MAX_CONTROL_PLANE_URL_LENGTH)
    return ['spec.url', `is longer than ${MAX_CONTROL_PLANE_URL_LENGTH} characters`];
  // Shown by kubectl get: a password in it would be published to every reader of the resource.
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*@/.test(spec.url))
    return ['spec.url', 'must not carry a user name or password; the credential belongs in the Secret'];
  if (spec.credentialSecretRef?.name === undefined)
    return ['spec.credentialSecretRef.name', 'is required: the Secret with the admin credential'];
  return (
    nameProblem('spec.credentialSecretRef.name', spec.credentialSecretRef.name) ??
    keyProblem('spec.credentialSecretRef.key', spec.credentialSecretRef.key) ??
    nameProblem('spec.caConfigMapRef.name', spec.caConfigMapRef?.name) ??
    keyProblem('spec.caConfigMapRef.key', spec.caConfigMapRef?.key)
  );
}

/**
 * The first problem the CRD's syntax rules would report for this Connector, or undefined: its name,
 * what it sends the control plane, the names and keys it refers to, the pod's labels, annotations,
 * node selector, tolerations, image and resources, and the storage size.
 */
export function specProblem(name: string, spec: ConnectorSpec): SpecProblem | undefined {
  const { storage, workloadRef, controlPlane } = spec;
  const checks: Array<() => SpecProblem | undefined> = [
    () =>
      name.length > MAX_CONNECTOR_NAME_LENGTH || !isDnsLabel(name)
        ? [
            'metadata.name',
            `${quote(name)} is not ${DNS_LABEL_RULE} of at most ${MAX_CONNECTOR_NAME_LENGTH} characters`,
          ]
        : undefined,
    () => controlPlaneLengthProblem('spec.connector.org', spec.connector.org),
    () => controlPlaneLengthProblem('spec.connector.endpointId', spec.connector.endpointId),
    // Stored before the field was removed (the CRD refuses it now): never used, refused by name.
    () => (controlPlane === undefined ? undefined : ['spec.controlPlane', CONTROL_PLANE_REMOVED]),
    () => nameProblem('spec.controlPlaneRef.name', spec.controlPlaneRef?.name),
    () => imageProblem(spec.image),
    ...(spec.imagePullSecrets ?? []).map(
      (secret, index) => () => nameProblem(`spec.imagePullSecrets[${index}].name`, secret.name),
    ),
    () => resourcesProblem(spec.resources),
    () => labelsProblem('spec.nodeSelector', spec.nodeSelector),
    () => tolerationsProblem(spec.tolerations),
    () => nameProblem('spec.priorityClassName', spec.priorityClassName),
    () => nameProblem('spec.serviceAccountName', spec.serviceAccountName),
    () => labelsProblem('spec.podLabels', spec.podLabels),
    () => annotationsProblem(spec.podAnnotations),
    () => storageSizeProblem(storage?.size),
    () => nameProblem('spec.storage.storageClassName', storage?.storageClassName),
    () => nameProblem('spec.storage.existingClaim', storage?.existingClaim),
    () => nameProblem('spec.workloadRef.name', workloadRef?.name, workloadRef?.kind === 'StatefulSet'),
  ];
  for (const check of checks) {
    const problem = check();
    if (problem !== undefined) return problem;
  }
  return undefined;
}
