// The one test command (`npm test`): type-check, lint, build or reuse the local cluster binaries
// and the GitOps checkers (tools/ecosystem: Argo CD's Lua interpreter, kstatus), then run every ava
// test file. It ends with a plain "N passed, N failed" line so any CI reader
// can count the results, and exits non-zero when anything failed.
import { spawn } from 'node:child_process';

function run(command: string, args: string[], capture = false): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      stdio: ['ignore', capture ? 'pipe' : 'inherit', capture ? 'pipe' : 'inherit'],
    });
    let output = '';
    const tee = (target: NodeJS.WriteStream) => (chunk: Buffer) => {
      output += chunk.toString();
      target.write(chunk);
    };
    child.stdout?.on('data', tee(process.stdout));
    child.stderr?.on('data', tee(process.stderr));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, output }));
  });
}

/** Sums the numbers a pattern captures, or (lines) counts its matches. */
function count(output: string, pattern: RegExp, lines = false): number {
  let total = 0;
  for (const match of output.matchAll(pattern)) total += lines ? 1 : Number(match[1]);
  return total;
}

const steps: Array<[string, string[]]> = [
  ['npx', ['tsc', '-p', 'tsconfig.json', '--noEmit']],
  ['npx', ['biome', 'check', '.']],
  ['bash', ['tools/cluster/build.sh']],
  // kubectl of the cluster's version (npm start prints commands with it; the e2e tests run them).
  ['bash', ['tools/kubectl/build.sh']],
  ['bash', ['tools/ecosystem/build.sh']],
  // promtool and promql-metrics for the monitoring tests (test/monitoring/).
  ['bash', ['tools/promtool/build.sh']],
  // helm, and the Prometheus Operator CRDs the chart's monitoring objects meet, for test/chart/.
  ['bash', ['tools/helm/build.sh']],
];
for (const [command, args] of steps) {
  process.stdout.write(`\n> ${command} ${args.join(' ')}\n`);
  const { code } = await run(command, args);
  if (code !== 0) {
    process.stdout.write(`\n0 passed, 1 failed: ${command} ${args.join(' ')} exited ${code}\n`);
    process.exit(code);
  }
}

process.stdout.write('\n> ava\n');
const avaArgs = process.argv.slice(2);
const { code, output } = await run('npx', ['ava', ...avaArgs], true);
// ava's closing lines read "12 tests passed", "1 test failed", "2 tests skipped", "1 uncaught exception"...
// Strip colour escapes (ESC [ ... m) before matching.
const plain = output.replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g'), '');
// ava prints one line per test (✔ passed, ✘ [fail] / ✘ [timeout] failed) and, when all pass, a
// summary "N tests passed"; when something fails its summary counts only the failures.
const passLines = count(plain, /^\s*✔.*$/gm, true);
const failLines = count(plain, /^\s*✘ \[(?:fail|timeout)\].*$/gm, true);
const passed = Math.max(passLines, count(plain, /^\s*(\d+) tests? passed/gm));
const failed =
  Math.max(
    failLines,
    count(plain, /^\s*(\d+) tests? failed/gm) +
      count(plain, /^\s*(\d+) uncaught exceptions?/gm) +
      count(plain, /^\s*(\d+) unhandled rejections?/gm) +
      count(plain, /^\s*(\d+) hooks? failed/gm) +
      count(plain, /^\s*(\d+) tests? remained pending/gm),
  ) +
  (code !== 0 && failLines === 0 && !/tests? failed|hooks? failed|uncaught|unhandled/.test(plain) ? 1 : 0);
const skipped = count(plain, /^\s*(\d+) tests? skipped/gm) + count(plain, /^\s*(\d+) known failures?/gm);
process.stdout.write(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}\n`);
process.exit(code !== 0 ? code : failed > 0 ? 1 : 0);
