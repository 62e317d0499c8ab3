// The token path of a paired connector is only looked at, for a note (src/agent/token-file.ts): what
// is there cannot stop the connector. A symlink loop at the path made a paired agent exit 1 with an
// unexpected error and no termination message before it was taken for no token.
import { symlink, unlink } from 'node:fs/promises';
import test from 'ava';
import { configFor, enrolledConnector, runAgent, startTestControlPlane, waitFor } from './harness.ts';

test('a paired connector starts whatever is at its token path: a symlink loop there is no token, not a crash', async (t) => {
  const control = await startTestControlPlane(t);
  const id = 'team-a.token-loop';
  const connector = await enrolledConnector(t, control, id);
  await unlink(connector.tokenFile);
  await symlink(connector.tokenFile, connector.tokenFile);
  const running = runAgent(t, configFor(control, id, connector));
  await waitFor('heartbeats', () => running.counts.heartbeat >= 2);
  t.is((await control.admin.getConnector(id)).state, 'online');
});
