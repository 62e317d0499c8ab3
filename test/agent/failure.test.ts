import { readFile } from 'node:fs/promises';
import test from 'ava';
import { judgeCertificateRefusal } from '../../src/agent/certificate-refusal.ts';
import { classifyConnectionError, validityMessage } from '../../src/agent/connection-errors.ts';
import {
  type AgentFailure,
  clientCertificateNotReceivedFailure,
  clockSkewFailure,
  controlPlaneMismatchFailure,
  EXIT_CODES,
  enrollmentRejectedFailure,
  enrollmentTrustFailure,
  formatTerminationMessage,
  gaveUpFailure,
  identityExpiredFailure,
  identityLostFailure,
  identityRejectedFailure,
  identityUntrustedFailure,
  identityUnusableFailure,
  NEXT_STEPS,
  sanUriPrefixMismatchFailure,
  tokenMissingFailure,
  unreachableFailure,
} from '../../src/agent/failure.ts';
import type { TerminationMessage } from '../../src/contract/agent-process.ts';
import { CodedError } from '../../src/lib/errors.ts';
import { assertNoSecrets } from '../helpers/secret-scan.ts';
import { configFor, prepareConnector, runAgent, startTestControlPlane } from './harness.ts';

const token = 'vpe_0123456789abcdef_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZn';

test('each failure maps to the class, exit code and next step of the runbook and the contract', (t) => {
  const rows: Array<[AgentFailure, string, number, string]> = [
    [
      tokenMissingFailure('/run/token/token', '/data'),
      'FirstBootBootstrap',
      11,
      NEXT_STEPS.tokenMissingOrUnknownHistory,
    ],
    [
      enrollmentRejectedFailure(new CodedError('ENROLLMENT_TOKEN_EXPIRED', 'expired', { httpStatus: 401 })),
      'FirstBootBootstrap',
      11,
      NEXT_STEPS.tokenExpiredOrRevoked,
    ],
    [
      enrollmentRejectedFailure(new CodedError('ENROLLMENT_TOKEN_REVOKED', 'revoked', { httpStatus: 401 })),
      'FirstBootBootstrap',
      11,
      NEXT_STEPS.tokenExpiredOrRevoked,
    ],
    [
      enrollmentRejectedFailure(new CodedError('ENROLLMENT_TOKEN_INVALID', 'invalid', { httpStatus: 401 })),
      'FirstBootBootstrap',
      11,
      NEXT_STEPS.tokenRejectedUnknownHistory,
    ],
    [
      enrollmentRejectedFailure(new CodedError('CSR_INVALID', 'bad csr', { httpStatus: 400 })),
      'FirstBootBootstrap',
      11,
      NEXT_STEPS.enrollmentRequestRejected,
    ],
    [
      enrollmentTrustFailure(new CodedError('CA_UNTRUSTED', 'x509')),
      'FirstBootBootstrap',
      11,
      NEXT_STEPS.trust,
    ],
    [identityLostFailure('gone'), 'IdentityLoss', 10, NEXT_STEPS.identityLost],
    [
      identityUnusableFailure('IDENTITY_KEY_MISMATCH', 'mismatch'),
      'IdentityLoss',
      13,
      NEXT_STEPS.identityUnusable,
    ],
    [
      identityRejectedFailure(new CodedError('CLIENT_CERTIFICATE_REJECTED', 'revoked', { httpStatus: 401 })),
      'IdentityLoss',
      13,
      NEXT_STEPS.identityRejected,
    ],
    [
      unreachableFailure(true, new CodedError('CONNECTION_REFUSED', 'refused'), 60_000),
      'Reconnect',
      14,
      NEXT_STEPS.unreachable,
    ],
    [
      unreachableFailure(false, new CodedError('CONNECTION_REFUSED', 'refused'), 60_000),
      'FirstBootBootstrap',
      14,
      NEXT_STEPS.firstBootUnreachable,
    ],
    [
      gaveUpFailure(true, new CodedError('CONNECTION_REFUSED', 'refused'), 60_000),
      'Reconnect',
      14,
      NEXT_STEPS.unreachable,
    ],
    [
      gaveUpFailure(
        true,
        new CodedError('TLS_CLIENT_CERTIFICATE_REJECTED', 'client certificate rejected'),
        60_000,
      ),
      'Reconnect',
      14,
      NEXT_STEPS.clientCertificateRefusedInHandshake,
    ],
    [
      gaveUpFailure(
        false,
        new CodedError('TLS_CLIENT_CERTIFICATE_REJECTED', 'client certificate rejected'),
        60_000,
      ),
      'FirstBootBootstrap',
      14,
      // Before pairing no certificate was presented: letting the enrollment through, not the CA chain.
      NEXT_STEPS.handshakeRefusedWhilePairing,
    ],
    [identityExpiredFailure('expired'), 'IdentityLoss', 13, NEXT_STEPS.identityExpired],
    [identityUntrustedFailure('foreign CA'), 'IdentityLoss', 13, NEXT_STEPS.identityUntrusted],
    [clockSkewFailure('skew'), 'Reconnect', 14, NEXT_STEPS.clockSkew],
    [controlPlaneMismatchFailure('other'), 'Configuration', 12, NEXT_STEPS.controlPlaneMismatch],
    [
      clientCertificateNotReceivedFailure('proxy'),
      'Configuration',
      12,
      NEXT_STEPS.clientCertificateNotReceived,
    ],
    [sanUriPrefixMismatchFailure('prefix'), 'Configuration', 12, NEXT_STEPS.sanUriPrefixMismatch],
  ];
  for (const [failure, failureClass, exitCode, nextStep] of rows) {
    t.is(String(failure.failureClass), failureClass, failure.code);
    t.is(Number(failure.exitCode), exitCode, failure.code);
    t.is(failure.nextStep, nextStep, failure.code);
    t.false(failure.temporary, 'fail-closed reasons are never retried');
  }
  t.deepEqual(Object.values(EXIT_CODES), [0, 10, 11, 12, 13, 14]);
});

