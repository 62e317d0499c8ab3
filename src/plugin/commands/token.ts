// `token NAME`: an enrollment token for a Connector whose workload the operator does not own
// (adopted, spec.workloadRef), for the person who puts it where that workload's agent reads it. It
// is minted the way the operator mints (the same admin call, the same idempotency keys and the
// Connector's UID as the record's owner), so the plugin and the operator never hold two different
// live tokens: the key of the operator's last mint returns the token already live, and a new key is
// the one the operator would take next. That live token is also in the operator's Secret
// <name>-enrollment-token, and a second call prints it again while it is live; the plugin writes it
// to stdout only: not to stderr, a log or a file. Operator-owned workloads are refused: the operator
// mints their tokens into the Secret their pod mounts, and a second token would only revoke that
// one. So is whatever the operator would refuse: a Stalled Connector, a record it does not own.
import { CodedError, errorMessage, isCodedError } from '../../lib/errors.ts';
import { type Connector, defaultedSpec } from '../../operator/api/types.ts';
import type { Connector as RecordJson } from '../../operator/control-plane/admin-client.ts';
import { enrollmentMintKey } from '../../operator/reconcile/enrollment.ts';
import { recoveryUnderway } from '../../operator/reconcile/recovery-stages.ts';
import { untrustedRecord, untrustedText, untrustedTime } from '../../operator/reconcile/untrusted-text.ts';
import { isEnrollmentToken } from '../../operator/runtime/secret-patterns.ts';
import { type CommandContext, EXIT, readConnector, refusal } from '../context.ts';
import { controlPlaneAccess, controlPlaneOutcome } from '../control-plane-access.ts';
import { serialize } from '../output.ts';
import { stalledRefusal } from '../stalled.ts';
import { relativeTime } from '../time-text.ts';

/** The mint number in an enrollment key of this Connector (`enroll-<uid>-<n>`), if it is one. */
function mintNumber(uid: string, key: string | undefined): number {
  const prefix = `enroll-${uid}-`;
  if (!key?.startsWith(prefix)) return 0;
  const n = Number(key.slice(prefix.length));
  return Number.isInteger(n) && n > 0 ? n : 0;
}

/**
 * The keys to try, in order: during a recovery its one key; else the operator's last enrollment
 * key (its token, if still live, comes back as it is) and then the next ones it would take.
 */
export function mintKeys(connector: Connector): string[] {
  const uid = connector.metadata.uid ?? '';
  const recovery = connector.status?.recovery;
  if (recoveryUnderway(recovery?.step) && recovery?.mintKey) return [recovery.mintKey];
  const enrollment = connector.status?.enrollment ?? {};
  const counted = Math.max(
    enrollment.mintCount ?? 0,
    mintNumber(uid, enrollment.lastMintKey),
    mintNumber(uid, enrollment.consumedMintKey),
  );
  const keys = counted > 0 ? [enrollmentMintKey(uid, counted)] : [];
  // A key spent meanwhile (the operator minted and the token expired or paired) moves on; bounded.
  for (let n = counted + 1; n <= counted + 3; n += 1) keys.push(enrollmentMintKey(uid, n));
  return keys;
}

/** The operator mints nothing for a Connector that is Stalled, whatever the reason: neither does this. */
export function tokenStallRefusal(connector: Connector): string | undefined {
  return stalledRefusal(connector, { blockingOnly: false, meanwhile: 'mints nothing while it is Stalled' });
}

/**
 * Why no token is minted for this record (as the control plane sent it), or undefined when one may
 * be. The record is judged and quoted as the operator's untrustedRecord cleans it: a string "false"
 * is not a retired bootstrap, and a time that is no time is not quoted.
 */
