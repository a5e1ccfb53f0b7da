// SPDX-License-Identifier: MIT
// Batch reading from raw-socket sockets (src/capture/drain.ts). The loop logic is checked
// against a stand-in for the addon's native wrap (a third-party edge); then, as root, against
// a real raw-socket socket on loopback: datagrams queued while receiving is paused all arrive,
// intact, in a handful of wakeups instead of one wakeup each.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { MAX_READS_PER_WAKEUP, drainBatch, drainOnReady, isWouldBlock } from '../../../src/capture/drain.ts';

/** A native wrap holding `queue`; recv throws EAGAIN's text when empty, like raw-socket. */
function fakeWrap(queue: Buffer[], failWith?: Error) {
  return {
    reads: 0,
    recv(buffer: Buffer, cb: (b: Buffer, n: number, src: string) => void): void {
      this.reads++;
      if (failWith) throw failWith;
      const next = queue.shift();
      if (!next) throw new Error('Resource temporarily unavailable');
      next.copy(buffer);
      cb(buffer, next.length, '192.0.2.1');
    },
  };
}

test('drainBatch reads until the queue is empty and treats EAGAIN as the end, not an error', () => {
  const wrap = fakeWrap([Buffer.from('ab'), Buffer.from('cde')]);
  const got: string[] = [];
  const errors: Error[] = [];
  const n = drainBatch(wrap, Buffer.alloc(16), (b, bytes, src) => got.push(`${b.subarray(0, bytes).toString()}@${src}`), (e) => errors.push(e));
  assert.equal(n, 2);
  assert.deepEqual(got, ['ab@192.0.2.1', 'cde@192.0.2.1']);
  assert.deepEqual(errors, []);
});

test('drainBatch stops after MAX_READS_PER_WAKEUP datagrams so the event loop gets a turn', () => {
  const queue = Array.from({ length: MAX_READS_PER_WAKEUP * 2 + 5 }, (_, i) => Buffer.from([i & 0xff]));
  const wrap = fakeWrap(queue);
  let seen = 0;
  assert.equal(drainBatch(wrap, Buffer.alloc(4), () => seen++, assert.fail), MAX_READS_PER_WAKEUP);
  assert.equal(seen, MAX_READS_PER_WAKEUP);
  assert.equal(queue.length, MAX_READS_PER_WAKEUP + 5);
});

test('drainBatch reports other recv errors once and stops the batch', () => {
  const wrap = fakeWrap([Buffer.from('x')], new Error('Bad file descriptor'));
  const errors: string[] = [];
  assert.equal(drainBatch(wrap, Buffer.alloc(4), assert.fail, (e) => errors.push(e.message)), 0);
  assert.deepEqual(errors, ['Bad file descriptor']);
  assert.equal(wrap.reads, 1);
});

test('the EAGAIN that ends a batch is built without a stack trace; the handler keeps stacks', () => {
  const limit = Error.stackTraceLimit;
  const thrown: Error[] = [];
  const wrap = {
    recv(buffer: Buffer, cb: (b: Buffer, n: number, src: string) => void): void {
      const err = new Error('Resource temporarily unavailable');
      if (thrown.length > 0) {
        thrown.push(err);
        throw err;
      }
      thrown.push(err);
      cb(buffer, 1, '192.0.2.1');
    },
  };
  const inHandler: unknown[] = [];
  let handlerStack = '';
  assert.equal(drainBatch(wrap, Buffer.alloc(4), () => {
    inHandler.push(Error.stackTraceLimit);
    handlerStack = new Error('in the pipeline').stack ?? '';
  }, assert.fail), 1);
  // No "    at ..." frames: V8 skipped the stack walk (and its mallocs) for the addon's errors.
  assert.equal(thrown.length, 2);
  for (const e of thrown) assert.doesNotMatch(e.stack ?? '', /\n\s+at /);
  assert.deepEqual(inHandler, [limit]);
  assert.match(handlerStack, /\n\s+at /);
  assert.equal(Error.stackTraceLimit, limit);
});

