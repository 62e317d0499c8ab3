// The identity on disk against the real control plane, with real faults under a real agent: what the
// agent can save, restore or rebuild, it does, and it never trades an identity for a token or for an
// older copy of itself. A directory that takes no writes holds a renewal back (the control plane
// would accept only a certificate the agent cannot keep); a renewed certificate that could not be
// saved gets one last save at shutdown; an older cert.pem copied back is overwritten with the current
// one; key.pem and cert.pem without ca.pem and identity.json are an identity; a damaged or replaced
// ca.pem and a damaged identity.json are set aside and restored; a renewal rewrites only cert.pem.
import { execFileSync } from 'node:child_process';
import { chmod, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type { AgentDependencies } from '../../src/agent/agent.ts';
import type { AgentConfig } from '../../src/agent/config.ts';
import { type AgentApi, ControlPlaneClient } from '../../src/agent/control-plane-client.ts';
import { identityPaths } from '../../src/agent/identity-files.ts';
import { parseCertificateFacts } from '../../src/lib/pki.ts';
import { assertNoSecrets } from '../helpers/secret-scan.ts';
import { makeCa } from './fixtures.ts';
import {
  configFor,
  enrolledConnector,
  prepareConnector,
  recordsMatching,
  runAgent,
  startTestControlPlane,
  type TestControlPlane,
  waitFor,
} from './harness.ts';

/**
 * Renewals happen in real time here: the control plane grants lifetimes of seconds (renewAfter two
 * thirds in), so a renewal falls due by every clock alike, the TLS stacks' included.
 */
function shortLivedControlPlane(t: ExecutionContext, lifetimeSeconds: number) {
  return startTestControlPlane(t, { certificateLifetimeSeconds: lifetimeSeconds });
}

/** Waits until the control plane's renewAfter for the certificate on disk has passed. */
async function renewalDue(config: AgentConfig, lifetimeSeconds: number): Promise<void> {
  const { notAfter } = parseCertificateFacts(await readFile(identityPaths(config.dataDir).cert, 'utf8'));
  // Issued at most a second before notAfter - lifetime; renewAfter is two thirds of the lifetime later.
  const dueAt = notAfter.getTime() - (lifetimeSeconds * 1000) / 3 + 1000;
  await waitFor('the renewal to fall due', () => Date.now() > dueAt, { timeoutMs: lifetimeSeconds * 1000 });
}

function escaped(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function connected(agent: ReturnType<typeof runAgent>['agent'], moreThan = 0) {
  return waitFor(
    `more than ${moreThan} accepted heartbeats`,
    () => agent.status().heartbeatsAccepted > moreThan,
  );
}

async function serialOnDisk(config: AgentConfig): Promise<string> {
  return parseCertificateFacts(await readFile(identityPaths(config.dataDir).cert, 'utf8')).serial;
}

async function serialTheControlPlaneAccepts(control: TestControlPlane, connectorId: string) {
  return (await control.admin.getConnector(connectorId)).certificate?.serial;
}

/**
 * Makes `dir` refuse new files for real: the immutable attribute as root (root ignores modes),
 * mode 0500 otherwise. Returns the undo, which also runs at teardown.
 */
async function refuseWrites(t: ExecutionContext, dir: string): Promise<() => Promise<void>> {
  const asRoot = process.getuid?.() === 0;
  if (asRoot) execFileSync('chattr', ['+i', dir]);
  else await chmod(dir, 0o500);
  const undo = async () => {
    if (asRoot) execFileSync('chattr', ['-i', dir]);
    else await chmod(dir, 0o700);
  };
  t.teardown(() => undo().catch(() => {}));
  return undo;
}

/**
 * A real control-plane client whose enroll or renew request first runs its hook (to set a fault up
 * between the moment the agent decides to send it and the control plane's answer).
 */
function clientWithHooks(hooks: {
  beforeEnroll?: () => Promise<void>;
  beforeRenew?: () => Promise<void>;
}): AgentDependencies['createClient'] {
  return (options) => {
    const client = new ControlPlaneClient(options);
    const api: AgentApi = {
      enroll: async (body) => {
        await hooks.beforeEnroll?.();
        return client.enroll(body);
      },
      heartbeat: (body) => client.heartbeat(body),
      renew: async (body) => {
        await hooks.beforeRenew?.();
        return client.renew(body);
      },
      setIdentity: (identity) => client.setIdentity(identity),
      close: () => client.close(),
    };
    return api;
  };
}

test('renewal is held back while the identity directory takes no writes, with a warning, and follows once it does', async (t) => {
  const control = await shortLivedControlPlane(t, 12);
  const connectorId = 'team-a.unwritable-renewal';
  const { config, token, keyPem } = await enrolledConnector(t, control, connectorId);
  const paths = identityPaths(config.dataDir);
  const before = await serialOnDisk(config);
  const { agent, logs, counts } = runAgent(t, config);
  await connected(agent);
  const allowWrites = await refuseWrites(t, paths.dir);
  await renewalDue(config, 12);

  const heldBack = await waitFor(
    'renewal held back',
    () => recordsMatching(logs, /^certificate renewal held back: /)[0],
  );
  t.regex(
    String(heldBack.msg),
    new RegExp(
      `^certificate renewal held back: the identity directory ${escaped(paths.dir)} cannot be written ` +
        `\\((EACCES|EPERM) creating ${escaped(paths.cert)}\\.tmp-\\d+-[0-9a-f]+\\): the control plane would accept ` +
        `only the renewed certificate, which could not be saved; keeping the current one \\(serial ${before}\\), ` +
        'which expires in \\d+ s; ',
    ),
  );
  t.is(heldBack.level, 40, 'warn');
  await connected(agent, agent.status().heartbeatsAccepted + 3);
  t.is(counts.renew, 0, 'no certificate asked for that could not be saved');
  t.is(recordsMatching(logs, /^certificate renewal held back/).length, 1, 'warned once');
  t.is(
    await serialTheControlPlaneAccepts(control, connectorId),
    before,
    'the identity on disk is still the one',
  );
  t.deepEqual(
    (await readdir(paths.dir)).filter((name) => name.includes('.tmp-')),
    [],
    'no probe file left',
  );

  await allowWrites();
  await waitFor('renewed', () => recordsMatching(logs, /^certificate renewed$/).length > 0);
  const after = await serialOnDisk(config);
  t.not(after, before);
  t.is(await serialTheControlPlaneAccepts(control, connectorId), after);
  t.is((await agent.stop()).exitCode, 0);
  assertNoSecrets(t, 'agent logs', logs.text(), [token, keyPem]);
});

/** Renews at the first heartbeat, with the identity directory refusing writes from the renew request on. */
async function renewalThatCannotBeSaved(t: ExecutionContext, connectorId: string) {
  const control = await shortLivedControlPlane(t, 9);
  const enrolled = await enrolledConnector(t, control, connectorId);
  // One heartbeat (with the renewal due), then nothing until the stop: the shutdown is the save that counts.
  const config = { ...enrolled.config, heartbeatIntervalMs: 600_000 };
  const paths = identityPaths(config.dataDir);
  const before = await serialOnDisk(config);
  await renewalDue(config, 9);
  let allowWrites: (() => Promise<void>) | undefined;
  const running = runAgent(t, config, {
    createClient: clientWithHooks({
      beforeRenew: async () => {
        allowWrites = await refuseWrites(t, paths.dir);
      },
    }),
  });
  const notSaved = await waitFor(
    'the failed save',
    () => recordsMatching(running.logs, /^renewed certificate not saved: /)[0],
  );
  const renewed = running.agent.status().serial;
  t.not(renewed, before);
  t.is(await serialTheControlPlaneAccepts(control, connectorId), renewed, 'the control plane moved on');
  t.is(notSaved.level, 50, 'error');
  t.regex(
    String(notSaved.msg),
    new RegExp(
      `^renewed certificate not saved: (EACCES|EPERM) writing ${escaped(paths.cert)}: the control plane accepts ` +
        `serial ${renewed}, not serial ${before} on disk; running on it from memory and saving it again at the ` +
        'next heartbeat and at shutdown$',
    ),
  );
  t.deepEqual(recordsMatching(running.logs, /^certificate renewed/), [], 'not "renewed" while not on disk');
  t.is(await serialOnDisk(config), before);
  if (!allowWrites) throw new Error('the renew request never ran');
  return { ...running, control, config, before, renewed: renewed ?? '', allowWrites, enrolled };
}

test('a renewed certificate that could not be saved is saved at shutdown once the directory takes writes again', async (t) => {
  const connectorId = 'team-a.saved-at-shutdown';
  const { agent, logs, control, config, renewed, allowWrites, enrolled } = await renewalThatCannotBeSaved(
    t,
    connectorId,
  );
  await allowWrites();
  t.is((await agent.stop()).exitCode, 0);
  t.is(await serialOnDisk(config), renewed, 'on disk at exit');
  const renewedLine = recordsMatching(logs, /^certificate renewed$/)[0];
  t.is(renewedLine?.serial, renewed);
  t.is(renewedLine?.failedSaves, 1);
  t.deepEqual(recordsMatching(logs, /^exiting with the current certificate not saved/), []);

  // The next start presents the certificate the control plane accepts.
  const next = runAgent(t, config);
  await connected(next.agent);
  t.is(next.agent.status().serial, renewed);
  t.is(next.counts.enroll, 0);
  t.is(await serialTheControlPlaneAccepts(control, connectorId), renewed);
  t.is((await next.agent.stop()).exitCode, 0);
  assertNoSecrets(t, 'agent logs', logs.text(), [enrolled.token, enrolled.keyPem]);
});

test('a renewed certificate that still cannot be saved at shutdown: an error line says what is lost', async (t) => {
  const { agent, logs, config, before, renewed } = await renewalThatCannotBeSaved(
    t,
    'team-a.lost-at-shutdown',
  );
  t.is((await agent.stop()).exitCode, 0);
  const lost = recordsMatching(logs, /^exiting with the current certificate not saved: /)[0];
  if (!lost) return t.fail('no line about the lost certificate');
  t.is(lost.level, 50, 'error');
  t.is(lost.code, 'IDENTITY_PERSIST_FAILED');
  t.regex(
    String(lost.msg),
    new RegExp(
      `^exiting with the current certificate not saved: serial ${renewed} \\(valid until \\S+\\) is lost with this ` +
        `process; ${escaped(identityPaths(config.dataDir).cert)} holds serial ${before}, which the control plane no ` +
        `longer accepts \\(replaced by serial ${renewed}\\): the next start is refused and this connector needs a ` +
        'guided recovery$',
    ),
  );
  t.deepEqual(recordsMatching(logs, /^certificate renewed/), []);
});

test('first boot: a certificate the data directory does not take is exit 12 with the truth, and the restart pairs with the same token', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.unsaved-enrollment';
  const prepared = await prepareConnector(t, control, connectorId);
  const config = configFor(control, connectorId, prepared);
  const paths = identityPaths(config.dataDir);
  // The key is on disk before the request (enrollment.ts); the directory stops taking files while the
  // request is on its way, so the control plane spends the token and issues the certificate.
  let allowWrites: (() => Promise<void>) | undefined;
  let enrollRequests = 0;
  const first = runAgent(t, config, {
    createClient: clientWithHooks({
      beforeEnroll: async () => {
        enrollRequests += 1;
        allowWrites ??= await refuseWrites(t, paths.dir);
      },
    }),
  });
  const outcome = await first.agent.done;
  // It was IdentityLoss, exit 13, with the next step "follow guided recovery and pair exactly once
  // with a fresh token": nothing was lost, and the operator reads the class.
  t.is(outcome.exitCode, 12);
  t.is(outcome.failure?.failureClass, 'Configuration');
  t.is(outcome.failure?.code, 'IDENTITY_PERSIST_FAILED');
  t.regex(
    String(outcome.failure?.message),
    new RegExp(
      `^the certificate the control plane issued could not be saved: (EACCES|EPERM) writing ${escaped(paths.ca)}; ` +
        `the token is spent, and the key the certificate was issued for is kept in ${escaped(paths.key)}$`,
    ),
  );
  const termination = JSON.parse(await readFile(config.terminationLog, 'utf8')) as Record<string, string>;
  t.is(termination.failureClass, 'Configuration');
  t.regex(termination.nextStep ?? '', /the control plane sends the same certificate again for the key kept/);
  t.regex(termination.nextStep ?? '', /no new token and no recovery are needed/);
  t.is((await control.admin.getConnector(connectorId)).state, 'enrolling', 'the token was spent');

  // What the next step says is true: once the directory takes writes, a start with the same token
  // mounted is sent the same certificate for the key it kept.
  if (!allowWrites) return t.fail('the enroll request never ran');
  await allowWrites();
  const second = runAgent(t, config);
  await connected(second.agent);
  t.is(enrollRequests, 1);
  t.is(second.counts.enroll, 1, 'the same token again, and no other');
  const connector = await control.admin.getConnector(connectorId);
  t.true(connector.bootstrapRetired);
  t.is(connector.certificate?.serial, await serialOnDisk(config));
  const types = (await control.admin.audit({ connectorId })).map((entry) => entry.type);
  t.deepEqual(
    types.filter((type) => type.startsWith('endpoint.enroll')),
    ['endpoint.enrolled', 'endpoint.enrollment_answered_again'],
  );
  t.is((await second.agent.stop()).exitCode, 0);
  assertNoSecrets(t, 'agent logs', `${first.logs.text()}${second.logs.text()}`, [prepared.token]);
});

test('an older certificate of this identity copied back over cert.pem is not used: the current one is written back', async (t) => {
  const control = await shortLivedControlPlane(t, 12);
  const connectorId = 'team-a.backup-restored';
  const { config, token, keyPem } = await enrolledConnector(t, control, connectorId);
  const paths = identityPaths(config.dataDir);
  const backup = {
    cert: await readFile(paths.cert, 'utf8'),
    metadata: await readFile(paths.metadata, 'utf8'),
  };
  const old = parseCertificateFacts(backup.cert);
  const { agent, logs } = runAgent(t, config);
  await waitFor('renewed', () => recordsMatching(logs, /^certificate renewed$/).length > 0, {
    timeoutMs: 20_000,
  });
  const current = await readFile(paths.cert, 'utf8');
  const currentSerial = parseCertificateFacts(current).serial;
  const metadataNow = await readFile(paths.metadata, 'utf8');

  for (const [what, files] of [
    ['cert.pem alone', ['cert']],
    ['cert.pem and identity.json', ['cert', 'metadata']],
  ] as const) {
    const warnings = recordsMatching(logs, /was replaced by an older certificate of this identity/).length;
    for (const file of files) await writeFile(paths[file], backup[file]);
    const restored = await waitFor(
      `${what} restored`,
      () => recordsMatching(logs, /was replaced by an older certificate of this identity/)[warnings],
    );
    t.is(
      restored.msg,
      `${paths.cert} was replaced by an older certificate of this identity (serial ${old.serial}, valid until ` +
        `${old.notAfter.toISOString()}); restored the current one (serial ${currentSerial})`,
      what,
    );
    t.is(await readFile(paths.cert, 'utf8'), current, `${what}: cert.pem written back`);
    t.is(await readFile(paths.metadata, 'utf8'), metadataNow, `${what}: identity.json is the current one's`);
    await connected(agent, agent.status().heartbeatsAccepted + 2);
    t.is(agent.status().serial, currentSerial);
  }
  t.deepEqual(recordsMatching(logs, /^fail closed/), []);
  t.is(agent.status().phase, 'connected');
  t.is(await serialTheControlPlaneAccepts(control, connectorId), currentSerial);
  t.is((await agent.stop()).exitCode, 0);
  assertNoSecrets(t, 'agent logs', logs.text(), [token, keyPem]);
});

for (const mounted of ['the spent token', 'no token'] as const) {
  test(`key.pem and cert.pem without ca.pem and identity.json, ${mounted} mounted: the identity is used and restored, no token spent`, async (t) => {
    const control = await startTestControlPlane(t);
    const connectorId = mounted === 'no token' ? 'team-a.half-written' : 'team-a.half-written-token';
    const { config, token, keyPem, tokenFile } = await enrolledConnector(t, control, connectorId);
    const paths = identityPaths(config.dataDir);
    if (mounted === 'no token') await rm(tokenFile);
    const before = await serialOnDisk(config);
    // What an interrupted first boot left before this fix (key, cert, then a crash before ca.pem), or
    // both files deleted.
    await rm(paths.ca);
    await rm(paths.metadata);
    const { agent, logs, counts } = runAgent(t, config);
    await waitFor('ca.pem restored', () => recordsMatching(logs, /^restored /).length > 0);
    t.true(
      recordsMatching(logs, /is missing: /).some((record) =>
        String(record.msg).startsWith(
          `${paths.metadata} is missing: ${paths.key} and ${paths.cert} match each other and name this connector ` +
            `(serial ${before}), so they are its identity and no enrollment token is used`,
        ),
      ),
    );
    t.is(counts.enroll, 0, 'the token is never used');
    t.is(await readFile(paths.ca, 'utf8'), control.cp.caPem);
    const metadata = JSON.parse(await readFile(paths.metadata, 'utf8')) as {
      serial: string;
      connectorId: string;
    };
    const renewed = await serialOnDisk(config);
    t.not(renewed, before, 'restored through a renewal, verified against the CA it came with');
    t.is(metadata.serial, renewed);
    t.is(metadata.connectorId, connectorId);
    await connected(agent, agent.status().heartbeatsAccepted + 1);
    t.is(agent.status().phase, 'connected');
    t.is((await agent.stop()).exitCode, 0);
    assertNoSecrets(t, 'agent logs', logs.text(), [token, keyPem]);
  });
}

test('a truncated ca.pem is set aside (kept) and restored from the control plane, not fatal', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.truncated-ca';
  const { config, token, keyPem } = await enrolledConnector(t, control, connectorId);
  const paths = identityPaths(config.dataDir);
  const truncated = control.cp.caPem.slice(0, Math.floor(control.cp.caPem.length / 2));
  await writeFile(paths.ca, truncated);
  const { agent, logs, counts } = runAgent(t, config);
  await waitFor('ca.pem restored', () => recordsMatching(logs, /^restored /).length > 0);
  const damaged = recordsMatching(logs, /^.*ca\.pem is damaged: /)[0];
  t.regex(
    String(damaged?.msg),
    new RegExp(
      `^${escaped(paths.ca)} is damaged: not a readable PEM certificate bundle: moved it to ${escaped(paths.ca)}\\.damaged-\\S+; ` +
        'it is restored from the control plane like a missing one',
    ),
  );
  const [aside] = (await readdir(paths.dir)).filter((name) => name.startsWith('ca.pem.damaged-'));
  t.is(await readFile(join(paths.dir, aside ?? ''), 'utf8'), truncated);
  t.is(await readFile(paths.ca, 'utf8'), control.cp.caPem);
  await connected(agent, agent.status().heartbeatsAccepted + 1);
  t.deepEqual(recordsMatching(logs, /^fail closed/), []);
  t.is((await agent.stop()).exitCode, 0);
  t.is(counts.enroll, 0);
  assertNoSecrets(t, 'agent logs', logs.text(), [token, keyPem]);
});

