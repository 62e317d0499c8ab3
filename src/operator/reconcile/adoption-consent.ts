// Adoption needs the workload's consent. spec.workloadRef lets a Connector's author point the
// operator at a StatefulSet or Deployment, and the operator scales what it adopts (to zero during a
// recovery): without consent, anyone who may create a Connector could have the operator stop any
// workload in the namespace. So a workload is adopted only when it names the Connector itself, in a
// label (vaultpam.io/adopted-by: <Connector name>) that only someone who may edit the workload can
// set. Until then the operator reads the workload's labels and nothing else (not its pods, volumes
// or claims), plans nothing and writes nothing (plan.ts blockingReason: AdoptionNotConsented).
import { ADOPTED_BY_LABEL } from '../api/constants.ts';

/** Whether a workload with these labels consents to adoption by the Connector `connectorName`. */
export function adoptionConsented(
  labels: Record<string, string> | undefined,
  connectorName: string,
): boolean {
  return labels?.[ADOPTED_BY_LABEL] === connectorName;
}

/** Why a workload is not adopted, and the one command that gives its consent. */
export function adoptionNotConsentedMessage(input: {
  namespace: string;
  kind: 'StatefulSet' | 'Deployment';
  name: string;
  connectorName: string;
  /** The workload's vaultpam.io/adopted-by label, if it has one (naming another Connector). */
  adoptedBy: string | undefined;
}): string {
  const { namespace, kind, name, connectorName, adoptedBy } = input;
  const found =
    adoptedBy === undefined
      ? `has no label ${ADOPTED_BY_LABEL}`
      : `has ${ADOPTED_BY_LABEL}=${adoptedBy}, which names another Connector`;
  const overwrite = adoptedBy === undefined ? '' : ' --overwrite';
  return (
    `spec.workloadRef: ${kind} ${namespace}/${name} ${found}, so it has not consented to adoption by this Connector ` +
    `and the operator leaves it alone (no control-plane record, token or scaling); a recovery scales an adopted ` +
    `workload to zero, so only someone who may edit the workload can consent: ` +
    `kubectl -n ${namespace} label ${kind.toLowerCase()} ${name} ${ADOPTED_BY_LABEL}=${connectorName}${overwrite}`
  );
}
