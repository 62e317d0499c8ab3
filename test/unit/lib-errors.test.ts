// Turning any thrown value into a CodedError (src/lib/errors.ts), the one way the agent, the
// operator's follower and its reconciles wrap what they did not expect.
import test from 'ava';
import { asCodedError, CodedError } from '../../src/lib/errors.ts';

test('a CodedError is kept as it is', (t) => {
  const original = new CodedError('ENROLLMENT_TOKEN_INVALID', 'spent', { httpStatus: 401 });
  t.is(asCodedError(original, 'INTERNAL_ERROR'), original);
});

test('anything else becomes a temporary error with the given code, its message and the cause', (t) => {
  const socketError = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
  const wrapped = asCodedError(socketError, 'CONTROL_PLANE_UNREACHABLE');
  t.true(wrapped instanceof CodedError);
  t.is(wrapped.code, 'CONTROL_PLANE_UNREACHABLE');
  t.is(wrapped.message, 'connect ECONNREFUSED 127.0.0.1:1');
  t.true(wrapped.temporary);
  t.is(wrapped.cause, socketError);
  const fromString = asCodedError('a bare string', 'INTERNAL_ERROR');
  t.is(fromString.message, 'a bare string');
  t.true(fromString.temporary);
});
