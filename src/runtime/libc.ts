/**
 * Functions of the C library that Node has no binding for, called through koffi (an FFI whose
 * npm package ships prebuilt binaries): on Linux with glibc. Elsewhere, or when koffi cannot
 * load, undefined: each caller has a behaviour without it.
 */
import { createRequire } from 'node:module';

interface Library {
  func(declaration: string): unknown;
}

let libc: Library | null | undefined;

/** A libc function by its C declaration (koffi's syntax), or undefined where there is none. */
export function libcFunction<F>(declaration: string): F | undefined {
  if (libc === undefined) {
    try {
      const koffi = createRequire(import.meta.url)('koffi') as { load(name: string): Library };
      libc = koffi.load('libc.so.6');
    } catch {
      libc = null;
    }
  }
  if (libc === null) return undefined;
  try {
    return libc.func(declaration) as F;
  } catch {
    return undefined;
  }
}
