// Server-side apply first turns the body it was sent, and the object stored, into typed objects of
// the kind's schema. When one does not fit (a field the schema does not declare, an object where a
// list belongs), the API server refuses with HTTP 500 and no field causes
// (kubernetes/kubernetes#122480: the error is not a metav1.Status, so it is reported as a server
// error), although sending the same write again gets the same answer. Read from its message, it is
// the permanent refusal it really is, with its fields.
import type { ApiRefusalCause } from './apply.ts';

/**
 * What did not fit: `patch`, the body sent (a Connector's spec built into a StatefulSet); `live`,
 * the object stored, which no apply can change then (a Connector stored before its CRD's schema
 * covered the field).
 */
export interface SchemaMisfit {
  object: 'patch' | 'live';
  causes: ApiRefusalCause[];
}

const MISFIT = /^failed to create typed (patch|live) object \([^)]*\): ([\s\S]*)$/;
/** `.spec.a.b[name="x"].c: <error>`, where the error is one the typed conversion words. */
const CAUSE =
  /^\.[\w.[\]="-]+: (?:field not declared in schema|expected \w+, got .*|duplicate entries for key .*|element \d+: .*)$/;

/**
 * The misfit a "failed to create typed ... object" answer reports, whatever its HTTP status (500
 * today, 400 once Kubernetes classifies it as a bad request); undefined for any other message. One
 * error reads `.spec.x: field not declared in schema`; several read `errors:` and then one such
 * line each, indented.
 */
export function schemaMisfit(message: string): SchemaMisfit | undefined {
  const match = MISFIT.exec(message);
  if (match === null) return undefined;
  const causes = (match[2] ?? '')
    .split('\n')
    .map((line) => line.trim())
    // A cause is a field path and an error, as the API server words them; a line of a value the
    // message quotes (a string holding a newline) is not one.
    .filter((line) => CAUSE.test(line))
    .slice(0, 20)
    .map((line) => {
      const separator = line.indexOf(': ');
      return separator < 0
        ? { field: line.slice(1), message: 'does not fit the schema' }
        : { field: line.slice(1, separator), message: line.slice(separator + 2) };
    });
  return { object: match[1] === 'live' ? 'live' : 'patch', causes };
}
