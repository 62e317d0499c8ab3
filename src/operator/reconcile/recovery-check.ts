// The precondition of a recovery's first side effect. Before a recovery scales anything down, the
// control plane is asked whether it would begin this recovery (its dry run: nothing is written), so
// a recovery it would refuse (a connector that never paired, one online with its identity, a record
// another Connector owns) ends before any workload stops. Asked on the passes whose recorded step
// is Checking (recovery-machine.ts decides with the answer); like every observation, it writes nothing.
import { isCodedError } from '../../lib/errors.ts';
import type { Connector } from '../api/types.ts';
import type { ControlPlaneConnection } from '../control-plane/connections.ts';
import type { RecoveryCheck } from './observed.ts';
import { untrustedCode, untrustedText } from './untrusted-text.ts';

/**
 * The control plane's answer for the recovery being checked: allowed, or its refusal (code and
 * message, cleaned: they are the server's words). Undefined while there is nothing to check or no
 * answer yet (unreachable, 5xx): the step waits and asks again.
 */
export async function checkRecovery(
  connection: ControlPlaneConnection,
  connector: Connector,
  connectorId: string,
): Promise<RecoveryCheck | undefined> {
  const recovery = connector.status?.recovery;
  const requestId = recovery?.requestId;
  const client = connection.client();
  if (recovery?.step !== 'Checking' || !requestId || !client) return undefined;
  try {
    await client.checkRecovery(connectorId, requestId, { ownerUid: connector.metadata.uid ?? '' });
    return { requestId, allowed: true };
  } catch (error) {
    if (!isCodedError(error) || error.temporary) return undefined;
    return {
      requestId,
      allowed: false,
      code: untrustedCode(error.code),
      message: untrustedText(error.message),
    };
  }
}
