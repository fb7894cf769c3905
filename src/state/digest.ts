/**
 * What an approval is for: the same agent making the same call. The call is its method,
 * authority, path and a digest of its body. A JSON body is digested in a canonical form
 * (keys sorted), and a single JSON-RPC message without its `id`, so an MCP client that
 * retries `tools/call` with a new request id — as every client does — matches the call
 * that was approved; any change to the tool or an argument does not.
 */
import { createHash } from 'node:crypto';
import type { PolicyInput } from '../input/build.ts';

/** What identifies a call for approval. */
export interface CallDigest {
  readonly method: string;
  readonly authority: string;
  readonly path: string;
  readonly bodyDigest: string;
  readonly digest: string;
}

/** JSON with object keys sorted, so two spellings of one document digest alike. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    const obj = value as Record<string, unknown>;
    return `{${Object.keys(obj)
      .sort()
      .filter((k) => obj[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
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
