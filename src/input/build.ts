/**
 * The one policy-input builder. Its output is the document opa-envoy-plugin builds
 * from an Envoy v3 CheckRequest (envoyauth/request.go: the protobuf-reflection map of
 * the whole CheckRequest with JSON field names and populated fields only, plus
 * parsed_path, parsed_query, parsed_body, truncated_body, version), plus input.agent
 * and input.mcp. Both doors end in inputFromCheckRequest: the HTTP PEP first turns
 * its canonical request into CheckRequest-shaped attributes (buildInput), the
 * ext_authz server hands over the CheckRequest it received. So a policy behaves the
 * same whichever door a request came through.
 */
import type { CanonicalRequest } from '../http/normalize.ts';
import { parseBody, parsePath, parsePathQuery, type BodyReading } from './parse.ts';
import { withTransport, type McpInput } from './mcp.ts';

/** input.agent. */
export interface AgentIdentity {
  readonly id: string;
  readonly role: string;
  readonly labels: Readonly<Record<string, string>>;
  /** The verified SPIFFE ID (mTLS SVID, Envoy principal or XFCC), when the agent has one. */
  readonly spiffe_id?: string;
  /** The `iss` of the verified JWT the agent presented. */
  readonly issuer?: string;
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
  /** attributes.source.principal, when set (opa-envoy-plugin copies it for convenience). */
  source_principal?: string;
  agent: AgentIdentity;
  mcp?: McpInput;
}

/**
 * A CheckRequest as opa-envoy-plugin's protomap renders it: JSON field names,
 * populated fields only, int64/uint32/enums as numbers, bytes as base64 strings,
 * google.protobuf.Struct as plain JSON. Only the fields Tollgate reads are typed.
 */
export interface CheckRequestDocument {
  attributes?: {
    source?: { principal?: string; [key: string]: unknown };
    request?: {
      http?: {
        path?: string;
        headers?: Record<string, string>;
        body?: string;
        rawBody?: string;
        [key: string]: unknown;
      };
      [key: string]: unknown;
    };
    [key: string]: unknown;
  };
}

/** What the caller knows about the body beyond the CheckRequest itself. */
export interface BodyHints {
  /** raw_body as bytes (avoids decoding the base64 in the document again). */
  readonly rawBody?: Buffer;
  /** True when the caller buffered only part of the body (HTTP PEP past its limit). */
  readonly truncated?: boolean;
  /** How the body is read: 'envoy' (opa-envoy-plugin's parsed_body, the default here) or 'strict'. */
  readonly reading?: BodyReading;
  /** The buffer limit (proxy.maxRequestBytes), named when a JSON-RPC body is past it. */
  readonly limit?: number;
}

/** Options of buildInput. */
export interface BuildInputOptions {
  /** How the body is read: 'strict' (the default: one meaning or refused) or 'envoy' (opa-envoy-plugin's parsed_body). */
  readonly reading?: BodyReading;
  /** The buffer limit (proxy.maxRequestBytes), named when a JSON-RPC body is past it; the buffered length when absent. */
  readonly limit?: number;
}

/**
 * Builds the policy input from a CheckRequest document (opa-envoy-plugin's
 * RequestToInput) and the agent. Throws TG_ERR_BAD_REQUEST when the path, query or
 * body does not parse — where opa-envoy-plugin answers request_parse_error — and, in the
 * strict reading, the TollgateError naming why the body has no single reading.
 */
export function inputFromCheckRequest(
  checkRequest: CheckRequestDocument,
  agent: AgentIdentity,
  hints: BodyHints = {},
): PolicyInput {
  const http = checkRequest.attributes?.request?.http;
  const path = http?.path ?? '';
  const headers = http?.headers ?? {};
  const parsedPath = parsePath(path);
  const parsedQuery = parsePathQuery(path);
  const rawBody = hints.rawBody ?? (http?.rawBody === undefined ? undefined : Buffer.from(http.rawBody, 'base64'));
  const { parsed, truncated, mcp } = parseBody(headers, http?.body ?? '', hints.truncated ?? false, rawBody, {
    reading: hints.reading ?? 'envoy',
    limit: hints.limit,
  });
  const input = {
    ...checkRequest,
    parsed_path: parsedPath,
    parsed_query: parsedQuery,
    parsed_body: parsed,
    truncated_body: truncated,
    version: { ext_authz: 'v3', encoding: 'protojson' },
    agent,
  } as unknown as PolicyInput;
  const principal = checkRequest.attributes?.source?.principal;
  if (principal !== undefined && principal !== '') input.source_principal = principal;
  if (mcp !== undefined) input.mcp = withTransport(mcp, headers, parsed);
  return input;
}

function socketAddress(peer: { address: string; port: number }): {
  address: { socketAddress: { address: string; portValue: number } };
} {
  return { address: { socketAddress: { address: peer.address, portValue: peer.port } } };
}

/** The CheckRequest-shaped attributes Envoy would send for a canonical request. */
export function attributesFromRequest(
  request: CanonicalRequest,
  body: BufferedBody,
  now = Date.now(),
): PolicyInput['attributes'] {
  // Envoy puts the pseudo-headers in CheckRequest headers; policies written for it read them.
  // Built without `delete`, which would turn the object into a dictionary and make every
  // JSON.stringify of the input several times slower.
  const headers: Record<string, string> = {
    ':authority': request.authority,
    ':method': request.method,
    ':path': request.path,
    ':scheme': request.scheme,
  };
  for (const name of Object.keys(request.headers)) {
    if (name === 'host') continue;
    const value = request.headers[name]!;
    if (name === '__proto__')
      Object.defineProperty(headers, name, { value, enumerable: true, writable: true, configurable: true });
    else headers[name] = value;
  }
  const http: PolicyInput['attributes']['request']['http'] = {
    id: request.id,
    method: request.method,
    headers,
    path: request.path,
    host: request.authority,
    scheme: request.scheme,
    protocol: request.protocol,
  };
  if (body.bytes.length !== 0) http.body = body.bytes.toString('utf8');
  const seconds = Math.floor(now / 1000);
  const nanos = (now % 1000) * 1_000_000;
  return {
    source: socketAddress(request.source),
    destination: socketAddress(request.destination),
    request: { time: nanos === 0 ? { seconds } : { seconds, nanos }, http },
  };
}

/**
 * Builds the policy input for a canonical request (HTTP PEP), reading the body strictly
 * unless options say otherwise. Throws TG_ERR_BAD_REQUEST on unparseable path, query or
 * body, and TG_ERR_AMBIGUOUS_BODY / TG_ERR_UNSUPPORTED_MEDIA / TG_ERR_BODY_TOO_LARGE when
 * the body has no single reading (docs/body-reading.md).
 */
export function buildInput(
  request: CanonicalRequest,
  body: BufferedBody,
  agent: AgentIdentity,
  now = Date.now(),
  options: BuildInputOptions = {},
): PolicyInput {
  return inputFromCheckRequest({ attributes: attributesFromRequest(request, body, now) }, agent, {
    rawBody: body.bytes,
    truncated: body.truncated,
    reading: options.reading ?? 'strict',
    limit: options.limit,
  });
}
