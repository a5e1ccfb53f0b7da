// SPDX-License-Identifier: MIT
// Packet capture with the raw-socket addon: the only importer of raw-socket (STYLE.md
// "one importer per native dependency"). It is loaded lazily, so technician commands in
// the same bundle (`postern open`) never need the native addon.
//
// What a raw socket sees (DESIGN.md fact 1): only packets that netfilter's INPUT chain let
// through, so the firewall backend must accept the capture ports. IPv4 raw sockets hand
// us the IP header; IPv6 raw sockets start at the transport header and give the source
// address separately (RFC 3542 section 3: no IPv6 header on input).
//
// ICMP (opt-in, `spa.icmp`): ICMP and ICMPv6 raw sockets receive a copy of every echo
// request (and echo reply) delivered locally; the kernel still answers pings itself, so
// pings are answered exactly as without postern (DESIGN.md "SPA protocol v1"). A kernel
// filter (ICMP_FILTER, ICMP6_FILTER) keeps all other ICMP types (NDP, errors) away.
//
// The addon reuses one receive buffer: `onFrame` runs synchronously and must copy what
// it keeps beyond its own return. Each readiness wakeup reads up to 64 datagrams
// (drain.ts): the addon's own reader takes one per wakeup and falls behind under floods.

import { createRequire } from 'node:module';
import { createSocket as createUdpSocket, type Socket as UdpSocket } from 'node:dgram';
import { endianness } from 'node:os';
import type { Frame, FrameProto, IcmpResult } from '../wire/frame.ts';
import { decodeIcmpEcho, decodeIPv4, decodeTransport } from '../wire/frame.ts';
import { ok, type Decoded } from '../wire/result.ts';
import { ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REQUEST, IPPROTO_ICMPV6 } from '../wire/constants.ts';
import type { Logger } from '../log/logger.ts';
import { drainOnReady, type DrainableSocket } from './drain.ts';

interface RawSocket extends DrainableSocket {
  setOption(level: number, option: number, value: number): void;
  setOption(level: number, option: number, value: Buffer, length: number): void;
  on(event: 'message', fn: (buf: Buffer, source: string) => void): void;
  on(event: 'error', fn: (err: Error) => void): void;
  send(buf: Buffer, offset: number, length: number, address: string, after: (err: Error | null, bytes: number) => void): void;
  close(): void;
}

interface RawSocketModule {
  createSocket(opts: { protocol: number; addressFamily: number; bufferSize?: number }): RawSocket;
  AddressFamily: { IPv4: number; IPv6: number };
  Protocol: { UDP: number; TCP: number; ICMP: number; ICMPv6: number };
  SocketLevel: { SOL_SOCKET: number };
  SocketOption: { SO_RCVBUF: number };
}

/** Kernel receive queue per raw socket. A junk flood must not crowd the one legitimate
 *  packet out of a small default queue (net.core.rmem_default, ~208 KB) while the event
 *  loop catches up. SO_RCVBUFFORCE (Linux, needs CAP_NET_ADMIN, which the daemon has)
 *  goes past net.core.rmem_max; without it, SO_RCVBUF is capped there. */
const RECV_QUEUE_BYTES = 4 * 1024 * 1024;
const SO_RCVBUFFORCE = 33;

function enlargeQueue(raw: RawSocketModule, sock: RawSocket): void {
  try {
    sock.setOption(raw.SocketLevel.SOL_SOCKET, SO_RCVBUFFORCE, RECV_QUEUE_BYTES);
  } catch {
    try {
      sock.setOption(raw.SocketLevel.SOL_SOCKET, raw.SocketOption.SO_RCVBUF, RECV_QUEUE_BYTES);
    } catch {
      // Keep the default queue: capture still works, floods just drop sooner.
    }
  }
}

export interface CaptureOptions {
  readonly ipv6: boolean;
  readonly protocols: readonly FrameProto[];
  /** UDP ports to keep silent with a sink socket (no ICMP port unreachable). */
  readonly sinkPorts: readonly number[];
  readonly logger: Logger;
}

export type FrameHandler = (frame: Frame) => void;
export type JunkHandler = (reason: string) => void;

/** A source of decoded frames. start() opens sockets; stop() closes them. */
export interface PacketSource {
  start(onFrame: FrameHandler, onJunk: JunkHandler): Promise<void>;
  stop(): void;
}

