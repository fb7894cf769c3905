/**
 * Envoy's ext_authz v3 protocol as Tollgate speaks it: the vendored .proto files in proto/
 * (copied unmodified by scripts/vendor-protos.sh), as the protobufjs JSON descriptor
 * proto/ext-authz.json that the same script writes from them (parsed as @grpc/proto-loader
 * parses them), loaded at start with protobufjs/light: Envoy's files stay the single source
 * of field numbers, with no .proto parser and no parse at run time.
 *
 * Also here, shared by the server (src/extauthz) and the client PDP (src/pdp):
 * the conversion of a decoded CheckRequest into opa-envoy-plugin's protomap document,
 * and google.protobuf.Struct <-> JSON.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs/light.js';
import type { MethodDefinition } from '@grpc/grpc-js';
import { TollgateError } from '../errors.ts';
import type { CheckRequestDocument } from '../input/build.ts';
import { bytesFields, readFields } from './wire.ts';

/** The folder holding Envoy's vendored .proto files. */
export const PROTO_DIR = fileURLToPath(new URL('../../proto', import.meta.url));

/** The ext_authz v3 service as Envoy names it. */
export const AUTHORIZATION_SERVICE = 'envoy.service.auth.v3.Authorization';

/**
 * Decoding options (proto-loader's, as the server used them): camelCase keys (equal to the
 * protobuf JSON names for every CheckRequest field), int64 as numbers, enums as numbers, bytes
 * as base64 strings, and only the fields present on the wire (no defaults, no empty maps or lists).
 */
const TO_OBJECT: protobuf.IConversionOptions = {
  longs: Number,
  enums: Number,
  bytes: String,
  defaults: false,
  arrays: false,
  objects: false,
  oneofs: false,
};

/** A decoded message: a plain object as protobufjs' toObject makes it. */
export type Message = Record<string, unknown>;

/** A message type's wire codec. */
interface Codec {
  decode(wire: Buffer): Message;
  encode(message: Message): Buffer;
}

function codec(type: protobuf.Type): Codec {
  return {
    decode: (wire) => type.toObject(type.decode(wire), TO_OBJECT),
    encode: (message) => Buffer.from(type.encode(type.fromObject(message)).finish()),
  };
}

let codecs: { request: Codec; response: Codec } | undefined;

function load(): { request: Codec; response: Codec } {
  if (codecs !== undefined) return codecs;
  const json = JSON.parse(readFileSync(join(PROTO_DIR, 'ext-authz.json'), 'utf8')) as protobuf.INamespace;
  const root = protobuf.Root.fromJSON(json);
  codecs = {
    request: codec(root.lookupType('envoy.service.auth.v3.CheckRequest')),
    response: codec(root.lookupType('envoy.service.auth.v3.CheckResponse')),
  };
  return codecs;
}

/** The Check method's definition for a gRPC client: its path and message codecs. */
export function checkMethod(): MethodDefinition<Message, Message> {
  const { request, response } = load();
  return {
    path: `/${AUTHORIZATION_SERVICE}/Check`,
    originalName: 'check',
    requestStream: false,
    responseStream: false,
    requestSerialize: (message: Message) => (Buffer.isBuffer(message) ? message : request.encode(message)),
    requestDeserialize: request.decode,
    responseSerialize: (message: Message) => (Buffer.isBuffer(message) ? message : response.encode(message)),
    responseDeserialize: response.decode,
  };
}

/**
 * The FileDescriptorProtos of every service served (ext_authz v3, grpc.health.v1) and
 * their imports, for server reflection. Read from proto/reflection.protoset (written by
 * scripts/vendor-protos.sh with grpcurl): proto-loader's own descriptors are synthesised
 * per package with camelCase field names and relative type names, which strict clients
 * (grpcurl, Go's protodesc) reject or, worse, would use to produce wrong JSON names.
 */
export function reflectionDescriptors(): Buffer[] {
  const set = readFileSync(join(PROTO_DIR, 'reflection.protoset'));
  // FileDescriptorSet { repeated FileDescriptorProto file = 1; }
  const fields = readFields(set);
  if (fields.some((field) => field.number !== 1 || field.type !== 2))
    throw new TollgateError('TG_ERR_CONFIG_INVALID', 'proto/reflection.protoset is not a FileDescriptorSet');
  return bytesFields(fields, 1);
}

// ---- google.protobuf.Struct <-> JSON -------------------------------------------------

/** A decoded google.protobuf.Value to JSON (Go's structpb AsInterface). */
export function valueToJson(value: Message): unknown {
  if ('structValue' in value) return structToJson(value.structValue as Message);
  if ('listValue' in value) return ((value.listValue as Message).values as Message[] | undefined ?? []).map(valueToJson);
  if ('stringValue' in value) return value.stringValue;
  if ('numberValue' in value) return value.numberValue;
  if ('boolValue' in value) return value.boolValue;
  return null;
}

/** A decoded google.protobuf.Struct to a JSON object (Go's structpb AsMap). */
export function structToJson(struct: Message): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const fields = (struct.fields ?? {}) as Record<string, Message>;
  for (const [key, value] of Object.entries(fields)) out[key] = valueToJson(value);
  return out;
}