test('ca.pem replaced by another CA is what changed (cert.pem is the recorded one): set aside and restored, cert.pem not blamed', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.replaced-ca';
  const { config } = await enrolledConnector(t, control, connectorId);
  const paths = identityPaths(config.dataDir);
  const before = await serialOnDisk(config);
  const root = await makeCa('Corporate Root CA');
  await writeFile(paths.ca, root.certPem);
  const { agent, logs } = runAgent(t, config);
  await waitFor('ca.pem restored', () => recordsMatching(logs, /^restored /).length > 0);
  const replaced = recordsMatching(logs, /ca\.pem was replaced: /)[0];
  t.true(
    String(replaced?.msg).startsWith(
      `${paths.ca} was replaced: it does not hold the CA that signed ${paths.cert} (issuer "`,
    ),
    String(replaced?.msg),
  );
  t.true(
    String(replaced?.msg).includes(`(serial ${before}) with its own key, so it is ${paths.ca} that changed`),
  );
  t.deepEqual(recordsMatching(logs, /certificate chain does not verify/), []);
  const [aside] = (await readdir(paths.dir)).filter((name) => name.startsWith('ca.pem.replaced-'));
  t.is(await readFile(join(paths.dir, aside ?? ''), 'utf8'), root.certPem);
  t.is(await readFile(paths.ca, 'utf8'), control.cp.caPem);
  t.is((await agent.stop()).exitCode, 0);
});

