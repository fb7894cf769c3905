/**
 * The gRPC services served beside ext_authz, on the wire format directly:
 *   - grpc.health.v1.Health (grpc/health/v1/health.proto): Check and Watch, per service name,
 *     '' for the server as a whole; an unknown name is NOT_FOUND on Check, SERVICE_UNKNOWN on Watch.
 *   - server reflection, v1 and v1alpha (grpc/reflection/v1/reflection.proto, same messages):
 *     list_services, file_by_filename, file_containing_symbol, file_containing_extension and
 *     all_extension_numbers_of_type, answered from proto/reflection.protoset (the real
 *     FileDescriptorProtos, written by scripts/vendor-protos.sh), each file with every file it imports.
 */
import { isUtf8 } from 'node:buffer';
import {
  bytesFields,
  readFields,
  stringField,
  varintField,
  writeBytes,
  writeVarint,
  type WireField,
} from '../proto/wire.ts';
import { GrpcStatusError, type GrpcServer, type ServerStream } from './grpc.ts';

const NOT_FOUND = 5;
const HEALTH_SERVICE = 'grpc.health.v1.Health';

/** HealthCheckResponse.ServingStatus */
export type ServingStatus = 'SERVING' | 'NOT_SERVING';
const SERVING_STATUS = { SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } as const;

/** The health service: statuses by service name, pushed to watchers as they change. */
export class Health {
  readonly #statuses: Map<string, ServingStatus>;
  readonly #watchers = new Map<string, Set<ServerStream>>();

  constructor(statuses: Readonly<Record<string, ServingStatus>>) {
    this.#statuses = new Map(Object.entries(statuses));
  }

