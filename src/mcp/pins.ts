/**
 * Tool pinning against rug pulls and tool poisoning. A tool's definition (name,
 * description, inputSchema) is fingerprinted as SHA-256 of its canonical JSON (keys
 * sorted, no whitespace; RFC 8785's shape for the values MCP schemas hold). The first
 * definition of a tool seen in a server's tools/list answer is pinned (trust on first
 * use) unless the pins file already names one; a later definition that differs is
 * recorded as a change, and every call of that tool carries `pinned` / `changed` and
 * both fingerprints in input.mcp.tool until an operator accepts the new definition.
 *
 * A server is the destination authority as the policy sees it (host, plus ":port" when
 * it is not the scheme's default). State is bounded (maxServers, maxToolsPerServer) and
 * per sidecar process: each replica pins what it relays.
 */
import { createHash } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, basename } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { TollgateError } from '../errors.ts';
import type { PolicyInput } from '../input/build.ts';
import { canonicalJson } from '../json/canonical.ts';

/** The parts of a tool definition that are pinned. */
export interface ToolDefinition {
  readonly name: string;
  readonly description?: string;
  readonly inputSchema?: unknown;
}

/** Where a pin came from. */
export type PinSource = 'file' | 'first-seen' | 'accepted';

/** A pinned definition of one tool. */
export interface Pin {
  readonly sha256: string;
  readonly definition: ToolDefinition | undefined;
  readonly source: PinSource;
  readonly pinnedAt: string;
}

/** A definition seen that differs from the pin. */
export interface ObservedChange {
  readonly sha256: string;
  readonly definition: ToolDefinition;
  readonly seenAt: string;
}

/** What the policy sees of a tool (merged into input.mcp.tool and input.response.tools[]). */
export interface ToolPinStatus {
  readonly pinned: boolean;
  readonly changed: boolean;
  /** The pinned definition's fingerprint (absent: not pinned). */
  readonly pinned_sha256?: string;
  /** The fingerprint last seen in a tools/list answer (absent: never seen). */
  readonly observed_sha256?: string;
}

/** One tool of `tollgate mcp tools list`. */
export interface PinListEntry {
  readonly server: string;
  readonly tool: string;
  readonly status: 'pinned' | 'changed';
  readonly pin: Pin;
  readonly observed?: ObservedChange;
}

/** A change found in a tools/list answer (for metrics and the decision log). */
export interface ToolChange {
  readonly server: string;
  readonly tool: string;
  readonly pinnedSha256: string;
  readonly observedSha256: string;
  readonly definition: ToolDefinition;
}

/** The pins file entry for accepted tools: what to commit to Git. */
export interface PinsFileEntry {
  readonly servers: Record<string, { tools: Record<string, { sha256: string; definition?: ToolDefinition }> }>;
}

/** Options of createPinStore. */
export interface PinStoreOptions {
  /** The pins file (JSON or YAML), loaded now; "" for none. */
  readonly file?: string;
  /** Rewrite the file when a definition is accepted. */
  readonly writeBack?: boolean;
  readonly maxServers?: number;
  readonly maxToolsPerServer?: number;
  /** Called for each changed definition the first time it is seen (must not throw). */
  readonly onChange?: (change: ToolChange) => void;
  /** Clock (tests). */
  readonly now?: () => Date;
}

