/**
 * Path normalisation: the one reading of a request path that the policy decides on and
 * that is forwarded. What a server could read differently from that canonical path is
 * refused (strict mode) before any byte reaches the tool; docs/path-reading.md lists
 * every rule and the servers behind it.
 */
import { TollgateError } from '../errors.ts';
import type { PathNormalization } from '../config/schema.ts';

function bad(message: string): TollgateError {
  return new TollgateError('TG_ERR_BAD_REQUEST', message);
}

function ambiguous(message: string): TollgateError {
  return new TollgateError('TG_ERR_AMBIGUOUS_TARGET', message);
}

// RFC 3986 §2.3 unreserved characters, by byte: decoding these never changes meaning.
const UNRESERVED = new Uint8Array(128);
for (const ch of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~') UNRESERVED[ch.charCodeAt(0)] = 1;

const HEX = '0123456789ABCDEF';

/**
 * Code points that Unicode compatibility normalisation (NFKC, UAX #15) folds into a
 * string holding "/", "\", ".", "%", ";", "?" or "#" (e.g. U+FF0F "／" → "/", U+2025
 * "‥" → "..", U+FF05 "％" → "%"), plus the TR39 confusables of "/" and "\" that NFKC
 * leaves alone but look-alike folding (Windows best-fit conversion, confusable
 * skeletons) maps: U+2044, U+2215, U+2216, U+29F5, U+29F8, U+29F9. A stack that
 * folds them (IIS, Java and Python normalisers, NFKC-normalising frameworks) sees a
 * different path structure than the policy did. test/http/path-unicode.test.ts
 * recomputes the NFKC part from the running ICU so the list cannot go stale.
 */
export const STRUCTURE_FOLDING_CODE_POINTS: ReadonlySet<number> = new Set([
  0x37e, 0x2024, 0x2025, 0x2026, 0x2047, 0x2048, 0x2049, 0x2100, 0x2101, 0x2105, 0x2106, 0x2488, 0x2489, 0x248a, 0x248b,
  0x248c, 0x248d, 0x248e, 0x248f, 0x2490, 0x2491, 0x2492, 0x2493, 0x2494, 0x2495, 0x2496, 0x2497, 0x2498, 0x2499,
  0x249a, 0x249b, 0x33c2, 0x33c7, 0x33d8, 0xfe14, 0xfe16, 0xfe19, 0xfe30, 0xfe52, 0xfe54, 0xfe56, 0xfe5f, 0xfe68,
  0xfe6a, 0xff03, 0xff05, 0xff0e, 0xff0f, 0xff1b, 0xff1f, 0xff3c, 0x1f100,
  // confusables without an NFKC mapping
  0x2044, 0x2215, 0x2216, 0x29f5, 0x29f8, 0x29f9,
]);

/**
 * Normalises a path (no query) into its one canonical spelling, or throws
 * TG_ERR_BAD_REQUEST (malformed) / TG_ERR_AMBIGUOUS_TARGET (servers disagree on it).
 *
 * Every mode: RFC 3986 §6.2.2 — decode escaped unreserved characters, uppercase the
 * other escapes, remove dot segments (§5.2.4); refuse control characters, backslashes
 * and (except decode_and_merge_slashes, which decodes them to "/") encoded "/" and "\".
 * merge_slashes, decode_and_merge_slashes and strict also merge "//" before removing
 * dot segments, as Go's path.Clean, Python's posixpath.normpath and nginx do.
 * strict (the default) also refuses path parameters (";", "%3B"), escapes of escapes
 * ("%252e"), escapes that are not valid shortest-form UTF-8 ("%c0%ae") and characters
 * that compatibility folding turns into "/", "\", ".", "%", ";", "?" or "#".
 */
export function normalizePath(rawPath: string, mode: PathNormalization = 'strict'): string {
  const n = rawPath.length;
  if (n === 0 || rawPath.charCodeAt(0) !== 0x2f)
    throw bad(`path must start with "/": ${JSON.stringify(rawPath.slice(0, 64))}`);
  // The common request ("/v1/refunds/r-1"): printable ASCII, no escape, no ";", no
  // "\", no "//" and no segment starting with "." — already canonical in every mode.
  let prev = 0x2f;
  for (let i = 1; i < n; i++) {
    const c = rawPath.charCodeAt(i);
    if (
      c <= 0x20 ||
      c >= 0x7f ||
      c === 0x25 ||
      c === 0x3b ||
      c === 0x5c ||
      (prev === 0x2f && (c === 0x2e || c === 0x2f))
    ) {
      return normalizeSlowly(rawPath, mode);
    }
    prev = c;
  }
  return rawPath;
}

function normalizeSlowly(rawPath: string, mode: PathNormalization): string {
  const strict = mode === 'strict';
  let out = '';
  let nonAscii = false;
  // Printable ASCII is copied in runs; only escapes, non-ASCII and refusals stop a run.
  let run = 0;
  for (let i = 0; i < rawPath.length; i++) {
    const code = rawPath.charCodeAt(i);
    if (code > 0x20 && code < 0x7f && code !== 0x25 && code !== 0x5c && code !== 0x3b) continue;
    if (code <= 0x20 || code === 0x7f) throw bad('path contains a control character or space');
    if (code === 0x5c)
      throw ambiguous('path contains a backslash: windows and WHATWG readers treat it as "/", others as a character');
    if (code === 0x3b) {
      if (strict)
        throw ambiguous(
          'path contains ";" (a path parameter): java servlet containers strip ";…" from each segment, other servers keep it',
        );
      continue;
    }
    out += rawPath.slice(run, i);
    if (code === 0x25) {
      const byte = hexByte(rawPath, i + 1);
      if (byte < 0) throw bad(`path has an invalid percent-encoding at offset ${i}`);
      i += 2;
      if (byte < 0x20 || byte === 0x7f) throw bad('path contains an encoded control character');
      if (byte === 0x2f || byte === 0x5c) {
        // Envoy's UNESCAPE_AND_MERGE / Istio's DECODE_AND_MERGE_SLASHES: the escape
        // becomes a separator, so the policy and the tool both see it as one.
        if (mode !== 'decode_and_merge_slashes') {
          throw ambiguous(
            'path contains an encoded slash or backslash: some servers decode it into a separator, others keep it in the segment',
          );
        }
        out += '/';
      } else if (byte === 0x3b && strict) {
        throw ambiguous(
          'path contains an encoded ";" (%3B): servers that decode before stripping path parameters read a different path',
        );
      } else if (byte < 0x80 && UNRESERVED[byte] === 1) {
        out += String.fromCharCode(byte);
      } else {
        if (byte >= 0x80) nonAscii = true;
        out += `%${HEX[byte >> 4]}${HEX[byte & 15]}`;
      }
    } else {
      // Raw non-ASCII (HTTP/2 paths; Node's HTTP/1 parser refuses it): UTF-8, escaped.
      const end = code >= 0xd800 && code <= 0xdbff && i + 1 < rawPath.length ? i + 2 : i + 1;
      try {
        out += encodeURIComponent(rawPath.slice(i, end));
      } catch (err) {
        throw new TollgateError('TG_ERR_AMBIGUOUS_TARGET', 'path contains a lone utf-16 surrogate', { cause: err });
      }
      nonAscii = true;
      i = end - 1;
    }
    run = i + 1;
  }
  out += rawPath.slice(run);
  if (strict) {
    // A literal "%" followed by two hex digits: a server that decodes twice (or a proxy
    // and then the application) reads "%252e" as ".", "%252f" as "/".
    if (out.includes('%25') && DOUBLE_ESCAPE.test(out)) {
      throw ambiguous(
        'path contains an escaped percent-encoding ("%25" then two hex digits): a second decoding reads a different path',
      );
    }
    if (nonAscii) checkUnicode(out);
  }
  return removeDotSegments(out, mode !== 'base');
}

const DOUBLE_ESCAPE = /%25[0-9A-Fa-f]{2}/;

function hexByte(s: string, at: number): number {
  const hi = hexValue(s.charCodeAt(at));
  const lo = hexValue(s.charCodeAt(at + 1));
  return hi < 0 || lo < 0 ? -1 : (hi << 4) | lo;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const lower = c | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

/**
 * RFC 3629: only shortest-form UTF-8 without surrogates is UTF-8. Decoders that accept
 * overlong forms read "%c0%ae" as "." (Tomcat, CVE-2008-2938; IIS), others as U+FFFD
 * or bytes; so the canonical path must decode as strict UTF-8, and what it decodes to
 * must not fold into URL structure.
 */
function checkUnicode(canonical: string): void {
  let decoded: string;
  try {
    decoded = decodeURIComponent(canonical);
  } catch (err) {
    throw new TollgateError(
      'TG_ERR_AMBIGUOUS_TARGET',
      'path escapes are not valid utf-8 (overlong form, surrogate or stray byte): decoders disagree on what they mean',
      { cause: err },
    );
  }
  for (const ch of decoded) {
    const cp = ch.codePointAt(0)!;
    if (cp > 0x7f && STRUCTURE_FOLDING_CODE_POINTS.has(cp)) {
      const name = `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
      const folded = ch.normalize('NFKC');
      const what =
        folded === ch
          ? 'a look-alike of "/" or "\\"'
          : `folded by unicode compatibility normalisation into ${JSON.stringify(folded)}`;
      throw ambiguous(`path contains ${name}, ${what}: servers that fold it read a different path`);
    }
  }
}

/** RFC 3986 §5.2.4 on a path split at "/"; with merge, empty segments go first (as path.Clean). */
function removeDotSegments(path: string, merge: boolean): string {
  const out: string[] = [];
  const segments = path.split('/');
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i]!;
    const last = i === segments.length - 1;
    if (seg === '.') {
      if (last) out.push('');
    } else if (seg === '..') {
      out.pop();
      if (last) out.push('');
    } else if (seg !== '' || last || !merge) {
      out.push(seg);
    }
  }
  return `/${out.join('/')}`;
}
