// The change-stream follower's cache, against a control plane that answers in ways the reference
// one does not (the contract is a contract, not this project's server): what it keeps must follow
// the stream whatever the records carry.
import test from 'ava';
import { silentLogger } from '../../src/lib/logger.ts';
import type { ControlPlaneAdminClient } from '../../src/operator/control-plane/admin-client.ts';
import { ControlPlaneFollower } from '../../src/operator/control-plane/follower.ts';
import { eventually } from '../helpers/eventually.ts';
import { record } from '../helpers/observed-builder.ts';

/** A control plane that lists `listed` once, then serves `pages` of changes, then waits. */
function scriptedClient(listed: unknown[], pages: unknown[][]): ControlPlaneAdminClient {
  let cursor = 1;
  return {
    listConnectors: async () => ({ connectors: listed, cursor }),
    changes: async () => {
      const changes = pages.shift();
      if (!changes) return new Promise((resolve) => setTimeout(() => resolve({ changes: [], cursor }), 20));
      cursor += 1;
      return { changes, cursor };
    },
  } as unknown as ControlPlaneAdminClient;
}

test('a record without a revision number is replaced by each change, not kept until the next full list', async (t) => {
  const { revision: _, ...withoutRevision } = record({ state: 'online' });
  const changed = { ...withoutRevision, state: 'offline' };
  const client = scriptedClient(
    [withoutRevision],
    [[{ connectorId: changed.connectorId, connector: changed }]],
  );
  const follower = new ControlPlaneFollower({
    client: () => client,
    logger: silentLogger(),
    onChange: () => {},
    waitSeconds: 1,
  });
  follower.start();
  t.teardown(() => follower.stop());
  await eventually(() => follower.get(changed.connectorId)?.state === 'offline');
  t.pass();
});

test('a change older than the record kept is not taken over it', async (t) => {
  const newer = record({ state: 'online', revision: 7 });
  const older = { ...newer, state: 'offline', revision: 5 };
  const heard: string[] = [];
  const client = scriptedClient([newer], [[{ connectorId: newer.connectorId, connector: older }]]);
  const follower = new ControlPlaneFollower({
    client: () => client,
    logger: silentLogger(),
    onChange: (_id, cause) => heard.push(cause),
    waitSeconds: 1,
  });
  follower.start();
  t.teardown(() => follower.stop());
  await eventually(() => heard.includes('change'));
  t.is(follower.get(newer.connectorId)?.state, 'online');
  t.is(follower.get(newer.connectorId)?.revision, 7);
});
