// What the plugin says when something is wrong or absent: a Connector that does not exist is an
// answer (exit 1), not "could not look" (3); what the person typed is cleaned before an error
// quotes it; and the report's README speaks of the enrollment token Secret only when one is live.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import test from 'ava';
import { CodedError } from '../../src/lib/errors.ts';
import { reportCommand, tokenSecretNote } from '../../src/plugin/commands/report.ts';
import { statusCommand } from '../../src/plugin/commands/status.ts';
import { type CommandContext, EXIT } from '../../src/plugin/context.ts';
import type { KubeApi } from '../../src/plugin/kube-api.ts';
import { errorLine, exitCodeOf, runPlugin } from '../../src/plugin/main.ts';
import { parseCommandLine } from '../../src/plugin/options.ts';
import { redactBundleText } from '../../src/plugin/redaction.ts';
import { PLUGIN, runProcess } from '../helpers/plugin-process.ts';
import { connector, NOW, ONLINE_STATUS } from './facts-fixtures.ts';

const ESC = '\u001b';

/** A context whose API server answers 404 for every Connector, as a real one does for a missing name. */
function missingConnectorContext(command: 'status' | 'report'): CommandContext {
  const parsed = parseCommandLine([command, 'nosuch', '-n', 'ns'], {});
  if (parsed.help) throw new Error('asked for help');
  const notFound = Object.assign(new Error('HTTP-Code: 404 Message: Not Found'), { code: 404 });
  const api = {
    getConnector: async () => {
      throw notFound;
    },
  } as unknown as KubeApi;
  const sink = { write: () => true };
  return {
    io: { stdout: sink, stderr: sink, env: {}, program: 'kubectl vaultpam', now: () => NOW },
    options: parsed.options,
    api,
    namespace: 'ns',
  } as CommandContext;
}

test('a Connector that does not exist: "connector ns/nosuch not found", exit 1', async (t) => {
  for (const [command, run] of [
    ['status', statusCommand],
    ['report', reportCommand],
  ] as const) {
    const error = await t.throwsAsync(run(missingConnectorContext(command)));
    t.is(exitCodeOf(error), EXIT.no, `${command}: the API server answered; there is none`);
    t.regex(
      errorLine(error),
      /^error: connector ns\/nosuch not found \(kubectl vaultpam status -n ns lists them\)\n$/,
    );
  }
  t.is(exitCodeOf(new CodedError('API_ERROR', 'HTTP 403')), EXIT.cannot, 'a refusal to look is still 3');
  t.is(exitCodeOf(new Error('ECONNREFUSED')), EXIT.cannot);
});

test('what the person typed is cleaned of terminal escapes before an error quotes it', (t) => {
  const problem = (argv: string[]) => {
    try {
      parseCommandLine(argv, {});
    } catch (error) {
      return { message: (error as Error).message, line: errorLine(error), code: exitCodeOf(error) };
    }
    throw new Error(`${argv.join(' ')} was accepted`);
  };
  for (const argv of [
    ['recover', 'edge', '--request-id', `id${ESC}[31m`],
    [`st${ESC}]0;owned${String.fromCharCode(7)}atus`],
    ['status', '-o', `ya${ESC}[2Jml`],
    ['status', `--bogus${ESC}[31m`],
    ['report', 'edge', '--tail', `5${ESC}[1A`],
    ['status', '--control-plane-url', `http://x${ESC}[31m`],
    ['status', 'a', `b${ESC}[31m`],
    ['recover', 'edge', '--timeout', `9${ESC}[31mq`],
    ['status', '-n', `x${ESC}[31mred`],
    ['status', `--namespace=x${ESC}]0;owned${String.fromCharCode(7)}`],
  ]) {
    const { message, line, code } = problem(argv);
    t.is(code, EXIT.usage, argv.join(' '));
    t.false(message.includes(ESC), `${JSON.stringify(argv)}: ${JSON.stringify(message)}`);
    t.false(line.includes(ESC));
    t.false(
      [...line.slice(0, -1)].some((ch) => (ch.codePointAt(0) ?? 0) < 0x20 || ch === '\u007f'),
      `no control character in ${JSON.stringify(line)}`,
    );
  }
  t.regex(problem(['recover', 'edge', '--request-id', `id${ESC}[31m`]).message, /--request-id: "id" must be/);
  t.regex(
    problem(['status', '-n', `x${ESC}[31mred`]).line,
    /^error: -n\/--namespace: "xred" is not a namespace name: a namespace name is a DNS label/,
  );
  // The last gate: whatever an error says (a name echoed by the API server too) leaves as one line.
  t.is(
    errorLine(new Error(`Connector ns/a${ESC}[31mb\nforged: line`)),
    'error: Connector ns/ab forged: line\n',
  );
});

