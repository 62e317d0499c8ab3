// Where the API server is and how the operator proves who it is: read from the pod's ServiceAccount
// (in-cluster) or from kubeconfig files, into a KubeEndpoint the operator's own client serves
// (kube-transport.ts). What this reads is what an operator needs in a pod and on a workstation with
// a certificate or token: a cluster's server, certificate-authority(-data),
// insecure-skip-tls-verify and tls-server-name; a user's client-certificate(-data) and
// client-key(-data), token and tokenFile. A kubeconfig that needs more (an exec credential plugin,
// an auth-provider, a proxy, basic auth, impersonation) is reported as such, with the reason, and
// is served through @kubernetes/client-node, loaded only then (kube-fallback.ts), so users running
// the operator out of cluster against cloud clusters keep working.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import { load } from 'js-yaml';
import { CodedError, errorMessage, fsErrorCode } from '../../lib/errors.ts';
import { isRecord } from '../../lib/is-record.ts';

/** Where Kubernetes mounts a pod's ServiceAccount token, the cluster's CA and the namespace. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

export type KubeCredential =
  | { kind: 'none' }
  | { kind: 'token'; token: string }
  /** Re-read as it rotates (kube-token.ts): a projected ServiceAccount token, a tokenFile. */
  | { kind: 'tokenFile'; path: string };

export interface KubeEndpoint {
  /** The API server, always https. */
  server: URL;
  /** The CA that signs the server's certificate (PEM); the system's CAs when absent. */
  ca?: Buffer;
  /** Client certificate and key (PEM), for a user that authenticates with one. */
  cert?: Buffer;
  key?: Buffer;
  /** insecure-skip-tls-verify: the server's certificate is not verified. */
  insecureSkipTlsVerify: boolean;
  /** The name to verify the server's certificate against, when it differs from the server's host. */
  tlsServerName?: string;
  credential: KubeCredential;
  /** The ServiceAccount's namespace in a pod, or the context's namespace. */
  namespace?: string;
  /** Where it came from, for logs and errors: `in-cluster`, or the kubeconfig and context. */
  source: string;
}

/** A kubeconfig this module cannot serve on its own, and why: client-node serves it. */
export interface ClientNodeNeeded {
  reason: string;
  /** The kubeconfig files, in the order given, and the context to use. */
  files: string[];
  context: string;
  source: string;
}

export type KubeconfigReading = { endpoint: KubeEndpoint } | { clientNode: ClientNodeNeeded };

export interface LoadOptions {
  /** The environment (KUBECONFIG, HOME, KUBERNETES_SERVICE_HOST/PORT); process.env when omitted. */
  env?: NodeJS.ProcessEnv;
  /** Kubeconfig files to read instead of KUBECONFIG (a list, separated like PATH). */
  kubeconfig?: string;
  /** The context to use; the kubeconfig's current-context when omitted. */
  context?: string;
  /** Where the ServiceAccount is mounted; SERVICE_ACCOUNT_DIR when omitted. */
  serviceAccountDir?: string;
}

/**
 * Finds the credentials the way kubectl and client-node do: the files KUBECONFIG names (merged as
 * kubectl merges them: the first file that sets a name or the current-context wins), else
 * ~/.kube/config when it exists, else the pod's ServiceAccount. Errors say what was tried; none
 * quotes a credential.
 */
export function loadKubeEndpoint(options: LoadOptions = {}): KubeconfigReading {
  const env = options.env ?? process.env;
  const listed = (options.kubeconfig ?? env.KUBECONFIG ?? '').split(delimiter).filter((f) => f !== '');
  if (listed.length > 0) return fromKubeconfigFiles(listed, options.context);
  const home = join(env.HOME || homedir(), '.kube', 'config');
  if (existsSync(home)) return fromKubeconfigFiles([home], options.context);
  const serviceAccountDir = options.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
  if (env.KUBERNETES_SERVICE_HOST && existsSync(join(serviceAccountDir, 'token'))) {
    return { endpoint: inClusterEndpoint(env, serviceAccountDir) };
  }
  throw new CodedError(
    'KUBECONFIG_INVALID',
    `no credentials found: KUBECONFIG is not set, ${home} does not exist, and this is not a pod with a ServiceAccount token in ${serviceAccountDir}`,
  );
}

