/**
 * Masking of decision-log events, as OPA's `system.log.mask` does it: a list of JSON
 * pointers (RFC 6901) rooted at the event (`/input/...`, `/result/...`); each one that
 * exists is erased and listed in the event's `erased` field, so a reader knows a value
 * was there. Copy-on-write: only the containers along an erased path are copied; the
 * caller's input is never modified.
 */

/** Pointers erased by default: credential headers and the agent identity token. */
export const DEFAULT_MASK: readonly string[] = [
  '/input/attributes/request/http/headers/authorization',
  '/input/attributes/request/http/headers/proxy-authorization',
  '/input/attributes/request/http/headers/cookie',
  '/input/attributes/request/http/headers/x-tollgate-agent-token',
  '/input/attributes/request/http/headers/x-api-key',
];

const HEADERS_PREFIX = '/input/attributes/request/http/headers/';

/** The event parts a mask applies to. */
export interface Maskable {
  readonly input?: unknown;
  readonly result?: unknown;
}

/** Splits a JSON pointer into unescaped reference tokens (RFC 6901 §4: ~1 → /, then ~0 → ~). */
export function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/')) throw new Error(`json pointer must start with "/": ${pointer}`);
  return pointer
    .slice(1)
    .split('/')
    .map((token) => token.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** The header names a mask list erases (for span hygiene: the same list keeps them off spans). */
export function maskedHeaderNames(mask: readonly string[]): string[] {
  return mask
    .filter((p) => p.startsWith(HEADERS_PREFIX) && p.indexOf('/', HEADERS_PREFIX.length) === -1)
    .map((p) => parsePointer(p).at(-1)!.toLowerCase());
}

function isContainer(value: unknown): value is Record<string, unknown> | unknown[] {
  return typeof value === 'object' && value !== null;
}

const ARRAY_INDEX = /^(0|[1-9]\d*)$/;

/**
 * Returns `root` with the value at `tokens[at..]` removed (copying along the path), or
 * undefined when absent. Absent is the common case (no credential header), so the path is
 * walked first and nothing is copied for it.
 */
function erase(root: unknown, tokens: readonly string[], at = 0): unknown | undefined {
  if (at >= tokens.length || !isContainer(root)) return undefined;
  const head = tokens[at]!;
  const last = at === tokens.length - 1;
  if (Array.isArray(root)) {
    if (!ARRAY_INDEX.test(head)) return undefined;
    const index = Number(head);
    if (index >= root.length) return undefined;
    const child = last ? null : erase(root[index], tokens, at + 1);
    if (child === undefined) return undefined;
    const copy = root.slice();
    // Erasing an array element keeps the indexes of the others stable.
    copy[index] = child;
    return copy;
  }
  if (!Object.hasOwn(root, head)) return undefined;
  if (last) {
    const { [head]: _removed, ...others } = root;
    return others;
  }
  const child = erase(root[head], tokens, at + 1);
  if (child === undefined) return undefined;
  return { ...root, [head]: child };
}

/** A parsed pointer; `group` numbers the pointers that share its parent path. */
interface ParsedPointer {
  readonly pointer: string;
  readonly tokens: readonly string[];
  readonly group: number;
}

interface ParsedMask {
  readonly pointers: readonly ParsedPointer[];
  readonly groups: number;
}

// A mask list is parsed once (it is fixed at start), not once per event.
const parsedMasks = new WeakMap<readonly string[], ParsedMask>();

function parsedMask(mask: readonly string[]): ParsedMask {
  let parsed = parsedMasks.get(mask);
  if (parsed === undefined) {
    const groups = new Map<string, number>();
    const pointers = mask.flatMap((pointer) => {
      try {
        const tokens = parsePointer(pointer);
        if (tokens[0] !== 'input' && tokens[0] !== 'result') return [];
        const parent = JSON.stringify(tokens.slice(0, -1));
        let group = groups.get(parent);
        if (group === undefined) groups.set(parent, (group = groups.size));
        return [{ pointer, tokens, group }];
      } catch {
        return [];
      }
    });
    parsed = { pointers, groups: groups.size };
    parsedMasks.set(mask, parsed);
  }
  return parsed;
}

/** Whether `container` has the member or element `token` (as erase reads it). */
function holds(container: unknown, token: string): boolean {
  if (!isContainer(container)) return false;
  if (Array.isArray(container)) return ARRAY_INDEX.test(token) && Number(token) < container.length;
  return Object.hasOwn(container, token);
}

/** The container at `tokens[0..end)` from `root`, or undefined when the path is absent. */
function walk(root: unknown, tokens: readonly string[], end: number): unknown {
  let at = root;
  for (let i = 0; i < end; i++) {
    const token = tokens[i]!;
    if (!holds(at, token)) return undefined;
    at = (at as Record<string, unknown>)[Array.isArray(at) ? Number(token) : token];
  }
  return at;
}

/**
 * Applies a mask list to an event; `erased` lists the pointers that matched, in mask order.
 * Pointers sharing a parent path (the default list: five headers) walk it once per event, and
 * nothing is copied for a pointer that is absent (the common case: no credential header).
 */
export function maskEvent<T extends Maskable>(event: T, mask: readonly string[]): { event: T; erased: string[] } {
  const { pointers, groups } = parsedMask(mask);
  let current = event as Record<string, unknown>;
  const erased: string[] = [];
  // Each group's parent container in `current` (null: absent), found when first needed.
  let parents: unknown[] = new Array(groups);
  for (const { pointer, tokens, group } of pointers) {
    let parent = parents[group];
    if (parent === undefined) {
      parent = walk(current, tokens, tokens.length - 1) ?? null;
      parents[group] = parent;
    }
    if (parent === null || !holds(parent, tokens[tokens.length - 1]!)) continue;
    const next = erase(current, tokens);
    if (next !== undefined) {
      current = next as Record<string, unknown>;
      erased.push(pointer);
      // The containers along the path were copied: look the parents up again.
      parents = new Array(groups);
    }
  }
  return { event: current as T, erased };
}

/** Masks a bare policy input (for recording it on a span): pointers are still `/input/...`. */
export function maskInput(input: unknown, mask: readonly string[]): unknown {
  return maskEvent({ input }, mask).event.input;
}
