// When Kubernetes refuses an object the operator built from a Connector, the person who must act
// edits the Connector, not the StatefulSet: this maps the refused field of an owned object back to
// the Connector field it came from, so the InvalidSpec message names what to change.
import { CodedError, isCodedError } from '../../lib/errors.ts';
import type { ApiRefusalCause } from '../runtime/apply.ts';

/**
 * Field path prefixes of owned objects, most specific first, and the Connector field each comes
 * from. Validation names a list item by its index (`containers[0]`), server-side apply's schema
 * check by its key (`containers[name="agent"]`).
 */
const SOURCES: ReadonlyArray<readonly [RegExp, string]> = [
  [/^spec\.template\.metadata\.labels/, 'spec.podLabels'],
  [/^spec\.template\.metadata\.annotations/, 'spec.podAnnotations'],
  [/^spec\.template\.spec\.containers\[[^\]]+\]\.imagePullPolicy/, 'spec.imagePullPolicy'],
  [/^spec\.template\.spec\.containers\[[^\]]+\]\.image/, 'spec.image'],
  [/^spec\.template\.spec\.containers\[[^\]]+\]\.resources/, 'spec.resources'],
  [/^spec\.template\.spec\.priorityClassName/, 'spec.priorityClassName'],
  [/^spec\.template\.spec\.serviceAccountName/, 'spec.serviceAccountName'],
  [/^spec\.template\.spec\.nodeSelector/, 'spec.nodeSelector'],
  [/^spec\.template\.spec\.tolerations/, 'spec.tolerations'],
  [/^spec\.template\.spec\.affinity/, 'spec.affinity'],
  [/^spec\.template\.spec\.imagePullSecrets/, 'spec.imagePullSecrets'],
  [/^spec\.template\.spec\.volumes/, 'spec.storage'],
  [/^spec\.volumeClaimTemplates/, 'spec.storage'],
  [/^metadata\.(name|labels)/, 'metadata.name'],
  // The Connector's ConfigMap, key by key (desired-objects.ts). Its ca.crt and control-plane-url are
  // the control plane's, not the Connector's: config-map-refusal.ts answers for them.
  [dataKey('connector-id'), 'spec.connector.id'],
  [dataKey('org'), 'spec.connector.org'],
  [dataKey('endpoint-id'), 'spec.connector.endpointId'],
  [dataKey('allowed-networks'), 'spec.connector.allowedNetworks'],
];

/** The field of one ConfigMap key: `data[key]` (validation) or `data.key` (a schema check). */
function dataKey(key: string): RegExp {
  const escaped = key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`^\\.?data(\\[${escaped}\\]|\\.${escaped})$`);
}

/** What a cause of a refusal says, on one line and bounded. */
const causeWords = (cause: Partial<ApiRefusalCause>) =>
  (cause.message || 'is invalid').replace(/\s+/g, ' ').slice(0, 300);

/** One cause of a refusal with the owned field it names: `ConfigMap data[ca.crt]: Invalid value ...`. */
export function causeText(kind: string, cause: Partial<ApiRefusalCause>): string {
  return `${kind} ${cause.field || 'object'}: ${causeWords(cause)}`;
}

/** The Connector field a refused owned-object field comes from, if known. */
export function connectorFieldFor(ownedField: string): string | undefined {
  return SOURCES.find(([pattern]) => pattern.test(ownedField))?.[1];
}

/**
 * An API refusal of an owned object (400/422, or a body that does not fit the schema: writeError
 * reads the fields of that HTTP 500 from its message) as a permanent InvalidSpec error naming the
 * Connector field to fix; undefined for any other error.
 */
export function invalidSpecFromRefusal(kind: string, error: unknown): CodedError | undefined {
  if (!isCodedError(error, 'KUBERNETES_INVALID')) return undefined;
  // The stored object does not fit its schema (someone edited it so): nothing in the Connector's
  // spec causes that or fixes it, so it is no InvalidSpec; it stays the refusal it is.
  if (error.details?.misfit === 'live') return undefined;
  const status = error.httpStatus;
  const causes = (error.details?.causes ?? []) as ApiRefusalCause[];
  const named = causes.map((cause) => {
    const field = cause.field ?? '';
    const source = connectorFieldFor(field);
    return source ? `${source} (${kind} ${field}): ${causeWords(cause)}` : causeText(kind, cause);
  });
  const fields = [...new Set(causes.map((c) => connectorFieldFor(c.field ?? '')).filter(Boolean))];
  // A field the operator cannot map to the spec (the whole object, a field it does not fill from the
  // spec) is said as such: "fix the spec" would send the Connector's author after a cause that may
  // not be theirs.
  const unmapped = `the operator cannot tell which field of this Connector's spec causes it, so changing the spec may not fix it; if nothing in the spec explains it, report it to whoever runs the operator with this message`;
  const message =
    named.length > 0
      ? `Kubernetes refuses the ${kind} built from this Connector: ${named.join('; ')}; ${fields.length > 0 ? `fix ${fields.join(', ')}` : unmapped}`
      : `Kubernetes refuses the ${kind} built from this Connector (HTTP ${status}) and names no field: ${unmapped}`;
  return new CodedError('InvalidSpec', message, {
    httpStatus: 422,
    temporary: false,
    details: { fields },
  });
}
