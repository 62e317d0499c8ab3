// docs/runbook-map.md maps the runbook onto what the operator shows. It stays true only if what it
// names exists: every phase and failure class is covered, every alert it names is in
// monitoring/rules.yaml and every alert there is mapped, every `kubectl vaultpam` command it names
// is a command of the plugin, every check it quotes is one `diagnose` prints, and every condition
// reason it names is one docs/connector-resource.md documents.
import { readdirSync, readFileSync } from 'node:fs';
import test from 'ava';
import * as yaml from 'js-yaml';
import { RUNBOOK_FAILURE_CLASSES } from '../../src/contract/agent-process.ts';
import { CONNECTOR_PHASES } from '../../src/operator/api/types.ts';
import { documentedReasons } from '../helpers/documented-reasons.ts';

const root = new URL('../../', import.meta.url);
const map = readFileSync(new URL('docs/runbook-map.md', root), 'utf8');

test('every phase and every runbook failure class has its place in the map', (t) => {
  for (const phase of CONNECTOR_PHASES.filter((p) => p !== 'Terminating')) {
    t.true(map.includes(`\`${phase}\``), `phase ${phase}`);
  }
  for (const failureClass of RUNBOOK_FAILURE_CLASSES) {
    t.regex(map, new RegExp(`^### ${failureClass}$`, 'm'), `failure class ${failureClass}`);
  }
});

test('the alerts the map names are exactly the alerts of monitoring/rules.yaml', (t) => {
  const rules = yaml.load(readFileSync(new URL('monitoring/rules.yaml', root), 'utf8')) as {
    groups: Array<{ rules: Array<{ alert?: string }> }>;
  };
  const defined = new Set(rules.groups.flatMap((g) => g.rules.flatMap((r) => (r.alert ? [r.alert] : []))));
  const named = new Set([...map.matchAll(/`(Vaultpam[A-Za-z]+)`/g)].map((m) => m[1]));
  t.deepEqual([...named].sort(), [...defined].sort());
});

test('every plugin command the map names exists, and every check it quotes is one diagnose prints', (t) => {
  const commands = new Set(
    readdirSync(new URL('src/plugin/commands/', root)).map((file) => file.replace(/\.ts$/, '')),
  );
  const used = [...map.matchAll(/`kubectl vaultpam ([a-z]+)/g)].map((m) => m[1] ?? '');
  t.true(used.length >= 5);
  for (const command of used) t.true(commands.has(command), `kubectl vaultpam ${command}`);
  const checks = readFileSync(new URL('src/plugin/runbook-checks.ts', root), 'utf8');
  const quoted = [...map.replace(/\n/g, ' ').matchAll(/diagnose NAME` \("([^"]+)"\)/g)].map(
    (m) => m[1] ?? '',
  );
  t.true(quoted.length >= 4);
  for (const title of quoted) t.true(checks.includes(`'${title}'`), title);
});

test('every condition reason the map names is documented for the Connector', (t) => {
  const documented = new Set([...documentedReasons().values()].flatMap((reasons) => [...reasons]));
  const conditionMentions = [
    ...map.matchAll(
      /`(Healthy|Enrolled|Stalled|Reconciling|DurableStorage|Ready)` (?:True |False |Unknown )?`([A-Za-z]+)`/g,
    ),
  ];
  t.true(conditionMentions.length > 8);
  for (const [, type, reason] of conditionMentions) t.true(documented.has(reason ?? ''), `${type} ${reason}`);
});
