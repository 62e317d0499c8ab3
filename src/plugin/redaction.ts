// The last line of defence of the report bundle, on every file before it is written. The first
// is that the plugin collects no Secret's data at all; this catches what slips past: the values the
// plugin itself read (the admin credential) replaced wherever they appear, enrollment tokens and
// private keys by their shape (the operator's own patterns), and credential-shaped text (an
// Authorization header, a bearer token, key=value with a secret's name, a JWT, a password in a URL,
// a long random-looking run). Unlike the one-line cleaning of server text (untrusted-text.ts) it
// keeps lines and indentation, so YAML and logs stay readable; PEM certificates, which are public,
// are kept.
import { redactSecretPatterns } from '../operator/runtime/secret-patterns.ts';

const REDACTED = '[REDACTED]';

const CREDENTIAL_SHAPES: ReadonlyArray<readonly [RegExp, string]> = [
  [/\b(authorization["']?[ \t]*[:=][ \t]*["']?)(?:[A-Za-z]+[ \t]+)?[^\s"',;]+/gi, `$1${REDACTED}`],
  [/\b(bearer)[ \t]+[A-Za-z0-9._~+/=-]{8,}/gi, `$1 ${REDACTED}`],
  [
    /(?<![\w./-])((?:[\w-]*[-_])?(?:token|secret|password|passwd|pwd|credential|api[-_]?key|access[-_]?key|private[-_]?key|cookie)["']?[ \t]*[:=][ \t]*["']?)[^\s"',;&]{4,}/gi,
    `$1${REDACTED}`,
  ],
  [/\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g, REDACTED],
  [/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@:]+:[^\s/@]+@/gi, `$1${REDACTED}@`],
];
const OPAQUE_RUN = /[A-Za-z0-9+/_=-]{32,}/g;
const looksRandom = (run: string) => /[A-Z]/.test(run) && /[a-z]/.test(run) && /[0-9]/.test(run);

/** The text with every known secret value and every secret-shaped piece replaced. */
export function redactBundleText(text: string, known: readonly string[]): string {
  let result = text;
  for (const value of known) if (value.length >= 8) result = result.replaceAll(value, REDACTED);
  result = redactSecretPatterns(result);
  let inCertificate = false;
  return result
    .split('\n')
    .map((line) => {
      // A certificate's own lines are kept; a line that holds a whole one (JSON) is cleaned as any.
      const begins = line.includes('-----BEGIN CERTIFICATE-----');
      const ends = line.includes('-----END CERTIFICATE-----');
      if (begins && !ends) inCertificate = true;
      const kept = inCertificate;
      if (ends) inCertificate = false;
      if (kept) return line;
      let cleaned = line;
      for (const [pattern, replacement] of CREDENTIAL_SHAPES) cleaned = cleaned.replace(pattern, replacement);
      return cleaned.replace(OPAQUE_RUN, (run) => (looksRandom(run) ? REDACTED : run));
    })
    .join('\n');
}
