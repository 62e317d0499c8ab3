// metav1.MicroTime as the API server reads it: RFC 3339 with exactly six fractional digits
// (`2026-12-02T21:02:14.003000Z`). Events' eventTime and a Lease's acquireTime and renewTime are
// MicroTimes; the API server refuses the three digits a Date's toISOString() gives.

/** A time in milliseconds as a MicroTime string. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/Z$/, '000Z');
}