test('report README: "never collected" for a live token Secret, else that there is none', (t) => {
  const live = tokenSecretNote(
    connector({
      phase: 'Pending',
      enrollment: { tokenSecretName: 'edge-enrollment-token', tokenExpiresAt: '2026-03-01T13:00:00Z' },
    }),
  );
  t.deepEqual(live, {
    live: true,
    what: 'Secret edge-enrollment-token',
    why: 'never collected: it holds the live enrollment token, until 2026-03-01T13:00:00Z; its name and expiry are in status.txt',
  });
  const retired = tokenSecretNote(connector(ONLINE_STATUS));
  t.false(retired.live);
  t.regex(
    retired.live ? '' : retired.line,
    /^No live enrollment token Secret \(status\.enrollment\.tokenSecretName is empty: bootstrap is retired and the operator deleted Secret edge-enrollment-token\)\.$/,
  );
  const never = tokenSecretNote(connector({}));
  t.regex(never.live ? '' : never.line, /no live token is minted/);
  t.false(JSON.stringify(retired).includes('holds the'), 'no claim of a token that does not exist');
  // README.txt passes the bundle's redaction: the lines must come through it as they are.
  for (const note of [live.live ? `${live.what} (${live.why})` : '', retired.live ? '' : retired.line]) {
    t.is(redactBundleText(note, []), note);
  }
});

test('a namespace that is no namespace name: exit 2 and one clean line on stderr, before any cluster is asked', async (t) => {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const code = await runPlugin(['status', '-n', `vaultpam/x${ESC}[31mred`], {
    stdout: { write: (text) => stdout.push(text) },
    stderr: { write: (text) => stderr.push(text) },
    // No kubeconfig anywhere: the command line is refused before one is looked for.
    env: { KUBECONFIG: '/nonexistent/kubeconfig' },
    program: 'kubectl vaultpam',
    now: () => NOW,
  });
  t.is(code, EXIT.usage);
  t.deepEqual(stdout, []);
  t.is(
    stderr.join(''),
    `error: -n/--namespace: "vaultpam/xred" is not a namespace name: a namespace name is a DNS label (RFC 1123), at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit, e.g. team-a\n`,
  );
});

/** A kubeconfig whose line 11 is badly indented, right after a client key, and a good one. */
function kubeconfigs(key: string) {
  const head = [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    '- cluster: {server: https://127.0.0.1:6443}',
    '  name: c',
  ];
  const tail = ['contexts:', '- context: {cluster: c, user: u}', '  name: x', 'current-context: x', ''];
  const user = [
    'users:',
    '- name: u',
    '  user:',
    `    client-key-data: ${key}`,
    '    client-certificate-data: aGVsbG8=',
  ];
  return {
    bad: [...head, ...user, '   bad: [indent', ...tail].join('\n'),
    good: [...head, ...user, ...tail].join('\n'),
  };
}

