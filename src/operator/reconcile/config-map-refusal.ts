// A Connector's ConfigMap carries two things that are not the Connector's: the control plane's CA
// bundle (ca.crt) and its URL (control-plane-url), which the operator copies from the control plane
// the Connector names (or from its own default). When Kubernetes refuses that ConfigMap for them, no
// Connector author can fix it, and saying InvalidSpec "fix spec.connector" sends the wrong person
// to the wrong place. This names the control plane and its admin instead, and asks for the control
// plane to be checked again now (its check measures the bundle: config-map-budget.ts).
import type { KubernetesObject, V1ConfigMap } from '@kubernetes/client-node';
import { CodedError, isCodedError } from '../../lib/errors.ts';
import type { DefaultedSpec } from '../api/types.ts';
import { StalledReasons } from '../conditions.ts';
import { describeControlPlane, referencedControlPlane } from '../control-plane/status.ts';
import type { ApiRefusalCause } from '../runtime/apply.ts';
import { configMapDataBytes } from './config-map-budget.ts';
import { CA_KEY, CONTROL_PLANE_URL_KEY } from './desired-objects.ts';
import { causeText } from './spec-fields.ts';

/** What of the control plane a ConfigMap key holds, and what its admin does about a refusal. */
const CONTROL_PLANE_KEYS: Readonly<Record<string, { what: string; fix: string }>> = {
  [CA_KEY]: {
    what: 'CA bundle',
    fix: "trim the bundle to the CAs that sign the control plane's serving certificate",
  },
  [CONTROL_PLANE_URL_KEY]: { what: 'URL', fix: 'correct the URL' },
};

/** The data key a refused field names: `data[ca.crt]` (validation) or `.data.ca.crt` (a schema check). */
export function configMapKeyOf(field: string): string | undefined {
  const match = /^\.?data(?:\[([^\]]*)\]|\.(.+))$/.exec(field);
  return match ? (match[1] ?? match[2]) : undefined;
}

/** A cause that names the object as a whole: no field, the root (`[]`) or all of its data. */
const wholeObject = (field: string) =>
  field === '' || field === '[]' || field === 'data' || field === '.data';

/**
 * A cause about size, in Kubernetes' words ("Too long: may not be more than 1048576 bytes", "too
 * large"). A whole-object cause that says anything else (an admission policy naming no field) may be
 * about any key: the control plane's bulk in the ConfigMap says nothing about it.
 */
const aboutSize = (message: string) => /too long|too large|may not be more than/i.test(message);

/** Who answers for the control-plane content of this Connector's ConfigMap. */
function controlPlaneOf(spec: DefaultedSpec): {
  named: string;
  subject: string;
  actor: string;
  next: string;
} {
  const id = referencedControlPlane(spec);
  if (id) {
    const named = describeControlPlane(id);
    return {
      named,
      subject: 'spec.controlPlaneRef: ',
      actor: `an admin of ${named}`,
      next: 'the operator checks it again now, keeps the running workload as it is, and tries the ConfigMap again only while it is Ready',
    };
  }
  // The default is read and judged once, at start (control-plane/default-ca.ts): no check to ask for.
  return {
    named: "the operator's default control plane (--control-plane-ca-file, --control-plane-url)",
    subject: '',
    actor: "the operator's admin",
    next: 'the operator keeps the running workload as it is and tries the ConfigMap again at the next look',
  };
}

const figure = (n: number) => n.toLocaleString('en-US');

/**
 * A refusal (400/422) of the Connector's ConfigMap whose cause is the control plane's content, as a
 * permanent ControlPlaneConfigInvalid naming the control plane and who must act, with
 * `details.recheckControlPlane`; undefined for any other error or object, or a cause of the
 * Connector's own (spec-fields.ts says those). A cause is the control plane's when its field is the
 * CA or URL key, or when it is the whole object's size and the control plane's content is most of
 * the ConfigMap.
 */
export function controlPlaneContentRefusal(
  error: unknown,
  desired: KubernetesObject,
  spec: DefaultedSpec,
): CodedError | undefined {
  if (desired.kind !== 'ConfigMap' || !isCodedError(error, 'KUBERNETES_INVALID')) return undefined;
  if (error.details?.misfit === 'live') return undefined;
  const data = (desired as V1ConfigMap).data ?? {};
  const total = configMapDataBytes(data);
  const theirs = configMapDataBytes(
    Object.fromEntries(Object.entries(data).filter(([key]) => Object.hasOwn(CONTROL_PLANE_KEYS, key))),
  );
  const causes = (error.details?.causes ?? []) as ApiRefusalCause[];
  const keys = new Set<string>();
  for (const cause of causes) {
    const field = cause.field ?? '';
    const key = configMapKeyOf(field);
    if (key !== undefined && Object.hasOwn(CONTROL_PLANE_KEYS, key)) keys.add(key);
    else if (wholeObject(field) && aboutSize(cause.message ?? '') && theirs * 2 > total)
      keys.add(CA_KEY in data ? CA_KEY : CONTROL_PLANE_URL_KEY);
  }
  if (keys.size === 0) return undefined;
  const cp = controlPlaneOf(spec);
  const what = [...keys].map((key) => CONTROL_PLANE_KEYS[key]?.what).join(' and ');
  const fix = [...keys].map((key) => CONTROL_PLANE_KEYS[key]?.fix).join('; ');
  const said = causes.map((cause) => causeText('ConfigMap', cause)).join('; ');
  const caBytes =
    CA_KEY in data ? `, a CA bundle of ${figure(Buffer.byteLength(data[CA_KEY] ?? '', 'utf8'))} bytes` : '';
  const name = `${desired.metadata?.namespace ?? ''}/${desired.metadata?.name ?? ''}`;
  return new CodedError(
    StalledReasons.ControlPlaneConfigInvalid,
    `${cp.subject}Kubernetes refuses ConfigMap ${name} for the ${what} it copies from ${cp.named} (${figure(total)} bytes of data${caBytes}): ${said}; ${cp.actor} must fix it (${fix}), not this Connector's spec; ${cp.next}`,
    { httpStatus: 422, temporary: false, details: { recheckControlPlane: true } },
  );
}
