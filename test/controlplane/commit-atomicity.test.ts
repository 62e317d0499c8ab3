// Commits that cannot half-happen: every mutating operation, with one table of the real database
// refusing its write (a SQLite trigger that RAISEs, installed through a second connection on the
// same file), fails with a clear error and leaves the in-memory records equal to what a fresh Store
// reads from the file; once the trigger is gone the same operation succeeds, and memory still
// equals disk.
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import test, { type ExecutionContext } from 'ava';
import { Store } from '../../src/controlplane/store.ts';
import { isCodedError } from '../../src/lib/errors.ts';
import { CONFIG, enrolledAgent, type Harness, makeAgent, startHarness, type TestAgent } from './helpers.ts';

const INJECTED = 'injected write failure';

/** A table that refuses writes: its trigger's SQL, and how the fault is named in test titles. */
interface Fault {
  name: string;
  triggers: string[];
}

const refuse = (table: string, event: 'INSERT' | 'UPDATE' | 'DELETE') =>
  `CREATE TRIGGER refuse_${table}_${event.toLowerCase()} BEFORE ${event} ON ${table} BEGIN SELECT RAISE(ABORT, '${INJECTED}'); END`;

const FAULTS: Fault[] = [
  { name: 'the change feed refuses its row', triggers: [refuse('changes', 'INSERT')] },
  {
    name: 'the connectors table refuses the record',
    triggers: [
      refuse('connectors', 'INSERT'),
      refuse('connectors', 'UPDATE'),
      refuse('connectors', 'DELETE'),
    ],
  },
  { name: 'the audit log refuses its entry', triggers: [refuse('audit', 'INSERT')] },
];

const ID = 'ns.atomic';

/** What an operation left for its retry: the agent, a token, the clock already moved. */
interface Prepared {
  agent?: TestAgent;
  token?: string;
}

interface Operation {
  name: string;
  /** Brings the connector to where the operation changes it (no fault yet). */
  prepare(h: Harness): Promise<Prepared>;
  /** The operation itself; resolves when it succeeded, throws (or answers 5xx) when it failed. */
  run(h: Harness, prepared: Prepared): Promise<void>;
}

/** An agent call that must answer `expected`; a 5xx answer is thrown as the failure it is. */
async function agentCall(answer: Promise<{ status: number; json: unknown }>, expected: number) {
  const { status, json } = await answer;
  if (status === expected) return;
  throw Object.assign(new Error(`answered ${status}`), { status, json });
}

async function created(h: Harness, owner: { ownerUid?: string } = {}): Promise<Prepared> {
  await h.admin.ensureConnector(ID, CONFIG, owner);
  return {};
}

async function onlineAgent(h: Harness): Promise<TestAgent> {
  const agent = await enrolledAgent(h, ID);
  await agentCall(agent.heartbeat(), 200);
  return agent;
}

const OPERATIONS: Operation[] = [
  {
    name: 'create a connector',
    prepare: async () => ({}),
    run: async (h) => void (await h.admin.ensureConnector(ID, CONFIG, { ownerUid: 'uid-1' })),
  },
  {
    name: 'update a connector and claim it',
    prepare: (h) => created(h),
    run: async (h) =>
      void (await h.admin.ensureConnector(ID, { ...CONFIG, endpointId: 'ep-2' }, { ownerUid: 'uid-1' })),
  },
  {
    name: 'disown a connector',
    prepare: (h) => created(h, { ownerUid: 'uid-1' }),
    run: async (h) => h.admin.disownConnector(ID, 'uid-1'),
  },
  {
    name: 'delete a connector with a live token',
    prepare: async (h) => {
      await h.admin.ensureConnector(ID, CONFIG);
      await h.admin.mintToken(ID, { idempotencyKey: 'k1' });
      return {};
    },
    run: async (h) => h.admin.deleteConnector(ID),
  },
  {
    name: 'mint a token',
    prepare: (h) => created(h),
    run: async (h) => void (await h.admin.mintToken(ID, { idempotencyKey: 'k1' })),
  },
  {
    name: 'revoke tokens',
    prepare: async (h) => {
      await h.admin.ensureConnector(ID, CONFIG);
      await h.admin.mintToken(ID, { idempotencyKey: 'k1' });
      return {};
    },
    run: async (h) => void (await h.admin.revokeTokens(ID)),
  },
  {
    name: 'enroll',
    prepare: async (h) => {
      await h.admin.ensureConnector(ID, CONFIG);
      const { token } = await h.admin.mintToken(ID, { idempotencyKey: 'k1' });
      return { agent: await makeAgent(h, ID), token };
    },
    run: async (_h, { agent, token }) => agentCall((agent as TestAgent).enroll(token as string), 201),
  },
  {
    name: 'an enrollment with the connector’s own spent token (to needs_recovery)',
    prepare: async (h) => ({ agent: await onlineAgent(h) }),
    run: async (_h, { agent }) => {
      const own = agent as TestAgent;
      await agentCall(own.enroll(own.pairedWith as string), 401);
    },
  },
  {
    name: 'the first heartbeat (retires the bootstrap, to online)',
    prepare: async (h) => ({ agent: await enrolledAgent(h, ID) }),
    run: async (_h, { agent }) => agentCall((agent as TestAgent).heartbeat(), 200),
  },
  {
    name: 'a heartbeat reporting an unhealthy path (to degraded)',
    prepare: async (h) => ({ agent: await onlineAgent(h) }),
    run: async (_h, { agent }) =>
      agentCall((agent as TestAgent).heartbeat([{ name: 'tunnel', healthy: false, detail: 'down' }]), 200),
  },
  {
    name: 'renew the certificate',
    prepare: async (h) => ({ agent: await onlineAgent(h) }),
    run: async (_h, { agent }) => agentCall((agent as TestAgent).renew(), 200),
  },
  {
    name: 'begin a recovery',
    prepare: async (h) => {
      const agent = await onlineAgent(h);
      await agentCall(agent.enroll(agent.pairedWith as string), 401);
      return { agent };
    },
    run: async (h) => void (await h.admin.beginRecovery(ID, 'rq-1')),
  },
  {
    name: 'the offline sweep',
    prepare: async (h) => {
      const agent = await onlineAgent(h);
      h.clock.advance(60_000);
      return { agent };
    },
    run: async (h) => {
      if (h.cp.sweep() !== 1) throw new Error('the sweep moved no connector offline');
    },
  },
];

