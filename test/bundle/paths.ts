/** Paths shared by the policy lifecycle tests. */
import { fileURLToPath } from 'node:url';

/** The committed seed bundle (what sidecar.ts calls DEFAULT_BUNDLE), without importing the composition root. */
export const DEFAULT_BUNDLE_FOR_TESTS = fileURLToPath(new URL('../../policies/dist/bundle.tar.gz', import.meta.url));
