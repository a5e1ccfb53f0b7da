// SPDX-License-Identifier: MIT
// Resource exhaustion on the control socket (src/control/server.ts): connections, line
// buffers, pipelined requests and unread responses are all bounded. The socket is 0600 and
// root's, so the flooder is a local root process gone wrong, but a daemon that guards ports
// must not be taken down by its own management socket either.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { MAX_REQUEST_BYTES } from '../../../src/control/protocol.ts';
import { ControlServer, type ControlHandler } from '../../../src/control/server.ts';

const dir = mkdtempSync(join(tmpdir(), 'postern-exhaust-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

async function serve(handler: ControlHandler): Promise<{ path: string; server: ControlServer; calls: () => number }> {
  const path = join(dir, `c${n++}.sock`);
  let calls = 0;
  const server = new ControlServer(path, async (req) => { calls++; return handler(req); });
  await server.start();
  return { path, server, calls: () => calls };
}

function connect(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = createConnection(path, () => resolve(s));
    s.once('error', reject);
  });
}

/** Resolves true when the server closes the socket within ms. */
function closedWithin(s: Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    s.once('close', () => { clearTimeout(t); resolve(true); });
    s.on('error', () => undefined);
  });
}

const FLOOD_LINES = 100_000;
/** The server's per-connection queue cap is 16; the output cap must act past it. */
const MAX_PENDING_HINT = 16;
const STATUS = '{"cmd":"status"}\n';

test('connections: 64 at once, at most 8 are kept', async () => {
  const { path, server } = await serve(async () => ({ ok: true, data: {} }));
  const socks = await Promise.all(Array.from({ length: 64 }, () => connect(path).catch(() => undefined)));
  const closed = await Promise.all(socks.map((s) => (s ? closedWithin(s, 500) : Promise.resolve(true))));
  const kept = closed.filter((c) => !c).length;
  assert.ok(kept <= 8, `${kept} connections kept`);
  for (const s of socks) s?.destroy();
  server.stop();
});

test('a partial line longer than the request cap is refused, not buffered', async () => {
  const { path, server } = await serve(async () => ({ ok: true, data: {} }));
  const s = await connect(path);
  const closing = closedWithin(s, 3000);
  const chunk = 'x'.repeat(64 * 1024);
  for (let i = 0; i < 64 && !s.destroyed; i++) s.write(chunk); // 4 MB with no newline
  assert.ok(MAX_REQUEST_BYTES < chunk.length);
  assert.equal(await closing, true, 'the server kept a 4 MB line open');
  s.destroy();
  server.stop();
});

test('100,000 pipelined requests to a slow handler: the connection is dropped, the queue stays small', async () => {
  let release = (): void => undefined;
  const gate = new Promise<void>((r) => { release = r; });
  const { path, server, calls } = await serve(async () => { await gate; return { ok: true, data: {} }; });
  const s = await connect(path);
  const closing = closedWithin(s, 5000);
  s.write(STATUS.repeat(FLOOD_LINES));
  const closed = await closing;
  release();
  assert.equal(closed, true, 'the server queued 100,000 requests behind a slow one');
  assert.ok(calls() <= 1, `${calls()} handler calls`);
  s.destroy();
  server.stop();
});

test('100,000 requests whose answers are never read: the server stops answering, unread output stays bounded', async () => {
  const big = 'y'.repeat(32 * 1024);
  const { path, server, calls } = await serve(async () => ({ ok: true, data: { big } }));
  const s = await connect(path);
  s.pause(); // never read
  const closing = closedWithin(s, 10_000);
  // One request at a time, each answered before the next (so the queue cap never trips):
  // only the unread answers pile up.
  for (let i = 0; i < FLOOD_LINES && !s.destroyed; i++) {
    const before = calls();
    s.write(STATUS);
    for (let spin = 0; spin < 100 && calls() === before && !s.destroyed; spin++) await new Promise((r) => setImmediate(r));
  }
  assert.equal(await closing, true, 'the server kept answering a client that reads nothing');
  // Each answer is ~32 KB: 4 MB of unread output is ~130 answers; allow the kernel's buffer.
  assert.ok(calls() < 1000, `${calls()} answers written to a client that reads nothing`);
  assert.ok(calls() > MAX_PENDING_HINT, 'the queue cap, not the output cap, cut this client off');
  s.destroy();
  server.stop();
});
