/**
 * Policy inputs for the in-process benches, built by Tollgate's own normaliser and input
 * builder from an agent's request: its fixed headers (Host from the target, a user agent,
 * Accept, a sampled traceparent), any `extra` header pairs, and the body.
 */
import { randomUUID } from 'node:crypto';
import { normalizeRequest } from '../src/http/normalize.ts';
import { buildInput, type PolicyInput } from '../src/input/build.ts';

/** The input of `method` on the absolute-form `target` (`http://host[:port]/path`). */
export function benchInput(method: string, target: string, extra: string[] = [], body = ''): PolicyInput {
  const request = normalizeRequest({
    id: randomUUID(),
    method,
    target,
    rawHeaders: [
      'Host',
      new URL(target).host,
      'User-Agent',
      'agent-sdk/1.4 (python 3.12)',
      'Accept',
      'application/json',
      'traceparent',
      '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      ...extra,
    ],
    httpVersion: '1.1',
    scheme: 'http',
    source: { address: '10.0.3.17', port: 40312 },
    destination: { address: '10.0.9.4', port: 8080 },
  });
  return buildInput(
    request,
    { bytes: Buffer.from(body), truncated: false },
    { id: 'support-bot', role: 'support', labels: {} },
  );
}
