// SPDX-License-Identifier: MIT
// The daemon's run-time memory settings (src/cli/daemon.ts tuneRuntime; issue 9 RSS growth):
// small Buffers come from 8 KiB slabs, not Node 24's 64 KiB ones, once the current slab is
// used up. This file runs in its own process (node --test), so the global change stays here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DAEMON_BUFFER_POOL_BYTES, tuneRuntime } from '../../../src/cli/daemon.ts';

test('after tuneRuntime, new small Buffers are cut from 8 KiB slabs', () => {
  tuneRuntime();
  assert.equal(Buffer.poolSize, DAEMON_BUFFER_POOL_BYTES);
  // The slab in use when the size changed is used up first (at most Node's 64 KiB default).
  const slabs = new Set<number>();
  for (let i = 0; i < 1000; i++) slabs.add(Buffer.from(new Uint8Array(100)).buffer.byteLength);
  assert.ok(slabs.has(DAEMON_BUFFER_POOL_BYTES), `slab sizes seen: ${[...slabs].join(', ')}`);
  const last = Buffer.from(new Uint8Array(100));
  assert.equal(last.buffer.byteLength, DAEMON_BUFFER_POOL_BYTES);
  // A Buffer of half the slab or more gets its own allocation, as before.
  assert.equal(Buffer.from(new Uint8Array(DAEMON_BUFFER_POOL_BYTES / 2)).buffer.byteLength, DAEMON_BUFFER_POOL_BYTES / 2);
});
