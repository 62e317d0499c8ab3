import test from 'ava';
import { captureLogs } from '../helpers/log-capture.ts';
import { assertNoSecrets } from '../helpers/secret-scan.ts';

test('secret keys are redacted at any depth the logger knows', (t) => {
  const logs = captureLogs();
  const token = 'vpe_feedfacefeedface_c2VjcmV0LXZhbHVlLXRoYXQtbXVzdC1ub3QtbGVhaw';
  logs.logger.info({ token, request: { token }, nested: { body: { token } } }, 'minted');
  logs.logger.info({ headers: { authorization: `Bearer ${token}` } }, 'request');
  assertNoSecrets(t, 'log output', logs.text(), [token]);
  t.is(logs.records().length, 2);
  t.is(logs.records()[0]?.token, '[REDACTED]');
});
