// README command 1 (`npm start` = `tollgate run --demo`): the sidecar on its embedded
// defaults, as the hybrid chain (central seed rules, local EU cap), shows both outcomes
// with reasons, then keeps serving until stopped.
import t from 'tap';
import { spawn } from 'node:child_process';
import { CLI } from '../helpers/processes.ts';

t.test(
  'the demo starts on the embedded defaults and shows allow and deny decisions, a filtered tool list, a redacted result, an approval and a budget running out',
  async (t) => {
    const child = spawn(process.execPath, [CLI, 'run', '--demo'], {
      env: {
        ...process.env,
        TOLLGATE_PROXY_LISTEN: '127.0.0.1:0',
        TOLLGATE_ADMIN_LISTEN: '127.0.0.1:0',
        TOLLGATE_EXTAUTHZ_LISTEN: '127.0.0.1:0',
        TOLLGATE_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    t.teardown(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    let out = '';
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('stop with Ctrl-C')) resolve();
      });
      void exited.then((code) => reject(new Error(`demo exited with ${code}:\n${out}`)));
    });
    t.match(out, /listening: proxy http:\/\/127\.0\.0\.1:\d+/);
    t.match(out, /200\s+support-bot issues a \$120 refund\s+allow/);
    t.match(out, /policy chain\(deny-overrides: central, local\) @ central=seed-[0-9a-f]{12},local=hybrid-local-/);
    t.match(
      out,
      /403\s+support-bot issues a \$300 refund \(EU\)\s+deny: refund of 300 exceeds the EU regional limit of 200/,
    );
    t.match(out, /403\s+support-bot issues a \$900 refund\s+deny: .*900/);
    t.match(out, /403\s+support-bot reads HR records\s+deny: .*hr\.internal/);
    t.match(out, /200\s+support-bot calls MCP tool delete_customer\s+deny: .*delete_customer/);
    // Response decisions: the list shows only what support may call; the result is redacted.
    t.match(
      out,
      /200\s+support-bot lists MCP tools\s+allow: tools shown lookup_customer, issue_refund \(hidden: delete_customer, export_all_customers\)/,
    );
    t.match(
      out,
      /200\s+support-bot calls MCP tool lookup_customer\s+allow: tool answered ".*api key \[REDACTED:api-key\], card \[REDACTED:card-number\]"/,
    );
    // Governance over time: an approval requested and granted, then the daily budget running out.
    t.match(
      out,
      /403\s+billing-bot issues a \$900 refund\s+deny: human approval required: .*approval [0-9a-f-]{36} is pending/,
    );
    t.match(out, /200\s+finance-lead approves [0-9a-f]{8}…\s+approved/);
    t.match(out, /200\s+billing-bot retries the \$900 refund\s+allow/);
    t.match(out, /403\s+billing-bot issues a \$99 refund\s+deny: budget daily_refunds exhausted: 1997 of 2000 used/);
    child.kill('SIGTERM');
    t.equal(await exited, 0, 'stops cleanly on SIGTERM');
  },
);
