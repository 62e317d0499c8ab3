// Recognises text that looks like one of the project's secrets. Used as a last line of defence on
// text the operator publishes (Event notes, error messages built from API answers): code that
// handles secrets must already keep them out, and this catches the slip that gets past it.

/** An enrollment token anywhere in the text (contract: `vpe_<16 hex>_<43 base64url>`). */
const ENROLLMENT_TOKEN = /vpe_[0-9a-f]{16}_[A-Za-z0-9_-]{43}/;
/** Exactly one enrollment token, nothing around it: the contract's MintedToken.token. */
const WHOLE_ENROLLMENT_TOKEN = new RegExp(`^${ENROLLMENT_TOKEN.source}$`);
/** A PEM private key block of any flavour: PRIVATE KEY, RSA/EC PRIVATE KEY, ENCRYPTED PRIVATE KEY. */
const PRIVATE_KEY = /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----/;

export type SecretKind = 'enrollment-token' | 'private-key';

/** Which kind of secret the text appears to contain, or undefined when it looks clean. */
export function findSecretPattern(text: string): SecretKind | undefined {
  if (ENROLLMENT_TOKEN.test(text)) return 'enrollment-token';
  if (PRIVATE_KEY.test(text)) return 'private-key';
  return undefined;
}

/** Whether the value is an enrollment token as the contract writes one, and nothing else. */
export function isEnrollmentToken(value: unknown): boolean {
  return typeof value === 'string' && WHOLE_ENROLLMENT_TOKEN.test(value);
}

/**
 * Replaces every enrollment token with `vpe_[REDACTED]` and every private key block (to its END line,
 * or to the end of the text when cut off) with `[REDACTED PRIVATE KEY]`.
 */
export function redactSecretPatterns(text: string): string {
  return text
    .replace(new RegExp(ENROLLMENT_TOKEN.source, 'g'), 'vpe_[REDACTED]')
    .replace(
      /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|$)/g,
      '[REDACTED PRIVATE KEY]',
    );
}
