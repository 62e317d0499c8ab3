// Finds secret values (tokens, credentials, private keys) in text that must never hold them:
// log output, API responses, Events, status, termination messages.
import type { ExecutionContext } from 'ava';

/** Distinctive pieces of a secret: the whole value and, for PEM keys, the base64 body lines. */
function fragmentsOf(secret: string): string[] {
  if (secret.includes('-----BEGIN')) {
    return secret
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line.length >= 40 && !line.startsWith('-----'));
  }
  return secret.length >= 8 ? [secret] : [];
}

/** The secrets among `secrets` that occur in `haystack`, by index. */
export function findSecrets(haystack: string, secrets: readonly string[]): number[] {
  const found: number[] = [];
  secrets.forEach((secret, index) => {
    if (fragmentsOf(secret).some((fragment) => haystack.includes(fragment))) found.push(index);
  });
  return found;
}

/** Fails the test, naming where, if any secret occurs in the text (the secret itself is not printed). */
export function assertNoSecrets(
  t: ExecutionContext,
  where: string,
  haystack: string,
  secrets: readonly string[],
): void {
  const found = findSecrets(haystack, secrets);
  t.deepEqual(found, [], `${where} contains secret(s) number ${found.join(', ')}`);
}
