// Admin: a guided recovery of a connector whose identity is lost or in doubt. Beginning one revokes
// every live token and the current certificate (its serial is remembered, so the old identity is
// told it was revoked), after which exactly one token may pair once. Idempotent by requestId; its
// dry run answers alike and writes nothing.
import { cpError } from './errors.ts';
import { requireOwned } from './ownership.ts';
import type { ServiceContext } from './service-context.ts';
import { type LiveRecord, recoveryDecision, rememberRevoked } from './state.ts';
import { revokeLiveTokens } from './token-admin.ts';
import { type ConnectorJson, connectorJson, type RecoveryCheckJson } from './views.ts';

/**
 * Whether a recovery by `requestId` may begin: 'begin', 'same_request' (begun already, idempotent),
 * or 409 RECOVERY_NOT_NEEDED. begin() and its dry run (check()) answer alike because both ask here.
 */
function recoveryAllowed(record: LiveRecord, requestId: string): 'begin' | 'same_request' {
  const decision = recoveryDecision(record, requestId);
  if (decision === 'not_needed') {
    throw cpError(
      'RECOVERY_NOT_NEEDED',
      `a connector in state ${record.state} needs no recovery${record.bootstrapRetired ? '' : '; mint a token instead'}`,
      { state: record.state },
    );
  }
  return decision;
}

export class RecoveryAdmin {
  private readonly context: ServiceContext;

  constructor(context: ServiceContext) {
    this.context = context;
  }

  /**
   * The dry run of begin() (`?dryRun=true`): the same ownership check and the same refusals, and
   * nothing written (no state, revision, token, audit entry or change). The operator asks it before
   * it scales a connector down, so a recovery that would be refused never stops a workload.
   */
  check(connectorId: string, requestId: string, ownerUid?: string): RecoveryCheckJson {
    const record = requireOwned(this.context.records, connectorId, ownerUid);
    const decision = recoveryAllowed(record, requestId);
    return {
      dryRun: true,
      allowed: true,
      requestId,
      state: record.state,
      sameRequest: decision === 'same_request',
    };
  }

  begin(connectorId: string, requestId: string, ownerUid?: string): ConnectorJson {
    const { records, store } = this.context;
    const record = requireOwned(records, connectorId, ownerUid);
    const now = this.context.now();
    if (recoveryAllowed(record, requestId) === 'same_request') return connectorJson(record, now);
    const recovering = records.commit((tx) => {
      const revokedTokens = revokeLiveTokens(store, tx, connectorId, now, 'recovery started');
      return tx.update(connectorId, now, (draft) => {
        const revokedSerial = draft.certificate?.serial ?? null;
        if (revokedSerial !== null) {
          // Remembered, so the old identity is told it was revoked rather than that nobody knows it.
          draft.revokedCertificates = rememberRevoked(draft.revokedCertificates, {
            serial: revokedSerial,
            revokedAt: now,
            requestId,
          });
        }
        draft.liveToken = null;
        draft.certificate = null;
        draft.recovery = { requestId, startedAt: now, completedAt: null };
        tx.audit(
          'recovery.started',
          connectorId,
          { requestId, from: draft.state, revokedSerial, revokedTokens },
          now,
        );
        tx.moveTo(draft, 'recovering', now, 'recovery started');
      });
    });
    return connectorJson(recovering, now);
  }
}