const PROTO_NUMBERS: Record<'udp' | 'tcp', 'UDP' | 'TCP'> = { udp: 'UDP', tcp: 'TCP' };
const RECV_BUFFER = 2048;

function loadRawSocket(): RawSocketModule {
  const require = createRequire(import.meta.url);
  return require('raw-socket') as RawSocketModule;
}

/** For `postern doctor`: can this process open raw sockets? undefined = yes, else why not. */
export function probeRawSocket(): string | undefined {
  try {
    const raw = loadRawSocket();
    const sock = raw.createSocket({ protocol: raw.Protocol.UDP, addressFamily: raw.AddressFamily.IPv4 });
    sock.close();
    return undefined;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/** Linux ICMP_FILTER (SOL_RAW, linux/icmp.h): one 32-bit mask, a set bit drops that type. */
const ICMP_FILTER_LEVEL = 255; // SOL_RAW
const ICMP_FILTER = 1;
const ICMP_FILTER_WORDS = 1;
/** RFC 3542 §3.2 ICMP6_FILTER (IPPROTO_ICMPV6): 256 bits; on Linux a set bit blocks. */
const ICMP6_FILTER = 1;
const ICMP6_FILTER_WORDS = 8;

/** Ask the kernel to deliver only the given ICMP types. Best effort: without the filter
 *  the decoder still drops everything else, it just costs a wakeup per packet. */
function keepOnlyEcho(sock: RawSocket, level: number, option: number, types: readonly number[], words: number): void {
  const mask = new Uint32Array(words).fill(0xffffffff);
  for (const t of types) mask[t >> 5] = (mask[t >> 5] ?? 0) & ~(1 << (t & 31)); // stored mod 2^32
  // The kernel reads the words in host byte order (big-endian MIPS boards exist).
  const buf = Buffer.alloc(words * 4);
  mask.forEach((w, i) => (endianness() === 'LE' ? buf.writeUInt32LE(w, i * 4) : buf.writeUInt32BE(w, i * 4)));
  try {
    sock.setOption(level, option, buf, buf.length);
  } catch {
    // Keep the socket unfiltered (see above).
  }
}

/** An echo as a Frame ('icmp', ports 0). Non-echo messages are not junk: undefined. */
function icmpFrame(r: IcmpResult): Decoded<Frame, string> | undefined {
  if (!r.ok) return r.reason === 'not_echo' ? undefined : r;
  const e = r.value;
  return ok({ family: e.family, src: e.src, dst: e.dst, proto: 'icmp', srcPort: 0, dstPort: 0, tcpFlags: 0, payload: e.payload });
}

/** Send one ICMP (family 4) or ICMPv6 (family 6) message, already encoded, to `address`.
 *  For the technician's `postern open --icmp`; needs root or CAP_NET_RAW. The ICMPv6
 *  checksum is filled in by the kernel (RFC 3542 §3.1); the ICMP one must be in `msg`. */
/** Sockets with a send in flight. raw-socket's native wrap does not keep its JS socket
 *  alive: a socket only our own suspended promise refers to can be garbage-collected with
 *  the send still queued, its poll handle closes, and the process exits (status 0, nothing
 *  sent) before the callback. Seen with `postern open --icmp` once the bundle grew. */
const SENDING = new Set<RawSocket>();

export async function sendIcmpMessage(msg: Buffer, address: string, family: 4 | 6): Promise<void> {
  const raw = loadRawSocket();
  const sock = family === 6
    ? raw.createSocket({ protocol: raw.Protocol.ICMPv6, addressFamily: raw.AddressFamily.IPv6 })
    : raw.createSocket({ protocol: raw.Protocol.ICMP, addressFamily: raw.AddressFamily.IPv4 });
  SENDING.add(sock);
  try {
    await new Promise<void>((resolve, reject) => {
      sock.on('error', reject);
      sock.send(msg, 0, msg.length, address, (err) => (err ? reject(err) : resolve()));
    });
  } finally {
    SENDING.delete(sock);
    sock.close();
  }
}

export class RawCapture implements PacketSource {
  readonly #opts: CaptureOptions;
  #sockets: RawSocket[] = [];
  #sinks: UdpSocket[] = [];

  constructor(opts: CaptureOptions) {
    this.#opts = opts;
  }

  async start(onFrame: FrameHandler, onJunk: JunkHandler): Promise<void> {
    const raw = loadRawSocket();
    for (const proto of this.#opts.protocols) {
      if (proto === 'icmp') this.#openIcmp(raw, onFrame, onJunk);
      else this.#openTransport(raw, proto, onFrame, onJunk);
    }
    for (const port of this.#opts.sinkPorts) await this.#openSinks(port);
  }

  #openTransport(raw: RawSocketModule, proto: 'udp' | 'tcp', onFrame: FrameHandler, onJunk: JunkHandler): void {
    const protocol = raw.Protocol[PROTO_NUMBERS[proto]];
    const v4 = raw.createSocket({ protocol, addressFamily: raw.AddressFamily.IPv4, bufferSize: RECV_BUFFER });
    enlargeQueue(raw, v4);
    this.#listen(v4, (buf) => decodeIPv4(buf), onFrame, onJunk);
    if (this.#opts.ipv6) {
      const v6 = raw.createSocket({ protocol, addressFamily: raw.AddressFamily.IPv6, bufferSize: RECV_BUFFER });
      enlargeQueue(raw, v6);
      this.#listen(v6, (buf, src) => decodeTransport(proto, buf, src, '', 6), onFrame, onJunk);
    }
  }

  /** Echo requests and replies (SPA over ICMP, `spa.icmp`). Nothing is ever sent here. */
  #openIcmp(raw: RawSocketModule, onFrame: FrameHandler, onJunk: JunkHandler): void {
    const v4 = raw.createSocket({ protocol: raw.Protocol.ICMP, addressFamily: raw.AddressFamily.IPv4, bufferSize: RECV_BUFFER });
    enlargeQueue(raw, v4);
    keepOnlyEcho(v4, ICMP_FILTER_LEVEL, ICMP_FILTER, [ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY], ICMP_FILTER_WORDS);
    this.#listen(v4, (buf, src) => icmpFrame(decodeIcmpEcho(buf, 4, src)), onFrame, onJunk);
    if (this.#opts.ipv6) {
      const v6 = raw.createSocket({ protocol: raw.Protocol.ICMPv6, addressFamily: raw.AddressFamily.IPv6, bufferSize: RECV_BUFFER });
      enlargeQueue(raw, v6);
      keepOnlyEcho(v6, IPPROTO_ICMPV6, ICMP6_FILTER, [ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY], ICMP6_FILTER_WORDS);
      this.#listen(v6, (buf, src) => icmpFrame(decodeIcmpEcho(buf, 6, src)), onFrame, onJunk);
    }
  }

  /** `decode` returns undefined for a packet that is not ours to count (not an echo). */
  #listen(
    sock: RawSocket,
    decode: (buf: Buffer, src: string) => Decoded<Frame, string> | undefined,
    onFrame: FrameHandler,
    onJunk: JunkHandler,
  ): void {
    const handle = (buf: Buffer, source: string): void => {
      const frame = decode(buf, source);
      if (frame === undefined) return;
      if (frame.ok) onFrame(frame.value);
      else onJunk(frame.reason);
    };
    const onError = (err: Error): void => this.#opts.logger.error('capture socket error', { error: err.message });
    if (!drainOnReady(sock, (buf, bytes, source) => handle(buf.subarray(0, bytes), source), onError)) sock.on('message', handle);
    sock.on('error', onError);
    this.#sockets.push(sock);
  }

  /** A bound UDP socket that never answers keeps the kernel from sending ICMP port
   *  unreachable for the capture port, so it looks exactly like a filtered port. */
  async #openSinks(port: number): Promise<void> {
    const families: ('udp4' | 'udp6')[] = this.#opts.ipv6 ? ['udp4', 'udp6'] : ['udp4'];
    for (const type of families) {
      const sock = createUdpSocket({ type, ipv6Only: type === 'udp6', recvBufferSize: 4096 });
      sock.on('message', () => {}); // data is read from the raw socket; this one only absorbs
      sock.on('error', (err) => this.#opts.logger.warn('sink socket error', { port, error: err.message }));
      await new Promise<void>((resolve, reject) => {
        sock.once('error', reject);
        sock.bind(port, type === 'udp6' ? '::' : '0.0.0.0', () => resolve());
      });
      this.#sinks.push(sock);
    }
  }

  stop(): void {
    for (const s of this.#sockets) s.close();
    for (const s of this.#sinks) s.close();
    this.#sockets = [];
    this.#sinks = [];
  }
}
