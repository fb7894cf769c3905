/**
 * The command line: the only module that reads process.argv / process.env and
 * calls process.exit. Commands: run, check, config validate|schema, version.
 */
import { parseArgs } from 'node:util';
import { readFile } from 'node:fs/promises';
import pino from 'pino';
import { loadConfig, parseConfig } from '../config/load.ts';
import { configJsonSchema, type Config } from '../config/schema.ts';
import { TollgateError } from '../errors.ts';
import { VERSION } from '../version.ts';
import { disabledTelemetry, tracingEnabled } from '../telemetry/off.ts';

// Each subcommand's module (and the sidecar itself) is imported when that command runs:
// a sidecar started with "run" never loads the replay, report or bundle tooling, and
// "tollgate version" loads none of it. The OpenTelemetry SDK is imported only when
// tracing is on (telemetry/off.ts decides).

/** The help of the subcommands whose help text lives in their own module. */
const MODULE_HELP: Record<string, () => Promise<string>> = {
  replay: async () => (await import('./replay.ts')).REPLAY_HELP,
  report: async () => (await import('./report.ts')).REPORT_HELP,
  bundle: async () => (await import('./bundle.ts')).BUNDLE_HELP,
  approvals: async () => (await import('./approvals.ts')).APPROVALS_HELP,
  policy: async () => (await import('./policy.ts')).POLICY_HELP,
  mcp: async () => (await import('./mcp.ts')).MCP_HELP,
};

const HELP: Record<string, string> = {
  main: `tollgate — policy enforcement sidecar for AI agent egress

Usage: tollgate <command> [options]

Commands:
  run                 run the sidecar (proxy 127.0.0.1:15001, admin 127.0.0.1:15000,
                      Envoy ext_authz gRPC 127.0.0.1:9191)
  check               evaluate one policy input and print the decision (exit 0 allow, 2 deny, 1 error)
  explain             the same decision, for humans: outcome, reasons, what the policy saw
  replay              re-decide a recorded decision log with a candidate bundle; report the flips
  bundle              rollback | status | patch the running sidecar's policy; verify a signed bundle
  approvals           list | show | approve | reject human approvals (any replica's admin API)
  policy conflicts    where a central and a local policy layer disagree; shadowed local rules
  audit verify F      check a decision log's hash chain (exit 0 intact, 2 tampered, 1 unreadable)
  mcp tools list      the running sidecar's MCP tool pins; "mcp tools accept" accepts a changed tool
  report --log F      compliance report of a decision log (text, json, or a self-contained html page)
  ca init --out DIR   create the local CA for TLS interception (DIR/ca.crt, DIR/ca.key 0600)
  config validate F   validate a tollgate.yaml and print problems
  config schema       print the configuration JSON Schema
  version             print the version

Run "tollgate <command> --help" for a command's options.
Environment overrides: TOLLGATE_CONFIG, TOLLGATE_PROXY_LISTEN, TOLLGATE_ADMIN_LISTEN,
TOLLGATE_EXTAUTHZ_LISTEN, TOLLGATE_LOG_LEVEL, TOLLGATE_AGENT_ID, TOLLGATE_AGENT_ROLE, TOLLGATE_BUNDLE.
`,
  run: `Usage: tollgate run [--config tollgate.yaml] [--demo]

  -c, --config F   configuration file (default: $TOLLGATE_CONFIG, else embedded defaults)
      --demo       also start a local demo tool server behind the demo destinations
                   (payments.internal, hr.internal, ...) and send sample agent calls
                   through the proxy, printing each decision
`,
  check: `Usage: tollgate check --input input.json [--config tollgate.yaml]

Evaluates one policy input document against the configured policy (the embedded
default bundle unless the config names another) and prints the decision as JSON.
Exit status: 0 allow, 2 deny, 1 error.

  -i, --input F    the policy input (JSON); "-" reads standard input
  -c, --config F   configuration file
      --path P     another entrypoint of the bundle, e.g. tollgate/authz/response
                   (an input with "response", as the response decision sees it)
`,
  config: `Usage: tollgate config validate <file> | tollgate config schema`,
  explain: `Usage: tollgate explain --input input.json [--config tollgate.yaml]

Evaluates one policy input like "check" and prints the decision for humans: allow or
deny, every reason, the policy path and revision, and what the policy saw (agent,
method, destination, path, MCP tool). Exit status: 0 allow, 2 deny, 1 error.
`,
  audit: `Usage: tollgate audit verify <decisions.jsonl>

Verifies the hash chain of a decision log (and its rotated files <file>.1, <file>.2, ...):
any edited, removed, inserted or reordered record is reported with its line.
Exit status: 0 intact, 2 tampered or damaged, 1 unreadable.
`,
  ca: `Usage: tollgate ca init --out DIR [--force] [--cn NAME] [--days N]

Creates an ECDSA P-256 CA for TLS interception: DIR/ca.crt and DIR/ca.key (mode 0600).
Point tls.caCertFile / tls.caKeyFile at them; agents trust DIR/ca.crt.`,
  version: 'Usage: tollgate version',
};

