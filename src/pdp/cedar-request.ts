/**
 * The mapping from Tollgate's policy input to Cedar requests (pure; cedar.ts runs them):
 *
 * - principal `Agent::"<agent id>"`, attributes `{id, role}`, tags = the agent's labels,
 *   parent `Role::"<role>"` when the schema lets Agent be `in [Role]`.
 * - action `Action::"tools/call"` for an MCP tools/call (one request per call of a
 *   batch), else `Action::"<HTTP METHOD>"` (`GET`, `POST`, `CONNECT` for tunnels…).
 * - resource `Tool::"<tool name>"` (parent `Destination::"<host>"`) for tools/call, else
 *   `Destination::"<host>"`; host lowercase without port or trailing dot.
 * - context: `method`, `host`, `path` (decoded, lowercase, empty segments dropped, no
 *   query: "/V1//refunds/" is "/v1/refunds"), `rawPath`, `query`, `headers`, `body`
 *   (the parsed JSON or form body), `bodyTruncated`, `mcpMethod`, `tool`, `arguments`
 *   (the tool call's arguments), `now` and `invalid`.
 *
 * Cedar is typed and a request must match the schema exactly, so the context and the
 * entity attributes are projected onto the types the schema declares: undeclared
 * attributes are left out, and each value is converted to its declared type: a JSON
 * number or a plain decimal string ("900", "500.01") to `Long` (integers) or `decimal`
 * (at most 4 fractional digits, Cedar's precision), an ISO time to `datetime`, arrays
 * to sets. A value that cannot be converted is left out and its path ("body.amount")
 * put in the `invalid` set, so a policy can deny on it; a required attribute that
 * cannot be given makes the decision fail (failure mode).
 */

/** A Cedar JSON value (entity refs and extension calls in their __entity/__extn forms). */
export type CedarValue =
  | string
  | number
  | boolean
  | CedarValue[]
  | { readonly [key: string]: CedarValue }
  | { readonly __extn: { readonly fn: string; readonly arg: string } };

/** A Cedar entity in its JSON form. */
export interface CedarEntity {
  readonly uid: { readonly type: string; readonly id: string };
  readonly attrs: Record<string, CedarValue>;
  readonly parents: { readonly type: string; readonly id: string }[];
  readonly tags?: Record<string, CedarValue>;
}

/** One Cedar authorization request. */
export interface CedarRequest {
  readonly principal: { readonly type: string; readonly id: string };
  readonly action: { readonly type: 'Action'; readonly id: string };
  readonly resource: { readonly type: string; readonly id: string };
  readonly context: Record<string, CedarValue>;
  readonly entities: CedarEntity[];
}

/** A type as the schema's JSON form spells it. */
export interface SchemaType {
  readonly type: string;
  readonly name?: string;
  readonly element?: SchemaType;
  readonly attributes?: Record<string, SchemaType & { readonly required?: boolean }>;
}

/** What the mapping needs from the schema (its JSON form, empty namespace). */
export interface SchemaView {
  readonly commonTypes: Record<string, SchemaType>;
  readonly entityTypes: Record<
    string,
    { readonly memberOfTypes?: string[]; readonly shape?: SchemaType; readonly tags?: SchemaType }
  >;
  readonly actions: Record<string, { readonly appliesTo?: { readonly context?: SchemaType } }>;
}

const PRIMITIVES: Record<string, string> = {
  String: 'String',
  Long: 'Long',
  Bool: 'Boolean',
  Boolean: 'Boolean',
  decimal: 'decimal',
  datetime: 'datetime',
  ipaddr: 'ipaddr',
  duration: 'duration',
};

/** Resolves common-type and primitive names to a concrete type. */
function resolve(schema: SchemaView, type: SchemaType): SchemaType {
  let current = type;
  for (let i = 0; i < 16; i++) {
    if (current.type === 'EntityOrCommon' || current.type === 'CommonType') {
      const name = current.name ?? '';
      const common = schema.commonTypes[name];
      if (common !== undefined) {
        current = common;
        continue;
      }
      const primitive = PRIMITIVES[name];
      if (primitive !== undefined) return { type: primitive };
      return { type: 'Entity', name };
    }
    if (current.type === 'Extension') return { type: current.name ?? '' };
    // A context may name a common type directly: {"type": "HttpContext"}.
    const named = schema.commonTypes[current.type];
    if (named !== undefined) {
      current = named;
      continue;
    }
    return current;
  }
  return current;
}

const PLAIN_DECIMAL = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?$/;
const LONG_MAX = 9223372036854775807n;

/** A number or plain decimal string as its decimal text, or undefined. */
function decimalText(value: unknown): string | undefined {
  if (typeof value === 'number' && Number.isFinite(value)) {
    const text = String(value);
    return PLAIN_DECIMAL.test(text) ? text : undefined;
  }
  return typeof value === 'string' && PLAIN_DECIMAL.test(value) ? value : undefined;
}

