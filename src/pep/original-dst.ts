/**
 * SO_ORIGINAL_DST: the destination a connection had before iptables REDIRECT
 * rewrote it (linux/netfilter_ipv4.h, getsockopt(fd, SOL_IP, 80)), as Envoy's
 * original_dst listener filter and Istio read it. Node has no binding for it, so
 * it is called through koffi, an FFI whose npm package ships prebuilt binaries
 * (no compiler at install). Why not per-port redirect listeners: they give the
 * port only, and the policy must see the original IP:port when there is no SNI or
 * Host. Absent koffi or on failure: undefined, and the caller says so to the policy.
 */
import type { Socket } from 'node:net';
import { libcFunction } from '../runtime/libc.ts';

const SOL_IP = 0;
const SOL_IPV6 = 41;
const SO_ORIGINAL_DST = 80;

type GetSockOpt = (fd: number, level: number, name: number, value: Buffer, length: number[]) => number;
let getsockopt: GetSockOpt | null | undefined;

function binding(): GetSockOpt | null {
  getsockopt ??=
    libcFunction<GetSockOpt>(
      'int getsockopt(int fd, int level, int name, _Out_ uint8_t *value, _Inout_ uint32_t *length)',
    ) ?? null;
  return getsockopt;
}

/** The original destination of a redirected TCP connection, or undefined when unknown. */
export function originalDestination(socket: Socket): { address: string; port: number } | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  const call = binding();
  if (call === null || typeof fd !== 'number' || fd < 0) return undefined;
  const v6 = socket.localFamily === 'IPv6' && !(socket.localAddress ?? '').startsWith('::ffff:');
  const value = Buffer.alloc(v6 ? 28 : 16);
  const length = [value.length];
  if (call(fd, v6 ? SOL_IPV6 : SOL_IP, SO_ORIGINAL_DST, value, length) !== 0) return undefined;
  const port = value.readUInt16BE(2);
  if (!v6) return { address: `${value[4]}.${value[5]}.${value[6]}.${value[7]}`, port };
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(value.readUInt16BE(8 + i * 2).toString(16));
  return { address: groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::'), port };
}
