/**
 * The Cedar PDP: Cedar policies evaluated in-process with @cedar-policy/cedar-wasm,
 * which is imported only when a configuration uses Cedar (its WebAssembly module is
 * several megabytes a sidecar would otherwise pay for at idle).
 *
 * At load: the schema must parse, every policy must parse and pass Cedar's strict
 * validator against it, and the configured entities must conform to it; any problem
 * is a TG_ERR_BUNDLE_INVALID naming the file, the policy and Cedar's message. Per
 * request: cedar-request.ts maps the input to one Cedar request (one per MCP tool call
 * of a batch), each is authorized against the preparsed policy set and schema with
 * request validation on, and the results become one Decision:
 *
 * - every request allowed: allow;
 * - a forbid policy (or several) determined a deny: deny, with each policy's
 *   `@reason("...")` annotation as a reason (else "denied by Cedar policy <id>");
 * - nothing permitted the request: a deny that does not apply (`applicable: false`),
 *   so a PDP chain asks its other stages; alone, it denies;
 * - a policy that raised an evaluation error, on a request Cedar would allow, fails the
 *   decision (TG_ERR_POLICY_EVAL): Cedar skips an erroring policy, and a skipped forbid
 *   must not turn into an allow.
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { createHash, randomUUID } from 'node:crypto';
import { TollgateError, wrapError } from '../errors.ts';
import type { PolicyInput } from '../input/build.ts';
import { cedarRequests, MappingError, type CedarEntity, type SchemaView } from './cedar-request.ts';
import type { Decision, Pdp, PolicyInfo } from './types.ts';

type CedarModule = typeof import('@cedar-policy/cedar-wasm/nodejs');

/** Options of createCedarPdp. */
export interface CedarPdpOptions {
  /** A .cedar file or a directory of them. */
  readonly policies: string;
  /** The schema file (.cedarschema, or .json in the JSON schema format). */
  readonly schema: string;
  /** A JSON array of extra entities ('' for none). */
  readonly entities?: string;
  readonly timeoutMs: number;
}

let cedarModule: Promise<CedarModule> | undefined;

/** Loads cedar-wasm once, on first use. */
function loadCedar(): Promise<CedarModule> {
  cedarModule ??= import('@cedar-policy/cedar-wasm/nodejs');
  return cedarModule;
}

function invalid(message: string): TollgateError {
  return new TollgateError('TG_ERR_BUNDLE_INVALID', message);
}

function errorText(errors: readonly { message: string; help?: string | null }[]): string {
  return errors.map((e) => (e.help ? `${e.message} (${e.help})` : e.message)).join('; ');
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw wrapError('TG_ERR_BUNDLE_INVALID', `cannot read the Cedar ${what} ${path}`, err);
  }
}

/** The line of a character offset, for error messages. */
function lineOf(text: string, offset: number): number {
  return text.slice(0, offset).split('\n').length;
}

/** A loaded policy: its text, file and annotations. */
interface LoadedPolicy {
  readonly id: string;
  readonly file: string;
  readonly text: string;
  readonly reason?: string;
}

async function policyFiles(path: string): Promise<string[]> {
  let info;
  try {
    info = await stat(path);
  } catch (err) {
    throw wrapError('TG_ERR_BUNDLE_INVALID', `cannot read the Cedar policies ${path}`, err);
  }
  if (!info.isDirectory()) return [path];
  const files = (await readdir(path)).filter((f) => f.endsWith('.cedar')).sort();
  if (files.length === 0) throw invalid(`${path}: no .cedar files in the Cedar policy directory`);
  return files.map((f) => join(path, f));
}

async function loadPolicies(cedar: CedarModule, path: string): Promise<LoadedPolicy[]> {
  const out: LoadedPolicy[] = [];
  const ids = new Set<string>();
  for (const file of await policyFiles(path)) {
    const text = await readText(file, 'policy file');
    const parts = cedar.policySetTextToParts(text);
    if (parts.type === 'failure') throw invalid(`${file}: the Cedar policies do not parse: ${errorText(parts.errors)}`);
    if (parts.policy_templates.length > 0) throw invalid(`${file}: Cedar templates are not supported, only policies`);
    for (const [n, policy] of parts.policies.entries()) {
      const json = cedar.policyToJson(policy);
      const annotations = json.type === 'success' ? (json.json.annotations ?? {}) : {};
      const id = annotations.id ?? `${basename(file)}:${n}`;
      if (ids.has(id)) throw invalid(`${file}: Cedar policy id "${id}" is used twice`);
      ids.add(id);
      out.push({ id, file, text: policy, ...(annotations.reason === undefined ? {} : { reason: annotations.reason }) });
    }
  }
  return out;
}

