/**
 * `tollgate explain`: a decision for humans — outcome, every reason, the policy and
 * revision that decided, and the request as the policy saw it.
 */
import type { Decision } from '../pdp/types.ts';
import { stateRequestsFrom } from '../state/result.ts';
import { formatWindow } from '../state/governance.ts';

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

const OUTCOME: Record<string, string> = { allow: 'ALLOW', deny: 'DENY', not_applicable: 'n/a', error: 'ERROR' };

/** A PDP chain's layers: which one decided, and what each said. */
function explainStages(decision: Decision): string[] {
  const stages = decision.stages ?? [];
  const width = Math.max(...stages.map((s) => s.name.length), 5);
  const lines = [
    decision.decidedBy === undefined
      ? 'no layer applied, so the chain denied:'
      : `decided by layer "${decision.decidedBy}"; every layer asked:`,
  ];
  for (const stage of stages) {
    const mark = stage.name === decision.decidedBy ? '*' : ' ';
    const error =
      stage.error === undefined
        ? ''
        : `  ${stage.error.code}, failure mode ${stage.error.failureMode}: ${stage.error.message}`;
    lines.push(
      `${mark} ${stage.name.padEnd(width)}  ${(OUTCOME[stage.outcome] ?? stage.outcome).padEnd(5)}  ${stage.type} @ ${stage.revision || '-'}  ${stage.ms} ms${error}`,
    );
    for (const reason of stage.reasons) lines.push(`  ${' '.repeat(width)}    - ${reason}`);
  }
  return lines;
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
  if (decision.stages !== undefined) lines.push('', ...explainStages(decision));
  const changes = [
    ...decision.headers.map(([n, v]) => `set header ${n}: ${v}`),
    ...decision.requestHeadersToRemove.map((n) => `remove header ${n}`),
  ];
  if (decision.allowed && changes.length > 0) {
    lines.push('', 'the forwarded request is changed:');
    for (const change of changes) lines.push(`  - ${change}`);
  }
  lines.push(...explainState(input, decision));
  return `${lines.join('\n')}\n`;
}

/** What the call consumes and whether a human must approve it, with the usage the input carried. */
function explainState(input: Record<string, unknown>, decision: Decision): string[] {
  const usage = get(input, 'usage');
  const approval = get(input, 'approval');
  const lines: string[] = [];
  if (usage !== undefined || approval !== undefined) {
    lines.push('', 'state the policy saw:');
    if (typeof usage === 'object' && usage !== null)
      for (const [key, u] of Object.entries(usage as Record<string, Record<string, unknown>>))
        lines.push(`  budget ${key}: ${text(u.used)} of ${text(u.limit)} used (${text(u.remaining)} left)`);
    if (approval !== undefined)
      lines.push(
        `  approval ${text(get(approval, 'id'))}: ${text(get(approval, 'status'))}${get(approval, 'decided_by') === undefined ? '' : ` by ${text(get(approval, 'decided_by'))}`}, ${text(get(approval, 'uses_left'))} uses left`,
      );
  }
  if (!decision.allowed) return lines;
  let requests;
  try {
    requests = stateRequestsFrom(decision.result);
  } catch (err) {
    return [...lines, '', `the state request is invalid: ${(err as Error).message}`];
  }
  if (requests === undefined) return lines;
  lines.push('', 'before it is forwarded, Tollgate:');
  for (const b of requests.budgets)
    lines.push(
      `  - charges ${b.cost} to budget ${b.key} (limit ${b.limit} per ${formatWindow(b.windowMs)}${b.refundOn.length > 0 ? `; refunded on ${b.refundOn.join(', ')}` : ''}); over it: deny`,
    );
  for (const r of requests.rates)
    lines.push(`  - takes a token from rate ${r.key} (${r.rate}/s, burst ${r.burst}); empty: deny with 429`);
  if (requests.approval !== undefined)
    lines.push(
      `  - requires a human approval${requests.approval.approvers.length > 0 ? ` by ${requests.approval.approvers.join(' or ')}` : ''} (${requests.approval.uses} use, valid ${formatWindow(requests.approval.ttlMs)})${requests.approval.reasons.length > 0 ? `: ${requests.approval.reasons.join('; ')}` : ''}`,
    );
  return lines;
}
