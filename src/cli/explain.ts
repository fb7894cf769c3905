/**
 * `tollgate explain`: a decision for humans — outcome, every reason, the policy and
 * revision that decided, and the request as the policy saw it.
 */
import type { Decision } from '../pdp/types.ts';

function get(doc: unknown, ...path: string[]): unknown {
  let node = doc;
  for (const key of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

function text(value: unknown): string {
  return value === undefined || value === null || value === ''
    ? '-'
    : typeof value === 'string'
      ? value
      : JSON.stringify(value);
}

/** Renders the decision on an input as a few lines of plain text. */
export function explainDecision(input: Record<string, unknown>, decision: Decision, policyPath: string): string {
  const http = get(input, 'attributes', 'request', 'http');
  const tool = get(input, 'mcp', 'tool', 'name');
  const lines = [
    `${decision.allowed ? 'ALLOW' : 'DENY'}  by ${policyPath} @ ${decision.revision || '(no revision)'}  decision ${decision.decisionId}`,
    '',
    'the request, as the policy saw it:',
    `  agent        ${text(get(input, 'agent', 'id'))} (role ${text(get(input, 'agent', 'role'))})`,
    `  call         ${text(get(http, 'method'))} ${text(get(http, 'scheme')) === '-' ? '' : `${text(get(http, 'scheme'))}://`}${text(get(http, 'host'))}${text(get(http, 'path')) === '-' ? '' : text(get(http, 'path'))}`,
  ];
  if (tool !== undefined) lines.push(`  MCP tool     ${text(tool)} ${text(get(input, 'mcp', 'tool', 'arguments'))}`);
  if (get(input, 'truncated_body') === true) lines.push('  body         truncated past the buffer limit');
  lines.push('');
  if (decision.reasons.length > 0) {
    lines.push(decision.allowed ? 'notes:' : 'why it was denied:');
    for (const reason of decision.reasons) lines.push(`  - ${reason}`);
  } else {
    lines.push(decision.allowed ? 'no rule objected.' : 'the policy gave no reason.');
  }
  if (!decision.allowed && decision.httpStatus !== undefined) lines.push(`status ${decision.httpStatus}`);
  const changes = [
    ...decision.headers.map(([n, v]) => `set header ${n}: ${v}`),
    ...decision.requestHeadersToRemove.map((n) => `remove header ${n}`),
  ];
  if (decision.allowed && changes.length > 0) {
    lines.push('', 'the forwarded request is changed:');
    for (const change of changes) lines.push(`  - ${change}`);
  }
  return `${lines.join('\n')}\n`;
}
