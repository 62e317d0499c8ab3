// The agent process contract (src/contract/agent-process.ts) is the one source of connector ids,
// failure classes and exit codes for the agent, the control plane and the operator: a copy
// elsewhere would drift from it unseen.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { EXIT_CODES as AGENT_EXIT_CODES } from '../../src/agent/failure.ts';
import {
  AGENT_FAILURE_CLASSES,
  CONNECTOR_ID_PATTERN,
  EXIT_CODES,
  isFailClosedExit,
  RUNBOOK_FAILURE_CLASSES,
} from '../../src/contract/agent-process.ts';
import { CONNECTOR_ID_PATTERN as CONTROL_PLANE_PATTERN } from '../../src/controlplane/http/validate.ts';
import { CONNECTOR_ID_PATTERN as OPERATOR_PATTERN } from '../../src/operator/api/constants.ts';
import { FAILURE_CLASSES } from '../../src/operator/api/types.ts';

async function sourceFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...(await sourceFiles(path)));
    else if (entry.name.endsWith('.ts')) found.push(path);
  }
  return found;
}

test('the three programs use the contract itself, not copies of it', (t) => {
  t.is(CONTROL_PLANE_PATTERN, CONNECTOR_ID_PATTERN);
  t.is(OPERATOR_PATTERN, CONNECTOR_ID_PATTERN);
  t.is(AGENT_EXIT_CODES, EXIT_CODES);
  t.is(FAILURE_CLASSES, RUNBOOK_FAILURE_CLASSES);
  t.deepEqual([...AGENT_FAILURE_CLASSES], [...RUNBOOK_FAILURE_CLASSES, 'Configuration']);
});

test('no source file outside src/contract spells the connector id pattern or the fail-closed exit range', async (t) => {
  const copies: string[] = [];
  for (const path of await sourceFiles('src')) {
    if (path.startsWith(join('src', 'contract'))) continue;
    const text = await readFile(path, 'utf8');
    if (text.includes('[a-z0-9.-]{0,251}')) copies.push(`${path}: the connector id pattern`);
    if (/exitCode\s*[<>]=?\s*1[0-4]\b/.test(text)) copies.push(`${path}: an agent exit code as a literal`);
  }
  t.deepEqual(copies, []);
});

test('a fail-closed exit is 10 to 13: not a clean stop, not exit 14 (identity intact), not a signal', (t) => {
  for (const code of [10, 11, 12, 13]) t.true(isFailClosedExit(code), `exit ${code}`);
  for (const code of [0, 1, 9, 14, 137, 143]) t.false(isFailClosedExit(code), `exit ${code}`);
});
