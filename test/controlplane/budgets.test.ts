// What one connector's own certificate can make the control plane write is bounded too: a
// compromised or broken agent cannot flood the change feed and the audit log (budgets.ts).
import test from 'ava';
import { enrolledAgent, metricValue, startHarness } from './helpers.ts';

test('renewals are bounded per connector: 429 RENEWAL_RATE_LIMITED, and the current certificate keeps working', async (t) => {
  const h = await startHarness(t);
  const agent = await enrolledAgent(h, 'ns.renewer');
  await agent.heartbeat();
  const { cursor } = await h.admin.listConnectors();
  for (let i = 0; i < 5; i++) t.is((await agent.renew()).status, 200, `renewal ${i + 1}`);
  const current = agent.certPem;
  for (let i = 0; i < 20; i++) {
    const refused = await agent.renew();
    t.is(refused.status, 429);
    t.is(refused.json.error.code, 'RENEWAL_RATE_LIMITED');
  }
  t.is(agent.certPem, current);
  t.is((await agent.heartbeat()).status, 200, 'the current certificate still works');
  t.is((await h.admin.changes(cursor)).changes.length, 5);
  const renewed = (await h.admin.audit({ connectorId: 'ns.renewer' })).filter(
    (e) => e.type === 'endpoint.cert_renewed',
  );
  t.is(renewed.length, 5);
  t.is(await metricValue(h, 'cp_budget_exceeded_total', 'budget="renewal"'), 20);

  // One more a minute later.
  h.clock.advance(60_000);
  t.is((await agent.renew()).status, 200);
  t.is((await agent.renew()).status, 429);
});

test('a flapping agent is published within its health-change budget; the beats in between keep it alive', async (t) => {
  const h = await startHarness(t);
  const agent = await enrolledAgent(h, 'ns.flappy');
  t.is((await agent.heartbeat()).json.state, 'online', 'retirement is always published');
  const { cursor } = await h.admin.listConnectors();
  const flap = (i: number) => agent.heartbeat([{ name: 'tunnel', healthy: i % 2 === 1 }]);
  for (let i = 0; i < 100; i++) t.is((await flap(i)).status, 200);

  const changes = (await h.admin.changes(cursor)).changes;
  t.is(changes.length, 20, 'the burst');
  // Of the 80 beats after the burst, the 40 that differ from what was published last are held back;
  // the others match it and are routine beats.
  t.is(await metricValue(h, 'cp_budget_exceeded_total', 'budget="healthChange"'), 40);
  const connector = await h.admin.getConnector('ns.flappy');
  t.is(connector.lastHeartbeatAt, h.clock.now().toISOString(), 'every beat counts as alive');
  t.is(changes.at(-1)?.connector?.state, connector.state, 'the record is what was published last');

  // Once the budget refills, the next beat's health is taken up; a routine beat never waits.
  h.clock.advance(25_000);
  t.is(h.cp.sweep(), 0, 'not offline');
  t.is((await agent.heartbeat([{ name: 'tunnel', healthy: false }])).json.state, 'degraded');
  t.is((await agent.heartbeat([{ name: 'tunnel', healthy: true }])).json.state, 'online');
  t.is((await h.admin.changes(cursor)).changes.length, 22);

  // Coming back from offline is never held back by a spent budget.
  for (let i = 0; i < 40; i++) await flap(i);
  h.clock.advance(30_000);
  t.is(h.cp.sweep(), 1);
  t.is((await agent.heartbeat()).json.state, 'online');
});