export function tokenRefusal(connector: Connector, answer: RecordJson, program: string): string | undefined {
  const record = untrustedRecord(answer);
  if (!record) return 'the control plane answered with no connector record';
  const { namespace, name } = connector.metadata;
  const recovery = connector.status?.recovery;
  const stalled = tokenStallRefusal(connector);
  if (stalled) return stalled;
  // The operator mints only for a record whose owner is exactly this Connector's UID: an unowned
  // record (disowned by another Connector's Retain delete) is claimed first, on its next pass.
  const uid = connector.metadata.uid;
  const keptFor = record.handoverNamespace;
  if (!record.ownerUid && keptFor && keptFor !== namespace) {
    return `the control plane's record ${record.connectorId} was kept by a Connector of another namespace deleted with deletionPolicy Retain; no Connector of this namespace can claim it, and this Connector cannot change its spec.connector.id (fixed at creation): create a new Connector with another spec.connector.id and delete this one (ConnectorIdConflict)`;
  }
  if (!record.ownerUid) {
    return `the control plane's record ${record.connectorId} is not owned by this Connector; the operator claims it on its next pass once nothing blocks it (${program} status ${name} -n ${namespace} shows what it waits for)`;
  }
  if (!uid || record.ownerUid !== uid) {
    return `the control plane's record ${record.connectorId} is owned by another Connector (ConnectorIdConflict)`;
  }
  if (recoveryUnderway(recovery?.step)) {
    return recovery?.mintKey
      ? undefined
      : `recovery ${recovery?.requestId} is at step ${recovery?.step}; its one token is minted at TokenMinted: run this again then (${program} status ${name} -n ${namespace} shows the step)`;
  }
  if (record.bootstrapRetired) {
    return `the connector paired and bootstrap is retired: restarts use its persisted identity, and the control plane refuses a token (RECOVERY_REQUIRED); if the identity is lost, ${program} recover ${name} -n ${namespace}`;
  }
  if (record.state !== 'pending') {
    return `the connector paired at ${record.enrolledAt ?? '?'} and waits for its first heartbeat (state ${record.state}); it needs no token`;
  }
  return undefined;
}

export interface MintedToken {
  connectorId: string;
  /** The Connector's name: the operator's token Secret is named after it. */
  name: string;
  key: string;
  created: boolean;
  expiresAt: string;
  now: Date;
}

/**
 * What is wrong with the control plane's answer to a mint, or undefined when it is what the
 * contract says. The token goes to stdout as it came (to a terminal, a pipe, the agent's token
 * file) and its expiry into the notice on stderr: a token that is no enrollment token (an escape
 * sequence in it reached the terminal) or an expiry that is no time is refused. The answer says
 * what is wrong without quoting the token.
 */
export function mintAnswerProblem(minted: { token?: unknown; expiresAt?: unknown }): string | undefined {
  if (!isEnrollmentToken(minted.token)) {
    return 'a token that is not an enrollment token (vpe_<16 hex>_<43 base64url>)';
  }
  if (untrustedTime(minted.expiresAt) === undefined) {
    return `an expiry that is not an RFC 3339 time ("${untrustedText(minted.expiresAt, 64)}")`;
  }
  return undefined;
}

/**
 * What stderr says beside the token (never the token itself). It is the live token, so it is said
 * where else it is: the operator's Secret holds it, and the same key returns it while it is live.
 */
export function tokenNotice(minted: MintedToken): string {
  const { connectorId, name, key, expiresAt } = minted;
  return (
    `${minted.created ? 'Minted' : 'The live'} enrollment token of connector ${connectorId} (mint key ${key}), single use, expires ${expiresAt} (${relativeTime(expiresAt, minted.now)}).\n` +
    `It is the live token, also in Secret ${name}-enrollment-token (anyone who may read that Secret can see it); running this again prints the same token while it is live. Put it in the file the adopted agent reads (--token-file, VAULTPAM_TOKEN_FILE) and start it.\n`
  );
}

