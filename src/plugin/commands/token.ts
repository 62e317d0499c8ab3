// `token NAME`: an enrollment token for a Connector whose workload the operator does not own
// (adopted, spec.workloadRef), for the person who puts it where that workload's agent reads it. It
// is minted the way the operator mints (the same admin call, the same idempotency keys and the
// Connector's UID as the record's owner), so the plugin and the operator never hold two different
// live tokens: the key of the operator's last mint returns the token already live, and a new key is
// the one the operator would take next. The token goes to stdout once and nowhere else: not to
// stderr, a log or a file. Operator-owned workloads are refused: the operator mints their tokens
// into the Secret their pod mounts, and a second token would only revoke that one.
import { CodedError, errorMessage, isCodedError } from '../../lib/errors.ts';
import { type Connector, defaultedSpec } from '../../operator/api/types.ts';
import type { Connector as RecordJson } from '../../operator/control-plane/admin-client.ts';
import { enrollmentMintKey } from '../../operator/reconcile/enrollment.ts';
import { recoveryUnderway } from '../../operator/reconcile/recovery-stages.ts';
import { untrustedText } from '../../operator/reconcile/untrusted-text.ts';
import { type CommandContext, EXIT, readConnector, refusal } from '../context.ts';
import { controlPlaneAccess } from '../control-plane-access.ts';
import { serialize } from '../output.ts';
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

/** Why no token is minted for this record, or undefined when one may be. */
export function tokenRefusal(connector: Connector, record: RecordJson, program: string): string | undefined {
  const { namespace, name } = connector.metadata;
  const recovery = connector.status?.recovery;
  if (record.ownerUid && record.ownerUid !== connector.metadata.uid) {
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
    return `the connector paired at ${record.enrolledAt ?? '?'} and waits for its first heartbeat (state ${untrustedText(record.state, 64)}); it needs no token`;
  }
  return undefined;
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
  const scrub = (text: string) => untrustedText(text.replaceAll(credential, '[REDACTED]'));
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
        `the control plane did not answer: ${scrub(errorMessage(error))}`,
      );
    }
    const refused = tokenRefusal(connector, record, io.program);
    if (refused) throw refusal(`no token for ${where}: ${refused}`);
    for (const key of mintKeys(connector)) {
      try {
        const minted = await client.mintToken(connectorId, {
          idempotencyKey: key,
          ttlSeconds: spec.tokenTTLSeconds,
          ownerUid: connector.metadata.uid ?? '',
        });
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
        io.stderr.write(
          `${minted.created ? 'Minted' : 'The live'} enrollment token of connector ${connectorId} (mint key ${key}), single use, expires ${minted.expiresAt} (${relativeTime(minted.expiresAt, io.now())}).\n` +
            'It was printed once, to stdout, and is kept nowhere else: put it in the file the adopted agent reads (--token-file, VAULTPAM_TOKEN_FILE) and start it.\n',
        );
        return EXIT.ok;
      } catch (error) {
        if (isCodedError(error) && error.code === 'IDEMPOTENCY_KEY_CONSUMED') continue;
        throw new CodedError(
          'CONTROL_PLANE_UNAVAILABLE',
          `the control plane refused the mint: ${String(error instanceof CodedError ? error.code : '')} ${scrub(errorMessage(error))}`,
        );
      }
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