test('drainBatch restores Error.stackTraceLimit when the handler throws or recv fails', () => {
  const limit = Error.stackTraceLimit;
  const errors: string[] = [];
  drainBatch(fakeWrap([Buffer.from('x')]), Buffer.alloc(4), () => { throw new Error('handler bug'); }, (e) => errors.push(e.message));
  assert.deepEqual(errors, ['handler bug']);
  assert.equal(Error.stackTraceLimit, limit);
  drainBatch(fakeWrap([], new Error('Bad file descriptor')), Buffer.alloc(4), assert.fail, () => undefined);
  assert.equal(Error.stackTraceLimit, limit);
});

test('isWouldBlock knows both spellings of EAGAIN and nothing else', () => {
  assert.equal(isWouldBlock(new Error('Resource temporarily unavailable')), true);
  assert.equal(isWouldBlock(new Error('Operation would block')), true);
  assert.equal(isWouldBlock(new Error('Permission denied')), false);
  assert.equal(isWouldBlock('Resource temporarily unavailable'), false);
});

test('drainOnReady leaves a socket without the addon internals alone (the caller falls back)', () => {
  assert.equal(drainOnReady({}, assert.fail, assert.fail), false);
  assert.equal(drainOnReady({ wrap: { recv: 1 }, buffer: Buffer.alloc(1) }, assert.fail, assert.fail), false);
  assert.equal(drainOnReady({ wrap: fakeWrap([]), buffer: 'not a buffer' }, assert.fail, assert.fail), false);
});

interface RealSocket {
  wrap: { on(e: 'recvReady', fn: () => void): void };
  buffer: Buffer;
  pauseRecv(): void;
  resumeRecv(): void;
  close(): void;
}

const rootSkip = process.getuid?.() === 0 ? false : 'needs root (raw socket)';

test('a real raw socket: a queued burst arrives whole, in batches', { skip: rootSkip, timeout: 10_000 }, async () => {
  const raw = createRequire(import.meta.url)('raw-socket') as {
    createSocket(o: { protocol: number; bufferSize: number }): RealSocket; Protocol: { UDP: number };
  };
  const COUNT = 200;
  const marker = randomBytes(8);
  const sink = dgram.createSocket('udp4');
  await new Promise<void>((r) => sink.bind(0, '127.0.0.1', r));
  const port = sink.address().port;
  const sock = raw.createSocket({ protocol: raw.Protocol.UDP, bufferSize: 2048 });
  const seen = new Set<number>();
  let wakeups = 0;
  try {
    // Other loopback UDP traffic on this machine is ignored: only our marker counts.
    const installed = drainOnReady(sock, (buf, bytes) => {
      const pkt = buf.subarray(0, bytes);
      const ihl = (pkt[0]! & 0x0f) * 4;
      const payload = pkt.subarray(ihl + 8);
      if (pkt.readUInt16BE(ihl + 2) === port && payload.subarray(0, 8).equals(marker)) seen.add(payload.readUInt32BE(8));
    }, assert.fail);
    assert.equal(installed, true);
    sock.wrap.on('recvReady', () => wakeups++);
    sock.pauseRecv();
    const sender = dgram.createSocket('udp4');
    for (let i = 0; i < COUNT; i++) {
      const b = Buffer.alloc(12);
      marker.copy(b);
      b.writeUInt32BE(i, 8);
      await new Promise<void>((r, j) => sender.send(b, port, '127.0.0.1', (e) => (e ? j(e) : r())));
    }
    sender.close();
    sock.resumeRecv();
    const end = Date.now() + 5_000;
    while (seen.size < COUNT && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    assert.equal(seen.size, COUNT);
    // 200 queued datagrams at 64 per wakeup: 4 wakeups, a few more if other traffic interleaves.
    assert.ok(wakeups < COUNT / 4, `${wakeups} wakeups for ${COUNT} datagrams`);
  } finally {
    sock.close();
    sink.close();
  }
});
