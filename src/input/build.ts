/**
 * The one policy-input builder. Its output is the document opa-envoy-plugin builds
 * from an Envoy v3 CheckRequest (field names as protobuf JSON names, populated
 * fields only), plus input.agent and input.mcp. The HTTP PEP and the ext_authz
 * server both call buildInput, so a policy behaves the same whichever door a
 * request came through.
 */
import type { CanonicalRequest } from '../http/normalize.ts';
import { parseBody, parsePath, parsePathQuery } from './parse.ts';
import { extractMcp, type McpInput } from './mcp.ts';

/** input.agent. */
export interface AgentIdentity {
  readonly id: string;
  readonly role: string;
  readonly labels: Readonly<Record<string, string>>;
}

/** The request body as far as it was buffered for the policy. */
export interface BufferedBody {
  /** The bytes buffered (at most the configured limit). */
  readonly bytes: Buffer;
  /** True when the request had more bytes than were buffered. */
  readonly truncated: boolean;
}

/** The policy input document. */
export interface PolicyInput {
  attributes: {
    source: { address: { socketAddress: { address: string; portValue: number } } };
    destination: { address: { socketAddress: { address: string; portValue: number } } };
    request: {
      time: { seconds: number; nanos?: number };
      http: {
        id: string;
        method: string;
        headers: Record<string, string>;
        path: string;
        host: string;
        scheme: string;
        protocol: string;
        body?: string;
      };
    };
  };
  parsed_path: string[];
  parsed_query: Record<string, string[]>;
  parsed_body: unknown;
  truncated_body: boolean;
  version: { ext_authz: 'v3'; encoding: 'protojson' };
  agent: AgentIdentity;
  mcp?: McpInput;
}

function socketAddress(peer: { address: string; port: number }): { address: { socketAddress: { address: string; portValue: number } } } {
  return { address: { socketAddress: { address: peer.address, portValue: peer.port } } };
}

/** Builds the policy input for a canonical request. Throws TG_ERR_BAD_REQUEST on unparseable path, query or body. */
export function buildInput(request: CanonicalRequest, body: BufferedBody, agent: AgentIdentity, now = Date.now()): PolicyInput {
  // Envoy puts the pseudo-headers in CheckRequest headers; policies written for it read them.
  const headers: Record<string, string> = {
    ':authority': request.authority,
    ':method': request.method,
    ':path': request.path,
    ':scheme': request.scheme,
    ...request.headers,
  };
  delete headers.host;
  const bodyText = body.bytes.length === 0 ? '' : body.bytes.toString('utf8');
  const { parsed, truncated } = parseBody(headers, bodyText, body.truncated);
  const http: PolicyInput['attributes']['request']['http'] = {
    id: request.id,
    method: request.method,
    headers,
    path: request.path,
    host: request.authority,
    scheme: request.scheme,
    protocol: request.protocol,
  };
  if (bodyText !== '') http.body = bodyText;
  const seconds = Math.floor(now / 1000);
  const nanos = (now % 1000) * 1_000_000;
  const input: PolicyInput = {
    attributes: {
      source: socketAddress(request.source),
      destination: socketAddress(request.destination),
      request: { time: nanos === 0 ? { seconds } : { seconds, nanos }, http },
    },
    parsed_path: parsePath(request.path),
    parsed_query: parsePathQuery(request.path),
    parsed_body: parsed,
    truncated_body: truncated,
    version: { ext_authz: 'v3', encoding: 'protojson' },
    agent,
  };
  const mcp = parsed === null ? undefined : extractMcp(parsed);
  if (mcp !== undefined) input.mcp = mcp;
  return input;
}
