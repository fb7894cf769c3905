/**
 * The result contract: the decision path's value is a boolean or opa-envoy-plugin's
 * result object (allowed, headers, request_headers_to_remove, response_headers_to_add,
 * query_parameters_to_set/_remove, body, http_status, dynamic_metadata) plus Tollgate's
 * `reasons`, and `applicable: false` for "no opinion" (a PDP chain then asks its other
 * stages; a lone PDP denies). Type rules and error cases follow opa-envoy-plugin's envoyauth/response.go;
 * anything that does not fit throws TG_ERR_POLICY_RESULT and the request fails closed.
 */
import { STATUS_CODES } from 'node:http';
import { TollgateError } from '../errors.ts';
import type { Decision, EvaluatedInput, HeaderPair } from './types.ts';

function invalid(message: string): TollgateError {
  return new TollgateError('TG_ERR_POLICY_RESULT', message);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringList(decision: Record<string, unknown>, field: string): string[] {
  const value = decision[field];
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw invalid(`expected ${field} to be an array of strings`);
  return value.map((item) => {
    if (typeof item !== 'string') throw invalid(`expected every ${field} value to be a string`);
    return item;
  });
}

function headerMap(map: Record<string, unknown>, field: string, out: HeaderPair[]): void {
  for (const [key, value] of Object.entries(map)) {
    if (typeof value === 'string') out.push([key, value]);
    else if (Array.isArray(value)) {
      for (const item of value) {
        if (typeof item !== 'string') throw invalid(`invalid value type for header "${key}" in ${field}`);
        out.push([key, item]);
      }
    } else throw invalid(`invalid value type for header "${key}" in ${field}`);
  }
}

function headerPairs(decision: Record<string, unknown>, field: string): HeaderPair[] {
  const value = decision[field];
  const out: HeaderPair[] = [];
  if (value === undefined) return out;
  if (isObject(value)) headerMap(value, field, out);
  else if (Array.isArray(value)) {
    for (const item of value) {
      if (!isObject(item)) throw invalid(`expected ${field} to be an object or an array of objects`);
      headerMap(item, field, out);
    }
  } else throw invalid(`expected ${field} to be an object or an array of objects`);
  return out;
}

function queryPairs(decision: Record<string, unknown>): HeaderPair[] {
  const value = decision.query_parameters_to_set;
  const out: HeaderPair[] = [];
  if (value === undefined) return out;
  if (!isObject(value)) throw invalid('expected query_parameters_to_set to be an object');
  headerMap(value, 'query_parameters_to_set', out);
  return out;
}

/** Parts of a decision that do not come from the result value. */
export interface DecisionMeta {
  readonly decisionId: string;
  readonly revision: string;
  readonly evalNanos: number;
  readonly inputJson?: EvaluatedInput;
}

/** Maps the decision path's value to a Decision, or throws TG_ERR_POLICY_RESULT. */
export function decisionFromResult(result: unknown, meta: DecisionMeta): Decision {
  const base = {
    headers: [] as HeaderPair[],
    requestHeadersToRemove: [] as string[],
    responseHeadersToAdd: [] as HeaderPair[],
    queryParametersToSet: [] as HeaderPair[],
    queryParametersToRemove: [] as string[],
    reasons: [] as string[],
    ...meta,
    result,
  };
  if (typeof result === 'boolean') return { ...base, allowed: result };
  if (!isObject(result))
    throw invalid(`illegal value for policy evaluation result: ${result === null ? 'null' : typeof result}`);
  // A stage of a PDP chain may say it has no opinion; standing alone, that denies.
  if (result.applicable === false) {
    const reasons = result.reasons === undefined ? [] : stringList(result, 'reasons');
    return { ...base, allowed: false, applicable: false, reasons };
  }
  if (result.applicable !== undefined && result.applicable !== true)
    throw invalid(`expected applicable to be of type boolean but got ${typeof result.applicable}`);
  if (!('allowed' in result)) throw invalid('unable to determine evaluation result due to missing "allowed" key');
  const allowed = result.allowed;
  if (typeof allowed !== 'boolean') throw invalid(`expected allowed to be of type boolean but got ${typeof allowed}`);

  let httpStatus: number | undefined;
  if (result.http_status !== undefined) {
    const status = result.http_status;
    if (typeof status !== 'number' || !Number.isInteger(status) || STATUS_CODES[status] === undefined) {
      throw invalid(`invalid HTTP status code ${JSON.stringify(status)}`);
    }
    httpStatus = status;
  }
  let body: string | undefined;
  if (result.body !== undefined) {
    if (typeof result.body !== 'string') throw invalid('expected body to be of type string');
    body = result.body;
  }
  let dynamicMetadata: Record<string, unknown> | undefined;
  if (result.dynamic_metadata !== undefined) {
    if (!isObject(result.dynamic_metadata)) throw invalid('expected dynamic_metadata to be of type object');
    dynamicMetadata = result.dynamic_metadata;
  }
  const reasons = result.reasons === undefined ? [] : stringList(result, 'reasons');
  return {
    ...base,
    allowed,
    ...(httpStatus === undefined ? {} : { httpStatus }),
    ...(body === undefined ? {} : { body }),
    ...(dynamicMetadata === undefined ? {} : { dynamicMetadata }),
    headers: headerPairs(result, 'headers'),
    requestHeadersToRemove: stringList(result, 'request_headers_to_remove'),
    responseHeadersToAdd: headerPairs(result, 'response_headers_to_add'),
    queryParametersToSet: queryPairs(result),
    queryParametersToRemove: stringList(result, 'query_parameters_to_remove'),
    reasons,
  };
}
