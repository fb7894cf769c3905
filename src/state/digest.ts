/**
 * What an approval is for: the same agent making the same call. The call is its method,
 * authority, path and a digest of its body. A JSON body is digested in a canonical form
 * (keys sorted), and a single JSON-RPC message without its `id`, so an MCP client that
 * retries `tools/call` with a new request id — as every client does — matches the call
 * that was approved; any change to the tool or an argument does not.
 */
import { createHash } from 'node:crypto';
import type { PolicyInput } from '../input/build.ts';
import { canonicalJson } from '../json/canonical.ts';

/** What identifies a call for approval. */
export interface CallDigest {
  readonly method: string;
  readonly authority: string;
  readonly path: string;
  readonly bodyDigest: string;
  readonly digest: string;
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** The digest of a call as the policy saw it. */
export function callDigest(input: PolicyInput): CallDigest {
  const http = input.attributes.request.http;
  const parsed = input.parsed_body;
  let body: string;
  if (typeof parsed === 'object' && parsed !== null) {
    const single = !Array.isArray(parsed) && (parsed as Record<string, unknown>).jsonrpc === '2.0';
    body = canonicalJson(single ? { ...(parsed as Record<string, unknown>), id: undefined } : parsed);
  } else {
    body = http.body ?? '';
  }
  const bodyDigest = sha256(body);
  const method = http.method;
  const authority = http.host;
  const path = http.path;
  return { method, authority, path, bodyDigest, digest: sha256(`${method}\n${authority}\n${path}\n${bodyDigest}`) };
}
