/** Tollgate's version, reported by `tollgate version` and /version. */
export const VERSION = '0.1.0';
