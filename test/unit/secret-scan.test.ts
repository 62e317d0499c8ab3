import test from 'ava';
import { findSecrets } from '../helpers/secret-scan.ts';

test('finds a token and a PEM key body, ignores unrelated text', (t) => {
  const token = 'vpe_0123456789abcdef_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo';
  const key = `-----BEGIN PRIVATE KEY-----\n${'A'.repeat(64)}\n${'B'.repeat(20)}\n-----END PRIVATE KEY-----\n`;
  t.deepEqual(findSecrets(`{"msg":"minted ${token}"}`, [token, key]), [0]);
  t.deepEqual(findSecrets(`dump ${'A'.repeat(64)}`, [token, key]), [1]);
  t.deepEqual(findSecrets('{"msg":"minted [REDACTED]"}', [token, key]), []);
});
