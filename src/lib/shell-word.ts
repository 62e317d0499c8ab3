// Commands the operator and the plugin print for someone to paste into a shell carry values that
// others wrote (a ControlPlane's URL is written by whoever may write the ControlPlane, the very
// party the credential-URL rule defends against). A value pasted bare or in double quotes is
// expanded by the shell: `$(…)`, backticks, `;`, `|` would run the writer's code in the reader's
// shell. shellWord makes any value one literal word for a POSIX shell.

/**
 * A word every POSIX shell, and zsh, reads literally unquoted: these characters only, and no `=`
 * first (zsh expands `=name` to a command's path).
 */
const SAFE_WORD = /^[A-Za-z0-9_@%+:,./-][A-Za-z0-9_@%+=:,./-]*$/;

/**
 * `text` as one literal word for a POSIX shell (sh, bash, zsh): unchanged when every character is
 * literal there, otherwise in single quotes, inside which nothing is special but the single quote
 * itself, written as `'\''` (close, an escaped quote, reopen).
 */
export function shellWord(text: string): string {
  if (SAFE_WORD.test(text)) return text;
  return `'${text.replaceAll("'", `'\\''`)}'`;
}
