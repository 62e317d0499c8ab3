// Whether a value read from elsewhere (a file, a server's answer) is a JSON object: the one check
// before its fields are read, so a null, an array or a string there is refused, not thrown on.

/** A non-null object that is not an array. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