/** The pod's own ServiceAccount: the API server the kubelet names in the environment, the mounted token and CA. */
export function inClusterEndpoint(
  env: NodeJS.ProcessEnv = process.env,
  serviceAccountDir = SERVICE_ACCOUNT_DIR,
): KubeEndpoint {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) {
    throw new CodedError(
      'KUBECONFIG_INVALID',
      'in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must both be set (the kubelet sets them in every pod)',
    );
  }
  const tokenPath = join(serviceAccountDir, 'token');
  if (!existsSync(tokenPath)) {
    throw new CodedError('KUBECONFIG_INVALID', `in-cluster: no ServiceAccount token at ${tokenPath}`);
  }
  const namespacePath = join(serviceAccountDir, 'namespace');
  const namespace = existsSync(namespacePath) ? readText(namespacePath, 'in-cluster').trim() : '';
  return {
    server: new URL(`https://${host.includes(':') ? `[${host}]` : host}:${port}`),
    ca: readBytes(join(serviceAccountDir, 'ca.crt'), 'in-cluster'),
    insecureSkipTlsVerify: false,
    credential: { kind: 'tokenFile', path: tokenPath },
    ...(namespace ? { namespace } : {}),
    source: `in-cluster (ServiceAccount token in ${serviceAccountDir})`,
  };
}

interface Entry {
  fields: Record<string, unknown>;
  /** Relative file paths in an entry are relative to the kubeconfig that holds it. */
  dir: string;
}

interface Kubeconfig {
  clusters: Map<string, Entry>;
  users: Map<string, Entry>;
  contexts: Map<string, Entry>;
  currentContext: string | undefined;
  files: string[];
}

/** Reads and merges kubeconfig files (the first that sets a name or the current-context wins). */
export function fromKubeconfigFiles(files: string[], context?: string): KubeconfigReading {
  const merged: Kubeconfig = {
    clusters: new Map(),
    users: new Map(),
    contexts: new Map(),
    currentContext: undefined,
    files: [],
  };
  for (const file of files) {
    const path = resolve(file);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (error) {
      throw new CodedError('KUBECONFIG_INVALID', `cannot read ${file}: ${fsErrorCode(error)}`);
    }
    mergeInto(merged, parseKubeconfig(text, path, dirname(path)));
  }
  return endpointOf(merged, context);
}

/**
 * A kubeconfig given as text (YAML or JSON), e.g. what client-node's KubeConfig exports; relative
 * paths in it are relative to `baseDir`.
 */
export function fromKubeconfigText(
  text: string,
  what: string,
  baseDir: string,
  context?: string,
): KubeconfigReading {
  return endpointOf(parseKubeconfig(text, what, baseDir), context);
}

function parseKubeconfig(text: string, what: string, dir: string): Kubeconfig {
  let document: unknown;
  try {
    document = load(text);
  } catch (error) {
    throw new CodedError('KUBECONFIG_INVALID', `${what} is not YAML: ${errorMessage(error).split('\n')[0]}`);
  }
  if (document !== null && document !== undefined && !isRecord(document)) {
    throw new CodedError('KUBECONFIG_INVALID', `${what} is not a kubeconfig (expected a mapping)`);
  }
  const config = (document ?? {}) as Record<string, unknown>;
  const current = config['current-context'];
  return {
    clusters: named(config.clusters, 'clusters', 'cluster', what, dir),
    users: named(config.users, 'users', 'user', what, dir),
    contexts: named(config.contexts, 'contexts', 'context', what, dir),
    currentContext: typeof current === 'string' && current !== '' ? current : undefined,
    files: [what],
  };
}

function named(list: unknown, field: string, inner: string, what: string, dir: string): Map<string, Entry> {
  const entries = new Map<string, Entry>();
  if (list === undefined || list === null) return entries;
  if (!Array.isArray(list)) throw new CodedError('KUBECONFIG_INVALID', `${what}: ${field} must be a list`);
  list.forEach((item: unknown, index) => {
    const name = isRecord(item) ? item.name : undefined;
    if (typeof name !== 'string' || name === '') {
      throw new CodedError('KUBECONFIG_INVALID', `${what}: ${field}[${index}] has no name`);
    }
    const fields = isRecord(item) ? item[inner] : undefined;
    if (fields !== undefined && fields !== null && !isRecord(fields)) {
      throw new CodedError(
        'KUBECONFIG_INVALID',
        `${what}: ${field}[${index}] (${name}).${inner} must be a mapping`,
      );
    }
    if (!entries.has(name)) entries.set(name, { fields: (fields ?? {}) as Record<string, unknown>, dir });
  });
  return entries;
}

function mergeInto(into: Kubeconfig, from: Kubeconfig): void {
  for (const kind of ['clusters', 'users', 'contexts'] as const) {
    for (const [name, entry] of from[kind]) if (!into[kind].has(name)) into[kind].set(name, entry);
  }
  into.currentContext ??= from.currentContext;
  into.files.push(...from.files);
}

