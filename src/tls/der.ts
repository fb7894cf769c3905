/**
 * The few DER encoders (ITU-T X.690) an X.509 certificate needs. Small on purpose:
 * Tollgate only ever writes certificates it designs itself (see ca.ts), and parsing
 * is left to node:crypto's X509Certificate.
 */

/** A DER TLV with a given tag byte. */
export function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  let head: Buffer;
  if (n < 0x80) head = Buffer.from([tag, n]);
  else if (n < 0x100) head = Buffer.from([tag, 0x81, n]);
  else if (n < 0x10000) head = Buffer.from([tag, 0x82, n >> 8, n & 0xff]);
  else head = Buffer.from([tag, 0x83, n >> 16, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([head, content]);
}

/** SEQUENCE of the given elements. */
export const sequence = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items));
/** SET of the given elements (callers pass one element, so DER ordering holds). */
export const set = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items));
/** OCTET STRING. */
export const octetString = (bytes: Buffer): Buffer => tlv(0x04, bytes);
/** BIT STRING with no unused bits. */
export const bitString = (bytes: Buffer, unusedBits = 0): Buffer =>
  tlv(0x03, Buffer.concat([Buffer.from([unusedBits]), bytes]));
/** UTF8String. */
export const utf8String = (text: string): Buffer => tlv(0x0c, Buffer.from(text, 'utf8'));
/** BOOLEAN. */
export const boolean = (value: boolean): Buffer => Buffer.from([0x01, 0x01, value ? 0xff : 0x00]);
/** Context-specific constructed tag [n] EXPLICIT. */
export const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner);

/** INTEGER from an unsigned big-endian byte string (a leading 0 is added when the top bit is set). */
export function integer(bytes: Buffer | number): Buffer {
  let b = typeof bytes === 'number' ? Buffer.from([bytes]) : bytes;
  let i = 0;
  while (i < b.length - 1 && b[i] === 0 && (b[i + 1]! & 0x80) === 0) i++;
  b = b.subarray(i);
  if ((b[0]! & 0x80) !== 0) b = Buffer.concat([Buffer.from([0]), b]);
  return tlv(0x02, b);
}

/** OBJECT IDENTIFIER from dotted text. */
export function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out: number[] = [40 * parts[0]! + parts[1]!];
  for (const part of parts.slice(2)) {
    const stack: number[] = [part & 0x7f];
    let v = Math.floor(part / 128);
    while (v > 0) {
      stack.unshift((v & 0x7f) | 0x80);
      v = Math.floor(v / 128);
    }
    out.push(...stack);
  }
  return tlv(0x06, Buffer.from(out));
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. */
export function time(date: Date): Buffer {
  const iso = date.toISOString().replace(/[-:T]/g, '').slice(0, 14);
  return date.getUTCFullYear() < 2050
    ? tlv(0x17, Buffer.from(`${iso.slice(2)}Z`, 'ascii'))
    : tlv(0x18, Buffer.from(`${iso}Z`, 'ascii'));
}

/** PEM armour. */
export function pem(label: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END ${label}-----\n`;
}
