// The error catalogue and the README agree both ways (every code documented, no stale ones).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { ERROR_CODES, TollgateError, wrapError } from '../src/errors.ts';

t.test('every error code is documented in the README and every documented code exists', async (t) => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const documented = new Set(readme.match(/TG_ERR_[A-Z_]+/g));
  for (const code of Object.keys(ERROR_CODES)) t.ok(documented.has(code), `${code} is in the README`);
  for (const code of documented) t.ok(code in ERROR_CODES, `${code} from the README exists`);
});

t.test('wrapError keeps the cause and converts thrown strings', async (t) => {
  const err = wrapError('TG_ERR_POLICY_EVAL', 'evaluating', 'var assignment conflict');
  t.equal(err.code, 'TG_ERR_POLICY_EVAL');
  t.equal(err.message, 'evaluating: var assignment conflict');
  t.equal(err.cause, 'var assignment conflict');
  const inner = new TollgateError('TG_ERR_BAD_REQUEST', 'x');
  t.equal(wrapError('TG_ERR_UPSTREAM', 'y', inner), inner, 'a TollgateError passes through unchanged');
  t.equal(wrapError('TG_ERR_UPSTREAM', 'y', { code: 1 }).message, 'y: {"code":1}');
  t.equal(new TollgateError('TG_ERR_IDENTITY', 'z').status, 401);
});

t.test("errors a request makes carry no stack trace; Tollgate's own failures do", async (t) => {
  const fault = new TollgateError('TG_ERR_BAD_REQUEST', 'path is not percent-encoded');
  t.equal(fault.stack, 'TollgateError: path is not percent-encoded', 'only the message');
  const own = new TollgateError('TG_ERR_POLICY_EVAL', 'evaluating failed');
  t.match(own.stack, /\n\s+at /, 'a policy failure keeps where it happened');
  t.ok(Error.stackTraceLimit > 0, 'the process-wide limit is left as it was');
  t.equal(new Error('x').stack?.includes('\n    at '), true);
});
