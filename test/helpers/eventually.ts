// Waits for a condition by polling with a bounded deadline: tests never sleep to dodge a race.

export interface EventuallyOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** Said in the error when the deadline passes. */
  description?: string;
}

/**
 * Calls `probe` until it returns a value other than undefined/false (or stops throwing) and returns
 * that value; throws the last failure when `timeoutMs` passes.
 */
export async function eventually<T>(
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  options: EventuallyOptions = {},
): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const intervalMs = options.intervalMs ?? 100;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value as T;
      lastError = undefined;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? `: last error: ${lastError.message}` : '';
      throw new Error(`${options.description ?? 'condition'} not met within ${timeoutMs} ms${why}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** True when `read` fails with the API's 404: the object is gone. Other errors propagate. */
export async function isGone(read: () => Promise<unknown>): Promise<boolean> {
  try {
    await read();
    return false;
  } catch (error) {
    if ((error as { code?: number }).code === 404) return true;
    throw error;
  }
}

/**
 * Calls `check`, which returns what is still wrong, until it returns nothing or `timeoutMs` passes,
 * and returns what it returned last (for the assertion to show). For answers that settle a moment
 * after a write, such as RBAC reaching the authorizer's cache or ClusterRole aggregation.
 */
export async function settled<T>(
  check: () => Promise<T[]>,
  options: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T[]> {
  const deadline = Date.now() + (options.timeoutMs ?? 15_000);
  let remaining = await check();
  while (remaining.length > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 200));
    remaining = await check();
  }
  return remaining;
}
