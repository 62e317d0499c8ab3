// The operator's change-stream follower against the real control plane over HTTPS: a change the
// operator's own admin call already returned comes back as an `echo` (it queues like an informer
// event), and a change made by anyone else, the agent's enrollment and first heartbeat among them,
// is news (`change`, the urgent lane). Before the echo existed, every first pass of 1,000 Connectors
// applied at once waited behind the urgent echo passes of those already registered: the first status
// of the median Connector came 128 s after the apply (docs/performance.md, "Eighth increment").
import test, { type ExecutionContext } from 'ava';
import { silentLogger } from '../../src/lib/logger.ts';
import { type ChangeCause, ControlPlaneFollower } from '../../src/operator/control-plane/follower.ts';
import { eventually } from '../helpers/eventually.ts';
import { CONFIG, makeAgent, startHarness } from './helpers.ts';

/** The real control plane, and a follower of its change stream that has listed it once. */
async function followed(t: ExecutionContext) {
  const h = await startHarness(t);
  const heard: Array<{ id: string; cause: ChangeCause }> = [];
  const follower = new ControlPlaneFollower({
    client: () => h.admin,
    logger: silentLogger(),
    onChange: (id, cause) => heard.push({ id, cause }),
    waitSeconds: 1,
  });
  follower.start();
  t.teardown(() => follower.stop());
  await eventually(() => follower.synced());
  /** Registers `id` as a pass does: under `own`, its answer remembered. */
  const register = (id: string) =>
    follower.own(id, async () => follower.remember((await h.admin.ensureConnector(id, CONFIG)).connector));
  return { h, follower, heard, register };
}

/** The causes heard for `id` after `from`, once `count` of them arrived. */
async function causesOf(
  heard: Array<{ id: string; cause: ChangeCause }>,
  id: string,
  from: number,
  count: number,
) {
  let causes: ChangeCause[] = [];
  await eventually(() => {
    causes = heard
      .slice(from)
      .filter((h) => h.id === id)
      .map((h) => h.cause);
    return causes.length >= count;
  });
  return causes;
}

test('the echo of the operator’s own register and mint is not news; the agent’s enrollment and heartbeat are', async (t) => {
  const { h, follower, heard, register } = await followed(t);
  const id = 'team-a.echo';

  // What a pass does (act.ts): register, then mint and read the record back, each answer
  // remembered, each under `own`; the mint's change often arrives before the read's answer.
  await register(id);
  const minted = await follower.own(id, async () => {
    const token = await h.admin.mintToken(id, { idempotencyKey: 'k1' });
    follower.remember(await h.admin.getConnector(id));
    return token;
  });
  const own = await causesOf(heard, id, 0, 2);
  t.deepEqual(own, ['echo', 'echo'], 'registration and mint come back as echoes');
  t.is(follower.get(id)?.liveToken?.tokenId, minted.tokenId, 'and the record is kept all the same');

  // The agent pairs and beats: nobody's call returned that.
  const from = heard.length;
  const agent = await makeAgent(h, id);
  t.is((await agent.enroll(minted.token)).status, 201);
  t.is((await agent.heartbeat()).status, 200);
  await eventually(() => follower.get(id)?.state === 'online');
  const news = heard.slice(from).filter((h) => h.id === id);
  t.true(news.length >= 2, 'the enrollment and the first heartbeat were heard');
  t.true(
    news.every((h) => h.cause === 'change'),
    `every one is news: ${news.map((h) => h.cause)}`,
  );
});

test('a change made by another writer after the operator’s own call is news, whatever the operator remembered before', async (t) => {
  const { h, heard, register } = await followed(t);
  const id = 'team-a.other-writer';
  await register(id);
  t.deepEqual(await causesOf(heard, id, 0, 1), ['echo']);
  // Another client (not the operator's pass) mints: a newer revision than any the operator holds.
  const from = heard.length;
  await h.admin.mintToken(id, { idempotencyKey: 'someone-else' });
  t.deepEqual(await causesOf(heard, id, from, 1), ['change']);
});

test('a forgotten record has no echo left: later changes are news', async (t) => {
  const { h, follower, heard, register } = await followed(t);
  const id = 'team-a.forgotten';
  await register(id);
  t.deepEqual(await causesOf(heard, id, 0, 1), ['echo']);
  follower.remember(await h.admin.getConnector(id));
  follower.forget(id);
  const from = heard.length;
  await h.admin.mintToken(id, { idempotencyKey: 'k2' });
  t.deepEqual(await causesOf(heard, id, from, 1), ['change'], 'a forgotten record has no echo left');
});