/** The pin registry. */
export interface PinStore {
  /** Records the tools of a tools/list answer; returns each tool's status, in order. */
  observe(server: string, tools: readonly unknown[]): ToolPinStatus[];
  /** A called tool's status; undefined when the server has no pins at all. */
  status(server: string, tool: string): ToolPinStatus | undefined;
  /** Adds pinned/changed/fingerprints to every tools/call in input.mcp (single or batch). */
  annotate(input: PolicyInput, server: string): void;
  /** Every pin, changed ones with the definition seen. */
  list(server?: string): PinListEntry[];
  /** Accepts the observed definitions (one tool, or every changed tool of the server); returns the entries to commit. */
  accept(server: string, tool?: string): PinsFileEntry;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The pinned parts of a tools/list entry, or undefined when it has no string name. */
export function toolDefinition(tool: unknown): ToolDefinition | undefined {
  if (!isObject(tool) || typeof tool.name !== 'string') return undefined;
  return {
    name: tool.name,
    ...(tool.description === undefined ? {} : { description: tool.description as string }),
    ...(tool.inputSchema === undefined ? {} : { inputSchema: tool.inputSchema }),
  };
}

/** SHA-256 (hex) of a definition's canonical JSON. */
export function fingerprint(definition: ToolDefinition): string {
  return createHash('sha256').update(canonicalJson(definition)).digest('hex');
}

function invalidFile(file: string, why: string): TollgateError {
  return new TollgateError('TG_ERR_CONFIG_INVALID', `/mcp/pins/file: ${file}: ${why}`);
}

/** Reads a pins file (JSON or YAML) into server → tool → {sha256, definition}. */
export function readPinsFile(file: string): PinsFileEntry {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new TollgateError(
      'TG_ERR_CONFIG_INVALID',
      `/mcp/pins/file: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
      { cause: err },
    );
  }
  let doc: unknown;
  try {
    doc = parseYaml(text); // YAML 1.2 is a superset of JSON
  } catch (err) {
    throw new TollgateError('TG_ERR_CONFIG_INVALID', `/mcp/pins/file: ${file} is not JSON or YAML`, { cause: err });
  }
  if (doc === null || doc === undefined) return { servers: {} };
  if (!isObject(doc) || !isObject(doc.servers ?? {})) throw invalidFile(file, 'expected {servers: {...}}');
  const servers: PinsFileEntry['servers'] = {};
  for (const [server, entry] of Object.entries((doc.servers ?? {}) as Record<string, unknown>)) {
    if (!isObject(entry) || !isObject(entry.tools))
      throw invalidFile(file, `servers.${server}: expected {tools: {...}}`);
    const tools: PinsFileEntry['servers'][string]['tools'] = {};
    for (const [name, pin] of Object.entries(entry.tools)) {
      if (!isObject(pin)) throw invalidFile(file, `servers.${server}.tools.${name}: expected {sha256}`);
      const definition = pin.definition === undefined ? undefined : toolDefinition(pin.definition);
      let sha = pin.sha256;
      if (sha === undefined && definition !== undefined) sha = fingerprint(definition);
      if (typeof sha !== 'string' || !/^[0-9a-f]{64}$/.test(sha))
        throw invalidFile(file, `servers.${server}.tools.${name}.sha256: expected 64 lowercase hex digits`);
      if (definition !== undefined && fingerprint(definition) !== sha)
        throw invalidFile(file, `servers.${server}.tools.${name}: sha256 does not match its definition`);
      tools[name] = { sha256: sha, ...(definition === undefined ? {} : { definition }) };
    }
    servers[server.toLowerCase()] = { tools };
  }
  return { servers };
}

/** Creates the pin registry, pre-seeded from the pins file. */
export function createPinStore(options: PinStoreOptions = {}): PinStore {
  const maxServers = options.maxServers ?? 1000;
  const maxTools = options.maxToolsPerServer ?? 1000;
  const now = options.now ?? (() => new Date());
  const pins = new Map<string, Map<string, Pin>>();
  const observed = new Map<string, Map<string, ObservedChange>>();
  const file = options.file ?? '';
  const fromFile = file === '' ? { servers: {} } : readPinsFile(file);
  const loadedAt = now().toISOString();
  for (const [server, entry] of Object.entries(fromFile.servers)) {
    const tools = new Map<string, Pin>();
    for (const [name, pin] of Object.entries(entry.tools))
      tools.set(name, { sha256: pin.sha256, definition: pin.definition, source: 'file', pinnedAt: loadedAt });
    pins.set(server, tools);
  }

  const statusOf = (server: string, tool: string): ToolPinStatus | undefined => {
    const pin = pins.get(server)?.get(tool);
    if (pin === undefined) return pins.has(server) ? { pinned: false, changed: false } : undefined;
    const change = observed.get(server)?.get(tool);
    return change === undefined
      ? { pinned: true, changed: false, pinned_sha256: pin.sha256, observed_sha256: pin.sha256 }
      : { pinned: true, changed: true, pinned_sha256: pin.sha256, observed_sha256: change.sha256 };
  };

  function observe(server: string, tools: readonly unknown[]): ToolPinStatus[] {
    const key = server.toLowerCase();
    let serverPins = pins.get(key);
    if (serverPins === undefined) {
      if (pins.size >= maxServers) return tools.map(() => ({ pinned: false, changed: false }));
      serverPins = new Map();
      pins.set(key, serverPins);
    }
    const out: ToolPinStatus[] = [];
    for (const tool of tools) {
      const definition = toolDefinition(tool);
      if (definition === undefined) {
        out.push({ pinned: false, changed: false });
        continue;
      }
      const sha = fingerprint(definition);
      const pin = serverPins.get(definition.name);
      if (pin === undefined) {
        if (serverPins.size >= maxTools) {
          out.push({ pinned: false, changed: false, observed_sha256: sha });
          continue;
        }
        serverPins.set(definition.name, {
          sha256: sha,
          definition,
          source: 'first-seen',
          pinnedAt: now().toISOString(),
        });
      } else if (pin.sha256 !== sha) {
        let changes = observed.get(key);
        if (changes === undefined) observed.set(key, (changes = new Map()));
        const prior = changes.get(definition.name);
        if (prior?.sha256 !== sha) {
          changes.set(definition.name, { sha256: sha, definition, seenAt: now().toISOString() });
          try {
            options.onChange?.({
              server: key,
              tool: definition.name,
              pinnedSha256: pin.sha256,
              observedSha256: sha,
              definition,
            });
          } catch {
            // reporting never affects enforcement
          }
        }
      } else {
        // Back to the pinned definition: no longer changed.
        observed.get(key)?.delete(definition.name);
      }
      out.push(statusOf(key, definition.name)!);
    }
    return out;
  }

  function annotateTool(tool: unknown, server: string): void {
    if (!isObject(tool) || typeof tool.name !== 'string') return;
    const status = statusOf(server, tool.name) ?? { pinned: false, changed: false };
    Object.assign(tool, status);
  }

  function entryFor(server: string, names: readonly string[]): PinsFileEntry {
    const tools: PinsFileEntry['servers'][string]['tools'] = {};
    for (const name of names) {
      const pin = pins.get(server)?.get(name);
      if (pin !== undefined)
        tools[name] = { sha256: pin.sha256, ...(pin.definition === undefined ? {} : { definition: pin.definition }) };
    }
    return { servers: { [server]: { tools } } };
  }

  function writeBack(): void {
    if (!options.writeBack || file === '') return;
    const servers: PinsFileEntry['servers'] = {};
    for (const server of [...pins.keys()].sort())
      servers[server] = entryFor(server, [...pins.get(server)!.keys()].sort()).servers[server]!;
    const text = /\.json$/i.test(file)
      ? `${JSON.stringify({ servers }, null, 2)}\n`
      : `# Tollgate MCP tool pins (tollgate mcp tools accept rewrites this file)\n${stringifyYaml({ servers })}`;
    // Next to the target, then rename: a reader never sees half a file.
    const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
    writeFileSync(tmp, text);
    renameSync(tmp, file);
  }

  return {
    observe,
    status: (server, tool) => statusOf(server.toLowerCase(), tool),
    annotate(input, server) {
      const mcp = input.mcp;
      if (mcp === undefined) return;
      const key = server.toLowerCase();
      if ('batch' in mcp) for (const m of mcp.batch) annotateTool(m.tool, key);
      else annotateTool(mcp.tool, key);
    },
    list(server) {
      const out: PinListEntry[] = [];
      for (const [key, tools] of [...pins].sort(([a], [b]) => (a < b ? -1 : 1))) {
        if (server !== undefined && key !== server.toLowerCase()) continue;
        for (const [name, pin] of [...tools].sort(([a], [b]) => (a < b ? -1 : 1))) {
          const change = observed.get(key)?.get(name);
          out.push({
            server: key,
            tool: name,
            status: change === undefined ? 'pinned' : 'changed',
            pin,
            ...(change === undefined ? {} : { observed: change }),
          });
        }
      }
      return out;
    },
    accept(server, tool) {
      const key = server.toLowerCase();
      const changes = observed.get(key);
      const names = tool === undefined ? [...(changes?.keys() ?? [])] : [tool];
      if (names.length === 0)
        throw new TollgateError('TG_ERR_BAD_REQUEST', `server ${key} has no changed tool to accept`);
      for (const name of names) {
        const change = changes?.get(name);
        if (change === undefined)
          throw new TollgateError(
            'TG_ERR_BAD_REQUEST',
            `tool ${name} of server ${key} has no changed definition to accept`,
          );
      }
      const at = now().toISOString();
      for (const name of names) {
        const change = changes!.get(name)!;
        pins
          .get(key)!
          .set(name, { sha256: change.sha256, definition: change.definition, source: 'accepted', pinnedAt: at });
        changes!.delete(name);
      }
      writeBack();
      return entryFor(key, names.sort());
    },
  };
}
