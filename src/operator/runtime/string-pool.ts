// Equal strings of the cached objects, kept once. JSON.parse makes a new string for every value it
// reads, so each cached StatefulSet, pod, claim, ConfigMap and Connector holds its own copy of the
// same vocabulary: the operator's labels and names, container paths and variable names, API
// versions, defaults the API server fills in, condition messages, the control plane's CA in every
// ConfigMap. In a heap snapshot at 1,000 connectors, 5.9 of the 13.0 MiB of strings were such
// copies (docs/performance.md, "Seventh increment"). The informers hand each object to one pool
// before caching it, and the pool swaps every string for the one it already holds.
//
// Bounded without knowing which strings repeat: two generations of at most `generationSize` entries
// each. A string found in the current generation is returned from it; one found in the previous
// generation moves to the current one; one not found joins the current generation. When the current
// generation is full it becomes the previous one, and what the previous one held and nobody asked
// for again is let go. A string that recurs (in every StatefulSet, every Connector's status) is
// asked for again long before two generations pass and stays; one that does not (a uid, a
// resourceVersion, a timestamp) leaves the pool within two generations and lives only as long as
// the object that holds it. Interning only shares storage: every value stays equal to what the API
// server sent. No informer caches Secrets, so no secret value passes through the pool.

export const DEFAULT_GENERATION_SIZE = 16_384;
/**
 * Longer strings are not pooled: a long value that recurs across objects is rare (the CA certificate
 * in every ConfigMap, about 700 characters, is under this and pooled).
 */
export const DEFAULT_MAX_LENGTH = 4096;

export interface StringPoolOptions {
  /** Entries per generation; the pool holds at most twice this. */
  generationSize?: number;
  /** Strings longer than this are never pooled. */
  maxLength?: number;
}

export class StringPool {
  private readonly generationSize: number;
  private readonly maxLength: number;
  private current = new Map<string, string>();
  private previous = new Map<string, string>();

  constructor(options: StringPoolOptions = {}) {
    this.generationSize = options.generationSize ?? DEFAULT_GENERATION_SIZE;
    this.maxLength = options.maxLength ?? DEFAULT_MAX_LENGTH;
    if (!Number.isInteger(this.generationSize) || this.generationSize < 1)
      throw new RangeError(
        `StringPool generationSize must be a whole number >= 1, got ${this.generationSize}`,
      );
  }

  /** The pooled string equal to `value` (the first one seen, while it stays pooled). */
  intern(value: string): string {
    if (value.length > this.maxLength) return value;
    const pooled = this.current.get(value);
    if (pooled !== undefined) return pooled;
    const kept = this.previous.get(value) ?? value;
    if (this.current.size >= this.generationSize) {
      this.previous = this.current;
      this.current = new Map();
    }
    this.current.set(kept, kept);
    return kept;
  }

  /**
   * Swaps every string value inside `value` (object properties and array elements, at any depth)
   * for its pooled equal, in place, and returns `value`. For objects fresh from JSON.parse that
   * nothing else holds yet: plain objects, arrays and primitives.
   */
  internAll<T>(value: T): T {
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) value[i] = this.internValue(value[i]);
    } else if (value !== null && typeof value === 'object') {
      const record = value as Record<string, unknown>;
      for (const key of Object.keys(record)) record[key] = this.internValue(record[key]);
    }
    return value;
  }

  /** Whether `value` is pooled now (for the tests and for diagnostics; interning is never needed to read). */
  has(value: string): boolean {
    return this.current.has(value) || this.previous.has(value);
  }

  /** Entries held now, both generations together (at most twice the generation size). */
  get size(): number {
    return this.current.size + this.previous.size;
  }

  private internValue(value: unknown): unknown {
    if (typeof value === 'string') return this.intern(value);
    if (value !== null && typeof value === 'object') return this.internAll(value);
    return value;
  }
}
