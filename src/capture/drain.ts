// SPDX-License-Identifier: MIT
// Reading many datagrams per readiness wakeup from a raw-socket socket (issue 9: junk floods).
//
// raw-socket's own receive path (node_modules/raw-socket/index.js, onRecvReady) reads ONE
// datagram per libuv poll wakeup and then emits 'message' through two EventEmitters with a
// fresh Buffer view. Under a flood the per-wakeup cost (epoll_wait, the C++ -> JS emit of
// 'recvReady', the emit of 'message') dominates, the daemon falls behind, and the kernel
// receive queue overflows, dropping legitimate SPA packets with the junk. Its native
// `wrap.recv(buffer, callback)` is one non-blocking recvfrom(2) that calls back synchronously
// with (buffer, bytes, source) and throws when nothing is queued (EAGAIN). So on each
// 'recvReady' we call it in a loop, up to MAX_READS_PER_WAKEUP times, until it throws:
// one wakeup drains up to that many datagrams, and the event loop still gets a turn (timers,
// the control socket, firewall children) between batches. The callback gets the reused
// receive buffer and the byte count; it must not keep the buffer past its return.
//
// The EAGAIN that ends every batch is a JS Error built by the addon (Nan::ThrowError), and
// V8 captures a stack trace for every Error: walking optimized frames rebuilds their
// deoptimization state (TranslatedState) with about 18 short-lived mallocs per throw. At a
// paced 20,000 pps nearly every datagram is its own wakeup, so that was 2.7 of the 2.8
// million mallocs of a 10 s knock flood (heaptrack, issue 9; 0.4 million without it), all
// churning glibc's one arena beside the JIT's compile zones, plus the CPU of the walk. V8 captures
// no stack when Error.stackTraceLimit is not a number (Isolate::CaptureAndSetErrorStack), so
// the native recv runs with it unset; the packet handler runs with it restored, so errors
// in the pipeline keep their stacks.

/** Datagrams read per wakeup at most: large enough to amortise the wakeup, small enough that
 *  one busy socket cannot hold the event loop for long (64 x ~5 us). */
export const MAX_READS_PER_WAKEUP = 64;

/** The part of raw-socket's native SocketWrap this module uses. */
export interface NativeWrap {
  recv(buffer: Buffer, callback: (buffer: Buffer, bytes: number, source: string) => void): void;
  on(event: 'recvReady', fn: () => void): void;
  removeAllListeners(event: 'recvReady'): void;
}

/** A raw-socket Socket's internals (index.js: `this.wrap`, `this.buffer`), both optional so
 *  that a raw-socket without them falls back to the 'message' event. */
export interface DrainableSocket {
  readonly wrap?: unknown;
  readonly buffer?: unknown;
}

export type PacketHandler = (buffer: Buffer, bytes: number, source: string) => void;

function nativeWrap(sock: DrainableSocket): NativeWrap | undefined {
  const w = sock.wrap as Partial<NativeWrap> | undefined;
  return w && typeof w.recv === 'function' && typeof w.on === 'function' && typeof w.removeAllListeners === 'function'
    ? (w as NativeWrap) : undefined;
}

/** recvfrom's "nothing queued": raw-socket throws strerror(EAGAIN/EWOULDBLOCK). */
export function isWouldBlock(err: unknown): boolean {
  return err instanceof Error && /temporarily unavailable|would block/i.test(err.message);
}

/**
 * Replace the socket's one-datagram-per-wakeup reader with a batch reader. Returns false
 * (and changes nothing) when the socket does not expose the internals; the caller then
 * listens to 'message' as before. `onError` gets recvfrom errors other than EAGAIN.
 */
export function drainOnReady(sock: DrainableSocket, onPacket: PacketHandler, onError: (err: Error) => void): boolean {
  const wrap = nativeWrap(sock);
  const buffer = sock.buffer;
  if (!wrap || !Buffer.isBuffer(buffer)) return false;
  wrap.removeAllListeners('recvReady');
  wrap.on('recvReady', () => drainBatch(wrap, buffer, onPacket, onError));
  return true;
}

/** Error's stack trace limit, typed so that it can be unset (V8 reads any non-number as "no
 *  stack"). */
const errorLimit = Error as { stackTraceLimit: unknown };

/**
 * Run `fn` with stack capture off for Errors created directly inside it; `handler` (called
 * from within `fn` by the addon) gets the limit back while it runs. Restored on every path.
 */
function withoutStacks<T>(fn: (handler: PacketHandler) => T, handler: PacketHandler): T {
  const saved = errorLimit.stackTraceLimit;
  const restored: PacketHandler = (buffer, bytes, source) => {
    errorLimit.stackTraceLimit = saved;
    try {
      handler(buffer, bytes, source);
    } finally {
      errorLimit.stackTraceLimit = undefined;
    }
  };
  errorLimit.stackTraceLimit = undefined;
  try {
    return fn(restored);
  } finally {
    errorLimit.stackTraceLimit = saved;
  }
}

/** One wakeup: read until the queue is empty or MAX_READS_PER_WAKEUP datagrams were read. */
export function drainBatch(wrap: Pick<NativeWrap, 'recv'>, buffer: Buffer, onPacket: PacketHandler, onError: (err: Error) => void): number {
  return withoutStacks((handler) => {
    let n = 0;
    for (; n < MAX_READS_PER_WAKEUP; n++) {
      try {
        wrap.recv(buffer, handler);
      } catch (err) {
        if (!isWouldBlock(err)) onError(err instanceof Error ? err : new Error(String(err)));
        break;
      }
    }
    return n;
  }, onPacket);
}
