import test from 'ava';
import { parseTerminationMessage } from '../../src/operator/reconcile/pod-facts.ts';

test('the agent JSON termination message is read field by field', (t) => {
  const parsed = parseTerminationMessage(
    JSON.stringify({
      failureClass: 'IdentityLoss',
      code: 'IDENTITY_INCOMPLETE',
      reason: 'key.pem missing',
      nextStep: 'recover',
    }),
  );
  t.deepEqual(parsed, {
    failureClass: 'IdentityLoss',
    code: 'IDENTITY_INCOMPLETE',
    reason: 'key.pem missing',
    nextStep: 'recover',
  });
});

test('a log tail (FallbackToLogsOnError) yields the last fail-closed line, not the whole tail', (t) => {
  const tail = [
    'ry on durable storage)."}',
    '{"level":30,"msg":"starting"}',
    '{"level":50,"failureClass":"FirstBootBootstrap","code":"ENROLLMENT_TOKEN_MISSING","nextStep":"mount a token","msg":"fail closed: no identity and no token"}',
  ].join('\n');
  const parsed = parseTerminationMessage(tail);
  t.is(parsed.failureClass, 'FirstBootBootstrap');
  t.is(parsed.code, 'ENROLLMENT_TOKEN_MISSING');
  t.is(parsed.reason, 'fail closed: no identity and no token');
});

test('unknown text is kept short, and an unknown failure class is ignored', (t) => {
  t.is(parseTerminationMessage('x'.repeat(5000)).reason?.length, 300);
  t.deepEqual(
    parseTerminationMessage(JSON.stringify({ failureClass: 'Configuration', code: 'CONFIG_INVALID' })),
    { code: 'CONFIG_INVALID' },
  );
});

test('a termination message cannot forge lines, hide text or publish a secret', (t) => {
  const hostile = parseTerminationMessage(
    JSON.stringify({
      failureClass: 'IdentityLoss',
      code: 'IDENTITY_MISSING\nPhase: Online',
      reason: `lost\n\u001b[32mReady: True\u202e token vpe_${'a'.repeat(16)}_${'B9c'.repeat(15)}`,
      nextStep: `do nothing\r\n${'x'.repeat(5_000)}`,
    }),
  );
  // biome-ignore lint/suspicious/noControlCharactersInRegex: looking for control characters is the point
  const control = /[\u0000-\u001f\u007f-\u009f\u202e]/;
  t.notRegex(hostile.reason ?? '', control);
  t.notRegex(hostile.nextStep ?? '', control);
  t.false((hostile.reason ?? '').includes('vpe_aaaa'), hostile.reason);
  t.is(hostile.code, 'UNRECOGNIZED_CODE');
  t.true((hostile.nextStep ?? '').length <= 600);
  t.is(hostile.failureClass, 'IdentityLoss');
});