/** A value with its object keys sorted, so records compare by content, whatever order built them. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.keys(value)
      .sort()
      .map((key) => [key, canonical((value as Record<string, unknown>)[key])]),
  );
}

function memoryEqualsDisk(t: ExecutionContext, h: Harness, when: string): void {
  const memory = [...h.cp.service.records.all()].sort((a, b) => a.connectorId.localeCompare(b.connectorId));
  const disk = new Store(h.dataDir);
  try {
    t.deepEqual(canonical(memory), canonical(disk.loadConnectors()), `memory equals disk ${when}`);
  } finally {
    disk.close();
  }
}

/** Everything the control plane counts, but request timings: none of it may move for a failed write. */
async function counters(h: Harness): Promise<string[]> {
  const text = await h.cp.metrics.registry.metrics();
  return text.split('\n').filter((line) => line.startsWith('cp_') && !line.startsWith('cp_http_'));
}

function withDatabase<T>(h: Harness, use: (db: DatabaseSync) => T): T {
  const db = new DatabaseSync(join(h.dataDir, 'control-plane.sqlite'));
  try {
    return use(db);
  } finally {
    db.close();
  }
}

function auditAndCursor(h: Harness): { audit: number; cursor: number } {
  return withDatabase(h, (db) => ({
    audit: Number((db.prepare('SELECT COUNT(*) AS n FROM audit').get() as { n: number }).n),
    cursor: Number(
      (
        db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").get() as
          | { seq: number }
          | undefined
      )?.seq ?? 0,
    ),
  }));
}

/** How the failure reached the caller: the answer's code (HTTP) or the thrown message (in process). */
function failureOf(error: unknown): string {
  if (isCodedError(error)) return `${error.httpStatus} ${error.code}`;
  const answer = error as { status?: number; json?: { error?: { code?: string } }; message?: string };
  if (answer.status !== undefined) return `${answer.status} ${answer.json?.error?.code}`;
  return String(answer.message);
}

const commitsWhole = test.macro({
  async exec(t, operation: Operation, fault: Fault) {
    const h = await startHarness(t, { flushIntervalMs: 3_600_000 });
    const prepared = await operation.prepare(h);
    // Routine heartbeat times are the documented exception (written in batches): none is pending here.
    h.cp.flush();
    memoryEqualsDisk(t, h, 'before the fault');
    const countedBefore = await counters(h);
    const writtenBefore = auditAndCursor(h);

    withDatabase(h, (db) => {
      for (const trigger of fault.triggers) db.exec(trigger);
    });
    const error = await operation.run(h, prepared).then(
      () => undefined,
      (thrown: unknown) => thrown,
    );
    t.truthy(error, 'the operation fails while the write is refused');
    const failure = failureOf(error);
    if (operation.name === 'the offline sweep') {
      t.regex(failure, /not committed.*nothing changed.*injected write failure/);
    } else {
      t.is(failure, '500 INTERNAL_ERROR', 'answered as an internal error, nothing of it leaked');
      const logged = h.logs.records().filter((line) => line.msg === 'request failed');
      t.regex(String(logged.at(-1)?.err), /not committed.*nothing changed.*injected write failure/);
    }
    memoryEqualsDisk(t, h, 'after the refused write');
    t.deepEqual(await counters(h), countedBefore, 'no metric counted the failed operation');
    t.deepEqual(auditAndCursor(h), writtenBefore, 'no audit entry or change was written');

    withDatabase(h, (db) => {
      for (const trigger of fault.triggers) db.exec(`DROP TRIGGER ${trigger.split(' ')[2]}`);
    });
    await t.notThrowsAsync(operation.run(h, prepared), 'the same operation succeeds once the fault is gone');
    memoryEqualsDisk(t, h, 'after the retry');
    t.notDeepEqual(auditAndCursor(h), writtenBefore, 'the retry wrote');
  },
  title: (_title, operation: Operation, fault: Fault) =>
    `${operation.name}, while ${fault.name}: fails clearly, memory equals disk, then succeeds`,
});

for (const operation of OPERATIONS) {
  for (const fault of FAULTS) test(commitsWhole, operation, fault);
}
