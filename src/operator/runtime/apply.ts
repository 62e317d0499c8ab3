// Every write the operator makes to owned objects goes through here: server-side apply with one
// field manager, status writes through the status subresource, deletes, and owner references.
// Each request is counted in vaultpam_operator_kubernetes_writes_total{kind, verb} before it is sent,
// so a test can prove that an idle operator sends no writes at all.
import type { KubernetesObject, V1OwnerReference } from '@kubernetes/client-node';
import { CodedError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import { FIELD_MANAGER } from '../api/constants.ts';
import { apiErrorMessage, apiStatusOf, httpStatusOf } from './api-errors.ts';
import { type KubeAccess, kubeClientOf } from './kube-access.ts';
import type { KubeClient } from './kube-client.ts';
import { KubeApiError } from './kube-errors.ts';
import type { KubernetesWriteVerb, OperatorMetrics } from './metrics.ts';
import type { OwnVersions } from './own-versions.ts';
import type { ResourceType } from './resources.ts';
import { schemaMisfit } from './schema-misfit.ts';
import { redactSecretPatterns } from './secret-patterns.ts';

export interface KubeWriterOptions {
  /** The operator's client, or a client-node KubeConfig to build it from (kube-access.ts). */
  kc: KubeAccess;
  logger: Logger;
  metrics?: OperatorMetrics;
  /** Defaults to the operator's one field manager. */
  fieldManager?: string;
  /** Where the versions its writes produce are kept, for their watch events to be told apart. */
  ownVersions?: OwnVersions;
}

export interface ApplyOptions {
  /**
   * Take over fields another manager set (default true: the operator owns what it applies). Pass
   * false for objects the operator adopts but does not own, so a conflict is reported instead.
   */
  force?: boolean;
  /**
   * Ask the API server to validate and admit the object without storing it: the check that the
   * workload can be applied before a token is minted for it.
   */
  dryRun?: boolean;
}

export interface DeleteOptions {
  /** Default Background: dependents are garbage-collected after the owner is gone. */
  propagationPolicy?: 'Background' | 'Foreground' | 'Orphan';
  /** Delete only if the object still has this uid (not a namesake created since). */
  uid?: string;
}

export interface ObjectRef {
  namespace: string;
  name: string;
}

/** The owner reference that makes `owner` the controller of an object: garbage collection and adoption follow it. */
export function controllerOwnerReference(owner: KubernetesObject): V1OwnerReference {
  const { apiVersion, kind } = owner;
  const name = owner.metadata?.name;
  const uid = owner.metadata?.uid;
  if (!apiVersion || !kind || !name || !uid) {
    throw new CodedError(
      'INVALID_OWNER',
      `an owner reference needs the owner's apiVersion, kind, metadata.name and metadata.uid; got apiVersion=${apiVersion ?? '(none)'} kind=${kind ?? '(none)'} name=${name ?? '(none)'} uid=${uid ?? '(none)'} (pass the object as read from the API server)`,
    );
  }
  return { apiVersion, kind, name, uid, controller: true, blockOwnerDeletion: true };
}

/**
 * A write failure as a coded error. Conflicts, throttling, server errors, network errors and RBAC
 * refusals are temporary (retry with backoff: RBAC can be fixed without touching the object);
 * an invalid object (400/422, or an apply whose body or stored object does not fit the schema,
 * which the API server answers with 500: schema-misfit.ts) or a missing one (404) is permanent
 * until something changes.
 */
export function writeError(what: string, error: unknown): CodedError {
  const status = httpStatusOf(error);
  // Answers about Secrets could quote what was sent; the filter keeps a token or key out of the error.
  const message = redactSecretPatterns(apiErrorMessage(error));
  const misfit = schemaMisfit(message);
  const invalid = status === 400 || status === 422 || misfit !== undefined;
  const permanent = invalid || status === 404;
  const code =
    status === 404
      ? 'KUBERNETES_NOT_FOUND'
      : status === 409
        ? 'KUBERNETES_CONFLICT'
        : status === 403
          ? 'KUBERNETES_FORBIDDEN'
          : invalid
            ? 'KUBERNETES_INVALID'
            : 'KUBERNETES_WRITE_FAILED';
  const causes = misfit?.causes ?? (invalid ? refusalCauses(error) : []);
  // A 429's Retry-After: when the API server is willing to hear from us again.
  const retryAfterMs = error instanceof KubeApiError ? error.retryAfterMs : undefined;
  const details = {
    ...(causes.length > 0 ? { causes } : {}),
    ...(misfit !== undefined ? { misfit: misfit.object } : {}),
    ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
  };
  return new CodedError(
    code,
    `${what} failed${status === undefined ? '' : ` (HTTP ${status})`}: ${message}`,
    {
      httpStatus: status ?? 503,
      temporary: !permanent,
      ...(Object.keys(details).length > 0 ? { details } : {}),
    },
  );
}

/**
 * A status write refused because the installed CRD does not declare a status field this operator
 * writes: the CRD is older than the operator (upgraded in the wrong order). Every status write that
 * carries the field fails the same way until the CRD is upgraded, which changes nothing in the
 * object, so it is temporary (retried with backoff, and it resumes by itself), and the message says
 * what to do instead of quoting the API server's typed-object error.
 */
function outdatedStatusSchema(what: string, kind: string, error: unknown): CodedError | undefined {
  const misfit = schemaMisfit(apiErrorMessage(error));
  if (misfit?.object !== 'patch') return undefined;
  const undeclared = misfit.causes.filter(
    (c) => c.field.startsWith('status.') && c.message === 'field not declared in schema',
  );
  if (undeclared.length === 0 || undeclared.length !== misfit.causes.length) return undefined;
  const fields = undeclared.map((c) => c.field).join(', ');
  return new CodedError(
    'CRD_OUTDATED',
    `${what} failed: the installed ${kind} CRD does not declare ${fields}, which this operator writes: the CRD is older than the operator; apply the CRDs of this release (docs/install.md, "Upgrading"), and status writes resume by themselves`,
    { httpStatus: httpStatusOf(error) ?? 500, temporary: true, details: { causes: undeclared } },
  );
}

/** One field the API server refused, from a metav1.Status answer's details. */
export interface ApiRefusalCause {
  field: string;
  message: string;
}

/** The field causes of a 400/422 answer, redacted like the message (they may quote a value). */
function refusalCauses(error: unknown): ApiRefusalCause[] {
  const causes = apiStatusOf(error)?.details?.causes;
  if (!Array.isArray(causes)) return [];
  return causes.slice(0, 20).map((cause: { field?: unknown; message?: unknown }) => ({
    field: typeof cause.field === 'string' ? cause.field : '',
    message: redactSecretPatterns(typeof cause.message === 'string' ? cause.message : ''),
  }));
}

export class KubeWriter {
  readonly fieldManager: string;
  private readonly kube: KubeClient;
  private readonly logger: Logger;
  private readonly metrics: OperatorMetrics | undefined;
  /** The versions this writer's writes produced (own-versions.ts), when the operator watches for them. */
  readonly ownVersions: OwnVersions | undefined;

  constructor(options: KubeWriterOptions) {
    this.fieldManager = options.fieldManager ?? FIELD_MANAGER;
    this.kube = kubeClientOf(options.kc);
    this.logger = options.logger;
    this.metrics = options.metrics;
    this.ownVersions = options.ownVersions;
  }

  /**
   * Server-side apply of `desired` (a partial object: exactly the fields the operator has an opinion
   * on) and returns the object as stored. Applying the same intent again changes nothing, not even
   * the resourceVersion. Fields set by other managers that `desired` does not mention are left alone.
   */
  async apply<T extends KubernetesObject>(desired: T, options: ApplyOptions = {}): Promise<T> {
    const { kind, namespace, name } = this.describe(desired, 'apply');
    const what = `server-side apply${options.dryRun ? ' (dry run)' : ''} of ${kind} ${namespace}/${name}`;
    this.count(kind, options.dryRun ? 'dry-run' : 'patch');
    const answered = options.dryRun ? undefined : this.ownVersions?.writing(kind, namespace, name);
    try {
      const type = await this.kube.resourceType(desired.apiVersion ?? '', kind);
      const applied = await this.kube.patch<T>(type, { namespace, name }, desired, {
        patch: 'apply',
        query: {
          fieldManager: this.fieldManager,
          force: options.force ?? true,
          ...(options.dryRun ? { dryRun: 'All' } : {}),
        },
      });
      this.logger.debug(
        { kind, namespace, name, resourceVersion: applied.metadata?.resourceVersion },
        'applied',
      );
      answered?.(applied.metadata?.resourceVersion);
      return applied;
    } catch (error) {
      answered?.(undefined);
      throw writeError(what, error);
    }
  }

  /**
   * Writes the status of a custom resource through its status subresource and returns the object.
   *
   * Server-side apply rather than a merge patch, because status is rebuilt from observation on every
   * pass: with apply, a field the operator stops setting is removed (a merge patch needs an explicit
   * null for every vanished field, and one forgotten null leaves a stale fact in status), conditions
   * merge per `type` (the CRD declares them a list map) instead of replacing the whole array, and an
   * unchanged status is a true no-op (no new resourceVersion, so no watch event and no feedback
   * loop). The /status endpoint ignores everything but `status`, so this can never write spec, and a
   * status write does not bump metadata.generation.
   */
  async applyStatus<T extends KubernetesObject>(
    type: ResourceType,
    ref: ObjectRef,
    status: object,
  ): Promise<T> {
    const slash = type.apiVersion.indexOf('/');
    if (slash === -1) {
      throw new CodedError(
        'INVALID_ARGUMENT',
        `applyStatus is for custom resources; ${type.kind} (${type.apiVersion}) is a core kind`,
      );
    }
    // A cluster-scoped resource (ClusterControlPlane) has no namespace; its ref's namespace is ignored.
    const namespaced = type.namespaced;
    if (namespaced) this.requireRef(type.kind, ref, 'applyStatus');
    else if (!ref.name) this.requireRef(type.kind, { namespace: '-', name: ref.name }, 'applyStatus');
    const what = `status apply of ${type.kind} ${namespaced ? `${ref.namespace}/` : ''}${ref.name}`;
    this.count(type.kind, 'patch');
    const body = {
      apiVersion: type.apiVersion,
      kind: type.kind,
      metadata: { name: ref.name, ...(namespaced ? { namespace: ref.namespace } : {}) },
      status,
    };
    const target = { name: ref.name, ...(namespaced ? { namespace: ref.namespace } : {}) };
    const answered = this.ownVersions?.writing(type.kind, ref.namespace, ref.name);
    const wholeStatus = () => {
      this.count(type.kind, 'patch');
      return this.kube.patch<T>(type, target, [{ op: 'add', path: '/status', value: status }], {
        patch: 'json',
        subresource: 'status',
        query: { fieldManager: this.fieldManager },
      });
    };
    try {
      let applied = await this.kube
        .patch<T>(type, target, body, {
          patch: 'apply',
          subresource: 'status',
          query: { fieldManager: this.fieldManager, force: true },
        })
        .catch((error: unknown) => {
          // An object stored before its CRD's schema covered a field it holds in another shape
          // cannot be applied to at all: the API server types the stored object first and refuses
          // (HTTP 500). Its status still has to say so (InvalidSpec names the field), so it is
          // written whole with a JSON patch, which types nothing; as every pass writes the whole
          // status, nothing stale is left behind.
          if (schemaMisfit(apiErrorMessage(error))?.object !== 'live') throw error;
          return wholeStatus();
        });
      // Apply removes only fields the operator's field manager owns: a field written while the
      // object could not be applied to (the JSON patch above keeps or drops managed fields as the
      // API server's version does) is owned by nobody, and would stay (a Stalled InvalidSpec after
      // the spec was fixed). What apply left that this status does not say is replaced whole.
      if (leftBehind((applied as { status?: unknown }).status, status)) applied = await wholeStatus();
      this.logger.debug(
        {
          kind: type.kind,
          namespace: ref.namespace,
          name: ref.name,
          resourceVersion: applied.metadata?.resourceVersion,
        },
        'status applied',
      );
      answered?.(applied.metadata?.resourceVersion);
      return applied;
    } catch (error) {
      answered?.(undefined);
      throw outdatedStatusSchema(what, type.kind, error) ?? writeError(what, error);
    }
  }

  /**
   * A JSON merge patch of fields of an existing object the operator does not create, with the uid
   * it judged as a precondition: a missing object is a 404 (an apply would create a half object),
   * and a namesake created since is refused (a different uid cannot be written). Used for the size
   * a StatefulSet's claim asks for; under the operator's field manager, like every write.
   */
  async mergePatch<T extends KubernetesObject>(
    type: ResourceType,
    ref: ObjectRef & { uid: string },
    patch: Omit<T, 'apiVersion' | 'kind' | 'metadata'>,
  ): Promise<T> {
    this.requireRef(type.kind, ref, 'mergePatch');
    this.count(type.kind, 'patch');
    const body = {
      ...patch,
      apiVersion: type.apiVersion,
      kind: type.kind,
      metadata: { name: ref.name, namespace: ref.namespace, uid: ref.uid },
    } as T;
    const answered = this.ownVersions?.writing(type.kind, ref.namespace, ref.name);
    try {
      const patched = await this.kube.patch<T>(type, ref, body, {
        patch: 'merge',
        query: { fieldManager: this.fieldManager },
      });
      this.logger.debug({ kind: type.kind, namespace: ref.namespace, name: ref.name }, 'merge-patched');
      answered?.(patched.metadata?.resourceVersion);
      return patched;
    } catch (error) {
      answered?.(undefined);
      throw writeError(`merge patch of ${type.kind} ${ref.namespace}/${ref.name}`, error);
    }
  }

  /**
   * Sets an object's finalizers with a merge patch that holds only while the object is still at
   * `ref.resourceVersion`: for an object server-side apply cannot type (see applyStatus), whose
   * finalizers apply cannot set either. A change since is a conflict (409, temporary: read it again
   * and write anew). A JSON patch's test of the version said the same with a 422, which read as an
   * invalid object, permanent: the reconciler took someone's concurrent write for a refusal.
   */
  async replaceFinalizers(
    type: ResourceType,
    ref: ObjectRef & { resourceVersion: string },
    finalizers: readonly string[],
  ): Promise<void> {
    this.requireRef(type.kind, ref, 'replaceFinalizers');
    this.count(type.kind, 'patch');
    const patch = { metadata: { resourceVersion: ref.resourceVersion, finalizers } };
    const answered = this.ownVersions?.writing(type.kind, ref.namespace, ref.name);
    try {
      const patched = await this.kube.patch(type, ref, patch, {
        patch: 'merge',
        query: { fieldManager: this.fieldManager },
      });
      this.logger.debug({ kind: type.kind, namespace: ref.namespace, name: ref.name }, 'finalizers set');
      answered?.(patched.metadata?.resourceVersion);
    } catch (error) {
      answered?.(undefined);
      throw writeError(`finalizer patch of ${type.kind} ${ref.namespace}/${ref.name}`, error);
    }
  }

  /** Deletes an object. Resolves false when it was already gone (or its uid no longer matches). */
  async delete(type: ResourceType, ref: ObjectRef, options: DeleteOptions = {}): Promise<boolean> {
    this.requireRef(type.kind, ref, 'delete');
    this.count(type.kind, 'delete');
    try {
      await this.kube.delete(type, ref, {
        propagationPolicy: options.propagationPolicy ?? 'Background',
        ...(options.uid === undefined ? {} : { preconditions: { uid: options.uid } }),
      });
      this.logger.debug({ kind: type.kind, namespace: ref.namespace, name: ref.name }, 'deleted');
      return true;
    } catch (error) {
      const status = httpStatusOf(error);
      // 409 with a uid precondition: the name now belongs to a different object, which is not ours to delete.
      if (status === 404 || (status === 409 && options.uid !== undefined)) return false;
      throw writeError(`delete of ${type.kind} ${ref.namespace}/${ref.name}`, error);
    }
  }

  private count(kind: string, verb: KubernetesWriteVerb): void {
    this.metrics?.countWrite(kind, verb);
  }

  private describe(
    object: KubernetesObject,
    operation: string,
  ): { kind: string; namespace: string; name: string } {
    const kind = object.kind;
    const name = object.metadata?.name;
    const namespace = object.metadata?.namespace;
    if (!object.apiVersion || !kind || !name || !namespace) {
      throw new CodedError(
        'INVALID_OBJECT',
        `${operation} needs apiVersion, kind, metadata.name and metadata.namespace; got apiVersion=${object.apiVersion ?? '(none)'} kind=${kind ?? '(none)'} name=${name ?? '(none)'} namespace=${namespace ?? '(none)'}`,
      );
    }
    return { kind, namespace, name };
  }

  private requireRef(kind: string, ref: ObjectRef, operation: string): void {
    if (!ref.namespace || !ref.name) {
      throw new CodedError(
        'INVALID_OBJECT',
        `${operation} of ${kind} needs a namespace and a name; got namespace=${ref.namespace || '(none)'} name=${ref.name || '(none)'}`,
      );
    }
  }
}

/**
 * Whether a stored status holds a top-level field or a condition type that `intended` does not:
 * what an apply of `intended` could not remove, because no field manager of the operator owned it.
 */
export function leftBehind(stored: unknown, intended: object): boolean {
  if (stored === null || typeof stored !== 'object') return false;
  const wanted = intended as Record<string, unknown>;
  if (Object.keys(stored).some((key) => !Object.hasOwn(wanted, key))) return true;
  const types = (conditions: unknown) =>
    Array.isArray(conditions) ? conditions.map((c) => (c as { type?: unknown } | null)?.type) : [];
  const intendedTypes = new Set(types(wanted.conditions));
  return types((stored as Record<string, unknown>).conditions).some((type) => !intendedTypes.has(type));
}
