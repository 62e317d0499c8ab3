// Whether an owned object needs a write. Server-side apply of an unchanged intent is harmless to
// the object but is still a request: with thousands of Connectors resynced every few minutes that
// is a steady stream of writes for nothing. So the operator applies only when some field it sets
// differs from the live object (fields the server or other managers add are ignored), which also
// repairs drift: an edited field differs, and the next pass puts it back.

/** The first path at which `desired` is not contained in `live`, or undefined when it is. */
export function firstDifference(desired: unknown, live: unknown, path = ''): string | undefined {
  if (desired === undefined) return undefined;
  if (desired === null || typeof desired !== 'object') {
    return desired === live || String(desired) === String(live) ? undefined : path || '/';
  }
  if (Array.isArray(desired)) {
    if (!Array.isArray(live) || live.length !== desired.length) return path || '/';
    for (let i = 0; i < desired.length; i++) {
      const difference = firstDifference(desired[i], live[i], `${path}[${i}]`);
      if (difference) return difference;
    }
    return undefined;
  }
  if (live === null || typeof live !== 'object' || Array.isArray(live)) return path || '/';
  for (const [key, value] of Object.entries(desired)) {
    const difference = firstDifference(value, (live as Record<string, unknown>)[key], `${path}.${key}`);
    if (difference) return difference;
  }
  return undefined;
}

/** Plain JSON form of a client-node model object (Dates as strings, no undefined). */
export function asJson(value: unknown): unknown {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

/**
 * Fields Kubernetes lets set only when the object is created, by kind. A difference there is never a
 * reason to write: the write would be refused, whole. A StatefulSet's volumeClaimTemplates are kept as
 * the live object has them (desired-objects.ts); a larger spec.storage.size grows the claim instead.
 */
const CREATION_ONLY: Record<string, readonly string[]> = { StatefulSet: ['volumeClaimTemplates'] };

/** The path of the first field that needs writing, or undefined when the live object already matches. */
export function driftOf(desired: object, live: object | undefined): string | undefined {
  if (!live) return '(absent)';
  const compared = asJson(desired) as { kind?: string; spec?: Record<string, unknown> };
  const creationOnly = CREATION_ONLY[compared.kind ?? ''] ?? [];
  if (compared.spec && creationOnly.length > 0) {
    compared.spec = Object.fromEntries(
      Object.entries(compared.spec).filter(([field]) => !creationOnly.includes(field)),
    );
  }
  return firstDifference(compared, asJson(live));
}
