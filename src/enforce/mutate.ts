/**
 * Request mutations a policy may ask for on an allowed request: query parameters
 * set or removed (headers are applied where the request is forwarded).
 */
import type { HeaderPair } from '../pdp/types.ts';

/** Applies query_parameters_to_remove then query_parameters_to_set to a path. */
export function applyQueryChanges(path: string, toSet: readonly HeaderPair[], toRemove: readonly string[]): string {
  if (toSet.length === 0 && toRemove.length === 0) return path;
  const q = path.indexOf('?');
  const base = q === -1 ? path : path.slice(0, q);
  const params = new URLSearchParams(q === -1 ? '' : path.slice(q + 1));
  for (const name of toRemove) params.delete(name);
  const setNames = new Set<string>();
  for (const [name, value] of toSet) {
    // The first value replaces in place (URLSearchParams.set keeps the position); more values append.
    if (setNames.has(name)) params.append(name, value);
    else {
      params.set(name, value);
      setNames.add(name);
    }
  }
  const query = params.toString();
  return query === '' ? base : `${base}?${query}`;
}
