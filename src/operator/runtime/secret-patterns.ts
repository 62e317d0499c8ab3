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

const REDACTED = '[REDACTED]';

/** What ends a key or flag that names a secret: DB_PASSWORD, client-secret, --api-key, X-Auth-Token. */
export const SECRET_WORDS =
  'token|secret|password|passwd|pwd|credential|api[-_]?key|access[-_]?key|private[-_]?key|cookie';

// Credential shapes beyond the project's own secrets: an Authorization header's value (with its
// scheme), a bearer token, key=value / key: value / "key":"value" for a key that names a secret (not
// an object's name: "ns/edge-enrollment-token: ..." is a path, not a key), a JSON Web Token, and a
// password in a URL; each replaced with [REDACTED], its label kept so the text still reads. They
// run over text others write as long as they like (a pod's log lines, a control plane's answers),
// so each takes time in proportion to the text, whatever it holds: "at least n" is written {n} then
// * (V8 runs {n,} with a backtracking stack that overflows on a run of a few million characters),
// no pattern starts again inside a run it has already scanned to its end (a JWT starts where a run
// of its characters does, not at every '-' of one: 'eyJ-eyJ-...' took quadratic time), and a URL's
// scheme is at most 32 characters ('a-a-a-...' scanned the text from every letter).
function credentialShapes(secretWords: string): ReadonlyArray<readonly [RegExp, string]> {
  return [
    [/\b(authorization["']?[ \t]*[:=][ \t]*["']?)(?:[A-Za-z]+[ \t]+)?[^\s"',;]+/gi, `$1${REDACTED}`],
    [/\b(bearer)[ \t]+[A-Za-z0-9._~+/=-]{8}[A-Za-z0-9._~+/=-]*/gi, `$1 ${REDACTED}`],
    [
      new RegExp(
        `(?<![\\w./-])((?:[\\w-]*[-_])?(?:${secretWords})["']?[ \\t]*[:=][ \\t]*["']?)[^\\s"',;&]{4}[^\\s"',;&]*`,
        'gi',
      ),
      `$1${REDACTED}`,
    ],
    [
      /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5}[A-Za-z0-9_-]*\.[A-Za-z0-9_-]{5}[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*/g,
      REDACTED,
    ],
    [/\b([a-z][a-z0-9+.-]{0,31}:\/\/)[^\s/@:]+:[^\s/@]+@/gi, `$1${REDACTED}@`],
  ];
}
const shapesByWords = new Map<string, ReadonlyArray<readonly [RegExp, string]>>();

// A long run of random-looking characters (upper and lower case and digits, as generated keys and
// credentials are) is redacted even without a label. Hex (serials, fingerprints) and UUIDs, which
// the operator shows on purpose, have no upper case and pass.
// An absolute path (a run that starts with '/', as a data directory under a temporary directory
// does: /tmp/vaultpam-perm-tOfgJU9/identity/key) is judged in pieces, so that a file a message names
// keeps its name: each segment, and each stretch of segments without a word separator ('-', '_'),
// joined by their '/'. Segment by segment alone let standard base64 through, whose alphabet has '/'
// and no '-' or '_': in s3://bucket/wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY, or a key that starts
// with '/', every segment is shorter than 32; the stretch is the whole key.
const OPAQUE_RUN = /[A-Za-z0-9+/_=-]{32}[A-Za-z0-9+/_=-]*/g;
const OPAQUE_LENGTH = 32;
const looksRandom = (run: string) => /[A-Z]/.test(run) && /[a-z]/.test(run) && /[0-9]/.test(run);
const hasWordSeparator = (segment: string) => segment.includes('-') || segment.includes('_');

/** An absolute path's pieces that could hold a credential: its segments, and its separator-free stretches. */
function pathPieces(run: string): string[] {
  const segments = run.split('/');
  const stretches = segments
    .map((segment) => (hasWordSeparator(segment) ? '\n' : segment))
    .join('/')
    .split('\n');
  return [...segments, ...stretches.map((stretch) => stretch.replace(/^\/+|\/+$/g, ''))];
}

const looksOpaque = (run: string) =>
  run.startsWith('/')
    ? pathPieces(run).some((piece) => piece.length >= OPAQUE_LENGTH && looksRandom(piece))
    : looksRandom(run);

/**
 * The text with every credential shape and random-looking run replaced by [REDACTED]: the one
 * cleaning of the operator's one-line server text (untrusted-text.ts) and of the support bundle's
 * lines (the plugin's redaction.ts). `secretWords`: the key names taken for secrets (SECRET_WORDS
 * unless one adds to them). Whitespace is matched as spaces and tabs: a caller splits lines first.
 */
export function redactCredentialShapes(text: string, secretWords = SECRET_WORDS): string {
  let shapes = shapesByWords.get(secretWords);
  if (!shapes) {
    shapes = credentialShapes(secretWords);
    shapesByWords.set(secretWords, shapes);
  }
  let cleaned = text;
  for (const [pattern, replacement] of shapes) cleaned = cleaned.replace(pattern, replacement);
  return cleaned.replace(OPAQUE_RUN, (run) => (looksOpaque(run) ? REDACTED : run));
}
