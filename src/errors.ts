/**
 * The one error catalogue. Every error Tollgate raises carries a stable code from
 * this closed union, a lowercase message that names the field or value, and the
 * underlying `cause` when it wraps a third-party failure.
 */

/** Stable error codes with the HTTP status a local reply uses for each. */
export const ERROR_CODES = {
  TG_ERR_CONFIG_INVALID: { status: 500, summary: 'the configuration file is invalid' },
  TG_ERR_BUNDLE_INVALID: { status: 500, summary: 'a policy bundle could not be read or instantiated' },
  TG_ERR_POLICY_EVAL: { status: 500, summary: 'the policy failed while evaluating an input' },
  TG_ERR_POLICY_RESULT: {
    status: 500,
    summary: 'the policy returned a result that does not follow the result contract',
  },
  TG_ERR_POLICY_UNDEFINED: { status: 500, summary: 'the decision path is undefined for the input' },
  TG_ERR_PDP_TIMEOUT: { status: 500, summary: 'the PDP did not answer within its deadline' },
  TG_ERR_PDP_UNAVAILABLE: { status: 500, summary: 'the PDP could not be reached' },
  TG_ERR_BAD_REQUEST: { status: 400, summary: 'the request is malformed or ambiguous' },
  TG_ERR_AMBIGUOUS_TARGET: {
    status: 400,
    summary: 'the host or path can be read in more than one way by the servers behind Tollgate',
  },
  TG_ERR_AMBIGUOUS_BODY: {
    status: 400,
    summary:
      'the body can be read in more than one way (duplicate or case-colliding keys, lossy numbers, invalid UTF-8, malformed JSON-RPC)',
  },
  TG_ERR_UNSUPPORTED_MEDIA: {
    status: 415,
    summary: 'the body uses a charset or content coding the policy cannot read as the tool will',
  },
  TG_ERR_PROTOCOL_REFUSED: {
    status: 400,
    summary:
      'the bytes are neither HTTP nor TLS, or the upgrade is not to WebSocket, and the policy did not allow them',
  },
  TG_ERR_BODY_TOO_LARGE: {
    status: 413,
    summary: 'a body the policy must read whole (JSON-RPC) is larger than the buffer limit',
  },
  TG_ERR_HEADERS_TOO_LARGE: { status: 431, summary: 'the request headers exceed the limit' },
  TG_ERR_IDENTITY: { status: 401, summary: 'the agent identity (token, SVID, Envoy principal) failed verification' },
  TG_ERR_UNSUPPORTED: { status: 501, summary: 'the request uses a feature Tollgate does not serve' },
  TG_ERR_UPSTREAM: { status: 502, summary: 'the upstream could not be reached or failed' },
  TG_ERR_UPSTREAM_TIMEOUT: { status: 504, summary: 'the upstream did not answer in time' },
  TG_ERR_INPUT_INVALID: { status: 400, summary: 'an input document given to the CLI is invalid' },
  TG_ERR_STATE_UNAVAILABLE: {
    status: 503,
    summary: 'the state store (budgets, rates, approvals) failed, missed its deadline or its circuit is open',
  },
} as const;

/** A Tollgate error code. */
export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * Codes for what a request itself got wrong: expected at the door, answered with a reason,
 * and thrown by the parsers for every malformed request. Their stack trace would only name the
 * parser line that noticed, and capturing it costs tens of microseconds per request (a flood
 * of malformed requests would pay it for each), so these errors carry none.
 */
const REQUEST_FAULTS: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'TG_ERR_BAD_REQUEST',
  'TG_ERR_AMBIGUOUS_TARGET',
  'TG_ERR_AMBIGUOUS_BODY',
  'TG_ERR_UNSUPPORTED_MEDIA',
  'TG_ERR_PROTOCOL_REFUSED',
  'TG_ERR_BODY_TOO_LARGE',
  'TG_ERR_HEADERS_TOO_LARGE',
]);

/** The base class of every error Tollgate throws. */
export class TollgateError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    const limit = Error.stackTraceLimit;
    if (REQUEST_FAULTS.has(code)) Error.stackTraceLimit = 0;
    try {
      super(message, options);
    } finally {
      Error.stackTraceLimit = limit;
    }
    this.name = 'TollgateError';
    this.code = code;
  }

  /** The HTTP status a local reply for this error uses. */
  get status(): number {
    return ERROR_CODES[this.code].status;
  }
}

/** Wraps anything thrown (third-party errors, thrown strings) into a TollgateError. */
export function wrapError(code: ErrorCode, message: string, cause: unknown): TollgateError {
  if (cause instanceof TollgateError) return cause;
  const detail = cause instanceof Error ? cause.message : typeof cause === 'string' ? cause : JSON.stringify(cause);
  return new TollgateError(code, `${message}: ${detail}`, { cause });
}
