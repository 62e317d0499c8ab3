// A pod's volumes as host directories under the runner's root, the way a kubelet lays them out:
//   persistentVolumeClaim -> <root>/claims/<claim UID> (a recreated claim is a new, empty directory)
//   emptyDir, secret, configMap, projected, downwardAPI -> <root>/pods/<pod UID>/volumes/<name>
//   hostPath -> the path itself, only when it lies under the root
// Secret and ConfigMap volumes are written like the kubelet's atomic writer: a timestamped payload
// directory, a `..data` symlink swapped in one rename, and one symlink per top-level entry, so a
// reader never sees half an update.
import { randomBytes } from 'node:crypto';
import {
  chmod,
  lstat,
  mkdir,
  readdir,
  readlink,
  realpath,
  rename,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { dirname, isAbsolute, join, normalize, relative, resolve, sep } from 'node:path';
import type {
  V1ConfigMap,
  V1KeyToPath,
  V1PersistentVolumeClaim,
  V1Pod,
  V1Secret,
  V1Volume,
} from '@kubernetes/client-node';
import type { HostMount } from './container-spec.ts';

/** Objects volumes are built from (the runner's caches). */
export interface VolumeSources {
  secret(namespace: string, name: string): V1Secret | undefined;
  configMap(namespace: string, name: string): V1ConfigMap | undefined;
  claim(namespace: string, name: string): V1PersistentVolumeClaim | undefined;
}

/** Makes a Pending claim bindable (the local provisioner); absent when provisioning is off. */
export type ProvisionClaim = (claim: V1PersistentVolumeClaim) => Promise<void>;

export type VolumeSetup = { ok: true; volumes: Map<string, string> } | { ok: false; message: string };

export function claimDirectory(root: string, claimUid: string): string {
  return join(root, 'claims', claimUid);
}

export function podDirectory(root: string, podUid: string): string {
  return join(root, 'pods', podUid);
}

export function podVolumesDirectory(root: string, podUid: string): string {
  return join(podDirectory(root, podUid), 'volumes');
}

/** True when `path` is `root` or inside it (after normalisation, without following links). */
export function isUnder(root: string, path: string): boolean {
  const rel = relative(resolve(root), resolve(path));
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

class MountError extends Error {}

function payloadPath(path: string, what: string): string {
  const clean = normalize(path);
  if (isAbsolute(clean) || clean === '..' || clean.startsWith(`..${sep}`) || clean.startsWith('..')) {
    throw new MountError(`${what}: item path "${path}" must be relative and must not start with ".."`);
  }
  return clean;
}

interface PayloadFile {
  path: string;
  content: Buffer;
  mode: number;
}

function payloadFrom(
  entries: Map<string, Buffer>,
  items: V1KeyToPath[] | undefined,
  defaultMode: number,
  what: string,
  optional: boolean,
): PayloadFile[] {
  if (!items || items.length === 0) {
    return [...entries].map(([key, content]) => ({
      path: payloadPath(key, what),
      content,
      mode: defaultMode,
    }));
  }
  const files: PayloadFile[] = [];
  for (const item of items) {
    const content = entries.get(item.key);
    if (content === undefined) {
      if (optional) continue;
      throw new MountError(`${what}: key "${item.key}" does not exist`);
    }
    files.push({ path: payloadPath(item.path, what), content, mode: item.mode ?? defaultMode });
  }
  return files;
}

function secretEntries(secret: V1Secret): Map<string, Buffer> {
  return new Map(
    Object.entries(secret.data ?? {}).map(([key, value]) => [key, Buffer.from(value, 'base64')]),
  );
}

function configMapEntries(configMap: V1ConfigMap): Map<string, Buffer> {
  const entries = new Map<string, Buffer>();
  for (const [key, value] of Object.entries(configMap.data ?? {}))
    entries.set(key, Buffer.from(value, 'utf8'));
  for (const [key, value] of Object.entries(configMap.binaryData ?? {})) {
    entries.set(key, Buffer.from(value, 'base64'));
  }
  return entries;
}

function fingerprint(files: PayloadFile[]): string {
  return JSON.stringify(
    [...files]
      .sort((a, b) => a.path.localeCompare(b.path))
      .map((file) => [file.path, file.mode, file.content.toString('base64')]),
  );
}

/**
 * Writes a payload into `dir` the way the kubelet's atomic writer does; does nothing when the
 * payload equals what `dir` holds (tracked in `written`).
 */
async function writeAtomically(dir: string, files: PayloadFile[], written: Map<string, string>) {
  const print = fingerprint(files);
  if (written.get(dir) === print) return;
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const stamp = `..${new Date().toISOString().replace(/[:.]/g, '_')}.${randomBytes(4).toString('hex')}`;
  const payloadDir = join(dir, stamp);
  await mkdir(payloadDir, { mode: 0o755 });
  for (const file of files) {
    const target = join(payloadDir, file.path);
    await mkdir(dirname(target), { recursive: true, mode: 0o755 });
    await writeFile(target, file.content, { mode: file.mode });
    await chmod(target, file.mode);
  }
  const dataLink = join(dir, '..data');
  const previous = await readlink(dataLink).catch(() => undefined);
  const tmpLink = join(dir, '..data_tmp');
  await rm(tmpLink, { force: true });
  await symlink(stamp, tmpLink);
  await rename(tmpLink, dataLink);
  const topLevel = new Set(files.map((file) => file.path.split(sep)[0] as string));
  for (const name of topLevel) {
    const link = join(dir, name);
    const existing = await lstat(link).catch(() => undefined);
    if (!existing) await symlink(join('..data', name), link);
  }
  for (const name of await readdir(dir)) {
    if (name.startsWith('..') || topLevel.has(name)) continue;
    await rm(join(dir, name), { recursive: true, force: true });
  }
  if (previous && previous !== stamp) await rm(join(dir, previous), { recursive: true, force: true });
  written.set(dir, print);
}

/** The volumes of one pod; `setUp` is idempotent and refreshes Secret and ConfigMap content. */
export class PodVolumes {
  private readonly root: string;
  private readonly pod: () => V1Pod;
  private readonly sources: VolumeSources;
  private readonly provision: ProvisionClaim | undefined;
  private readonly written = new Map<string, string>();

  constructor(options: {
    root: string;
    pod: () => V1Pod;
    sources: VolumeSources;
    provision?: ProvisionClaim;
  }) {
    this.root = options.root;
    this.pod = options.pod;
    this.sources = options.sources;
    this.provision = options.provision;
  }

  private get uid(): string {
    return this.pod().metadata?.uid ?? '';
  }

  private get namespace(): string {
    return this.pod().metadata?.namespace ?? 'default';
  }

  private podVolumeDir(name: string): string {
    return join(podVolumesDirectory(this.root, this.uid), name);
  }

  /** Sets up (or refreshes) every volume; the message of a failure names the volume and the fix. */
  async setUp(): Promise<VolumeSetup> {
    const volumes = new Map<string, string>();
    try {
      for (const volume of this.pod().spec?.volumes ?? []) {
        volumes.set(volume.name, await this.setUpOne(volume));
      }
    } catch (error) {
      if (error instanceof MountError) return { ok: false, message: error.message };
      throw error;
    }
    return { ok: true, volumes };
  }

  private async setUpOne(volume: V1Volume): Promise<string> {
    const what = `volume "${volume.name}"`;
    if (volume.persistentVolumeClaim) return this.claimVolume(volume.persistentVolumeClaim.claimName, what);
    if (volume.hostPath) {
      const path = resolve(volume.hostPath.path);
      if (!isUnder(this.root, path)) {
        throw new MountError(
          `${what}: hostPath ${volume.hostPath.path} is outside the local pod runner's root ${this.root}; ` +
            'only host paths under the root can be mounted (use an emptyDir or a claim instead)',
        );
      }
      const type = volume.hostPath.type ?? '';
      if (type === 'DirectoryOrCreate' || type === '') await mkdir(path, { recursive: true });
      else if (!(await lstat(path).catch(() => undefined))) {
        throw new MountError(`${what}: hostPath ${path} (type ${type}) does not exist`);
      }
      // A symlink under the root must not lead out of it.
      const real = await realpath(path);
      if (!isUnder(await realpath(this.root), real)) {
        throw new MountError(
          `${what}: hostPath ${volume.hostPath.path} resolves to ${real}, outside the local pod runner's root ${this.root}`,
        );
      }
      return path;
    }
    const dir = this.podVolumeDir(volume.name);
    if (volume.secret) {
      const name = volume.secret.secretName ?? '';
      const secret = this.sources.secret(this.namespace, name);
      const optional = volume.secret.optional === true;
      if (!secret && !optional) {
        throw new MountError(`${what}: secret "${name}" not found (create it, or mark the volume optional)`);
      }
      const entries = secret ? secretEntries(secret) : new Map<string, Buffer>();
      const mode = volume.secret.defaultMode ?? 0o644;
      await writeAtomically(
        dir,
        payloadFrom(entries, volume.secret.items, mode, what, optional),
        this.written,
      );
      return dir;
    }
    if (volume.configMap) {
      const name = volume.configMap.name ?? '';
      const configMap = this.sources.configMap(this.namespace, name);
      const optional = volume.configMap.optional === true;
      if (!configMap && !optional) {
        throw new MountError(
          `${what}: configmap "${name}" not found (create it, or mark the volume optional)`,
        );
      }
      const entries = configMap ? configMapEntries(configMap) : new Map<string, Buffer>();
      const mode = volume.configMap.defaultMode ?? 0o644;
      await writeAtomically(
        dir,
        payloadFrom(entries, volume.configMap.items, mode, what, optional),
        this.written,
      );
      return dir;
    }
    if (volume.emptyDir || volume.projected || volume.downwardAPI) {
      // Projected (service account token) and downward API volumes are left empty on purpose:
      // connector pods do not read them, and an empty directory keeps the pod runnable.
      await mkdir(dir, { recursive: true });
      return dir;
    }
    const kind = Object.keys(volume).find((key) => key !== 'name') ?? 'unknown';
    throw new MountError(
      `${what}: volume type ${kind} is not supported by the local pod runner ` +
        '(supported: persistentVolumeClaim, emptyDir, secret, configMap, hostPath under the root)',
    );
  }

  private async claimVolume(claimName: string, what: string): Promise<string> {
    const claim = this.sources.claim(this.namespace, claimName);
    if (!claim) throw new MountError(`${what}: persistentvolumeclaim "${claimName}" not found`);
    const phase = claim.status?.phase ?? 'Pending';
    if (phase !== 'Bound') {
      const provisioning = this.provision !== undefined && !claim.spec?.volumeName;
      if (provisioning) await this.provision?.(claim);
      throw new MountError(
        `${what}: persistentvolumeclaim "${claimName}" is ${phase}, not Bound` +
          (provisioning
            ? '; the local provisioner created a volume for it, waiting for the binding'
            : '; bind it to a PersistentVolume (local provisioning is off)'),
      );
    }
    const dir = claimDirectory(this.root, claim.metadata?.uid ?? '');
    await mkdir(dir, { recursive: true });
    return dir;
  }

  /** Host mounts of one container, with subPath resolved (and created) under its volume. */
  async mountsFor(containerName: string, volumes: Map<string, string>): Promise<HostMount[]> {
    const spec = this.pod().spec;
    const container = [...(spec?.containers ?? []), ...(spec?.initContainers ?? [])].find(
      (candidate) => candidate.name === containerName,
    );
    const mounts: HostMount[] = [];
    for (const mount of container?.volumeMounts ?? []) {
      const base = volumes.get(mount.name);
      if (base === undefined) continue;
      const subPath = mount.subPath ? payloadPath(mount.subPath, `volumeMount "${mount.name}"`) : '';
      const hostPath = subPath ? join(base, subPath) : base;
      if (subPath) await mkdir(hostPath, { recursive: true });
      mounts.push({ mountPath: mount.mountPath, hostPath });
    }
    return mounts;
  }

  /** Removes the pod's own volumes (emptyDir, secret, configMap copies); claims stay. */
  async tearDown(): Promise<void> {
    await rm(podVolumesDirectory(this.root, this.uid), { recursive: true, force: true });
    this.written.clear();
  }
}