/** JSON to a google.protobuf.Value object for the encoder (Go's structpb.NewValue). */
export function jsonToValue(value: unknown): Message {
  if (value === null || value === undefined) return { nullValue: 0 };
  if (typeof value === 'string') return { stringValue: value };
  if (typeof value === 'number') return { numberValue: value };
  if (typeof value === 'boolean') return { boolValue: value };
  if (Array.isArray(value)) return { listValue: { values: value.map(jsonToValue) } };
  if (typeof value === 'object') return { structValue: jsonToStruct(value as Record<string, unknown>) };
  throw new TollgateError('TG_ERR_POLICY_RESULT', `dynamic_metadata holds a ${typeof value}, which google.protobuf.Struct cannot carry`);
}

/** A JSON object to a google.protobuf.Struct object for the encoder. */
export function jsonToStruct(object: Readonly<Record<string, unknown>>): Message {
  const fields: Record<string, Message> = {};
  for (const [key, value] of Object.entries(object)) fields[key] = jsonToValue(value);
  return { fields };
}

// ---- CheckRequest -> opa-envoy-plugin's protomap document ----------------------------

/** map<...> fields in the CheckRequest tree: every entry is kept, even an empty value. */
const MAP_FIELDS = new Set(['headers', 'contextExtensions', 'labels', 'filterMetadata', 'typedFilterMetadata']);
/** Fields of type google.protobuf.Struct (protomap renders them with AsMap). */
const STRUCT_MAP_FIELDS = new Set(['filterMetadata']);
/** Scalar members of a oneof: present even when zero, as protobuf reflection reports them. */
const ONEOF_SCALARS = new Set(['portValue', 'namedPort']);

interface WalkState {
  /** U+FFFD characters seen in strings: the decoder's mark for invalid UTF-8. */
  replacements: number;
}

function countReplacements(text: string, state: WalkState): void {
  if (text.includes('\uFFFD')) for (const ch of text) if (ch === '\uFFFD') state.replacements++;
}

function walkMessage(message: Message, state: WalkState): Message {
  const out: Message = {};
  for (const [key, value] of Object.entries(message)) {
    // proto3 fields without presence are not "populated" when zero (protoreflect Range skips them).
    if ((value === '' || value === 0 || value === false) && !ONEOF_SCALARS.has(key)) continue;
    if (typeof value === 'string') {
      countReplacements(value, state);
      out[key] = value;
    } else if (Array.isArray(value)) {
      if (value.length === 0) continue;
      out[key] = value.map((item: unknown) => {
        if (typeof item === 'string') countReplacements(item, state);
        return typeof item === 'object' && item !== null ? walkMessage(item as Message, state) : item;
      });
    } else if (typeof value === 'object' && value !== null) {
      if (MAP_FIELDS.has(key)) {
        const map: Message = {};
        for (const [k, v] of Object.entries(value as Message)) {
          countReplacements(k, state);
          if (typeof v === 'string') countReplacements(v, state);
          map[k] = STRUCT_MAP_FIELDS.has(key) ? structToJson(v as Message) : typeof v === 'object' && v !== null ? walkMessage(v as Message, state) : v;
        }
        if (Object.keys(map).length > 0) out[key] = map;
      } else {
        out[key] = walkMessage(value as Message, state);
      }
    } else {
      out[key] = value;
    }
  }
  return out;
}

function countEncodedReplacements(wire: Buffer): number {
  let n = 0;
  for (let i = wire.indexOf(0xef); i !== -1 && i + 2 < wire.length; i = wire.indexOf(0xef, i + 1)) {
    if (wire[i + 1] === 0xbf && wire[i + 2] === 0xbd) n++;
  }
  return n;
}

/**
 * Decodes a CheckRequest from the wire into opa-envoy-plugin's protomap document
 * (JSON names, populated fields only, Struct as JSON, bytes as base64). A string
 * field holding invalid UTF-8 is rejected, as Go's protobuf decoder rejects it
 * (opa-envoy-plugin answers INTERNAL): the decoder here would otherwise silently
 * replace the bytes with U+FFFD, so replacement characters that were not on the
 * wire reveal it.
 */
export function decodeCheckRequest(wire: Buffer): CheckRequestDocument {
  const decoded = load().request.decode(wire);
  const state: WalkState = { replacements: 0 };
  const document = walkMessage(decoded, state);
  if (state.replacements > 0 && state.replacements > countEncodedReplacements(wire)) {
    throw new TollgateError('TG_ERR_BAD_REQUEST', 'string field contains invalid UTF-8');
  }
  return document as CheckRequestDocument;
}

/**
 * Encodes a CheckRequest from a protomap document (the inverse of decodeCheckRequest,
 * used by the client PDP): Struct-typed metadata goes back into Struct form.
 */
export function encodeCheckRequest(document: CheckRequestDocument): Buffer {
  const attributes = document.attributes;
  let message: Message = document as Message;
  if (attributes !== undefined) {
    const restore = (metadata: unknown): unknown => {
      if (typeof metadata !== 'object' || metadata === null) return metadata;
      const filter = (metadata as Message).filterMetadata as Record<string, Record<string, unknown>> | undefined;
      if (filter === undefined) return metadata;
      const structs: Record<string, Message> = {};
      for (const [k, v] of Object.entries(filter)) structs[k] = jsonToStruct(v);
      return { ...(metadata as Message), filterMetadata: structs };
    };
    const next: Message = { ...attributes };
    if ('metadataContext' in next) next.metadataContext = restore(next.metadataContext);
    if ('routeMetadataContext' in next) next.routeMetadataContext = restore(next.routeMetadataContext);
    message = { attributes: next };
  }
  return load().request.encode(message);
}
