// Turns a container of a Pod into the command line and environment of a local process. This is
// the one place where the runner takes a liberty a kubelet does not need: the process sees the
// host's filesystem and network, so container paths and listen ports in its arguments and
// environment are rewritten to the host directories and loopback ports that stand in for them.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { V1ConfigMap, V1Container, V1Pod, V1Secret } from '@kubernetes/client-node';

/** What a container image runs as on this machine. */
export interface LocalCommand {
  command: string;
  /**
   * Host-side arguments placed before `args` and never mapped (the program's own script path):
   * a checkout under, say, /tmp must not be mistaken for a path inside the pod's /tmp mount.
   */
  hostArgs?: string[];
  /** The container's arguments, mapped like the pod spec's values. */
  args: string[];
  /** Extra environment for the process (applied before the pod's own env). */
  env?: Record<string, string>;
}

/** Maps a container to a local command; undefined means the image cannot run here. */
export type ResolveCommand = (container: V1Container, pod: V1Pod) => LocalCommand | undefined;

/** A volume mount as the process sees it: the container path and the host directory behind it. */
export interface HostMount {
  mountPath: string;
  hostPath: string;
}

export const CONNECTOR_IMAGE_MARKER = 'vaultpam-connector';
const CONNECTOR_SCRIPT = fileURLToPath(new URL('../../src/bin/connector.ts', import.meta.url));

function hasFlag(args: readonly string[], flag: string): boolean {
  return args.some((arg) => arg === `--${flag}` || arg.startsWith(`--${flag}=`));
}

function hasEnv(container: V1Container, name: string): boolean {
  return (container.env ?? []).some((entry) => entry.name === name) || (container.envFrom ?? []).length > 0;
}

/**
 * The default mapping: any image whose name contains `vaultpam-connector` runs the reference agent
 * from this checkout with the container's args. The agent's defaults that name container paths
 * or a listen address (data dir, termination log, health listen) are made explicit when neither a
 * flag nor its environment variable sets them, so the runner's path and port mapping applies to
 * them exactly as to a value the pod spec spelled out.
 */
export const resolveConnectorCommand: ResolveCommand = (container) => {
  if (!container.image?.includes(CONNECTOR_IMAGE_MARKER)) return undefined;
  const args = [...(container.args ?? [])];
  const defaults: Array<[flag: string, env: string, value: string]> = [
    ['data-dir', 'PAM_AGENT_DATA_DIR', '/data'],
    [
      'termination-log',
      'VAULTPAM_TERMINATION_LOG',
      container.terminationMessagePath ?? '/dev/termination-log',
    ],
    ['health-listen', 'VAULTPAM_HEALTH_LISTEN', '0.0.0.0:8081'],
  ];
  for (const [flag, env, value] of defaults) {
    if (!hasFlag(args, flag) && !hasEnv(container, env)) args.push(`--${flag}=${value}`);
  }
  return { command: process.execPath, hostArgs: [CONNECTOR_SCRIPT], args };
};

/** Longest mount first, so a mount inside another mount wins for paths under it. */
export function sortMounts(mounts: readonly HostMount[]): HostMount[] {
  return [...mounts].sort((a, b) => b.mountPath.length - a.mountPath.length);
}

/** A container path under one of the mounts becomes the host path; anything else is unchanged. */
export function mapPath(value: string, mounts: readonly HostMount[]): string {
  for (const mount of sortMounts(mounts)) {
    const base = mount.mountPath.replace(/\/+$/, '') || '/';
    if (value === base) return mount.hostPath;
    const prefix = base === '/' ? '/' : `${base}/`;
    if (value.startsWith(prefix)) return join(mount.hostPath, value.slice(prefix.length));
  }
  return value;
}

/** Maps an argument that is a container path, or `--flag=<container path>` / `-f=<container path>`. */
export function mapArgument(arg: string, mounts: readonly HostMount[]): string {
  const flag = /^(-{1,2}[^=\s]+=)(\/.*)$/.exec(arg);
  if (flag?.[1] && flag[2]) return `${flag[1]}${mapPath(flag[2], mounts)}`;
  return mapPath(arg, mounts);
}

