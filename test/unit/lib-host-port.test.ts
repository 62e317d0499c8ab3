// The one host:port grammar (src/lib/host-port.ts) of listen addresses and probe targets.
import test from 'ava';
import { parseHostPort } from '../../src/lib/host-port.ts';

test('host names, IPv4 and bracketed IPv6 addresses with a port', (t) => {
  const listen = (text: string) => parseHostPort(text, '--listen', { minPort: 0 });
  t.deepEqual(listen('0.0.0.0:8080'), { host: '0.0.0.0', port: 8080 });
  t.deepEqual(listen('localhost:0'), { host: 'localhost', port: 0 });
  t.deepEqual(listen('db.internal:65535'), { host: 'db.internal', port: 65535 });
  t.deepEqual(listen('[::1]:9443'), { host: '::1', port: 9443 });
  t.deepEqual(listen('[fe80::1%eth0]:22'), { host: 'fe80::1%eth0', port: 22 });
  t.deepEqual(listen(' 127.0.0.1:8081 '), { host: '127.0.0.1', port: 8081 });
});

test('anything else is a message naming the field, the text and what is expected', (t) => {
  for (const text of [
    'nowhere',
    ':8080',
    '::1:8080',
    'host:',
    'host:65536',
    'host:123456',
    'a b:1',
    '[::1]',
    'h:-1',
  ]) {
    const result = parseHostPort(text, '--listen', { minPort: 0 });
    t.deepEqual(
      result,
      {
        problem: `--listen: "${text}" is not host:port: it must be host:port with a port from 0 to 65535 (an IPv6 address in brackets, e.g. [::1]:8080)`,
      },
      text,
    );
  }
});

test('a target to connect to needs a port from 1', (t) => {
  t.deepEqual(parseHostPort('db:1', '"db=db:1"', { minPort: 1 }), { host: 'db', port: 1 });
  const zero = parseHostPort('db:0', '"db=db:0"', { minPort: 1 });
  t.regex(
    'problem' in zero ? zero.problem : '',
    /^"db=db:0": "db:0" is not host:port: .*a port from 1 to 65535/,
  );
});
