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
// The addon reuses one receive buffer: `onFrame` runs synchronously and must copy what
// it keeps beyond its own return.

import { createRequire } from 'node:module';
import { createSocket as createUdpSocket, type Socket as UdpSocket } from 'node:dgram';
import type { Frame, FrameProto } from '../wire/frame.ts';
import { decodeIPv4, decodeTransport } from '../wire/frame.ts';
import type { Logger } from '../log/logger.ts';

interface RawSocket {
  setOption(level: number, option: number, value: number): void;
  on(event: 'message', fn: (buf: Buffer, source: string) => void): void;
  on(event: 'error', fn: (err: Error) => void): void;
  close(): void;
}

interface RawSocketModule {
  createSocket(opts: { protocol: number; addressFamily: number; bufferSize?: number }): RawSocket;
  AddressFamily: { IPv4: number; IPv6: number };
  Protocol: { UDP: number; TCP: number };
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

const PROTO_NUMBERS: Record<FrameProto, 'UDP' | 'TCP'> = { udp: 'UDP', tcp: 'TCP' };
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
    for (const port of this.#opts.sinkPorts) await this.#openSinks(port);
  }

  #listen(
    sock: RawSocket,
    decode: (buf: Buffer, src: string) => ReturnType<typeof decodeIPv4>,
    onFrame: FrameHandler,
    onJunk: JunkHandler,
  ): void {
    sock.on('message', (buf, source) => {
      const frame = decode(buf, source);
      if (frame.ok) onFrame(frame.value);
      else onJunk(frame.reason);
    });
    sock.on('error', (err) => this.#opts.logger.error('capture socket error', { error: err.message }));
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