export async function tokenCommand(ctx: CommandContext): Promise<number> {
  const { io, options } = ctx;
  const name = options.name ?? '';
  const connector = await readConnector(ctx, name);
  const where = `${ctx.namespace}/${name}`;
  if (!connector.spec.workloadRef) {
    throw refusal(
      `the operator owns the workload of Connector ${where} and mints its tokens into Secret ${name}-enrollment-token, which its pod mounts; a token from here would only revoke that one. token is for adopted workloads (spec.workloadRef)`,
    );
  }
  if (connector.spec.paused) {
    throw refusal(
      'spec.paused is true: the operator holds the tokens as they are; set spec.paused to false first',
    );
  }
  // Before the control plane is asked: a stall (a missing workload, a refused credential) is the
  // answer, not whatever the control plane says next.
  const stalled = tokenStallRefusal(connector);
  if (stalled) throw refusal(`no token for ${where}: ${stalled}`);
  let spec: ReturnType<typeof defaultedSpec>;
  try {
    spec = defaultedSpec(connector);
  } catch (error) {
    throw refusal(`the Connector's spec cannot be used: ${errorMessage(error)}`);
  }
  const access = await controlPlaneAccess({
    api: ctx.api,
    connector,
    operatorNamespace: options.operatorNamespace,
    defaults: options.defaultControlPlane,
  });
  if ('unavailable' in access) {
    throw new CodedError('CONTROL_PLANE_UNAVAILABLE', `no token: ${access.unavailable}`);
  }
  const { client, credential } = access;
  try {
    const connectorId = spec.connector.id;
    let record: RecordJson;
    try {
      record = await client.getConnector(connectorId);
    } catch (error) {
      if (isCodedError(error) && error.httpStatus === 404) {
        throw refusal(
          `the control plane has no record ${connectorId} yet: the operator registers it first (see ${io.program} status ${name} -n ${ctx.namespace})`,
        );
      }
      throw new CodedError(
        'CONTROL_PLANE_UNAVAILABLE',
        `the control plane ${controlPlaneOutcome(error, credential)}`,
      );
    }
    const refused = tokenRefusal(connector, record, io.program);
    if (refused) throw refusal(`no token for ${where}: ${refused}`);
    for (const key of mintKeys(connector)) {
      let minted: Awaited<ReturnType<typeof client.mintToken>>;
      try {
        minted = await client.mintToken(connectorId, {
          idempotencyKey: key,
          ttlSeconds: spec.tokenTTLSeconds,
          ownerUid: connector.metadata.uid ?? '',
        });
      } catch (error) {
        if (isCodedError(error) && error.code === 'IDEMPOTENCY_KEY_CONSUMED') continue;
        throw new CodedError(
          'CONTROL_PLANE_UNAVAILABLE',
          `no token minted: the control plane ${controlPlaneOutcome(error, credential)}`,
        );
      }
      // Judged before anything is written: nothing of an answer that is not the contract's is shown.
      const problem = mintAnswerProblem(minted);
      if (problem) {
        throw new CodedError(
          'BAD_RESPONSE',
          `no token printed: the control plane answered mint key ${key} with ${problem}; that is not the contract's answer, so the token is neither printed nor quoted: check what answers at ${access.source.url ?? 'the control plane URL'}`,
        );
      }
      if (options.output === 'json' || options.output === 'yaml') {
        io.stdout.write(
          serialize(
            {
              connectorId,
              token: minted.token,
              tokenId: minted.tokenId,
              expiresAt: minted.expiresAt,
              mintKey: key,
            },
            options.output,
          ),
        );
      } else {
        io.stdout.write(`${minted.token}\n`);
      }
      io.stderr.write(tokenNotice({ ...minted, connectorId, key, name, now: io.now() }));
      return EXIT.ok;
    }
    const recovery = connector.status?.recovery;
    if (recoveryUnderway(recovery?.step)) {
      throw refusal(
        `the one token of recovery ${recovery?.requestId} was used, revoked or expired (IDEMPOTENCY_KEY_CONSUMED): that recovery ends Failed, and a new request id runs another`,
      );
    }
    throw refusal('every mint key tried was spent; the operator is minting at the same time: run this again');
  } finally {
    client.close();
  }
}
