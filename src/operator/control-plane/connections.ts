// The control planes the operator talks to: its own default (from flags, credential from a Secret
// that is reloaded when it changes) and one per ControlPlane or ClusterControlPlane resource that a
// Connector uses. Connections are keyed by that resource, not by Connector: every Connector of one
// control plane shares its one client and change-stream follower, so 10,000 Connectors on one
// ClusterControlPlane make one long-poll, not 10,000. A connection is replaced when its resource's
// URL or CA changes and closed when the resource goes; a changed credential needs neither, since
// the credential is read afresh on every call (the client is rebuilt when it differs).
//
// A finalizer must not depend on what the deletion removes (a namespace deletion removes a
// ControlPlane and its credential Secret as well as the Connectors that use it). So the URL, CA and
// credential a connection last used are kept in memory after its Secret empties or its resource
// goes, and `forRelease` hands out a client built from them: used only to revoke, release or disown
// the records of Connectors being deleted, never to reconcile.

import type { Logger } from '../../lib/logger.ts';
import { ControlPlaneAdminClient } from './admin-client.ts';
import { type ChangeCause, ControlPlaneFollower } from './follower.ts';

export interface ControlPlaneConnection {
  readonly key: string;
  readonly url: string;
  readonly caPem: string;
  client(): ControlPlaneAdminClient | undefined;
  readonly follower: ControlPlaneFollower;
}

/** A client for releasing the records of Connectors being deleted; close it when done. */
export interface ReleaseHandle {
  readonly client: ControlPlaneAdminClient;
  /** True when built from the credential a connection last used (its Secret or resource is gone). */
  readonly fromMemory: boolean;
  /** Stops following a released record (a live connection only). */
  forget(connectorId: string): void;
  close(): void;
}

interface Remembered {
  url: string;
  caPem: string;
  credential: string;
}

export interface ConnectionSettings {
  url: string;
  caPem: string;
  /** Current credential; a function so a reloaded Secret takes effect on the next call. */
  credential: () => string | undefined;
}

class Connection implements ControlPlaneConnection {
  readonly key: string;
  readonly url: string;
  readonly caPem: string;
  readonly follower: ControlPlaneFollower;
  private readonly credential: () => string | undefined;
  private current: { credential: string; client: ControlPlaneAdminClient } | undefined;
  /** The credential this connection last used, kept when its source empties (see forRelease). */
  lastCredential: string | undefined;

  constructor(
    key: string,
    settings: ConnectionSettings,
    logger: Logger,
    onChange: (connectionKey: string, connectorId: string, cause: ChangeCause) => void,
  ) {
    this.key = key;
    this.url = settings.url;
    this.caPem = settings.caPem;
    this.credential = settings.credential;
    this.follower = new ControlPlaneFollower({
      client: () => this.client(),
      logger: logger.child({ controlPlane: settings.url }),
      onChange: (connectorId, cause) => onChange(key, connectorId, cause),
    });
  }

  client(): ControlPlaneAdminClient | undefined {
    const credential = this.credential();
    if (!credential) return undefined;
    this.lastCredential = credential;
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
  private readonly onChange: (connectionKey: string, connectorId: string, cause: ChangeCause) => void;
  private readonly byKey = new Map<string, Connection>();
  /** What closed connections last used, for releases after their resource or Secret went. */
  private readonly remembered = new Map<string, Remembered>();
  private running = false;

  constructor(options: {
    logger: Logger;
    onChange: (connectionKey: string, connectorId: string, cause: ChangeCause) => void;
  }) {
    this.logger = options.logger;
    this.onChange = options.onChange;
  }

  /** The operator's default control plane; its credential function follows the reloaded Secret. */
  registerDefault(settings: ConnectionSettings): ControlPlaneConnection {
    return this.obtain('default', settings);
  }

  /**
   * The connection of control-plane resource `key` (e.g. `ControlPlane/team-a/prod`), shared by every
   * Connector that names it. A connection made for another URL or CA is closed and replaced.
   */
  forResource(key: string, settings: ConnectionSettings): ControlPlaneConnection {
    const current = this.byKey.get(key);
    if (current && (current.url !== settings.url || current.caPem !== settings.caPem)) this.close(key);
    return this.obtain(key, settings);
  }

  /** The resource went away (or can no longer be used): its client and follower stop. */
  close(key: string): void {
    const connection = this.byKey.get(key);
    if (!connection) return;
    this.remember(connection);
    connection.close();
    this.byKey.delete(key);
    this.logger.debug({ controlPlane: key }, 'closed a control-plane connection');
  }

  /** Connections open now (the default included), for tests and metrics. */
  size(): number {
    return this.byKey.size;
  }

  get(key: string): ControlPlaneConnection | undefined {
    return this.byKey.get(key);
  }

  /**
   * A client to release the records of Connectors being deleted with: the live connection's, or
   * (its credential source empty, or the connection closed since) one built from the URL, CA and
   * credential it last used. Undefined when this operator never held a credential for `key`.
   */
  forRelease(key: string): ReleaseHandle | undefined {
    const live = this.byKey.get(key);
    const client = live?.client();
    if (live && client)
      return { client, fromMemory: false, forget: (id) => live.follower.forget(id), close: () => {} };
    const memory = live?.lastCredential
      ? { url: live.url, caPem: live.caPem, credential: live.lastCredential }
      : this.remembered.get(key);
    if (!memory) return undefined;
    const own = new ControlPlaneAdminClient(memory);
    return { client: own, fromMemory: true, forget: () => {}, close: () => own.close() };
  }

  /** Starts following every known control plane, and any registered later. */
  start(): void {
    this.running = true;
    for (const connection of this.byKey.values()) connection.follower.start();
  }

  /** Stops following; connections stay known (a new leader starts them again). */
  stop(): void {
    this.running = false;
    for (const connection of this.byKey.values()) {
      this.remember(connection);
      connection.close();
    }
  }

  private remember(connection: Connection): void {
    if (connection.lastCredential)
      this.remembered.set(connection.key, {
        url: connection.url,
        caPem: connection.caPem,
        credential: connection.lastCredential,
      });
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
