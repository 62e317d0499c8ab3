// The control planes the operator talks to: its own default (from flags, credential from a Secret
// that is reloaded when it changes) and any a Connector names in spec.controlPlane (CA from a
// ConfigMap, credential from a Secret in the Connector's namespace). Each distinct (URL, CA,
// credential) gets one client and one change-stream follower, shared by every Connector that uses it.
// A Connector's own connection is closed once no Connector uses it any more (the Connector was
// deleted, moved to another control plane, or its credential was rotated), so a stale credential
// does not keep long-polling the change stream.
import { createHash } from 'node:crypto';
import { ControlPlaneAdminClient } from '../../controlplane/admin-client.ts';
import type { Logger } from '../../lib/logger.ts';
import { ControlPlaneFollower } from './follower.ts';

export interface ControlPlaneConnection {
  readonly key: string;
  readonly url: string;
  readonly caPem: string;
  client(): ControlPlaneAdminClient | undefined;
  readonly follower: ControlPlaneFollower;
}

export interface ConnectionSettings {
  url: string;
  caPem: string;
  /** Current credential; a function so a reloaded Secret takes effect on the next call. */
  credential: () => string | undefined;
}

const digest = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 16);

class Connection implements ControlPlaneConnection {
  readonly key: string;
  readonly url: string;
  readonly caPem: string;
  readonly follower: ControlPlaneFollower;
  private readonly credential: () => string | undefined;
  private current: { credential: string; client: ControlPlaneAdminClient } | undefined;

  constructor(
    key: string,
    settings: ConnectionSettings,
    logger: Logger,
    onChange: (connectionKey: string, connectorId: string) => void,
  ) {
    this.key = key;
    this.url = settings.url;
    this.caPem = settings.caPem;
    this.credential = settings.credential;
    this.follower = new ControlPlaneFollower({
      client: () => this.client(),
      logger: logger.child({ controlPlane: settings.url }),
      onChange: (connectorId) => onChange(key, connectorId),
    });
  }

  client(): ControlPlaneAdminClient | undefined {
    const credential = this.credential();
    if (!credential) return undefined;
    if (this.current?.credential !== credential) {
      this.current?.client.close();
      this.current = {
        credential,
        client: new ControlPlaneAdminClient({ url: this.url, caPem: this.caPem, credential }),
      };
    }
    return this.current.client;
  }

  close(): void {
    this.follower.stop();
    this.current?.client.close();
  }
}

export class ControlPlaneConnections {
  private readonly logger: Logger;
  private readonly onChange: (connectionKey: string, connectorId: string) => void;
  private readonly byKey = new Map<string, Connection>();
  /** Which connection each Connector (namespace/name) uses, for those that name their own. */
  private readonly users = new Map<string, string>();
  private running = false;

  constructor(options: { logger: Logger; onChange: (connectionKey: string, connectorId: string) => void }) {
    this.logger = options.logger;
    this.onChange = options.onChange;
  }

  /** The operator's default control plane; its credential function follows the reloaded Secret. */
  registerDefault(settings: ConnectionSettings): ControlPlaneConnection {
    return this.obtain('default', settings);
  }

  /**
   * A control plane the Connector `user` (namespace/name) names: keyed by URL, CA and credential, so
   * equal settings share one. The connection it used before, if different, is closed when unused.
   */
  forSettings(user: string, url: string, caPem: string, credential: string): ControlPlaneConnection {
    const key = `${url}|${digest(caPem)}|${digest(credential)}`;
    const connection = this.obtain(key, { url, caPem, credential: () => credential });
    const before = this.users.get(user);
    this.users.set(user, key);
    if (before !== undefined && before !== key) this.closeIfUnused(before);
    return connection;
  }

  /** The Connector `user` no longer names a control plane of its own (deleted, or uses the default). */
  release(user: string): void {
    const before = this.users.get(user);
    if (before === undefined) return;
    this.users.delete(user);
    this.closeIfUnused(before);
  }

  /** Connections open now (the default included), for tests and metrics. */
  size(): number {
    return this.byKey.size;
  }

  private closeIfUnused(key: string): void {
    for (const used of this.users.values()) if (used === key) return;
    const connection = this.byKey.get(key);
    if (!connection) return;
    connection.close();
    this.byKey.delete(key);
    this.logger.debug(
      { controlPlane: connection.url },
      'closed a control-plane connection no Connector uses',
    );
  }

  get(key: string): ControlPlaneConnection | undefined {
    return this.byKey.get(key);
  }

  /** Starts following every known control plane, and any registered later. */
  start(): void {
    this.running = true;
    for (const connection of this.byKey.values()) connection.follower.start();
  }

  stop(): void {
    this.running = false;
    for (const connection of this.byKey.values()) connection.close();
  }

  private obtain(key: string, settings: ConnectionSettings): Connection {
    let connection = this.byKey.get(key);
    if (!connection) {
      connection = new Connection(key, settings, this.logger, this.onChange);
      this.byKey.set(key, connection);
      if (this.running) connection.follower.start();
    }
    return connection;
  }
}
