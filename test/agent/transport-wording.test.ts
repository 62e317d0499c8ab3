// Every transport failure's message BEGINS with the troubleshooting guide's fragment, as
// docs/connector-agent.md promises, so a search for the guide's line finds the agent's. The raw
// errors are the ones node raises (codes and OpenSSL text as captured from real sockets; the
// transport-*.test.ts files produce each of them for real).
import test from 'ava';
import {
  type ConnectionContext,
  classifyConnectionError,
  validityMessage,
} from '../../src/agent/connection-errors.ts';
import { isPlainLine } from './transport-servers.ts';

const context: ConnectionContext = {
  url: 'https://cp.example:8443',
  caFile: '/etc/vaultpam/ca.pem',
  now: new Date('2026-01-01T00:00:00Z'),
  requestTimeoutMs: 30_000,
};

const openssl = (reason: string, alert?: number) =>
  `write EPROTO 408395B07B7F0000:error:0A00042E:SSL routines:ssl3_read_bytes:${reason}:` +
  `../deps/openssl/openssl/ssl/record/rec_layer_s3.c:918:${alert === undefined ? '' : `SSL alert number ${alert}`}\n`;

const raised = (code: string, message: string) => Object.assign(new Error(message), { code });

const cases: Array<[string, Error, Partial<ConnectionContext>, string]> = [
  [
    'refused',
    raised('ECONNREFUSED', 'connect ECONNREFUSED 10.0.0.1:8443'),
    {},
    'connection refused to cp.example:8443',
  ],
  [
    'dropped connect',
    raised('REQUEST_TIMEOUT', 'no answer within 30000 ms'),
    { phase: 'connecting' },
    'connection timed out after 30s reaching cp.example:8443 while connecting',
  ],
  [
    'silent TLS port',
    raised('REQUEST_TIMEOUT', 'no answer within 30000 ms'),
    { phase: 'tls handshake' },
    'connection timed out after 30s reaching cp.example:8443 during the tls handshake',
  ],
  [
    'kernel connect timeout',
    raised('ETIMEDOUT', 'connect ETIMEDOUT 10.0.0.1:8443'),
    {},
    'connection timed out',
  ],
  [
    'unknown CA',
    raised(
      'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      'unable to verify the first certificate; if the root CA is installed locally, try running Node.js with --use-system-ca',
    ),
    {},
    'x509: certificate signed by unknown authority: ',
  ],
  [
    'no local issuer',
    raised('UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'unable to get local issuer certificate'),
    {},
    'x509: certificate signed by unknown authority: ',
  ],
  [
    'expired server certificate',
    raised('CERT_HAS_EXPIRED', 'certificate has expired'),
    {},
    'certificate has expired or is not yet valid: ',
  ],
  [
    'server certificate from the future',
    raised('CERT_NOT_YET_VALID', 'certificate is not yet valid'),
    {},
    'certificate has expired or is not yet valid: ',
  ],
  [
    'host name not in the certificate',
    raised('ERR_TLS_CERT_ALTNAME_INVALID', "Hostname/IP does not match certificate's altnames"),
    {},
    'tls handshake failed: certificate verify failed: ',
  ],
  ['plain HTTP port', raised('EPROTO', openssl('wrong version number')), {}, 'tls handshake failed: '],
  [
    'old TLS only',
    raised('EPROTO', openssl('tlsv1 alert protocol version', 70)),
    {},
    'tls handshake failed: no TLS version in common: ',
  ],
  [
    'certificate required',
    raised('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', openssl('tlsv13 alert certificate required', 116)),
    {},
    'client certificate required: ',
  ],
  [
    'client certificate from an unknown CA',
    raised('ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', openssl('tlsv1 alert unknown ca', 48)),
    { clientCertificate: true },
    'client certificate rejected: certificate signed by unknown authority: ',
  ],
  [
    'bad client certificate (TLS 1.2: EPROTO, no ERR_SSL_ code)',
    raised('EPROTO', openssl('sslv3 alert bad certificate', 42)),
    { clientCertificate: true },
    'client certificate rejected: bad certificate: ',
  ],
  [
    'expired client certificate',
    raised('ERR_SSL_SSL/TLS_ALERT_CERTIFICATE_EXPIRED', openssl('ssl/tls alert certificate expired', 45)),
    { clientCertificate: true },
    'client certificate rejected: certificate expired: ',
  ],
];

for (const [situation, error, extra, fragment] of cases) {
  test(`${situation}: the message begins with "${fragment}" and is one plain line`, (t) => {
    const coded = classifyConnectionError(error, { ...context, ...extra });
    t.true(coded.message.startsWith(fragment), coded.message);
    t.true(isPlainLine(coded.message), coded.message);
    t.true(coded.details?.transport === true);
  });
}

test('a validity judgement the local clock disagrees with still begins with the guide fragment', (t) => {
  const validity = {
    notBefore: new Date('2025-12-31T00:00:00Z'),
    notAfter: new Date('2026-01-02T00:00:00Z'),
  };
  t.true(
    validityMessage('the certificate', validity, context.now).startsWith(
      'certificate has expired or is not yet valid: ',
    ),
  );
});