/** The schema's JSON form, empty namespace, checked for the entity types the mapping uses. */
function schemaView(cedar: CedarModule, schema: string | object, file: string): SchemaView {
  const parsed = cedar.checkParseSchema(schema as never);
  if (parsed.type === 'failure') throw invalid(`${file}: the Cedar schema does not parse: ${errorText(parsed.errors)}`);
  const json = cedar.schemaToJson(schema as never);
  if (json.type === 'failure') throw invalid(`${file}: the Cedar schema does not parse: ${errorText(json.errors)}`);
  const namespaces = json.json as unknown as Record<string, SchemaView>;
  const others = Object.keys(namespaces).filter((n) => n !== '');
  if (others.length > 0)
    throw invalid(
      `${file}: the Cedar schema must use the empty namespace (Tollgate's entity types), found ${others.join(', ')}`,
    );
  const ns = namespaces[''];
  for (const type of ['Agent', 'Destination']) {
    if (ns?.entityTypes?.[type] === undefined)
      throw invalid(`${file}: the Cedar schema must declare entity type ${type} (see README "Cedar")`);
  }
  return { commonTypes: ns!.commonTypes ?? {}, entityTypes: ns!.entityTypes, actions: ns!.actions ?? {} };
}

/** Creates the Cedar PDP: loads cedar-wasm, validates policies and entities against the schema. */
export async function createCedarPdp(options: CedarPdpOptions): Promise<Pdp> {
  const cedar = await loadCedar();
  const schemaText = await readText(options.schema, 'schema');
  let schema: string | object = schemaText;
  if (options.schema.endsWith('.json')) {
    try {
      schema = JSON.parse(schemaText) as object;
    } catch (err) {
      throw wrapError('TG_ERR_BUNDLE_INVALID', `${options.schema}: the Cedar JSON schema is not JSON`, err);
    }
  }
  const view = schemaView(cedar, schema, options.schema);
  const policies = await loadPolicies(cedar, options.policies);
  const staticPolicies = Object.fromEntries(policies.map((p) => [p.id, p.text]));
  const byId = new Map(policies.map((p) => [p.id, p]));
  const validation = cedar.validate({
    schema: schema as never,
    policies: { staticPolicies },
    validationSettings: { mode: 'strict' },
  });
  if (validation.type === 'failure')
    throw invalid(`${options.policies}: Cedar validation failed: ${errorText(validation.errors)}`);
  if (validation.validationErrors.length > 0) {
    const problems = validation.validationErrors.map((e) => {
      const policy = byId.get(e.policyId);
      const at = e.error.sourceLocations?.[0];
      const where = policy === undefined ? e.policyId : `${policy.file} policy "${policy.id}"`;
      const line = policy !== undefined && at !== undefined ? ` (policy line ${lineOf(policy.text, at.start)})` : '';
      return `${where}${line}: ${e.error.message}`;
    });
    throw invalid(`the Cedar policies do not validate against ${options.schema}: ${problems.join('; ')}`);
  }
  let fileEntities: CedarEntity[] = [];
  if (options.entities !== undefined && options.entities !== '') {
    const text = await readText(options.entities, 'entities file');
    try {
      fileEntities = JSON.parse(text) as CedarEntity[];
    } catch (err) {
      throw wrapError('TG_ERR_BUNDLE_INVALID', `${options.entities}: the Cedar entities file is not JSON`, err);
    }
    if (!Array.isArray(fileEntities))
      throw invalid(`${options.entities}: the Cedar entities file must hold a JSON array of entities`);
    const checked = cedar.checkParseEntities({ entities: fileEntities as never, schema: schema as never });
    if (checked.type === 'failure')
      throw invalid(`${options.entities}: the Cedar entities do not fit the schema: ${errorText(checked.errors)}`);
  }
  // Preparsed once: each request then pays for evaluation, not for parsing policies and schema.
  const key = `tollgate-${randomUUID()}`;
  const preparsedPolicies = cedar.preparsePolicySet(key, { staticPolicies });
  if (preparsedPolicies.type === 'failure')
    throw invalid(`${options.policies}: ${errorText(preparsedPolicies.errors)}`);
  const preparsedSchema = cedar.preparseSchema(key, schema as never);
  if (preparsedSchema.type === 'failure') throw invalid(`${options.schema}: ${errorText(preparsedSchema.errors)}`);
  // Like the seed bundle's revision: a digest of what decides, so two sidecars can compare.
  const digest = createHash('sha256').update(schemaText);
  for (const p of policies) digest.update(`\0${p.id}\0${p.text}`);
  const revision = `cedar-${digest.digest('hex').slice(0, 12)}`;
  const info: PolicyInfo = { kind: 'cedar', decisionPath: `cedar:${options.policies}`, revision };
  const deadlineNanos = BigInt(options.timeoutMs) * 1_000_000n;

  function decideSync(input: PolicyInput, decisionId: string): Decision {
    const started = process.hrtime.bigint();
    const cpuStarted = process.threadCpuUsage();
    let requests;
    try {
      requests = cedarRequests(view, input as unknown as Record<string, unknown>, fileEntities, Date.now());
    } catch (err) {
      if (err instanceof MappingError) throw new TollgateError('TG_ERR_POLICY_EVAL', `cedar: ${err.message}`);
      throw err;
    }
    let allowed = true;
    let applicable = true;
    const reasons = new Set<string>();
    const determining = new Set<string>();
    const errors: string[] = [];
    for (const request of requests) {
      const answer = cedar.statefulIsAuthorized({
        principal: request.principal,
        action: request.action,
        resource: request.resource,
        context: request.context as never,
        entities: [...fileEntities, ...request.entities] as never,
        preparsedPolicySetId: key,
        preparsedSchemaName: key,
        validateRequest: true,
      });
      if (answer.type === 'failure') {
        throw new TollgateError(
          'TG_ERR_POLICY_EVAL',
          `cedar: the ${request.action.id} request on ${request.resource.type}::"${request.resource.id}" does not fit the schema: ${errorText(answer.errors)}`,
        );
      }
      const { decision, diagnostics } = answer.response;
      for (const e of diagnostics.errors) errors.push(`${e.policyId}: ${e.error.message}`);
      for (const id of diagnostics.reason) determining.add(id);
      if (decision === 'allow') {
        if (diagnostics.errors.length > 0) {
          throw new TollgateError(
            'TG_ERR_POLICY_EVAL',
            `cedar: policies failed while evaluating, so a forbid may have been skipped: ${errors.join('; ')}`,
          );
        }
        continue;
      }
      allowed = false;
      if (diagnostics.reason.length === 0) {
        // No policy was satisfied: Cedar's default deny, i.e. this policy set has no opinion.
        continue;
      }
      applicable = true;
      for (const id of diagnostics.reason) reasons.add(byId.get(id)?.reason ?? `denied by Cedar policy ${id}`);
    }
    // Not applicable only when every denied request was a default deny.
    if (!allowed && reasons.size === 0) applicable = false;
    const elapsed = process.hrtime.bigint() - started;
    if (elapsed > deadlineNanos) {
      // As in wasm.ts: judged on this thread's CPU time, so a descheduled process is not a slow policy.
      const cpu = process.threadCpuUsage(cpuStarted);
      const cpuNanos = BigInt(cpu.user + cpu.system) * 1000n;
      if (cpuNanos > deadlineNanos) {
        throw new TollgateError(
          'TG_ERR_PDP_TIMEOUT',
          `cedar evaluation took ${Number(cpuNanos / 1000n) / 1000} ms of CPU, over the ${options.timeoutMs} ms deadline`,
        );
      }
    }
    const sorted = applicable ? [...reasons].sort() : ['no Cedar policy permits this request'];
    return {
      allowed,
      ...(applicable ? {} : { applicable: false }),
      headers: [],
      requestHeadersToRemove: [],
      responseHeadersToAdd: [],
      queryParametersToSet: [],
      queryParametersToRemove: [],
      reasons: sorted,
      decisionId,
      revision,
      evalNanos: Number(elapsed),
      result: {
        allowed,
        reasons: sorted,
        ...(applicable ? {} : { applicable: false }),
        cedar: {
          requests: requests.map((r) => ({
            principal: `${r.principal.type}::${JSON.stringify(r.principal.id)}`,
            action: `Action::${JSON.stringify(r.action.id)}`,
            resource: `${r.resource.type}::${JSON.stringify(r.resource.id)}`,
          })),
          determining_policies: [...determining].sort(),
          ...(errors.length === 0 ? {} : { errors }),
        },
      },
    };
  }

  // The first evaluation compiles cedar-wasm's hot paths (tens of milliseconds): pay it at
  // load, not on the first request's deadline. Its outcome does not matter.
  try {
    decideSync(
      {
        attributes: { request: { http: { method: 'GET', host: 'warm-up.invalid', path: '/', headers: {} } } },
        agent: { id: 'warm-up', role: '', labels: {} },
      } as unknown as PolicyInput,
      'warm-up',
    );
  } catch {
    // A schema that cannot take this request still warms up on the first real one.
  }

  return {
    decide(input, decisionId) {
      try {
        return Promise.resolve(decideSync(input, decisionId));
      } catch (err) {
        return Promise.reject(wrapError('TG_ERR_POLICY_EVAL', 'cedar evaluation failed', err));
      }
    },
    info: () => info,
    close: () => Promise.resolve(),
  };
}
