// The progress a cold `npm start` shows, from a real build: a small Go module with one dependency,
// built by a script in the form of tools/*/build.sh ("[x-build]" step lines on stderr, the output
// directory on stdout) with an empty module cache, run the way `npm start` runs the cluster and
// kubectl builds (buildReportingProgress: go -x tracing, the trace turned into readable lines).
// The module's source is new on every run, so go really downloads and really compiles.
import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { buildReportingProgress } from '../../dev/local-cluster/binaries.ts';

const GO_MOD = `module example.com/hello

go 1.26

require github.com/google/uuid v1.6.0
`;
const GO_SUM = `github.com/google/uuid v1.6.0 h1:NIvaJDMOsjHA8n1jAhLSgzrAzy1Hgr+hNrb57e+94F0=
github.com/google/uuid v1.6.0/go.mod h1:TIyPZe4MgqvfeYDBFedMoGGpEw/LqOeaOT+nhxU+yHo=
`;
const SCRIPT = `#!/usr/bin/env bash
set -euo pipefail
cd "$(dirname "\${BASH_SOURCE[0]}")"
log() { echo "[demo-build] $*" >&2; }
log "downloading Go modules (github.com/google/uuid v1.6.0)"
go mod download
log "building hello"
go build -o out/hello .
log "done in 1 s: $PWD/out"
echo "$PWD/out"
`;

test('a real cold build reads as steps, downloads and compiles counted, and no go trace', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'vaultpam-build-progress-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'go.mod'), GO_MOD);
  await writeFile(join(dir, 'go.sum'), GO_SUM);
  // A source no build cache has seen: the package is compiled, not found.
  await writeFile(
    join(dir, 'main.go'),
    `package main\n\nimport (\n\t"fmt"\n\n\t"github.com/google/uuid"\n)\n\nconst run = "${randomUUID()}"\n\nfunc main() { fmt.Println(run, uuid.NewString()) }\n`,
  );
  const script = join(dir, 'build.sh');
  await writeFile(script, SCRIPT);
  await chmod(script, 0o755);

  const said: string[] = [];
  const [outDir] = await buildReportingProgress({
    say: (line) => said.push(line),
    heading: 'building the demo, once',
    scripts: [{ script, binaries: ['hello'] }],
    plan: ['hello'],
    // An empty module cache (writable, so the teardown can remove it): the dependency is downloaded.
    env: { GOMODCACHE: join(dir, 'modcache'), GOFLAGS: '-modcacherw -buildvcs=false' },
  });
  const output = said.join('\n');
  t.log(output);
  t.is(outDir, join(dir, 'out'));
  t.is(said[0], 'building the demo, once', output);
  t.regex(output, /^ {4}\[\d+:\d\d\] downloading Go modules \(github\.com\/google\/uuid v1\.6\.0\)$/m);
  t.regex(output, /^ {4}\[\d+:\d\d\] building hello \[1 of 1\]$/m);
  // Exactly one module zip was fetched; at least the new main package was compiled.
  const closing =
    /built hello in \d+:\d\d \(([\d,]+) packages? compiled, 1 module downloaded\); later runs reuse them$/m.exec(
      output,
    );
  t.truthy(closing, output);
  t.true(Number(closing?.[1]?.replaceAll(',', '')) >= 1, output);
  t.notRegex(output, /\$WORK|packagefile|\/compile |# get |buildid|importcfg/, 'no go -x trace');
});

test('a failed build says which script failed and shows its error, not the trace', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'vaultpam-build-progress-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'go.mod'), 'module example.com/broken\n\ngo 1.26\n');
  await writeFile(join(dir, 'main.go'), 'package main\n\nfunc main() { undefinedThing() }\n');
  const script = join(dir, 'build.sh');
  await writeFile(script, SCRIPT.replace('go mod download\n', ''));
  const said: string[] = [];
  const error = await t.throwsAsync(
    buildReportingProgress({
      say: (line) => said.push(line),
      scripts: [{ script, binaries: ['hello'] }],
      plan: ['hello'],
    }),
  );
  t.regex(error?.message ?? '', new RegExp(`building with ${script} failed \\(exit 1`));
  t.regex(error?.message ?? '', /undefined: undefinedThing/);
  t.notRegex(error?.message ?? '', /\$WORK|packagefile|importcfg/);
  t.regex(said.join('\n'), /undefined: undefinedThing/, 'the error is shown as it happens too');
});