test.serial(
  'a kubeconfig that is no YAML is named by file, line and column, and none of its content is quoted',
  async (t) => {
    const key = randomBytes(240).toString('base64');
    // Short: errorLine redacts 32 random-looking characters, and mkdtemp's suffix is random.
    const dir = await mkdtemp(join(tmpdir(), 'kc-'));
    const previous = process.env.KUBECONFIG;
    t.teardown(async () => {
      if (previous === undefined) delete process.env.KUBECONFIG;
      else process.env.KUBECONFIG = previous;
      await rm(dir, { recursive: true, force: true });
    });
    const { bad, good } = kubeconfigs(key);
    const badFile = join(dir, 'bad.kubeconfig');
    const goodFile = join(dir, 'good.kubeconfig');
    await writeFile(badFile, bad);
    await writeFile(goodFile, good);
    const run = async (argv: string[]) => {
      const stderr: string[] = [];
      const code = await runPlugin(argv, {
        stdout: { write: () => undefined },
        stderr: { write: (text) => stderr.push(text) },
        env: process.env,
        program: 'kubectl vaultpam',
        now: () => NOW,
      });
      return { code, line: stderr.join('') };
    };
    /** Whether any 6 characters of the key appear in the text (the parser quoted 13 of them). */
    const quotesKey = (text: string) =>
      Array.from({ length: key.length - 5 }, (_, i) => key.slice(i, i + 6)).some((piece) =>
        text.includes(piece),
      );

    const flagged = await run(['status', '--kubeconfig', badFile]);
    t.is(flagged.code, EXIT.cannot);
    t.is(
      flagged.line,
      `error: --kubeconfig ${badFile} is not valid YAML: bad indentation of a mapping entry at line 11, column 4; point --kubeconfig or KUBECONFIG at a readable kubeconfig\n`,
    );
    t.false(quotesKey(flagged.line), 'no piece of the client key');

    // The parser's reason is kept up to what it quotes: an unquoted password starting with "*" reads
    // as an alias, which the reason names.
    const aliasFile = join(dir, 'alias.kubeconfig');
    await writeFile(aliasFile, 'apiVersion: v1\nusers:\n- name: u\n  user:\n    password: *hunter2pass\n');
    const alias = await run(['status', '--kubeconfig', aliasFile]);
    t.regex(alias.line, /is not valid YAML: unidentified alias at line 5, column 16; /);
    t.false(alias.line.includes('hunter2'), alias.line);

    // A KUBECONFIG list: client-node does not say which file failed; the error does.
    process.env.KUBECONFIG = [goodFile, badFile].join(delimiter);
    const listed = await run(['status']);
    t.is(listed.code, EXIT.cannot);
    t.regex(
      listed.line,
      new RegExp(
        `^error: ${badFile.replaceAll(/[.*+?^${}()|[\]\\/]/g, '\\$&')} \\(of KUBECONFIG=.*\\) is not valid YAML: bad indentation of a mapping entry at line 11, column 4; `,
      ),
    );
    t.false(quotesKey(listed.line));
  },
);

test('no kubeconfig anywhere: exit 3 and a line that says so and how to give one', async (t) => {
  // As a newcomer's shell is after docs/kubectl-plugin.md's install steps: no KUBECONFIG, an empty
  // home, not a pod. client-node then invents http://localhost:8080, whose refusal named nothing.
  const home = await mkdtemp(join(tmpdir(), 'plugin-home-'));
  t.teardown(() => rm(home, { recursive: true, force: true }));
  const run = await runProcess(
    process.execPath,
    [PLUGIN, 'status', '-A'],
    { PATH: process.env.PATH, HOME: home },
    home,
  );
  t.is(run.code, EXIT.cannot);
  t.is(run.stdout, '');
  t.is(
    run.stderr,
    "error: no kubeconfig: KUBECONFIG is not set, ~/.kube/config does not exist and this is not a pod with a ServiceAccount token; give --kubeconfig PATH or set KUBECONFIG to your cluster's kubeconfig\n",
  );
});
