/**
 * The protobuf wire format at its smallest: reading the fields of a message and writing
 * the few field kinds the gRPC services beside ext_authz need (health, reflection). Field
 * numbers and types come from the .proto files named at each use; nothing here knows a schema.
 */

/** One field as read from the wire: varints as numbers, length-delimited fields as bytes. */
export type WireField =
  | { readonly number: number; readonly type: 0; readonly value: number }
  | { readonly number: number; readonly type: 2; readonly bytes: Buffer };

/** Thrown for bytes that are not a protobuf message. */
export class WireError extends Error {}

function readVarint(buf: Buffer, at: { pos: number }): number {
  let value = 0;
  for (let shift = 0; shift < 64; shift += 7) {
    if (at.pos >= buf.length) throw new WireError('truncated varint');
    const byte = buf[at.pos++]!;
    value += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return value;
  }
  throw new WireError('varint longer than 10 bytes');
}

/** Skips a group (wire types 3 … 4, deprecated but valid), nested groups included. */
function skipGroup(buf: Buffer, at: { pos: number }, number: number): void {
  for (;;) {
    if (at.pos >= buf.length) throw new WireError(`group ${number} is not closed`);
    const key = readVarint(buf, at);
    const type = key % 8;
    if (type === 4) {
      if (Math.floor(key / 8) !== number) throw new WireError(`group ${number} closed as ${Math.floor(key / 8)}`);
      return;
    }
    if (type === 0) readVarint(buf, at);
    else if (type === 1) at.pos += 8;
    else if (type === 5) at.pos += 4;
    else if (type === 2) at.pos += readVarint(buf, at);
    else if (type === 3) skipGroup(buf, at, Math.floor(key / 8));
    else throw new WireError(`wire type ${type} inside group ${number}`);
    if (at.pos > buf.length) throw new WireError(`group ${number} runs past the end`);
  }
}

/** The fields of one message, in wire order. Fixed-width fields (types 1 and 5) and groups are skipped. */
export function readFields(buf: Buffer): WireField[] {
  const fields: WireField[] = [];
  const at = { pos: 0 };
  while (at.pos < buf.length) {
    const key = readVarint(buf, at);
    const number = Math.floor(key / 8);
    const type = key % 8;
    if (number === 0) throw new WireError('field number 0');
    switch (type) {
      case 0:
        fields.push({ number, type, value: readVarint(buf, at) });
        break;
      case 1:
        at.pos += 8;
        break;
      case 2: {
        const length = readVarint(buf, at);
        if (at.pos + length > buf.length) throw new WireError('length-delimited field runs past the end');
        fields.push({ number, type, bytes: buf.subarray(at.pos, at.pos + length) });
        at.pos += length;
        break;
      }
      case 5:
        at.pos += 4;
        break;
      case 3:
        skipGroup(buf, at, number);
        break;
      default:
        throw new WireError(`wire type ${type} where a field starts`);
    }
    if (at.pos > buf.length) throw new WireError('fixed-width field runs past the end');
  }
  return fields;
}

/** The UTF-8 text of the last occurrence of a string field, or undefined. */
export function stringField(fields: readonly WireField[], number: number): string | undefined {
  let found: string | undefined;
  for (const field of fields) if (field.number === number && field.type === 2) found = field.bytes.toString('utf8');
  return found;
}

/** The bytes of every occurrence of a length-delimited field. */
export function bytesFields(fields: readonly WireField[], number: number): Buffer[] {
  const out: Buffer[] = [];
  for (const field of fields) if (field.number === number && field.type === 2) out.push(field.bytes);
  return out;
}

/** The last occurrence of a varint field, or undefined. */
export function varintField(fields: readonly WireField[], number: number): number | undefined {
  let found: number | undefined;
  for (const field of fields) if (field.number === number && field.type === 0) found = field.value;
  return found;
}

function varint(value: number): number[] {
  const out: number[] = [];
  let v = value;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return out;
}

/** A varint field (int32, enum, bool as 0/1); negative numbers are not used here. */
export function writeVarint(number: number, value: number): Buffer {
  return Buffer.from([...varint(number * 8), ...varint(value)]);
}

/** A length-delimited field: a string (UTF-8), bytes, or an already encoded message. */
export function writeBytes(number: number, value: Buffer | string): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  return Buffer.concat([Buffer.from([...varint(number * 8 + 2), ...varint(bytes.length)]), bytes]);
}