function fail(message: string): never {
  process.stderr.write(`tollgate: ${message}\n`);
  process.exit(1);
}

function readStdin(): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    let data = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (c: string) => (data += c));
    process.stdin.on('end', () => resolve(data));
    process.stdin.on('error', reject);
  });
}

async function readInput(path: string): Promise<unknown> {
  const text =
    path === '-'
      ? await readStdin()
      : await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) =>
          fail(`cannot read ${path} (${err.code ?? err.message})`),
        );
  try {
    return JSON.parse(text);
  } catch {
    return fail(`${path} is not valid JSON`);
  }
}

async function config(path: string | undefined): Promise<Config> {
  return loadConfig(path ?? process.env.TOLLGATE_CONFIG, process.env);
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(HELP.main!);
    return;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    const help = HELP[command] ?? (await MODULE_HELP[command]?.());
    if (help === undefined) fail(`unknown command "${command}"; see tollgate --help`);
    process.stdout.write(`${help}\n`);
    return;
  }
  switch (command) {
    case 'version':
      process.stdout.write(`tollgate ${VERSION} (node ${process.version})\n`);
      return;
    case 'config': {
      const [sub, file] = rest;
      if (sub === 'schema') {
        process.stdout.write(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
        return;
      }
      if (sub === 'validate' && file !== undefined) {
        await loadConfig(file, {});
        process.stdout.write(`${file}: valid\n`);
        return;
      }
      fail('usage: tollgate config validate <file> | tollgate config schema');
      return;
    }
    case 'ca': {
      const [sub, ...caArgs] = rest;
      const { values } = parseArgs({
        args: caArgs,
        options: {
          out: { type: 'string', short: 'o' },
          force: { type: 'boolean', default: false },
          cn: { type: 'string' },
          days: { type: 'string' },
        },
      });
      if (sub !== 'init' || values.out === undefined)
        fail('usage: tollgate ca init --out DIR [--force] [--cn NAME] [--days N]');
      const days = values.days === undefined ? undefined : Number(values.days);
      if (days !== undefined && !(Number.isInteger(days) && days > 0)) fail('--days must be a positive integer');
      const { caInit } = await import('./ca.ts');
      const result = await caInit({
        out: values.out,
        force: values.force,
        ...(values.cn === undefined ? {} : { commonName: values.cn }),
        ...(days === undefined ? {} : { validDays: days }),
      });
      process.stdout.write(
        `CA certificate ${result.certFile}\nCA key         ${result.keyFile} (0600)\nSHA-256        ${result.fingerprint}\n`,
      );
      return;
    }
    case 'audit': {
      const [sub, file] = rest;
      if (sub !== 'verify' || file === undefined) fail('usage: tollgate audit verify <decisions.jsonl>');
      const { auditVerify } = await import('./audit.ts');
      process.exitCode = await auditVerify(file, process.stdout);
      return;
    }
    case 'replay': {
      const { parseReplayArgs, runReplay } = await import('./replay.ts');
      const options = parseReplayArgs(rest);
      process.exitCode = await runReplay({
        ...options,
        out: (t) => process.stdout.write(t),
        err: (t) => process.stderr.write(t),
      });
      return;
    }
    case 'policy': {
      const { parsePolicyArgs, runPolicyCommand } = await import('./policy.ts');
      const options = parsePolicyArgs(rest);
      process.exitCode = await runPolicyCommand({ ...options, out: (t) => process.stdout.write(t) });
      return;
    }
    case 'report': {
      const { parseReportArgs, runReport } = await import('./report.ts');
      const options = parseReportArgs(rest);
      process.exitCode = await runReport({
        ...options,
        out: (t) => process.stdout.write(t),
        err: (t) => process.stderr.write(t),
      });
      return;
    }
    case 'bundle': {
      const { parseBundleArgs, runBundleCommand } = await import('./bundle.ts');
      const options = await parseBundleArgs(rest, process.env, () => readStdin());
      process.exitCode = await runBundleCommand({
        ...options,
        out: (t) => process.stdout.write(t),
        err: (t) => process.stderr.write(t),
      });
      return;
    }
    case 'approvals': {
      const { parseApprovalsArgs, runApprovalsCommand } = await import('./approvals.ts');
      const options = parseApprovalsArgs(rest, process.env);
      process.exitCode = await runApprovalsCommand({
        ...options,
        out: (t) => process.stdout.write(t),
        err: (t) => process.stderr.write(t),
      });
      return;
    }
    case 'mcp': {
      const { parseMcpArgs, runMcpCommand } = await import('./mcp.ts');
      const options = parseMcpArgs(rest, process.env);
      process.exitCode = await runMcpCommand({
        ...options,
        out: (t) => process.stdout.write(t),
        err: (t) => process.stderr.write(t),
      });
      return;
    }
    case 'explain':
    case 'check': {
      const { values } = parseArgs({
        args: rest,
        options: {
          input: { type: 'string', short: 'i' },
          config: { type: 'string', short: 'c' },
          path: { type: 'string' },
        },
      });
      if (values.input === undefined) fail('check needs --input <file>');
      const cfg = await config(values.config);
      const input = await readInput(values.input);
      if (typeof input !== 'object' || input === null || Array.isArray(input))
        fail(`${values.input}: the policy input must be a JSON object`);
      const { createPdp } = await import('../sidecar.ts');
      const pdp = await createPdp(cfg);
      const decision = await pdp.decide(input as never, crypto.randomUUID(), values.path);
      if (command === 'explain') {
        const { explainDecision } = await import('./explain.ts');
        process.stdout.write(
          explainDecision(input as Record<string, unknown>, decision, pdp.info()?.decisionPath ?? cfg.pdp.type),
        );
        process.exitCode = decision.allowed ? 0 : 2;
        return;
      }
      process.stdout.write(
        `${JSON.stringify({ allowed: decision.allowed, reasons: decision.reasons, decision_id: decision.decisionId, revision: decision.revision, path: values.path ?? pdp.info()?.decisionPath, result: decision.result }, null, 2)}\n`,
      );
      process.exitCode = decision.allowed ? 0 : 2;
      return;
    }
    case 'run': {
      const { values } = parseArgs({
        args: rest,
        options: { config: { type: 'string', short: 'c' }, demo: { type: 'boolean', default: false } },
      });
      let cfg = await config(values.config);
      const runDemo = values.demo ? (await import('./demo.ts')).runDemo : undefined;
      const demo = runDemo ? await runDemo.prepare(cfg, (doc) => parseConfig(doc, process.env, 'demo')) : undefined;
      if (demo) cfg = demo.config;
      if (demo && !cfg.proxy.enabled) fail('--demo sends its calls through the proxy; it needs proxy.enabled');
      const logger = pino({
        level: cfg.logLevel,
        base: { service: 'tollgate' },
        redact: [
          'req.headers.authorization',
          'req.headers["proxy-authorization"]',
          'req.headers.cookie',
          'res.headers["set-cookie"]',
        ],
      });
      const telemetryOptions = {
        enabled: cfg.tracing.enabled,
        serviceName: cfg.tracing.serviceName,
        serviceVersion: VERSION,
        agentId: cfg.agent.id,
        protocol: cfg.tracing.protocol,
        endpoint: cfg.tracing.endpoint,
        headers: cfg.tracing.headers,
        samplerRatio: cfg.tracing.samplerRatio,
        alwaysSampleDenied: cfg.tracing.alwaysSampleDenied,
        propagators: cfg.tracing.propagators,
        attributeValueLengthLimit: cfg.tracing.attributeValueLengthLimit,
        attributeCountLimit: cfg.tracing.attributeCountLimit,
        env: process.env,
        logger: logger.child({ component: 'telemetry' }),
      };
      const telemetry = tracingEnabled(telemetryOptions)
        ? (await import('../telemetry/setup.ts')).setupTelemetry(telemetryOptions)
        : disabledTelemetry(telemetryOptions);
      if (telemetry.enabled) logger.info({ tracing: telemetry.description }, 'tracing on');
      const { startSidecar } = await import('../sidecar.ts');
      const sidecar = await startSidecar(cfg, logger, { tracer: telemetry.tracer, propagator: telemetry.propagator });
      const info = sidecar.pdp.info();
      logger.info({ proxy: sidecar.addresses.proxy, admin: sidecar.addresses.admin, policy: info }, 'tollgate started');
      // Tests and benches parse this line (each door that listens: proxy, admin, ext_authz); keep its shape.
      const { proxy, admin, extAuthz } = sidecar.addresses;
      const doors = [
        proxy === undefined
          ? undefined
          : `proxy ${cfg.agent.identity.mtls === undefined ? 'http' : 'https'}://${proxy.address}:${proxy.port}`,
        `admin http://${admin.address}:${admin.port}`,
        extAuthz === undefined ? undefined : `ext_authz ${extAuthz.address}:${extAuthz.port}`,
      ].filter((door) => door !== undefined);
      process.stdout.write(
        `tollgate ${VERSION} listening: ${doors.join('  ')}  policy ${info?.decisionPath} @ ${info?.revision}\n`,
      );
      let closing = false;
      const shutdown = (signal: string): void => {
        if (closing) return;
        closing = true;
        logger.info({ signal }, 'tollgate stopping');
        Promise.all([sidecar.close(), demo?.close()])
          .then(() => telemetry.shutdown())
          .then(
            () => process.exit(0),
            () => process.exit(1),
          );
      };
      process.on('SIGINT', () => shutdown('SIGINT'));
      process.on('SIGTERM', () => shutdown('SIGTERM'));
      if (demo !== undefined && proxy !== undefined)
        await demo.run(proxy, (line) => process.stdout.write(`${line}\n`), admin);
      return;
    }
    default:
      fail(`unknown command "${command}"; see tollgate --help`);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof TollgateError) fail(`${err.code}: ${err.message}`);
  fail(err instanceof Error ? (err.stack ?? err.message) : String(err));
});
