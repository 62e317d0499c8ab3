// Where a control-plane credential may be sent is for the credential's owner to say, not for whoever
// writes the ControlPlane or ClusterControlPlane that names it. The operator reads a control plane's
// credential Secret with its own rights, so without this rule anyone who may write a control plane
// (but not read the Secret) could point the operator's own credential, or any Secret of the
// namespace it reads from, at a server of their choosing, and the operator would send it there: the
// operator would be their deputy. So a credential Secret is used for a control plane only when its
// annotation vaultpam.io/control-plane-url lists that control plane's URL; only someone who may
// write the Secret can put it there. The check is made before any request (check.ts), and the
// kubectl plugin makes it too (plugin/control-plane-access.ts).
//
// The operator's default control plane (--control-plane-url, --credential-secret) is not subject to
// it: its URL and Secret are the installer's own configuration, set on the operator's Deployment,
// not something a control-plane author chose. A control plane that names that Secret is.
import type { V1Secret } from '@kubernetes/client-node';
import { shellWord } from '../../lib/shell-word.ts';
import { CONTROL_PLANE_URL_ANNOTATION } from '../api/constants.ts';
import { isHttpsUrl } from '../api/validation.ts';

/**
 * Where the admin client's requests for `url` go, as one string that two spellings of the same
 * control plane share: trailing slashes removed, as the admin client removes them before it adds a
 * path, then parsed as the request URL is parsed (scheme and host lower-cased, the default port
 * :443 dropped, `.` and `..` segments resolved). The path is kept: https://h/a and https://h/b may
 * be different services behind one host. Undefined for what is not an absolute https URL, or has a
 * query or fragment (the CRD refuses both), which then matches nothing.
 */
export function controlPlaneUrlIdentity(url: string): string | undefined {
  if (!isHttpsUrl(url) || url.includes('?') || url.includes('#')) return undefined;
  try {
    return new URL(`${url.replace(/\/+$/, '')}/`).href;
  } catch {
    return undefined;
  }
}

/** The URLs a credential Secret's annotation lists (separated by commas or whitespace), as written. */
export function annotatedControlPlaneUrls(secret: V1Secret | undefined): string[] {
  const value = secret?.metadata?.annotations?.[CONTROL_PLANE_URL_ANNOTATION] ?? '';
  return value.split(/[\s,]+/).filter((entry) => entry !== '');
}

/**
 * Why the credential in `secret` may not be sent to `url`: `unannotated` (the Secret does not say
 * where it may go), `elsewhere` (it lists other URLs only); undefined when it lists `url`.
 */
export function credentialUrlProblem(
  secret: V1Secret | undefined,
  url: string,
): 'unannotated' | 'elsewhere' | undefined {
  const listed = annotatedControlPlaneUrls(secret);
  if (listed.length === 0) return 'unannotated';
  const target = controlPlaneUrlIdentity(url);
  if (target !== undefined && listed.some((entry) => controlPlaneUrlIdentity(entry) === target))
    return undefined;
  return 'elsewhere';
}

/**
 * What the refusal says, after "Secret <namespace>/<name>": why, who decides, and the command that
 * permits it, for whoever may write the Secret. The annotation's value is not quoted: whoever reads
 * the control plane's status need not learn what a Secret they may not read says. The command's
 * words are shell-quoted (shellWord): `url` is written by whoever may write the control plane, the
 * party this rule defends against, and the CRD's URL check admits `$(…)`, backticks and `;`, which
 * a pasted command would otherwise run in the Secret owner's shell.
 */
export function credentialUrlRefusal(
  problem: 'unannotated' | 'elsewhere',
  secret: { namespace: string; name: string },
  url: string,
  sender: string,
): string {
  const annotate = `kubectl -n ${shellWord(secret.namespace)} annotate secret ${shellWord(secret.name)}`;
  const set = shellWord(`${CONTROL_PLANE_URL_ANNOTATION}=${url}`);
  const add = shellWord(`${CONTROL_PLANE_URL_ANNOTATION}=<the URLs it lists> ${url}`);
  // Single quotes are literal in POSIX shells and zsh, but fish reads \' and \\ inside them as
  // escapes, so a backslash (which no URL may hold: RFC 3986) could end the quoting there. Such a
  // URL, or one with characters beyond printable ASCII, gets no ready-made command.
  const pastable = /^[\x21-\x7e]+$/.test(url) && !url.includes('\\');
  const noCommand = `no command is printed, as the URL holds characters a shell may read specially; write the annotation ${CONTROL_PLANE_URL_ANNOTATION} by hand, if that URL is really meant`;
  return problem === 'unannotated'
    ? `does not say where its credential may be sent (it has no annotation ${CONTROL_PLANE_URL_ANNOTATION}), so ${sender} sends it nowhere: whoever may write that Secret decides where it goes. If ${url} is where it belongs, ${pastable ? `they run: ${annotate} ${set}` : noCommand}`
    : `is not meant for ${url} (its annotation ${CONTROL_PLANE_URL_ANNOTATION} lists other URLs), so ${sender} does not send it there: whoever may write that Secret decides where it goes. If ${url} is that control plane too, ${pastable ? `they add it to the list (separated by commas or spaces): ${annotate} --overwrite ${add}` : `they add it to the list (separated by commas or spaces): ${noCommand}`}`;
}
