// The operator's own control-plane admin credential, read from one key of one Secret and reloaded
// whenever the Secret changes (an informer on that single Secret, selected by metadata.name), so a
// rotated credential takes effect without restarting the operator. The value is held in memory only;
// it is never logged, put in an error or handed to anything but `current()` and `onChange`.
import type { V1Secret } from '@kubernetes/client-node';
import type { Clock } from '../../lib/clock.ts';
import { CodedError } from '../../lib/errors.ts';
import type { Logger } from '../../lib/logger.ts';
import { Informer, type InformerStatus, type RestartBackoff } from './informers.ts';
import type { KubeAccess } from './kube-access.ts';
import type { OperatorMetrics } from './metrics.ts';
import { RESOURCE_TYPES } from './resources.ts';

export interface CredentialSourceOptions {
  /** The operator's client, or a client-node KubeConfig to build it from (kube-access.ts). */
  kc: KubeAccess;
  namespace: string;
  /** Secret name. */
  name: string;
  /** Key inside the Secret's data. */
  key: string;
  logger: Logger;
  /** Called with the new value (undefined when the Secret or key went away) each time it changes. */
  onChange?(value: string | undefined): void;
  metrics?: OperatorMetrics;
  clock?: Clock;
  restartBackoff?: RestartBackoff;
}

/**
 * The credential as stored: base64-decoded, with trailing whitespace (the newline `echo` and editors
 * add) removed, since no bearer credential ends in whitespace. Empty counts as absent.
 */
export function decodeCredential(secret: V1Secret | undefined, key: string): string | undefined {
  const encoded = secret?.data?.[key];
  if (encoded === undefined) return undefined;
  const value = Buffer.from(encoded, 'base64').toString('utf8').replace(/\s+$/, '');
  return value === '' ? undefined : value;
}

export class CredentialSource {
  private readonly informer: Informer<V1Secret>;
  private readonly namespace: string;
  private readonly name: string;
  private readonly key: string;
  private readonly logger: Logger;
  private readonly onChange: ((value: string | undefined) => void) | undefined;
  private value: string | undefined;

  constructor(options: CredentialSourceOptions) {
    if (!options.namespace || !options.name || !options.key) {
      throw new CodedError(
        'INVALID_ARGUMENT',
        `the credential Secret needs a namespace, name and key; got namespace=${options.namespace || '(none)'} name=${options.name || '(none)'} key=${options.key || '(none)'}`,
      );
    }
    this.namespace = options.namespace;
    this.name = options.name;
    this.key = options.key;
    this.logger = options.logger.child({ credentialSecret: `${options.namespace}/${options.name}` });
    this.onChange = options.onChange;
    this.informer = new Informer<V1Secret>({
      kc: options.kc,
      type: RESOURCE_TYPES.secret,
      namespace: options.namespace,
      fieldSelector: `metadata.name=${options.name}`,
      logger: options.logger,
      ...(options.metrics === undefined ? {} : { metrics: options.metrics }),
      ...(options.clock === undefined ? {} : { clock: options.clock }),
      ...(options.restartBackoff === undefined ? {} : { restartBackoff: options.restartBackoff }),
    });
    this.informer.addHandlers({
      onAdd: (secret) => this.refresh(secret),
      onUpdate: (secret) => this.refresh(secret),
      onDelete: () => this.refresh(undefined),
    });
  }

  start(): void {
    this.informer.start();
    // A Secret that does not exist yields no event at all, so say so once the first list is in.
    this.informer.waitForSync().then(
      () => {
        if (this.informer.get(this.namespace, this.name) === undefined) this.warnAbsent(undefined);
      },
      (error: unknown) => {
        // Only stop() before the first list rejects this wait; there is nothing left to report then.
        this.logger.debug(
          { code: (error as { code?: unknown }).code },
          'credential source stopped before its first sync',
        );
      },
    );
  }

  stop(): void {
    this.informer.stop();
  }

  /** Resolves once the Secret has been looked up for the first time (whether or not it exists). */
  waitForSync(signal?: AbortSignal): Promise<void> {
    return this.informer.waitForSync(signal);
  }

  hasSynced(): boolean {
    return this.informer.hasSynced();
  }

  status(): InformerStatus {
    return this.informer.status();
  }

  /** The credential now, or undefined when the Secret or its key is missing or empty. */
  current(): string | undefined {
    return this.value;
  }

  private refresh(secret: V1Secret | undefined): void {
    const next = decodeCredential(secret, this.key);
    if (next === this.value) return;
    this.value = next;
    if (next === undefined) {
      this.warnAbsent(secret);
    } else {
      this.logger.info({ secretKey: this.key }, 'control-plane credential loaded');
    }
    this.onChange?.(next);
  }

  private warnAbsent(secret: V1Secret | undefined): void {
    // Names the Secret and key so the fix is obvious; never the value.
    this.logger.warn(
      { secretKey: this.key },
      secret === undefined
        ? `credential Secret ${this.namespace}/${this.name} does not exist; control-plane calls will fail until it does`
        : `credential Secret ${this.namespace}/${this.name} has no non-empty key "${this.key}"; control-plane calls will fail until it does`,
    );
  }
}