  /** Sets every service's status and tells the watchers. */
  setAll(status: ServingStatus): void {
    for (const service of this.#statuses.keys()) {
      this.#statuses.set(service, status);
      for (const call of this.#watchers.get(service) ?? []) call.send(response(status));
    }
  }

  /** Ends every Watch call (at shutdown, after the last status was sent). */
  endWatches(): void {
    for (const calls of this.#watchers.values()) for (const call of calls) call.end();
  }

  addTo(server: GrpcServer): void {
    server.unary(HEALTH_SERVICE, 'Check', (request) => {
      const service = serviceName(request);
      const status = this.#statuses.get(service);
      if (status === undefined) throw new GrpcStatusError(NOT_FOUND, `unknown service ${service}`);
      return response(status);
    });
    server.serverStreaming(HEALTH_SERVICE, 'Watch', (request, call) => {
      const service = serviceName(request);
      const status = this.#statuses.get(service);
      call.send(response(status ?? 'SERVICE_UNKNOWN'));
      let calls = this.#watchers.get(service);
      if (calls === undefined) this.#watchers.set(service, (calls = new Set()));
      calls.add(call);
      // A watch lasts until the client cancels it or the server stops.
      call.onDone(() => {
        calls.delete(call);
        if (calls.size === 0 && this.#watchers.get(service) === calls) this.#watchers.delete(service);
      });
    });
  }
}

/** HealthCheckRequest.service (field 1); text that is not UTF-8 is INTERNAL, as grpc-go's decoder answers. */
function serviceName(request: Buffer): string {
  return utf8(parse(request).findLast((f) => f.number === 1 && f.type === 2)) ?? '';
}

/** A string field's text, or undefined when absent; INTERNAL when it is not UTF-8. */
function utf8(field: WireField | undefined): string | undefined {
  if (field === undefined || field.type !== 2) return undefined;
  if (!isUtf8(field.bytes)) throw new GrpcStatusError(13, `field ${field.number} is not valid UTF-8`);
  return field.bytes.toString('utf8');
}

function response(status: keyof typeof SERVING_STATUS): Buffer {
  return writeVarint(1, SERVING_STATUS[status]);
}

function parse(message: Buffer): WireField[] {
  try {
    return readFields(message);
  } catch (err) {
    throw new GrpcStatusError(13, `cannot decode the request: ${(err as Error).message}`);
  }
}

// ---- reflection ------------------------------------------------------------------------

interface FileEntry {
  readonly name: string;
  readonly bytes: Buffer;
  readonly dependencies: readonly string[];
}

/** What reflection answers from: files by name, the file defining each symbol, extensions by type. */
export interface DescriptorIndex {
  readonly files: ReadonlyMap<string, FileEntry>;
  readonly symbols: ReadonlyMap<string, string>;
  /** Extended type (full name) -> extension number -> file. */
  readonly extensions: ReadonlyMap<string, ReadonlyMap<number, string>>;
}

/** Indexes FileDescriptorProtos (the first of a name wins). */
export function indexDescriptors(fileDescriptorProtos: readonly Buffer[]): DescriptorIndex {
  const files = new Map<string, FileEntry>();
  const symbols = new Map<string, string>();
  const extensions = new Map<string, Map<number, string>>();
  const addExtension = (field: Buffer, file: string, scope: string) => {
    const fields = readFields(field);
    const extendee = (stringField(fields, 2) ?? '').replace(/^\./, '');
    const number = varintField(fields, 3);
    if (number === undefined) return;
    let numbers = extensions.get(extendee);
    if (numbers === undefined) extensions.set(extendee, (numbers = new Map()));
    numbers.set(number, file);
    symbols.set(`${scope}${stringField(fields, 1) ?? ''}`, file);
  };
  const addMessage = (message: Buffer, file: string, scope: string) => {
    const fields = readFields(message);
    const name = `${scope}${stringField(fields, 1) ?? ''}`;
    symbols.set(name, file);
    for (const field of bytesFields(fields, 2)) symbols.set(`${name}.${stringField(readFields(field), 1) ?? ''}`, file);
    for (const nested of bytesFields(fields, 3)) addMessage(nested, file, `${name}.`);
    for (const e of bytesFields(fields, 4)) symbols.set(`${name}.${stringField(readFields(e), 1) ?? ''}`, file);
    for (const extension of bytesFields(fields, 6)) addExtension(extension, file, `${name}.`);
  };
  for (const bytes of fileDescriptorProtos) {
    const fields = readFields(bytes);
    const name = stringField(fields, 1) ?? '';
    if (files.has(name)) continue;
    const dependencies = bytesFields(fields, 3).map((d) => d.toString('utf8'));
    files.set(name, { name, bytes, dependencies });
    const pkg = stringField(fields, 2);
    const scope = pkg === undefined || pkg === '' ? '' : `${pkg}.`;
    for (const message of bytesFields(fields, 4)) addMessage(message, name, scope);
    for (const e of bytesFields(fields, 5)) symbols.set(`${scope}${stringField(readFields(e), 1) ?? ''}`, name);
    for (const service of bytesFields(fields, 6)) {
      const serviceFields = readFields(service);
      const full = `${scope}${stringField(serviceFields, 1) ?? ''}`;
      symbols.set(full, name);
      for (const method of bytesFields(serviceFields, 2))
        symbols.set(`${full}.${stringField(readFields(method), 1) ?? ''}`, name);
    }
    for (const extension of bytesFields(fields, 7)) addExtension(extension, name, scope);
  }
  return { files, symbols, extensions };
}

/** The file and every file it imports, transitively, each once (the file first). */
function withDependencies(index: DescriptorIndex, name: string): Buffer[] {
  const seen = new Set<string>();
  const out: Buffer[] = [];
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const entry = index.files.get(file);
    if (entry === undefined) return;
    out.push(entry.bytes);
    for (const dependency of entry.dependencies) visit(dependency);
  };
  visit(name);
  return out;
}

/** One ServerReflectionRequest answered (a ServerReflectionResponse). */
export function answerReflection(index: DescriptorIndex, services: readonly string[], request: Buffer): Buffer {
  const fields = parse(request);
  const host = utf8(fields.findLast((f) => f.number === 1 && f.type === 2));
  const head = [...(host === undefined ? [] : [writeBytes(1, host)]), writeBytes(2, request)];
  const files = (names: Buffer[]) => writeBytes(4, Buffer.concat(names.map((file) => writeBytes(1, file))));
  const notFound = (what: string) => writeBytes(7, Buffer.concat([writeVarint(1, NOT_FOUND), writeBytes(2, what)]));
  let body: Buffer;
  // message_request is a oneof: the last of its members on the wire is the one set.
  const chosen = fields.findLast((f) => f.number >= 3 && f.number <= 7 && f.type === 2);
  const member = (n: number) => (chosen?.number === n ? chosen : undefined);
  const byName = utf8(member(3));
  const bySymbol = utf8(member(4));
  const byExtension = member(5)?.type === 2 ? (member(5) as { bytes: Buffer }).bytes : undefined;
  const extensionsOf = utf8(member(6));
  const list = utf8(member(7));
  if (byName !== undefined) {
    body = index.files.has(byName) ? files(withDependencies(index, byName)) : notFound(`file not found: ${byName}`);
  } else if (bySymbol !== undefined) {
    const file = index.symbols.get(bySymbol.replace(/^\./, ''));
    body = file === undefined ? notFound(`symbol not found: ${bySymbol}`) : files(withDependencies(index, file));
  } else if (byExtension !== undefined) {
    const extension = parse(byExtension);
    const type = (utf8(extension.findLast((f) => f.number === 1 && f.type === 2)) ?? '').replace(/^\./, '');
    const number = varintField(extension, 2) ?? 0;
    const file = index.extensions.get(type)?.get(number);
    body =
      file === undefined ? notFound(`extension not found: ${type} ${number}`) : files(withDependencies(index, file));
  } else if (extensionsOf !== undefined) {
    const type = extensionsOf.replace(/^\./, '');
    if (!index.symbols.has(type)) body = notFound(`type not found: ${extensionsOf}`);
    else {
      const numbers = [...(index.extensions.get(type)?.keys() ?? [])].sort((a, b) => a - b);
      body = writeBytes(5, Buffer.concat([writeBytes(1, type), ...numbers.map((n) => writeVarint(2, n))]));
    }
  } else if (list !== undefined) {
    body = writeBytes(6, Buffer.concat(services.map((name) => writeBytes(1, writeBytes(1, name)))));
  } else {
    throw new GrpcStatusError(3, 'the reflection request names nothing to answer');
  }
  return Buffer.concat([...head, body]);
}

/** Serves reflection v1 and v1alpha listing `services`. */
export function addReflection(server: GrpcServer, index: DescriptorIndex, services: readonly string[]): void {
  for (const service of ['grpc.reflection.v1.ServerReflection', 'grpc.reflection.v1alpha.ServerReflection']) {
    server.bidiStreaming(service, 'ServerReflectionInfo', (request, call) => {
      try {
        call.send(answerReflection(index, services, request));
      } catch (err) {
        call.end((err as GrpcStatusError).code ?? 13, (err as Error).message);
      }
    });
  }
}