test('the token-missing next step covers both a fresh connector and a lost identity', (t) => {
  const failure = tokenMissingFailure(undefined, '/data');
  t.is(failure.code, 'ENROLLMENT_TOKEN_MISSING');
  t.regex(failure.nextStep, /never paired/);
  t.regex(failure.nextStep, /paired before/);
  t.regex(failure.nextStep, /guided recovery/);
  t.regex(failure.message, /no --token-file is configured/);
});

test('the termination message is one JSON object with the contract fields and no secret', (t) => {
  const failure = enrollmentRejectedFailure(
    new CodedError('ENROLLMENT_TOKEN_INVALID', `token ${token} is not valid`, { httpStatus: 401 }),
  );
  const keyPem =
    '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgAbCdEfGhIjKlMnOpQrStUvWxYz0123456789\n-----END PRIVATE KEY-----\n';
  const withKey = identityUnusableFailure('IDENTITY_DAMAGED', `bad file content ${keyPem}`);
  for (const f of [failure, withKey]) {
    const text = formatTerminationMessage(f);
    t.true(text.endsWith('\n'));
    const parsed = JSON.parse(text) as Record<string, unknown>;
    t.deepEqual(Object.keys(parsed), ['failureClass', 'code', 'reason', 'nextStep']);
    t.is(parsed.code, f.code);
    assertNoSecrets(t, 'termination message', text, [token, keyPem]);
  }
});

test('a long reason is shortened to fit the kubelet termination message limit', (t) => {
  const failure = identityLostFailure('x'.repeat(10_000));
  const text = formatTerminationMessage(failure);
  t.true(Buffer.byteLength(text) <= 4096);
  t.is((JSON.parse(text) as { code: string }).code, 'IDENTITY_LOST');
});

test('connection errors read like the troubleshooting guide and say whether to retry', (t) => {
  const context = {
    url: 'https://cp.example:8443',
    caFile: '/etc/vaultpam/ca.pem',
    now: new Date('2026-01-01T00:00:00Z'),
  };
  const err = (code: string) => Object.assign(new Error(`raw ${code}`), { code });
  const unknownCa = classifyConnectionError(err('UNABLE_TO_VERIFY_LEAF_SIGNATURE'), context);
  t.is(unknownCa.code, 'CA_UNTRUSTED');
  t.regex(unknownCa.message, /x509: certificate signed by unknown authority/);
  t.regex(unknownCa.message, /\/etc\/vaultpam\/ca\.pem/);
  t.false(unknownCa.temporary);
  const selfSigned = classifyConnectionError(err('SELF_SIGNED_CERT_IN_CHAIN'), {
    ...context,
    caFile: undefined,
  });
  t.regex(selfSigned.message, /system CA roots/);

  const refused = classifyConnectionError(err('ECONNREFUSED'), context);
  t.is(refused.code, 'CONNECTION_REFUSED');
  t.regex(refused.message, /^connection refused to cp\.example:8443/);
  t.true(refused.temporary);

  const timeout = classifyConnectionError(err('REQUEST_TIMEOUT'), context);
  t.is(timeout.code, 'CONNECTION_TIMEOUT');
  t.regex(timeout.message, /timed out/);
  t.true(timeout.temporary);
  t.is(classifyConnectionError(err('ETIMEDOUT'), context).code, 'CONNECTION_TIMEOUT');
  t.is(classifyConnectionError(err('ENOTFOUND'), context).code, 'DNS_LOOKUP_FAILED');
  t.true(classifyConnectionError(err('ECONNRESET'), context).temporary);

  const expired = classifyConnectionError(err('CERT_HAS_EXPIRED'), context, {
    validity: { notBefore: new Date('2025-01-01T00:00:00Z'), notAfter: new Date('2025-12-31T21:00:00Z') },
  });
  t.is(expired.code, 'SERVER_CERT_EXPIRED');
  t.regex(expired.message, /has expired/);
  t.regex(expired.message, /local time is 2026-01-01T00:00:00.000Z/);

  const future = classifyConnectionError(err('CERT_NOT_YET_VALID'), context);
  t.is(future.code, 'SERVER_CERT_NOT_YET_VALID');

  const altName = classifyConnectionError(err('ERR_TLS_CERT_ALTNAME_INVALID'), context);
  t.is(altName.code, 'SERVER_NAME_MISMATCH');
  t.false(altName.temporary);
});