/**
 * Rewrites listen addresses `0.0.0.0:<port>`, `[::]:<port>`, `127.0.0.1:<port>`, `localhost:<port>`
 * or `:<port>` (at the start of the value, after `=`, a space or a comma) to `127.0.0.1:<host port>`
 * for each mapped container port. Returns the value and the container ports it rewrote.
 */
export function rewritePorts(
  value: string,
  ports: ReadonlyMap<number, number>,
): { value: string; rewritten: number[] } {
  const rewritten: number[] = [];
  let result = value;
  for (const [containerPort, hostPort] of ports) {
    const pattern = new RegExp(
      `(^|[=\\s,])(?:0\\.0\\.0\\.0|127\\.0\\.0\\.1|localhost|\\[::\\]|::)?:${containerPort}(?!\\d)`,
      'g',
    );
    const next = result.replace(pattern, (_match, lead: string) => `${lead}127.0.0.1:${hostPort}`);
    if (next !== result) rewritten.push(containerPort);
    result = next;
  }
  return { value: result, rewritten };
}

/** Kubernetes' `$(VAR)` expansion in env values, command and args; `$$(VAR)` escapes it. */
export function expandVariables(value: string, env: Readonly<Record<string, string>>): string {
  return value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (match, name: string | undefined) => {
    if (match === '$$') return '$';
    return name !== undefined && Object.hasOwn(env, name) ? (env[name] as string) : match;
  });
}

/** Objects env references are read from (the runner's caches). */
export interface EnvSources {
  secret(namespace: string, name: string): V1Secret | undefined;
  configMap(namespace: string, name: string): V1ConfigMap | undefined;
}

/** The loopback address every local pod gets as its IP. */
export const LOCAL_POD_IP = '127.0.0.1';

function fieldValue(pod: V1Pod, fieldPath: string): string | undefined {
  const labelOrAnnotation = /^metadata\.(labels|annotations)\['([^']+)'\]$/.exec(fieldPath);
  if (labelOrAnnotation?.[1] && labelOrAnnotation[2]) {
    const map = labelOrAnnotation[1] === 'labels' ? pod.metadata?.labels : pod.metadata?.annotations;
    return map?.[labelOrAnnotation[2]] ?? '';
  }
  switch (fieldPath) {
    case 'metadata.name':
      return pod.metadata?.name ?? '';
    case 'metadata.namespace':
      return pod.metadata?.namespace ?? '';
    case 'metadata.uid':
      return pod.metadata?.uid ?? '';
    case 'spec.nodeName':
      return pod.spec?.nodeName ?? '';
    case 'spec.serviceAccountName':
      return pod.spec?.serviceAccountName ?? '';
    case 'status.podIP':
    case 'status.hostIP':
      return LOCAL_POD_IP;
    case 'status.podIPs':
    case 'status.hostIPs':
      return LOCAL_POD_IP;
    default:
      return undefined;
  }
}

function decodeSecretValue(secret: V1Secret, key: string): string | undefined {
  const encoded = secret.data?.[key];
  return encoded === undefined ? undefined : Buffer.from(encoded, 'base64').toString('utf8');
}

function configMapValue(configMap: V1ConfigMap, key: string): string | undefined {
  const text = configMap.data?.[key];
  if (text !== undefined) return text;
  const binary = configMap.binaryData?.[key];
  return binary === undefined ? undefined : Buffer.from(binary, 'base64').toString('utf8');
}

/**
 * The container's environment as the kubelet builds it: `envFrom` first, then `env` (which wins),
 * with `$(VAR)` expansion against what was defined before. Problems (a missing non-optional
 * Secret or key, an unsupported field) are returned, not thrown: the kubelet reports them as
 * CreateContainerConfigError and tries again later.
 */
