/**
 * Renders a compliance report as text (terminal), JSON (machines) or HTML: one
 * self-contained page — inline CSS and SVG charts, no script, no external request (its
 * Content-Security-Policy forbids any) — that an auditor can archive and open offline.
 * Every string from the log is escaped: agent ids and reasons are agent-influenced.
 */
import type { ComplianceReport, DecisionCounts } from './compliance.ts';

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;

function table(title: string, rows: readonly DecisionCounts[], limit: number): string[] {
  if (rows.length === 0) return [];
  const width = Math.min(48, Math.max(8, ...rows.slice(0, limit).map((r) => r.key.length)));
  const lines = [
    `${title}:`,
    `  ${''.padEnd(width)}  ${'total'.padStart(7)} ${'allowed'.padStart(7)} ${'denied'.padStart(7)} ${'closed'.padStart(7)} ${'open'.padStart(7)}`,
  ];
  for (const r of rows.slice(0, limit))
    lines.push(
      `  ${r.key.padEnd(width)}  ${String(r.decisions).padStart(7)} ${String(r.allowed).padStart(7)} ${String(r.denied).padStart(7)} ${String(r.failedClosed).padStart(7)} ${String(r.failedOpen).padStart(7)}`,
    );
  if (rows.length > limit) lines.push(`  … ${rows.length - limit} more`);
  return lines;
}

/** The report for a terminal. */
export function formatReportText(report: ComplianceReport): string {
  const t = report.totals;
  const i = report.integrity;
  const lines = [
    `compliance report of ${report.log}`,
    `window: ${report.window.since ?? 'start of log'} .. ${report.window.until ?? 'end of log'}; decisions from ${report.firstDecision ?? '-'} to ${report.lastDecision ?? '-'}`,
    `decisions ${t.decisions}: allowed ${t.allowed}, denied ${t.denied} (overrides, ${pct(t.overrideRatio)}), failed closed ${t.failedClosed}, failed open ${t.failedOpen}; ${t.outsideWindow} outside the window, ${t.unreadableLines} unreadable lines`,
    i.ok
      ? `chain integrity: intact (${i.records} records, head ${i.head ?? '(empty)'})${i.gaps.length > 0 ? `; ${i.gaps.reduce((n, g) => n + g.dropped, 0)} decisions dropped under back-pressure (recorded as gaps)` : ''}`
      : `chain integrity: BROKEN, ${i.problems.length} problem(s): ${i.problems
          .slice(0, 5)
          .map((p) => `${p.file}:${p.line} ${p.kind}`)
          .join('; ')}`,
    '',
    ...table('by agent', report.byAgent, 20),
    '',
    ...table('by destination', report.byDestination, 20),
    '',
    ...table('by policy revision', report.byRevision, 20),
    '',
    'denials by rule:',
    ...(report.byRule.length === 0
      ? ['  none']
      : report.byRule
          .slice(0, 30)
          .map(
            (r) =>
              `  ${String(r.denials).padStart(6)}  ${r.rule}${r.template === undefined ? '' : `  "${r.template}"`}  agents: ${r.agents.join(', ')}`,
          )),
    '',
    report.rules === null
      ? 'rules that never fired: unknown (pass --bundle <bundle.tar.gz> to list the policy rules)'
      : `rules that never fired (${report.rules.neverFired.length} of ${report.rules.total} deny rules in ${report.rules.revision || report.rules.bundle}):`,
    ...(report.rules?.neverFired.map((r) => `  ${r.id}${r.template === undefined ? '' : `  "${r.template}"`}`) ?? []),
    '',
    report.approvals.present
      ? `approvals: ${Object.entries(report.approvals.byEvent)
          .map(([k, n]) => `${k} ${n}`)
          .join(', ')}`
      : 'approvals: no approval events in this log',
  ];
  return `${lines.join('\n')}\n`;
}