test('a damaged identity.json (empty) is set aside and rebuilt from the certificate that verifies; the agent connects', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.empty-metadata';
  const { config } = await enrolledConnector(t, control, connectorId);
  const paths = identityPaths(config.dataDir);
  const before = await readFile(paths.metadata, 'utf8');
  await writeFile(paths.metadata, '');
  const { agent, logs, counts } = runAgent(t, config);
  await connected(agent);
  t.regex(
    String(recordsMatching(logs, /identity\.json is damaged: /)[0]?.msg),
    new RegExp(
      `^${escaped(paths.metadata)} is damaged: it is empty: moved it to ${escaped(paths.metadata)}\\.damaged-\\S+; it is rebuilt from ${escaped(paths.cert)}$`,
    ),
  );
  t.is(recordsMatching(logs, /^rebuilt .*identity\.json/).length, 1);
  // Rebuilt from the certificate: the same facts, with the enrollment time read from its notBefore.
  const { enrolledAt: _rebuilt, ...rebuilt } = JSON.parse(await readFile(paths.metadata, 'utf8'));
  const { enrolledAt: _original, ...original } = JSON.parse(before);
  t.deepEqual(rebuilt, original);
  t.is(counts.enroll, 0);
  t.is((await agent.stop()).exitCode, 0);
});

test('a renewal rewrites cert.pem and identity.json only: key.pem and ca.pem keep their inode', async (t) => {
  const control = await shortLivedControlPlane(t, 3);
  const connectorId = 'team-a.renewal-writes';
  const { config } = await enrolledConnector(t, control, connectorId);
  const paths = identityPaths(config.dataDir);
  const inodes = async () => ({
    key: (await stat(paths.key)).ino,
    ca: (await stat(paths.ca)).ino,
    cert: (await stat(paths.cert)).ino,
    metadata: (await stat(paths.metadata)).ino,
  });
  const before = await inodes();
  const { agent, logs } = runAgent(t, config);
  await waitFor('renewed', () => recordsMatching(logs, /^certificate renewed$/).length > 0);
  const after = await inodes();
  t.is(after.key, before.key, 'key.pem untouched');
  t.is(after.ca, before.ca, 'ca.pem untouched (same CA)');
  t.not(after.cert, before.cert);
  t.not(after.metadata, before.metadata);
  t.is((await agent.stop()).exitCode, 0);
});