test('validity messages name clock skew with its size', (t) => {
  const validity = {
    notBefore: new Date('2026-01-01T02:00:00Z'),
    notAfter: new Date('2026-01-02T00:00:00Z'),
  };
  const early = validityMessage('the certificate', validity, new Date('2026-01-01T00:00:00Z'));
  t.regex(early, /not yet valid/);
  t.regex(
    early,
    /either this node's clock is 2 h 0 min behind, or the certificate was issued by a clock 2 h 0 min ahead/,
  );
  const late = validityMessage('the certificate', validity, new Date('2026-01-02T00:05:00Z'));
  t.regex(late, /has expired/);
  t.regex(late, /5 min 0 s past expiry/);
});

test("every log fragment of the runbook and the troubleshooting guide is in the agent's wording", (t) => {
  const context = {
    url: 'https://cp.example:8443',
    caFile: '/etc/vaultpam/ca.pem',
    now: new Date('2026-01-01T00:00:00Z'),
  };
  // Node's own messages for these codes, as the TLS and socket layers raise them.
  const raised: Record<string, string> = {
    UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'unable to verify the first certificate',
    UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'unable to get local issuer certificate',
    ECONNREFUSED: 'connect ECONNREFUSED 127.0.0.1:8443',
    ETIMEDOUT: 'connect ETIMEDOUT 10.0.0.1:8443',
    REQUEST_TIMEOUT: 'no answer within 30 s',
    ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: 'tlsv13 alert certificate required',
    CERT_HAS_EXPIRED: 'certificate has expired',
    CERT_NOT_YET_VALID: 'certificate is not yet valid',
  };
  const fragments: Array<[string, string]> = [
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'x509: certificate signed by unknown authority'],
    ['UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'unable to get local issuer certificate'],
    ['ECONNREFUSED', 'connection refused'],
    ['ETIMEDOUT', 'connection timed out'],
    ['REQUEST_TIMEOUT', 'connection timed out'],
    ['ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'client certificate required'],
    ['CERT_HAS_EXPIRED', 'certificate has expired or is not yet valid'],
    ['CERT_NOT_YET_VALID', 'certificate has expired or is not yet valid'],
  ];
  for (const [code, fragment] of fragments) {
    const error = Object.assign(new Error(raised[code]), { code });
    t.true(classifyConnectionError(error, context).message.includes(fragment), `${code} says "${fragment}"`);
  }
  const retired = enrollmentRejectedFailure(
    new CodedError('ENROLLMENT_TOKEN_INVALID', 'the enrollment token is not valid', { httpStatus: 401 }),
  );
  t.true(retired.message.includes('401 ENROLLMENT_TOKEN_INVALID'));
  const revoked = enrollmentRejectedFailure(
    new CodedError(
      'ENROLLMENT_TOKEN_REVOKED',
      'enrolment token revoked: the token was revoked before it was used',
      {
        httpStatus: 401,
      },
    ),
  );
  t.true(
    revoked.message.includes('enrolment token revoked'),
    'the control plane wording reaches the log line',
  );
});

test('a refused token the control plane says this connector paired with before is IdentityLoss, exit 10', (t) => {
  const fallback = enrollmentRejectedFailure(
    new CodedError(
      'ENROLLMENT_TOKEN_INVALID',
      'the enrollment token is not valid: this connector paired before',
      {
        httpStatus: 401,
        details: { previouslyPaired: true, path: '/v1/enroll' },
      },
    ),
  );
  t.is(fallback.failureClass, 'IdentityLoss');
  t.is(fallback.exitCode, EXIT_CODES.identityLoss);
  t.is(fallback.nextStep, NEXT_STEPS.identityLost);
  const unknown = enrollmentRejectedFailure(
    new CodedError('ENROLLMENT_TOKEN_INVALID', 'the enrollment token is not valid', {
      httpStatus: 401,
      details: { path: '/v1/enroll' },
    }),
  );
  t.is(unknown.failureClass, 'FirstBootBootstrap');
  t.is(unknown.exitCode, EXIT_CODES.firstBootBootstrap);
});

test('each refusal of the certificate gets its own code, class and next step, and only an identity gone for good may be replaced', (t) => {
  const now = new Date('2026-03-01T10:00:00Z');
  const context = {
    identity: {
      connectorId: 'team-a.db',
      serial: '3fac27e0',
      notBefore: new Date('2026-03-01T09:25:00Z'),
      notAfter: new Date('2026-03-01T10:30:00Z'),
      issuedBy: 'https://cp.example:8443',
    },
    controlPlaneUrl: 'https://cp.example:8443/',
    sanUriPrefix: 'spiffe://vaultpam.local/connector/',
    now,
  };
  const answer = (code: string, message: string, details?: Record<string, unknown>) =>
    new CodedError(code, message, { httpStatus: 401, ...(details ? { details } : {}) });
  const dates = (notAfter: string, serverTime: string) => ({
    notBefore: '2026-03-01T09:25:00.000Z',
    notAfter,
    serverTime,
  });
  const rows: Array<[CodedError, string, string, number, string, boolean, RegExp]> = [
    [
      answer('CLIENT_CERTIFICATE_REVOKED', 'client certificate rejected: revoked by guided recovery r-1', {
        revokedAt: '2026-03-01T09:50:00.000Z',
        requestId: 'r-1',
      }),
      'IDENTITY_REJECTED',
      'IdentityLoss',
      13,
      NEXT_STEPS.identityRejected,
      true,
      /^this connector's certificate \(serial 3fac27e0\) was revoked by guided recovery r-1 at 2026-03-01T09:50:00\.000Z/,
    ],
    [
      answer('CLIENT_CERTIFICATE_SUPERSEDED', 'client certificate rejected: replaced'),
      'IDENTITY_REJECTED',
      'IdentityLoss',
      13,
      NEXT_STEPS.identityRejected,
      true,
      /was replaced by a newer certificate/,
    ],
    [
      answer(
        'CLIENT_CERTIFICATE_UNKNOWN',
        'client certificate rejected: the client certificate belongs to no enrolled connector',
      ),
      'IDENTITY_REJECTED',
      'IdentityLoss',
      13,
      NEXT_STEPS.identityRejected,
      true,
      /belongs to no enrolled connector/,
    ],
    [
      answer(
        'CLIENT_CERTIFICATE_EXPIRED',
        'expired',
        dates('2026-03-01T10:30:00.000Z', '2026-03-01T12:03:00.000Z'),
      ),
      'CLOCK_SKEW',
      'Reconnect',
      14,
      NEXT_STEPS.clockSkewExpired,
      false,
      /^certificate has expired or is not yet valid: clock skew: the control plane's clock is 2 h 3 min ahead of this node's.*if the control plane's clock is right, the certificate has expired and a guided recovery follows once the clock is fixed/,
    ],
    [
      answer(
        'CLIENT_CERTIFICATE_NOT_YET_VALID',
        'not yet valid',
        dates('2026-03-01T10:30:00.000Z', '2026-03-01T07:00:00.000Z'),
      ),
      'CLOCK_SKEW',
      'Reconnect',
      14,
      NEXT_STEPS.clockSkew,
      false,
      /the control plane's clock is 3 h 0 min behind this node's/,
    ],
    [
      // Both clocks agree it expired (an outage longer than its lifetime).
      answer(
        'CLIENT_CERTIFICATE_EXPIRED',
        'expired',
        dates('2026-03-01T09:30:00.000Z', '2026-03-01T10:00:01.000Z'),
      ),
      'IDENTITY_EXPIRED',
      'IdentityLoss',
      13,
      NEXT_STEPS.identityExpired,
      true,
      /expired at 2026-03-01T09:30:00\.000Z, 30 min 0 s ago by this node's clock as by the control plane's/,
    ],
    [
      // An older control plane's date check, without its time: the skew is bounded by the dates.
      answer(
        'CLIENT_CERTIFICATE_REJECTED',
        'client certificate rejected: certificate has expired or is not yet valid',
      ),
      'CLOCK_SKEW',
      'Reconnect',
      14,
      NEXT_STEPS.clockSkewExpired,
      false,
      /the control plane's clock is at least 30 min 0 s ahead of this node's/,
    ],
    [
      answer(
        'CLIENT_CERTIFICATE_UNTRUSTED',
        'client certificate rejected: certificate signed by unknown authority',
        {
          reason: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
        },
      ),
      'IDENTITY_UNTRUSTED',
      'IdentityLoss',
      13,
      NEXT_STEPS.identityUntrusted,
      true,
      /^client certificate rejected: certificate signed by unknown authority: .*no longer trusts the CA/,
    ],
    [
      answer(
        'CLIENT_CERTIFICATE_REQUIRED',
        'client certificate required: this route needs a connector client certificate (mTLS)',
      ),
      'CLIENT_CERTIFICATE_NOT_RECEIVED',
      'Configuration',
      12,
      NEXT_STEPS.clientCertificateNotReceived,
      false,
      /^client certificate required: .*drops it/,
    ],
    [
      answer(
        'CLIENT_CERTIFICATE_REJECTED',
        'client certificate rejected: certificate SAN does not match expected pattern: expected a URI SAN spiffe://corp/c/<connector id>',
        { expectedSanUriPrefix: 'spiffe://corp/c/' },
      ),
      'SAN_URI_PREFIX_MISMATCH',
      'Configuration',
      12,
      NEXT_STEPS.sanUriPrefixMismatch,
      false,
      /^client certificate rejected: certificate SAN does not match expected pattern: the control plane expects URI SANs under spiffe:\/\/corp\/c\/, and this connector's certificate \(serial 3fac27e0\) carries spiffe:\/\/vaultpam\.local\/connector\/team-a\.db/,
    ],
    [
      answer('CLIENT_CERTIFICATE_REJECTED', 'client certificate rejected: something new'),
      'IDENTITY_REJECTED',
      'IdentityLoss',
      13,
      NEXT_STEPS.identityRejected,
      false,
      /^the control plane refused this connector's certificate: 401 CLIENT_CERTIFICATE_REJECTED/,
    ],
  ];
  for (const [error, code, failureClass, exitCode, nextStep, replaceable, reason] of rows) {
    const verdict = judgeCertificateRefusal(error, context);
    t.is(verdict.failure.code, code, error.code);
    t.is(String(verdict.failure.failureClass), failureClass, error.code);
    t.is(Number(verdict.failure.exitCode), exitCode, error.code);
    t.is(verdict.failure.nextStep, nextStep, error.code);
    t.is(verdict.replaceable, replaceable, error.code);
    t.regex(verdict.failure.message, reason);
  }
  // The same foreign CA from another control plane than the identity's is a configuration error.
  const elsewhere = judgeCertificateRefusal(
    answer('CLIENT_CERTIFICATE_UNTRUSTED', 'untrusted', { reason: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' }),
    { ...context, controlPlaneUrl: 'https://staging-cp.example:8443' },
  );
  t.is(elsewhere.failure.code, 'CONTROL_PLANE_MISMATCH');
  t.is(Number(elsewhere.failure.exitCode), 12);
  t.false(elsewhere.replaceable);
});

test('a first boot that never reaches the control plane gives up with the first-boot next step, not the reconnect one', async (t) => {
  const control = await startTestControlPlane(t);
  const connectorId = 'team-a.never-reached';
  const prepared = await prepareConnector(t, control, connectorId);
  const config = { ...configFor(control, connectorId, prepared), giveUpAfterMs: 100, retryMaxMs: 40 };
  await control.cp.close();
  const { agent, logs } = runAgent(t, config);
  const outcome = await agent.done;
  t.is(outcome.exitCode, 14);
  const message = JSON.parse(await readFile(config.terminationLog, 'utf8')) as TerminationMessage;
  t.is(message.failureClass, 'FirstBootBootstrap');
  t.is(message.code, 'CONTROL_PLANE_UNREACHABLE');
  t.is(message.nextStep, NEXT_STEPS.firstBootUnreachable);
  t.regex(message.nextStep, /^Never paired/);
  t.notRegex(message.nextStep, /identity bundle is still on durable storage/);
  assertNoSecrets(t, 'agent logs', logs.text(), [prepared.token]);
});