/** Marks a value that could not be converted. */
const INVALID = Symbol('invalid');

/**
 * Converts a JSON value to a declared Cedar type; INVALID when it cannot. `invalid`
 * collects the paths of optional attributes left out because their value did not fit.
 */
export function project(
  schema: SchemaView,
  declared: SchemaType,
  value: unknown,
  path: string,
  invalid: Set<string>,
): CedarValue | typeof INVALID {
  const type = resolve(schema, declared);
  switch (type.type) {
    case 'String':
      return typeof value === 'string' ? value : INVALID;
    case 'Boolean':
      return typeof value === 'boolean' ? value : INVALID;
    case 'Long': {
      const text = decimalText(value);
      if (text === undefined || text.includes('.')) return INVALID;
      const big = BigInt(text);
      // Cedar's JSON reader takes Longs as JSON numbers: only safe integers convert exactly.
      if (big > LONG_MAX || big < -LONG_MAX - 1n || !Number.isSafeInteger(Number(text))) return INVALID;
      return Number(text);
    }
    case 'decimal': {
      const text = decimalText(value);
      if (text === undefined) return INVALID;
      const [whole, fraction = '0'] = text.split('.');
      // Cedar's decimal holds 4 fractional digits: more would be rounded, so it is refused.
      if (fraction.length > 4) return INVALID;
      return { __extn: { fn: 'decimal', arg: `${whole}.${fraction}` } };
    }
    case 'datetime':
    case 'ipaddr':
    case 'duration':
      return typeof value === 'string' ? { __extn: { fn: type.type, arg: value } } : INVALID;
    case 'Set': {
      if (!Array.isArray(value) || type.element === undefined) return INVALID;
      const out: CedarValue[] = [];
      for (const [i, item] of value.entries()) {
        const converted = project(schema, type.element, item, `${path}[${i}]`, invalid);
        if (converted === INVALID) return INVALID;
        out.push(converted);
      }
      return out;
    }
    case 'Record': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return INVALID;
      const out: Record<string, CedarValue> = {};
      for (const [name, attribute] of Object.entries(type.attributes ?? {})) {
        const child = path === '' ? name : `${path}.${name}`;
        const raw = Object.hasOwn(value, name) ? (value as Record<string, unknown>)[name] : undefined;
        const converted = raw === undefined ? INVALID : project(schema, attribute, raw, child, invalid);
        if (converted !== INVALID) {
          out[name] = converted;
          continue;
        }
        if (raw !== undefined) invalid.add(child);
        if (attribute.required !== false) return INVALID;
      }
      return out;
    }
    default:
      return INVALID;
  }
}

