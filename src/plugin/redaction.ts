// What keeps secrets out of the report bundle. The first line of defence is that the plugin
// collects no Secret's data at all. The second is here, on every object dumped (withoutPlainValues):
// a pod spec holds values in the open that only their names mark as secret (an env var's value on
// the line after its name, a flag's value in the next args item), which no line pattern can see,
// so every such value is replaced by where it sits, and the last-applied annotation (a copy of the
// object as applied, values and all) is dropped. The last, on every file before it is written
// (redactBundleText), catches what slips past: the values the plugin itself read (the admin
// credential) replaced wherever they appear, enrollment tokens and private keys by their shape
// (the operator's own patterns), and credential-shaped text (an Authorization header, a bearer
// token, key=value with a secret's name, a JWT, a password in a URL, a long random-looking run).
// Unlike the one-line cleaning of server text (untrusted-text.ts) it keeps lines and indentation,
// so YAML and logs stay readable; PEM certificates, which are public, are kept.
import type { V1Container, V1HTTPGetAction, V1ObjectMeta, V1PodSpec } from '@kubernetes/client-node';
import {
  redactCredentialShapes,
  redactSecretPatterns,
  SECRET_WORDS,
} from '../operator/runtime/secret-patterns.ts';

const REDACTED = '[REDACTED]';

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
      return redactCredentialShapes(line);
    })
    .join('\n');
}

/** A flag that names a secret and takes its value as the next word: --password, -db-token. */
const SECRET_FLAG = new RegExp(`^-{1,2}(?:[\\w-]*[-_])?(?:${SECRET_WORDS})$`, 'i');
/** A secret given with '=' in one word: --password=..., DB_PASSWORD=... (a shell line's assignment). */
const SECRET_ASSIGNMENT = new RegExp(`^(-{0,2}(?:[\\w-]*[-_])?(?:${SECRET_WORDS})=).+$`, 'i');

/**
 * A container's command and args (one argv: a flag ending the command takes the first arg) with
 * every value given to a secret-named flag replaced, by position: the word after `--password`,
 * and what follows the '=' of `--password=...`. Words are the items, and the words of an item
 * that is a shell line (`sh -c "agent --token x"`). By position rather than by the value's shape,
 * because a password has none (Tr0ub4dor&3-horse is neither random-looking nor labelled on its
 * own line), and the shapes already run over every line of the bundle. A flag whose name only
 * starts with a secret's (--token-file, --password-file) takes a path and is kept.
 */
export function redactedArgv(argv: readonly string[]): string[] {
  let valueNext = false;
  return argv.map((item) =>
    item
      .split(/(\s+)/)
      .map((word) => {
        if (word.trim() === '') return word;
        if (valueNext) {
          valueNext = false;
          return REDACTED;
        }
        if (SECRET_FLAG.test(word)) {
          valueNext = true;
          return word;
        }
        return word.replace(SECRET_ASSIGNMENT, `$1${REDACTED}`);
      })
      .join(''),
  );
}

/** Values given by name, the value on the line after the name: env vars and HTTP headers. */
function namedValues<T extends { value?: string }>(list: T[] | undefined): T[] | undefined {
  // An empty value holds nothing, and says so: kept.
  return list?.map((item) => (item.value ? { ...item, value: REDACTED } : item));
}

/** A probe or lifecycle hook with the values of its HTTP headers replaced (an API key, a token). */
function withHeaders<T extends { httpGet?: V1HTTPGetAction }>(hook: T | undefined): T | undefined {
  if (!hook?.httpGet) return hook;
  return { ...hook, httpGet: { ...hook.httpGet, httpHeaders: namedValues(hook.httpGet.httpHeaders) } };
}

function container(c: V1Container): V1Container {
  const argv = redactedArgv([...(c.command ?? []), ...(c.args ?? [])]);
  const commandLength = c.command?.length ?? 0;
  return {
    ...c,
    // Every env value, whatever its name: DB_PASS or CONN_STRING hold secrets too. valueFrom is
    // kept: it names a Secret's key, it does not hold the value.
    env: namedValues(c.env),
    command: c.command && argv.slice(0, commandLength),
    args: c.args && argv.slice(commandLength),
    livenessProbe: withHeaders(c.livenessProbe),
    readinessProbe: withHeaders(c.readinessProbe),
    startupProbe: withHeaders(c.startupProbe),
    lifecycle: c.lifecycle && {
      ...c.lifecycle,
      postStart: withHeaders(c.lifecycle.postStart),
      preStop: withHeaders(c.lifecycle.preStop),
    },
  };
}

function podSpec(spec: V1PodSpec): V1PodSpec {
  return {
    ...spec,
    containers: spec.containers?.map(container),
    initContainers: spec.initContainers?.map(container),
    ephemeralContainers: spec.ephemeralContainers?.map(container),
  };
}

const LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration';

/** An object to dump: metadata, and the pod spec of a Pod (spec) or a workload (spec.template.spec). */
interface Dumped {
  metadata?: V1ObjectMeta;
  spec?: { containers?: unknown; template?: { spec?: V1PodSpec } };
}

/**
 * The object as the bundle may show it: every value its pod spec holds in the open under a name
 * replaced (env values, HTTP header values, values of secret-named flags in command and args), and
 * without kubectl's last-applied-configuration annotation, which repeats them all as applied.
 */
export function withoutPlainValues<T extends Dumped>(object: T): T {
  const { [LAST_APPLIED]: _applied, ...kept } = object.metadata?.annotations ?? {};
  const annotations = Object.keys(kept).length > 0 ? kept : undefined;
  const spec = object.spec;
  return {
    ...object,
    ...(object.metadata ? { metadata: { ...object.metadata, annotations } } : {}),
    ...(spec?.containers ? { spec: podSpec(spec as V1PodSpec) } : {}),
    ...(spec?.template?.spec
      ? { spec: { ...spec, template: { ...spec.template, spec: podSpec(spec.template.spec) } } }
      : {}),
  };
}