/** The report as JSON. */
export function formatReportJson(report: ComplianceReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const KINDS = [
  ['allowed', 'allowed', '#2e7d32'],
  ['denied', 'denied', '#c62828'],
  ['failedClosed', 'failed closed', '#6d4c41'],
  ['failedOpen', 'failed open', '#f9a825'],
] as const;

function legend(): string {
  return `<p class="legend">${KINDS.map(([, label, color]) => `<span><i style="background:${color}"></i>${label}</span>`).join(' ')}</p>`;
}

/** Horizontal stacked bars, one per row (agents). */
function stackedBars(chart: string, title: string, rows: readonly DecisionCounts[]): string {
  if (rows.length === 0) return `<p class="empty">No decisions.</p>`;
  const shown = rows.slice(0, 25);
  const max = Math.max(...shown.map((r) => r.decisions));
  const labelWidth = 200;
  const barWidth = 520;
  const rowHeight = 24;
  const height = shown.length * rowHeight + 8;
  const bars = shown.map((r, i) => {
    let x = labelWidth;
    const y = 4 + i * rowHeight;
    const segments = KINDS.filter(([k]) => r[k] > 0).map(([k, label, color]) => {
      const w = Math.max(1, (r[k] / max) * barWidth);
      const rect = `<rect class="bar" data-key="${escapeHtml(r.key)}" data-kind="${k}" data-value="${r[k]}" x="${x.toFixed(1)}" y="${y}" width="${w.toFixed(1)}" height="${rowHeight - 6}" fill="${color}"><title>${escapeHtml(r.key)}: ${r[k]} ${label}</title></rect>`;
      x += w;
      return rect;
    });
    return `<text x="${labelWidth - 6}" y="${y + rowHeight / 2 + 2}" text-anchor="end">${escapeHtml(r.key.length > 28 ? `${r.key.slice(0, 27)}…` : r.key)}</text>${segments.join('')}<text class="total" x="${(x + 4).toFixed(1)}" y="${y + rowHeight / 2 + 2}" data-total="${r.decisions}">${r.decisions}</text>`;
  });
  return `<svg data-chart="${chart}" role="img" aria-label="${escapeHtml(title)}" width="${labelWidth + barWidth + 60}" height="${height}" viewBox="0 0 ${labelWidth + barWidth + 60} ${height}">${bars.join('')}</svg>`;
}

/** Vertical stacked bars, one per day. */
function dayColumns(rows: readonly DecisionCounts[]): string {
  if (rows.length === 0) return `<p class="empty">No decisions.</p>`;
  const shown = rows.slice(-62);
  const max = Math.max(...shown.map((r) => r.decisions));
  const plot = 200;
  const col = Math.max(8, Math.min(40, Math.floor(720 / shown.length)));
  const width = shown.length * col + 50;
  const columns = shown.map((r, i) => {
    let top = plot + 10;
    const x = 40 + i * col;
    const segments = KINDS.filter(([k]) => r[k] > 0).map(([k, label, color]) => {
      const h = Math.max(1, (r[k] / max) * plot);
      top -= h;
      return `<rect class="bar" data-key="${escapeHtml(r.key)}" data-kind="${k}" data-value="${r[k]}" x="${x}" y="${top.toFixed(1)}" width="${col - 3}" height="${h.toFixed(1)}" fill="${color}"><title>${escapeHtml(r.key)}: ${r[k]} ${label}</title></rect>`;
    });
    const label =
      shown.length <= 16 || i % Math.ceil(shown.length / 16) === 0
        ? `<text x="${x + (col - 3) / 2}" y="${plot + 26}" text-anchor="middle" class="small">${escapeHtml(r.key.slice(5))}</text>`
        : '';
    return segments.join('') + label;
  });
  return `<svg data-chart="days" role="img" aria-label="Decisions per day" width="${width}" height="${plot + 34}" viewBox="0 0 ${width} ${plot + 34}"><text x="34" y="16" text-anchor="end" class="small">${max}</text><line x1="38" y1="${plot + 10}" x2="${width}" y2="${plot + 10}" stroke="#999"/>${columns.join('')}</svg>`;
}

/** Horizontal bars of denials per rule. */
function ruleBars(report: ComplianceReport): string {
  const rows = report.byRule.slice(0, 15);
  if (rows.length === 0) return `<p class="empty">No denials.</p>`;
  const max = Math.max(...rows.map((r) => r.denials));
  const labelWidth = 320;
  const height = rows.length * 24 + 8;
  const bars = rows.map((r, i) => {
    const y = 4 + i * 24;
    const w = Math.max(1, (r.denials / max) * 400);
    const name = r.rule.length > 44 ? `${r.rule.slice(0, 43)}…` : r.rule;
    return `<text x="${labelWidth - 6}" y="${y + 14}" text-anchor="end">${escapeHtml(name)}</text><rect class="bar" data-key="${escapeHtml(r.rule)}" data-kind="denied" data-value="${r.denials}" x="${labelWidth}" y="${y}" width="${w.toFixed(1)}" height="18" fill="#c62828"><title>${escapeHtml(r.template ?? r.rule)}: ${r.denials}</title></rect><text class="total" x="${(labelWidth + w + 4).toFixed(1)}" y="${y + 14}">${r.denials}</text>`;
  });
  return `<svg data-chart="rules" role="img" aria-label="Denials by rule" width="${labelWidth + 460}" height="${height}" viewBox="0 0 ${labelWidth + 460} ${height}">${bars.join('')}</svg>`;
}

function htmlTable(id: string, rows: readonly DecisionCounts[], keyTitle: string): string {
  if (rows.length === 0) return '<p class="empty">None.</p>';
  return `<table id="${id}"><thead><tr><th>${keyTitle}</th><th>decisions</th><th>allowed</th><th>denied</th><th>override ratio</th><th>failed closed</th><th>failed open</th></tr></thead><tbody>${rows
    .map(
      (r) =>
        `<tr><td>${escapeHtml(r.key)}</td><td>${r.decisions}</td><td>${r.allowed}</td><td>${r.denied}</td><td>${pct(r.decisions === 0 ? 0 : r.denied / r.decisions)}</td><td>${r.failedClosed}</td><td>${r.failedOpen}</td></tr>`,
    )
    .join('')}</tbody></table>`;
}

const CSS = `body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1a1a1a;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f5f5f5}
.cards{display:flex;gap:1rem;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;padding:.5rem 1rem;min-width:8rem}
.card b{display:block;font-size:1.4rem}.ok{color:#2e7d32}.bad{color:#c62828}
svg text{font-size:12px;fill:#333}svg .small{font-size:10px}.legend span{margin-right:1rem}
.legend i{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle}
.empty{color:#777}code{font-size:12px}`;

/** The report as one self-contained HTML page. */
export function formatReportHtml(report: ComplianceReport): string {
  const t = report.totals;
  const i = report.integrity;
  const card = (id: string, label: string, value: string, cls = ''): string =>
    `<div class="card" id="${id}"><b class="${cls}" data-value="${escapeHtml(value)}">${escapeHtml(value)}</b>${label}</div>`;
  const integrity = i.ok
    ? `<p class="ok" id="integrity" data-ok="true">Hash chain intact: ${i.records} records in ${i.files.length} file(s); head <code>${escapeHtml(i.head ?? '(empty)')}</code>.${i.gaps.length > 0 ? ` ${i.gaps.reduce((n, g) => n + g.dropped, 0)} decision(s) were dropped under back-pressure and are recorded as gaps in the chain.` : ''}</p>`
    : `<div id="integrity" data-ok="false"><p class="bad">Hash chain BROKEN: ${i.problems.length} problem(s).</p><table><thead><tr><th>file</th><th>line</th><th>kind</th><th>problem</th></tr></thead><tbody>${i.problems
        .slice(0, 100)
        .map(
          (p) =>
            `<tr><td>${escapeHtml(p.file)}</td><td>${p.line}</td><td>${p.kind}</td><td>${escapeHtml(p.message)}</td></tr>`,
        )
        .join('')}</tbody></table></div>`;
  const rules = report.byRule.length
    ? `<table id="rules"><thead><tr><th>rule</th><th>reason</th><th>denials</th><th>agents</th><th>example decisions</th></tr></thead><tbody>${report.byRule
        .map(
          (r) =>
            `<tr><td>${escapeHtml(r.rule)}</td><td>${escapeHtml(r.template ?? '')}</td><td>${r.denials}</td><td>${escapeHtml(r.agents.join(', '))}</td><td><code>${escapeHtml(r.examples.join(' '))}</code></td></tr>`,
        )
        .join('')}</tbody></table>`
    : '<p class="empty">No denials in this window.</p>';
  const never =
    report.rules === null
      ? '<p class="empty" id="never-fired">Unknown: the report was made without <code>--bundle</code>, so the policy\'s rules are not known.</p>'
      : report.rules.neverFired.length === 0
        ? `<p id="never-fired">Every one of the ${report.rules.total} deny rules fired at least once.</p>`
        : `<p>${report.rules.neverFired.length} of ${report.rules.total} deny rules of revision <code>${escapeHtml(report.rules.revision)}</code> never fired in this window:</p><table id="never-fired"><thead><tr><th>rule</th><th>reason</th></tr></thead><tbody>${report.rules.neverFired
            .map(
              (r) => `<tr><td>${escapeHtml(r.id)}</td><td>${escapeHtml(r.template ?? '(built dynamically)')}</td></tr>`,
            )
            .join('')}</tbody></table>`;
  const approvals = report.approvals.present
    ? `<table id="approvals"><thead><tr><th>event</th><th>count</th></tr></thead><tbody>${Object.entries(
        report.approvals.byEvent,
      )
        .map(([k, n]) => `<tr><td>${escapeHtml(k)}</td><td>${n}</td></tr>`)
        .join(
          '',
        )}</tbody></table><table><thead><tr><th>time</th><th>event</th><th>approval</th><th>agent</th><th>approver</th></tr></thead><tbody>${report.approvals.events
        .map(
          (e) =>
            `<tr><td>${escapeHtml(e.timestamp)}</td><td>${escapeHtml(e.event)}</td><td>${escapeHtml(e.id)}</td><td>${escapeHtml(e.agent)}</td><td>${escapeHtml(e.approver)}</td></tr>`,
        )
        .join('')}</tbody></table>`
    : '<p class="empty" id="approvals">No approval events in this log.</p>';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Tollgate compliance report</title><style>${CSS}</style></head><body>
<h1>Tollgate compliance report</h1>
<p>Decision log <code>${escapeHtml(report.log)}</code>; window ${escapeHtml(report.window.since ?? 'start of log')} to ${escapeHtml(report.window.until ?? 'end of log')}; decisions from ${escapeHtml(report.firstDecision ?? '-')} to ${escapeHtml(report.lastDecision ?? '-')}. Generated ${escapeHtml(report.generatedAt)}.</p>
<div class="cards">${card('total-decisions', 'decisions', String(t.decisions))}${card('total-allowed', 'allowed', String(t.allowed), 'ok')}${card('total-denied', 'denied (overrides)', String(t.denied), 'bad')}${card('override-ratio', 'override ratio', pct(t.overrideRatio))}${card('total-failed-closed', 'failed closed', String(t.failedClosed))}${card('total-failed-open', 'failed open', String(t.failedOpen))}</div>
<h2>Chain integrity</h2>${integrity}
<h2>Decisions per day</h2>${legend()}${dayColumns(report.byDay)}
<h2>Decisions per agent</h2>${legend()}${stackedBars('agents', 'Decisions per agent', report.byAgent)}
${htmlTable('agents', report.byAgent, 'agent')}
<h2>Denials by rule</h2>${ruleBars(report)}${rules}
<h2>Rules that never fired</h2>${never}
<h2>Destinations</h2>${htmlTable('destinations', report.byDestination, 'destination')}
<h2>Policy revisions</h2>${htmlTable('revisions', report.byRevision, 'revision')}
<h2>Approvals</h2>${approvals}
<p class="empty">An override is a decision where the policy denied what the agent asked. Failed closed: no decision could be made and the request was refused; failed open: forwarded without a decision under a fail-open failure mode.</p>
</body></html>
`;
}
