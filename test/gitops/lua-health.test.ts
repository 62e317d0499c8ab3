// lua-health itself: it must run a health script as Argo CD does, or the health-check tests prove
// nothing about Argo CD. These are the behaviours of Argo CD's util/lua that a script can meet:
// which libraries a check from argocd-cm gets, how the result table is read, and what Argo CD does
// around the script.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { luaHealth } from './ecosystem.ts';

async function scratch(t: { teardown: (fn: () => Promise<void>) => void }) {
  const dir = await mkdtemp(join(tmpdir(), 'lua-health-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const object = join(dir, 'object.yaml');
  await writeFile(
    object,
    'apiVersion: example.com/v1\nkind: Thing\nmetadata: {name: a, generation: 3}\nspec: {paused: true}\n',
  );
  const script = async (name: string, source: string) => {
    const path = join(dir, name);
    await writeFile(path, source);
    return path;
  };
  return { dir, object, script };
}

test('a check from argocd-cm gets base, table and a safe os through require; every library with -open-libs', async (t) => {
  const { object, script } = await scratch(t);
  const probe = await script(
    'probe.lua',
    [
      'local os2 = require("os")',
      'return {status = "Healthy", message = type(string) .. " " .. type(os) .. " " .. type(os2.time()) ..',
      '  " " .. type(os2.execute) .. " " .. type(table.insert) .. " " .. tostring(obj.metadata.generation) ..',
      '  " " .. tostring(obj.spec.paused)}',
    ].join('\n'),
  );
  const [restricted] = await luaHealth(probe, [object]);
  t.like(restricted, { status: 'Healthy', message: 'nil nil number nil function 3 true' });
  const [open] = await luaHealth(probe, [object], { openLibs: true });
  t.like(open, { status: 'Healthy', message: 'table table number nil function 3 true' });
});

test('the result is read as Argo CD reads it: an unknown status is Unknown, nil and {} are empty', async (t) => {
  const { object, script } = await scratch(t);
  const results = await luaHealth(await script('nope.lua', 'return {status = "Fine", message = "x"}'), [
    object,
  ]);
  t.like(results[0], { status: 'Unknown', message: 'Lua returned an invalid health status' });
  t.like((await luaHealth(await script('nil.lua', 'return nil'), [object]))[0], { status: '', message: '' });
  t.like((await luaHealth(await script('empty.lua', 'return {}'), [object]))[0], { status: '', message: '' });
});

test('a script error fails the run; with -resource it is Unknown with the error, as Argo CD shows it', async (t) => {
  const { object, script } = await scratch(t);
  const broken = await script('broken.lua', 'local x = nil\nreturn {status = x.y}');
  await t.throwsAsync(luaHealth(broken, [object]), { message: /attempt to index/ });
  const [result] = await luaHealth(broken, [object], { resource: true });
  t.is(result?.status, 'Unknown');
  t.regex(result?.message ?? '', /attempt to index/);
});

test('a script that runs longer than a second is stopped', async (t) => {
  const { object, script } = await scratch(t);
  const started = Date.now();
  const [result] = await luaHealth(await script('loop.lua', 'while true do end'), [object], {
    resource: true,
  });
  t.is(result?.status, 'Unknown');
  t.true(Date.now() - started < 10_000);
});