function get(doc: unknown, ...path: string[]): unknown {
  let node = doc;
  for (const key of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/** The destination host as request.rego reads it: lowercase, no port, brackets or trailing dot. */
export function hostOf(authority: string): string {
  let host = authority.toLowerCase();
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    host = end > 0 ? host.slice(1, end) : host;
  } else {
    const parts = host.split(':');
    if (parts.length === 2) host = parts[0]!;
  }
  return host.endsWith('.') ? host.slice(0, -1) : host;
}

/** The path as request.rego's path_segments reads it, joined: "/V1//refunds/?x" is "/v1/refunds". */
export function pathOf(input: Record<string, unknown>): { path: string; rawPath: string } {
  const raw = String(get(input, 'attributes', 'request', 'http', 'path') ?? '');
  const rawPath = raw.split('?')[0] ?? '';
  const segments = Array.isArray(input.parsed_path) ? (input.parsed_path as unknown[]).map(String) : rawPath.split('/');
  return {
    path: `/${segments
      .filter((s) => s !== '')
      .map((s) => s.toLowerCase())
      .join('/')}`,
    rawPath,
  };
}

/** The problem with a request that cannot be mapped, named for the error message. */
export class MappingError extends Error {}

/** One Cedar call of an input: an action on a resource with its context source. */
interface Call {
  readonly action: string;
  readonly tool?: string;
  readonly arguments: unknown;
  readonly mcpMethod: string;
}

function callsOf(input: Record<string, unknown>, method: string): Call[] {
  const mcp = input.mcp as Record<string, unknown> | undefined;
  if (mcp?.method === 'tools/call') {
    const tool = get(mcp, 'tool', 'name');
    if (typeof tool === 'string')
      return [{ action: 'tools/call', tool, arguments: get(mcp, 'tool', 'arguments') ?? {}, mcpMethod: 'tools/call' }];
  }
  if (mcp?.method === 'batch' && Array.isArray(mcp.batch)) {
    const calls = (mcp.batch as Record<string, unknown>[]).flatMap((m) => {
      const tool = get(m, 'tool', 'name');
      return m.method === 'tools/call' && typeof tool === 'string'
        ? [{ action: 'tools/call', tool, arguments: get(m, 'tool', 'arguments') ?? {}, mcpMethod: 'tools/call' }]
        : [];
    });
    if (calls.length > 0) return calls;
  }
  const mcpMethod = typeof mcp?.method === 'string' ? mcp.method : '';
  return [{ action: method, arguments: {}, mcpMethod }];
}

function entityAttrs(
  schema: SchemaView,
  type: string,
  attrs: Record<string, unknown>,
  what: string,
): Record<string, CedarValue> {
  const shape = schema.entityTypes[type]?.shape;
  if (shape === undefined) return {};
  const converted = project(schema, shape, attrs, '', new Set());
  if (converted === INVALID) throw new MappingError(`${what}: its attributes do not fit the schema's ${type} shape`);
  return converted as Record<string, CedarValue>;
}

/**
 * The Cedar requests for an input (one per MCP tool call of a batch, else one), with the
 * request's own entities; `fileEntities` (the configured ones) win over built ones with
 * the same uid. Throws MappingError when a required attribute cannot be given.
 */
export function cedarRequests(
  schema: SchemaView,
  input: Record<string, unknown>,
  fileEntities: readonly CedarEntity[],
  now: number,
): CedarRequest[] {
  const http = (get(input, 'attributes', 'request', 'http') ?? {}) as Record<string, unknown>;
  const method = String(http.method ?? '').toUpperCase();
  const host = hostOf(String(http.host ?? ''));
  const { path, rawPath } = pathOf(input);
  const agent = (input.agent ?? {}) as { id?: unknown; role?: unknown; labels?: unknown };
  const agentId = typeof agent.id === 'string' ? agent.id : '';
  const role = typeof agent.role === 'string' ? agent.role : '';
  const labels = (typeof agent.labels === 'object' && agent.labels !== null ? agent.labels : {}) as Record<
    string,
    unknown
  >;
  // Cedar names who does what: without an agent id or a method there is no request to ask.
  if (agentId === '') throw new MappingError('the request has no agent id, so it has no Cedar principal');
  if (method === '') throw new MappingError('the request has no HTTP method, so it has no Cedar action');
  const seconds = get(input, 'attributes', 'request', 'time', 'seconds');
  const at = typeof seconds === 'number' ? seconds * 1000 : now;
  const known = new Set(fileEntities.map((e) => `${e.uid.type}::${e.uid.id}`));
  const agentType = schema.entityTypes.Agent;
  const agentEntity: CedarEntity = {
    uid: { type: 'Agent', id: agentId },
    attrs: entityAttrs(schema, 'Agent', { id: agentId, role, labels }, `agent ${JSON.stringify(agentId)}`),
    parents: agentType?.memberOfTypes?.includes('Role') && role !== '' ? [{ type: 'Role', id: role }] : [],
    ...(agentType?.tags === undefined
      ? {}
      : {
          tags: Object.fromEntries(
            Object.entries(labels).flatMap(([k, v]) => {
              const converted = project(schema, agentType.tags!, v, k, new Set());
              return converted === INVALID ? [] : [[k, converted]];
            }),
          ),
        }),
  };
  const destination: CedarEntity = {
    uid: { type: 'Destination', id: host },
    attrs: entityAttrs(schema, 'Destination', { host }, `destination ${host}`),
    parents: [],
  };
  const body = input.parsed_body;
  const base = {
    method,
    host,
    path,
    rawPath,
    query: input.parsed_query ?? {},
    headers: http.headers ?? {},
    body: typeof body === 'object' && body !== null && !Array.isArray(body) ? body : {},
    bodyTruncated: input.truncated_body === true,
    now: new Date(at).toISOString(),
  };
  return callsOf(input, method).map((call) => {
    const entities: CedarEntity[] = [agentEntity, destination];
    let resource = destination.uid;
    if (call.tool !== undefined) {
      const toolType = schema.entityTypes.Tool;
      resource = { type: 'Tool', id: call.tool };
      entities.push({
        uid: resource,
        attrs: entityAttrs(schema, 'Tool', { name: call.tool, server: host }, `tool ${call.tool}`),
        parents: toolType?.memberOfTypes?.includes('Destination') ? [destination.uid] : [],
      });
    }
    const declared = schema.actions[call.action]?.appliesTo?.context;
    let context: Record<string, CedarValue> = {};
    if (declared !== undefined) {
      const invalid = new Set<string>();
      const full = {
        ...base,
        mcpMethod: call.mcpMethod,
        tool: call.tool ?? '',
        arguments: typeof call.arguments === 'object' && call.arguments !== null ? call.arguments : {},
      };
      const first = project(schema, declared, { ...full, invalid: [] }, '', invalid);
      if (first === INVALID)
        throw new MappingError(`the request does not fit the context the schema declares for action "${call.action}"`);
      context = first as Record<string, CedarValue>;
      if ('invalid' in context) context = { ...context, invalid: [...invalid].sort() };
    }
    return {
      principal: agentEntity.uid,
      action: { type: 'Action', id: call.action },
      resource,
      context,
      entities: entities.filter((e) => !known.has(`${e.uid.type}::${e.uid.id}`)),
    };
  });
}