export function resolveEnvironment(
  pod: V1Pod,
  container: V1Container,
  sources: EnvSources,
): { env: Record<string, string>; problems: string[] } {
  const namespace = pod.metadata?.namespace ?? 'default';
  const env: Record<string, string> = {};
  const problems: string[] = [];
  for (const from of container.envFrom ?? []) {
    const prefix = from.prefix ?? '';
    if (from.secretRef) {
      const secret = sources.secret(namespace, from.secretRef.name ?? '');
      if (!secret) {
        if (!from.secretRef.optional) problems.push(`secret "${from.secretRef.name}" not found`);
        continue;
      }
      for (const key of Object.keys(secret.data ?? {})) {
        env[`${prefix}${key}`] = decodeSecretValue(secret, key) ?? '';
      }
    } else if (from.configMapRef) {
      const configMap = sources.configMap(namespace, from.configMapRef.name ?? '');
      if (!configMap) {
        if (!from.configMapRef.optional) problems.push(`configmap "${from.configMapRef.name}" not found`);
        continue;
      }
      for (const key of [...Object.keys(configMap.data ?? {}), ...Object.keys(configMap.binaryData ?? {})]) {
        env[`${prefix}${key}`] = configMapValue(configMap, key) ?? '';
      }
    }
  }
  for (const entry of container.env ?? []) {
    const source = entry.valueFrom;
    if (!source) {
      env[entry.name] = expandVariables(entry.value ?? '', env);
    } else if (source.secretKeyRef) {
      const ref = source.secretKeyRef;
      const secret = sources.secret(namespace, ref.name ?? '');
      const value = secret ? decodeSecretValue(secret, ref.key) : undefined;
      if (value !== undefined) env[entry.name] = value;
      else if (!ref.optional) {
        problems.push(
          secret
            ? `couldn't find key ${ref.key} in Secret ${namespace}/${ref.name} (env ${entry.name})`
            : `secret "${ref.name}" not found (env ${entry.name})`,
        );
      }
    } else if (source.configMapKeyRef) {
      const ref = source.configMapKeyRef;
      const configMap = sources.configMap(namespace, ref.name ?? '');
      const value = configMap ? configMapValue(configMap, ref.key) : undefined;
      if (value !== undefined) env[entry.name] = value;
      else if (!ref.optional) {
        problems.push(
          configMap
            ? `couldn't find key ${ref.key} in ConfigMap ${namespace}/${ref.name} (env ${entry.name})`
            : `configmap "${ref.name}" not found (env ${entry.name})`,
        );
      }
    } else if (source.fieldRef) {
      const value = fieldValue(pod, source.fieldRef.fieldPath);
      if (value === undefined) {
        problems.push(
          `env ${entry.name}: fieldRef ${source.fieldRef.fieldPath} is not supported by the local pod runner`,
        );
      } else env[entry.name] = value;
    } else {
      problems.push(`env ${entry.name}: this valueFrom source is not supported by the local pod runner`);
    }
  }
  return { env, problems };
}

export interface ProcessLaunch {
  command: string;
  args: string[];
  env: Record<string, string>;
  /** Container ports that appeared as listen addresses and now point at their host port. */
  mappedPorts: number[];
  /** Working directory; the container's private directory when unset. */
  cwd?: string;
}

/**
 * The final launch: `$(VAR)` expansion in args, container paths mapped to host paths in args and
 * env values, and listen ports rewritten to the pod's loopback ports.
 */
export function buildLaunch(input: {
  local: LocalCommand;
  env: Record<string, string>;
  mounts: readonly HostMount[];
  ports: ReadonlyMap<number, number>;
}): ProcessLaunch {
  const mapped = new Set<number>();
  const finish = (value: string, isArgument: boolean) => {
    const pathMapped = isArgument ? mapArgument(value, input.mounts) : mapPath(value, input.mounts);
    const ported = rewritePorts(pathMapped, input.ports);
    for (const port of ported.rewritten) mapped.add(port);
    return ported.value;
  };
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries({ ...input.local.env, ...input.env })) {
    env[name] = finish(value, false);
  }
  const args = [
    ...(input.local.hostArgs ?? []),
    ...input.local.args.map((arg) => finish(expandVariables(arg, input.env), true)),
  ];
  return { command: input.local.command, args, env, mappedPorts: [...mapped] };
}
