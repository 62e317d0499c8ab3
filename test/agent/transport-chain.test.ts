// Issue 12, item 10: a server that sends only its leaf (the CA file holds the root, the
// intermediate is missing) is the guide's "certificate chain incomplete: unable to get local
// issuer certificate", told apart from a server of an unrelated CA ("x509: certificate signed by
// unknown authority"). Real chains: root -> intermediate -> leaf, served by real TLS servers.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { NEXT_STEPS } from '../../src/agent/failure.ts';
import { type CertificateChain, certificateChain } from '../helpers/certificates.ts';
import { assertNoSecrets } from '../helpers/secret-scan.ts';
import { tempDir } from './fixtures.ts';
import { agentConfig, prepareConnector, runAgent, startTestControlPlane } from './harness.ts';
import { clientFor, endsWithin, heartbeat, rejection, tlsPort, urlOf } from './transport-servers.ts';

let acme: CertificateChain;
let elsewhere: CertificateChain;
test.before(async () => {
  acme = await certificateChain({ organization: 'Acme PKI' });
  elsewhere = await certificateChain({ organization: 'Elsewhere Inc' });
});

async function caFileHolding(t: ExecutionContext, pem: string): Promise<string> {
  const file = join(await tempDir(t), 'ca.pem');
  await writeFile(file, pem);
  return file;
}

/** A TLS server presenting `leaf`, followed by `intermediates` when given. */
function serving(t: ExecutionContext, chain: CertificateChain, withIntermediate: boolean): Promise<number> {
  const cert = withIntermediate ? `${chain.leaf.certPem}${chain.intermediate.certPem}` : chain.leaf.certPem;
  return tlsPort(t, { key: chain.leaf.keyPem, cert });
}

test('the same server sending its intermediate is trusted with the root alone (the chain is sound)', async (t) => {
  const port = await serving(t, acme, true);
  const client = clientFor(t, urlOf(port), {
    caPem: acme.root.certPem,
    caFile: await caFileHolding(t, acme.root.certPem),
  });
  t.is((await client.heartbeat(heartbeat)).state, 'online');
});

test('a server sending only its leaf: "certificate chain incomplete: unable to get local issuer certificate", naming what is missing', async (t) => {
  const port = await serving(t, acme, false);
  const caFile = await caFileHolding(t, acme.root.certPem);
  const client = clientFor(t, urlOf(port), { caPem: acme.root.certPem, caFile });
  const error = await rejection(client.heartbeat(heartbeat));
  t.is(error.code, 'CA_CHAIN_INCOMPLETE');
  t.false(error.temporary, 'a trust failure: retrying cannot fix it');
  t.is(
    error.message,
    `certificate chain incomplete: unable to get local issuer certificate: the server at 127.0.0.1:${port} sent ` +
      `1 certificate(s) ending at one issued by CN=Acme PKI Issuing CA 1, O=Acme PKI, which is not in ${caFile} ` +
      '(it holds CN=Acme PKI Root CA, O=Acme PKI): the server must send its intermediate, or add it to the CA file',
  );
});

test('a server of an unrelated CA stays "x509: certificate signed by unknown authority"', async (t) => {
  const port = await serving(t, elsewhere, true);
  const caFile = await caFileHolding(t, acme.root.certPem);
  const client = clientFor(t, urlOf(port), { caPem: acme.root.certPem, caFile });
  const error = await rejection(client.heartbeat(heartbeat));
  t.is(error.code, 'CA_UNTRUSTED');
  t.false(error.temporary);
  t.true(error.message.startsWith('x509: certificate signed by unknown authority: '), error.message);
  t.true(error.message.includes(caFile));
  t.regex(
    error.message,
    /the server sent 2 certificate\(s\) ending at one issued by CN=Elsewhere Inc Root CA/,
  );
});

test('a leaf-only server of an unrelated organization stays "x509: certificate signed by unknown authority"', async (t) => {
  const port = await serving(t, elsewhere, false);
  const client = clientFor(t, urlOf(port), {
    caPem: acme.root.certPem,
    caFile: await caFileHolding(t, acme.root.certPem),
  });
  const error = await rejection(client.heartbeat(heartbeat));
  t.is(error.code, 'CA_UNTRUSTED');
  t.true(error.message.startsWith('x509: certificate signed by unknown authority: '), error.message);
  t.regex(error.message, /CN=Elsewhere Inc Issuing CA 1/, 'the facts are there for a person to compare');
});

test('first boot against a server sending only its leaf: exit 11, CA_CHAIN_INCOMPLETE with its own next step (send the intermediate), token unused', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.chain';
  const prepared = await prepareConnector(t, control, connectorId);
  const port = await serving(t, acme, false);
  const config = agentConfig({
    connectorId,
    controlPlaneUrl: urlOf(port),
    caFile: await caFileHolding(t, acme.root.certPem),
    tokenFile: prepared.tokenFile,
    dataDir: prepared.dataDir,
    terminationLog: join(prepared.dataDir, 'termination-log'),
  });
  const { agent, logs } = runAgent(t, config);
  const outcome = await endsWithin(agent.done, 20_000, 'the agent');
  t.is(outcome.exitCode, 11);
  t.is(outcome.failure?.failureClass, 'FirstBootBootstrap');
  t.is(outcome.failure?.code, 'CA_CHAIN_INCOMPLETE');
  t.is(outcome.failure?.nextStep, NEXT_STEPS.chainIncomplete);
  t.regex(String(outcome.failure?.nextStep), /^The server must send its intermediate/);
  t.regex(String(outcome.failure?.message), /^enrollment impossible: certificate chain incomplete: /);
  t.false((await control.admin.getConnector(connectorId)).bootstrapRetired, 'the token was never sent');
  assertNoSecrets(t, 'agent logs', logs.text(), [prepared.token]);
});
