// npm start's log lines as text: the readable form of what pino wrote, redaction included.
import test from 'ava';
import { readableDestination, readableLine } from '../../dev/bin/readable-log.ts';
import { createLogger } from '../../src/lib/logger.ts';

test('a component log line reads as time, level, component, message and its fields; secrets stay redacted', (t) => {
  const lines: string[] = [];
  const logger = createLogger({
    name: 'local-run',
    level: 'info',
    destination: readableDestination({ write: (text) => lines.push(text) }),
  });
  const secret = 'vpe_0123456789abcdef_s3cr3t';
  logger
    .child({ component: 'operator' })
    .warn({ connector: 'demo/dc1', token: secret, attempt: 2 }, 'the control plane refused the call');
  t.is(lines.length, 1);
  t.regex(
    lines[0] ?? '',
    /^\d\d:\d\d:\d\d WARN {2}operator: the control plane refused the call \(connector=demo\/dc1, token=\[REDACTED\], attempt=2\)\n$/,
  );
  t.false(lines.join('').includes(secret));
});

test('fields with spaces are quoted; a line that is not pino JSON passes as it is', (t) => {
  const line = JSON.stringify({
    level: 50,
    time: '2026-12-02T23:59:58.123Z',
    name: 'x',
    msg: 'failed',
    err: 'a b',
  });
  t.is(readableLine(line), '23:59:58 ERROR x: failed (err="a b")');
  t.is(readableLine('plain progress line'), 'plain progress line');
  t.is(readableLine('{"not":"pino"}'), '{"not":"pino"}');
});
