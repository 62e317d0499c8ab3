// The ControlPlane and ClusterControlPlane resources as the operator uses them. Each one is checked
// (check.ts) when it appears or changes, and again every few minutes (sooner while it is not Ready,
// so a Secret created after its ControlPlane is picked up within half a minute); its status is
// written only when what the check found changed (status.ts). Connectors that name it resolve it
// here: only a Ready control plane yields a connection, so a Connector whose control plane is
// missing or not Ready makes no call at all. Every Connector that names a control plane is woken
// when what the check found changes, or when the resource goes.
//
// Checks run and statuses are written only by the leader (start/stop follow leadership); a standby
// only remembers which resources changed, so that it checks them once it leads.
import { isDeepStrictEqual } from 'node:util';
import type { Clock } from '../../lib/clock.ts';
import { CodedError, errorMessage, isCodedError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import type { ControlPlaneResource } from '../api/control-planes.ts';
import type { DefaultedSpec } from '../api/types.ts';
import { StalledReasons } from '../conditions.ts';
import type { KubeWriter } from '../runtime/apply.ts';
import { RESOURCE_TYPES } from '../runtime/resources.ts';
import type { CaWatch } from './ca-watches.ts';
import { type CheckDeps, type CheckOutcome, checkControlPlane } from './check.ts';
import type { ControlPlaneConnection, ControlPlaneConnections, ReleaseHandle } from './connections.ts';
import {
  type ControlPlaneId,
  controlPlaneKey,
  controlPlaneStatus,
  describeControlPlane,
  referencedControlPlane,
} from './status.ts';

/** How often a Ready control plane is checked again. */
export const READY_RECHECK_MS = 5 * 60_000;
/** How often one that is not Ready is checked again (a Secret or server may appear at any time). */
export const NOT_READY_RECHECK_MS = 30_000;
/** A Connector's refused call asks for a check at most this often per control plane. */
const SUSPECT_MIN_INTERVAL_MS = 30_000;

export interface ControlPlaneRegistryOptions {
  logger: Logger;
  /** The time and the timers of the periodic checks. */
  clock: Clock;
  writer: Pick<KubeWriter, 'applyStatus'>;
  reader: Pick<CheckDeps, 'readSecret' | 'readConfigMap'>;
  connections: ControlPlaneConnections;
  /** The cached resource (from the informers), if it exists. */
  get(id: ControlPlaneId): ControlPlaneResource | undefined;
  /** Every cached resource. */
  list(): ControlPlaneResource[];
  /** Wakes every Connector whose spec.controlPlaneRef names this key. */
  wake(key: string): void;
  /**
   * Where ClusterControlPlanes keep their Secret and CA (the operator's namespace). Absent: this
   * operator does not use ClusterControlPlanes (a namespaced install holds no cluster-wide reads).
   */
  clusterResourceNamespace?: string;
  /** Why ClusterControlPlanes are not used, for the Connector's message. */
  clusterResourcesDisabledBecause?: string;
  whoami?: CheckDeps['whoami'];
  /**
   * Watches each checked resource's CA ConfigMap (ca-watches.ts), calling recheck() on a change:
   * a bundle edited in place is no change of the resource and would wait for the periodic check.
   */
  caWatch?: CaWatch;
}

interface Entry {
  id: ControlPlaneId;
  /** generation and annotations of the object last checked: anything else (our status) is no change. */
  checkedSignature?: string;
  outcome?: CheckOutcome;
  checkedAt?: number;
  inFlight?: Promise<CheckOutcome>;
  /** Something the check in flight may have missed changed (its CA ConfigMap): check once more. */
  again?: boolean;
  timer?: unknown;
}

const signature = (object: ControlPlaneResource) =>
  `${object.metadata.generation ?? ''}|${JSON.stringify(object.metadata.annotations ?? {})}`;

/** What Connectors care about in an outcome; a change wakes them. Held in memory only. */
const effect = (outcome: CheckOutcome | undefined) =>
  JSON.stringify([outcome?.status, outcome?.reason, outcome?.settings ?? null]);

export function idOf(object: ControlPlaneResource): ControlPlaneId {
  return object.kind === 'ClusterControlPlane'
    ? { kind: 'ClusterControlPlane', name: object.metadata.name ?? '' }
    : { kind: 'ControlPlane', namespace: object.metadata.namespace ?? '', name: object.metadata.name ?? '' };
}

const configInvalid = (message: string) =>
  new CodedError(StalledReasons.ControlPlaneConfigInvalid, message, { temporary: false });

export class ControlPlaneRegistry {
  private readonly options: ControlPlaneRegistryOptions;
  private readonly entries = new Map<string, Entry>();
  private running = false;

  constructor(options: ControlPlaneRegistryOptions) {
    this.options = options;
  }

  /** Informer add/update: a new or changed resource is checked (at once while leading). */
  changed(object: ControlPlaneResource): void {
    const id = idOf(object);
    const entry = this.entry(id);
    if (entry.checkedSignature === signature(object)) return;
    if (this.running) void this.check(controlPlaneKey(id));
  }

  /** Informer delete: its connection closes and the Connectors that name it learn it is gone. */
  deleted(object: ControlPlaneResource): void {
    const key = controlPlaneKey(idOf(object));
    const entry = this.entries.get(key);
    if (entry?.timer !== undefined) this.options.clock.clearTimeout(entry.timer);
    this.entries.delete(key);
    this.options.caWatch?.ensure(key, undefined);
    this.options.connections.close(key);
    this.options.wake(key);
  }

  /** Leading: check every known resource, then keep checking. */
  start(): void {
    this.running = true;
    for (const object of this.options.list()) {
      const id = idOf(object);
      this.entry(id);
      void this.check(controlPlaneKey(id));
    }
  }

  /** No longer leading: no more checks or writes; a new leader checks afresh. */
  stop(): void {
    this.running = false;
    this.options.caWatch?.stop();
    for (const entry of this.entries.values()) {
      if (entry.timer !== undefined) this.options.clock.clearTimeout(entry.timer);
      entry.timer = undefined;
      delete entry.checkedSignature;
    }
  }

  /**
   * A Connector's call was refused (401): the credential may have been rotated in the Secret or in
   * the control plane. Check again soon, rather than at the next periodic check.
   */
  suspect(key: string): void {
    const entry = this.entries.get(key);
    if (!entry || !this.running || entry.inFlight) return;
    if (
      entry.checkedAt !== undefined &&
      this.options.clock.now().getTime() - entry.checkedAt < SUSPECT_MIN_INTERVAL_MS
    )
      return;
    void this.check(key);
  }

  /**
   * What the last check read changed (the CA ConfigMap was edited, created or deleted): check now,
   * or, during a check that may have read it before the change, once more right after it.
   */
  recheck(key: string): void {
    const entry = this.entries.get(key);
    if (!entry || !this.running) return;
    if (entry.inFlight) entry.again = true;
    else void this.check(key);
  }

  /**
   * The connection a Connector's spec.controlPlaneRef leads to, or why there is none (permanent:
   * the Connector is woken when the control plane changes). Call only for a spec with a ref.
   */
  async resolve(
    spec: DefaultedSpec,
  ): Promise<{ connection: ControlPlaneConnection } | { error: CodedError }> {
    const id = referencedControlPlane(spec);
    if (!id) throw new CodedError('INVALID_ARGUMENT', 'resolve() needs a spec with controlPlaneRef');
    const named = describeControlPlane(id);
    if (id.kind === 'ClusterControlPlane' && this.options.clusterResourceNamespace === undefined) {
      return {
        error: configInvalid(
          `spec.controlPlaneRef: ${named} cannot be used: ${this.options.clusterResourcesDisabledBecause ?? 'this operator uses no ClusterControlPlanes'}; ask an admin for a ControlPlane in namespace ${spec.namespace}`,
        ),
      };
    }
    const object = this.options.get(id);
    if (!object) {
      return {
        error: configInvalid(
          `spec.controlPlaneRef: ${named} does not exist; ask an admin to create it (or fix the name)`,
        ),
      };
    }
    const key = controlPlaneKey(id);
    const entry = this.entry(id);
    const outcome =
      entry.outcome && entry.checkedSignature === signature(object) ? entry.outcome : await this.check(key);
    if (outcome.status !== 'True' || !outcome.settings) {
      return {
        error: configInvalid(
          `spec.controlPlaneRef: ${named} is not Ready (${outcome.reason}: ${outcome.message}); an admin of ${named} must fix it, not this Connector's spec: the operator makes no call to it until it is Ready`,
        ),
      };
    }
    const connection = this.options.connections.forResource(key, {
      url: outcome.settings.url,
      caPem: outcome.settings.caPem,
      credential: this.latestCredential(key, outcome.settings.url),
    });
    return { connection };
  }

  /** The URL the resource `id` names (its spec.url), Ready or not; undefined once it is gone. */
  urlOf(id: ControlPlaneId): string | undefined {
    return this.options.get(id)?.spec.url;
  }

  /**
   * A client to release a deleted Connector's record with, for the control plane `id`: that of the
   * Ready resource, or else the one its connection last used, even after the resource or its Secret
   * went (a namespace deletion removes them along with the Connector). Why there is none otherwise.
   */
  async forRelease(id: ControlPlaneId): Promise<ReleaseHandle | { error: CodedError }> {
    const key = controlPlaneKey(id);
    const object = this.options.get(id);
    const clusterUsable =
      id.kind !== 'ClusterControlPlane' || this.options.clusterResourceNamespace !== undefined;
    if (object && clusterUsable) {
      const entry = this.entry(id);
      const outcome =
        entry.outcome && entry.checkedSignature === signature(object) ? entry.outcome : await this.check(key);
      if (outcome.status === 'True' && outcome.settings) {
        const settings = outcome.settings;
        this.options.connections.forResource(key, {
          url: settings.url,
          caPem: settings.caPem,
          credential: this.latestCredential(key, settings.url),
        });
      }
    }
    const handle = this.options.connections.forRelease(key);
    if (handle) return handle;
    const named = describeControlPlane(id);
    return {
      error: new CodedError(
        'CONTROL_PLANE_CREDENTIAL_MISSING',
        object
          ? `${named} is not Ready and this operator holds no credential it used for it`
          : `${named} is gone and this operator holds no credential it used for it`,
        { temporary: true },
      ),
    };
  }

  /**
   * Always the credential of the latest check, so a rotated Secret takes effect with no new
   * connection; but only while that check was for `url`, the URL the connection was made for. A
   * connection made before spec.url (or the Secret) changed is replaced at the next resolve; until
   * then it gets no credential, so a credential checked for the new URL never goes to the old one.
   */
  private latestCredential(key: string, url: string): () => string | undefined {
    return () => {
      const settings = this.entries.get(key)?.outcome?.settings;
      return settings?.url === url ? settings.credential : undefined;
    };
  }

  private entry(id: ControlPlaneId): Entry {
    const key = controlPlaneKey(id);
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { id };
      this.entries.set(key, entry);
    }
    return entry;
  }

  /** One check per resource at a time; callers during a check share its outcome. */
  private check(key: string): Promise<CheckOutcome> {
    const entry = this.entries.get(key);
    if (!entry) return Promise.resolve({ status: 'Unknown', reason: 'CheckFailed', message: 'gone' });
    entry.inFlight ??= this.runCheck(entry).finally(() => {
      entry.inFlight = undefined;
      // A change that arrived during the check is checked now.
      const latest = this.options.get(entry.id);
      const again = entry.again === true;
      entry.again = false;
      if (
        this.running &&
        latest &&
        this.entries.get(key) === entry &&
        (again || signature(latest) !== entry.checkedSignature)
      )
        void this.check(key);
    });
    return entry.inFlight;
  }

  private async runCheck(entry: Entry): Promise<CheckOutcome> {
    const key = controlPlaneKey(entry.id);
    const object = this.options.get(entry.id);
    if (!object) return { status: 'False', reason: 'CheckFailed', message: 'the resource is gone' };
    const secretNamespace =
      entry.id.kind === 'ControlPlane'
        ? (entry.id.namespace ?? '')
        : (this.options.clusterResourceNamespace ?? '');
    // The version of the CA ConfigMap this check reads, for its watch: a change after this read and
    // before the watch's first list is news to it (ca-watches.ts).
    let caSeen: string | undefined;
    const outcome = await checkControlPlane(
      {
        readSecret: (namespace, name) => this.options.reader.readSecret(namespace, name),
        readConfigMap: async (namespace, name) => {
          const configMap = await this.options.reader.readConfigMap(namespace, name);
          caSeen = configMap?.metadata?.resourceVersion ?? '';
          return configMap;
        },
        ...(this.options.whoami ? { whoami: this.options.whoami } : {}),
      },
      { secretNamespace, spec: object.spec },
    );
    const before = entry.outcome;
    entry.outcome = outcome;
    entry.checkedSignature = signature(object);
    entry.checkedAt = this.options.clock.now().getTime();
    if (!this.running) return outcome;
    // Only for a control plane still known: one deleted while this check ran had its watch stopped
    // (deleted()), and a watch started now would be stopped by nothing but the end of leadership.
    const caRef = object.spec.caConfigMapRef;
    if (this.entries.get(key) === entry)
      this.options.caWatch?.ensure(
        key,
        caRef
          ? {
              namespace: secretNamespace,
              name: caRef.name,
              ...(caSeen !== undefined ? { seenVersion: caSeen } : {}),
            }
          : undefined,
      );
    await this.writeStatus(entry.id, object, outcome);
    if (effect(before) !== effect(outcome)) {
      // A control plane that cannot be used keeps no follower long-polling it with a bad credential.
      if (outcome.status !== 'True') this.options.connections.close(key);
      this.options.logger.info(
        { controlPlane: describeControlPlane(entry.id), ready: outcome.status, reason: outcome.reason },
        'control plane checked',
      );
      this.options.wake(key);
    }
    this.schedule(key, entry, outcome.status === 'True' ? READY_RECHECK_MS : NOT_READY_RECHECK_MS);
    return outcome;
  }

  private schedule(key: string, entry: Entry, delayMs: number): void {
    if (entry.timer !== undefined) this.options.clock.clearTimeout(entry.timer);
    entry.timer = this.options.clock.setTimeout(() => {
      entry.timer = undefined;
      if (this.running && this.entries.get(key) === entry) void this.check(key);
    }, delayMs);
  }

  /** Writes the status only when it differs from the stored one (status.ts decides lastCheckTime). */
  private async writeStatus(
    id: ControlPlaneId,
    object: ControlPlaneResource,
    outcome: CheckOutcome,
  ): Promise<void> {
    const next = controlPlaneStatus(
      object.status,
      outcome,
      object.metadata.generation,
      this.options.clock.now(),
    );
    // Compared as data: the API server hands maps back with their keys sorted.
    if (isDeepStrictEqual(JSON.parse(JSON.stringify(next)), object.status ?? {})) return;
    const type =
      id.kind === 'ControlPlane' ? RESOURCE_TYPES.controlPlane : RESOURCE_TYPES.clusterControlPlane;
    try {
      await this.options.writer.applyStatus(type, { namespace: id.namespace ?? '', name: id.name }, next);
    } catch (error) {
      // Gone since it was read: its delete event follows. Anything else is retried by the next check.
      if (!isCodedError(error, 'KUBERNETES_NOT_FOUND'))
        this.options.logger.warn(
          { controlPlane: describeControlPlane(id), err: errorMessage(error) },
          'could not write the control plane status',
        );
    }
  }
}