/** Kubeconfig fields that need client-node, with what they are, in the order they are checked. */
const USER_NEEDS_CLIENT_NODE: ReadonlyArray<[string, string]> = [
  ['exec', 'an exec credential plugin'],
  ['auth-provider', 'an auth-provider'],
  ['username', 'basic authentication'],
  ['password', 'basic authentication'],
  ['as', 'impersonation'],
  ['as-groups', 'impersonation'],
  ['as-uid', 'impersonation'],
];

function endpointOf(config: Kubeconfig, requested: string | undefined): KubeconfigReading {
  const where = config.files.join(', ');
  const contextName = requested ?? config.currentContext;
  if (!contextName) {
    throw new CodedError(
      'KUBECONFIG_INVALID',
      `${where}: no current-context is set and no context was named`,
    );
  }
  const context = config.contexts.get(contextName);
  if (!context) throw new CodedError('KUBECONFIG_INVALID', `${where}: no context named "${contextName}"`);
  const source = `kubeconfig ${where}, context ${contextName}`;
  const clusterName = stringField(context, 'cluster', source);
  if (!clusterName) throw new CodedError('KUBECONFIG_INVALID', `${source}: the context names no cluster`);
  const cluster = config.clusters.get(clusterName);
  if (!cluster) throw new CodedError('KUBECONFIG_INVALID', `${source}: no cluster named "${clusterName}"`);
  const userName = stringField(context, 'user', source);
  const user = userName ? config.users.get(userName) : undefined;
  if (userName && !user) throw new CodedError('KUBECONFIG_INVALID', `${source}: no user named "${userName}"`);

  const needs =
    (cluster.fields['proxy-url'] ? 'a proxy (proxy-url)' : undefined) ??
    USER_NEEDS_CLIENT_NODE.find(
      ([field]) => user?.fields[field] !== undefined && user.fields[field] !== null,
    )?.[1];
  if (needs) {
    return { clientNode: { reason: `it uses ${needs}`, files: config.files, context: contextName, source } };
  }

  const serverText = stringField(cluster, 'server', source);
  if (!serverText)
    throw new CodedError('KUBECONFIG_INVALID', `${source}: cluster "${clusterName}" has no server`);
  let server: URL;
  try {
    server = new URL(serverText);
  } catch {
    throw new CodedError('KUBECONFIG_INVALID', `${source}: the server "${serverText}" is not a URL`);
  }
  if (server.protocol !== 'https:') {
    throw new CodedError('KUBECONFIG_INVALID', `${source}: the server ${serverText} must be https://`);
  }
  const ca = material(cluster, 'certificate-authority', source);
  const cert = user ? material(user, 'client-certificate', source) : undefined;
  const key = user ? material(user, 'client-key', source) : undefined;
  if ((cert === undefined) !== (key === undefined)) {
    throw new CodedError(
      'KUBECONFIG_INVALID',
      `${source}: user "${userName}" has a client ${cert ? 'certificate but no key' : 'key but no certificate'}`,
    );
  }
  const tlsServerName = stringField(cluster, 'tls-server-name', source);
  const namespace = stringField(context, 'namespace', source);
  return {
    endpoint: {
      server,
      ...(ca ? { ca } : {}),
      ...(cert && key ? { cert, key } : {}),
      insecureSkipTlsVerify: cluster.fields['insecure-skip-tls-verify'] === true,
      ...(tlsServerName ? { tlsServerName } : {}),
      credential: user ? credentialOf(user, source) : { kind: 'none' },
      ...(namespace ? { namespace } : {}),
      source,
    },
  };
}

/** tokenFile before token, as client-go has it: the file is what rotates. */
function credentialOf(user: Entry, source: string): KubeCredential {
  const tokenFile = stringField(user, 'tokenFile', source);
  if (tokenFile) return { kind: 'tokenFile', path: pathIn(user, tokenFile) };
  const token = stringField(user, 'token', source);
  return token ? { kind: 'token', token } : { kind: 'none' };
}

/** `<field>-data` (base64 PEM) or `<field>` (a file), read now. */
function material(entry: Entry, field: string, source: string): Buffer | undefined {
  const data = stringField(entry, `${field}-data`, source);
  if (data) return Buffer.from(data, 'base64');
  const file = stringField(entry, field, source);
  return file ? readBytes(pathIn(entry, file), source) : undefined;
}

function pathIn(entry: Entry, file: string): string {
  return isAbsolute(file) ? file : join(entry.dir, file);
}

function stringField(entry: Entry, field: string, source: string): string | undefined {
  const value = entry.fields[field];
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string')
    throw new CodedError('KUBECONFIG_INVALID', `${source}: ${field} must be a string`);
  return value;
}

function readBytes(path: string, source: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new CodedError('KUBECONFIG_INVALID', `${source}: cannot read ${path}: ${fsErrorCode(error)}`);
  }
}

function readText(path: string, source: string): string {
  return readBytes(path, source).toString('utf8');
}
