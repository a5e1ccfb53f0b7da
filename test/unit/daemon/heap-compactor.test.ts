// SPDX-License-Identifier: MIT
// When the daemon hands its heap back (src/daemon/heap-compactor.ts): only after a burst
// (grown past the threshold, then no longer growing), at most once per cooldown, never
// without V8's gc function. A scripted heap and gc; the real one is measured by the h2h
// `memory` scenario (docs/bench.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HeapCompactor } from '../../../src/daemon/heap-compactor.ts';

const MB = 1024 * 1024;

function rig(heapMb: number[], opts: { gc?: boolean; minTicksBetween?: number } = {}) {
  let heap = heapMb[0]! * MB;
  const calls: string[] = [];
  const c = new HeapCompactor({
    growthBytes: 4 * MB, minTicksBetween: opts.minTicksBetween ?? 3, heapBytes: () => heap,
    gc: opts.gc === false ? undefined : (o) => { calls.push(`${o.type}/${o.execution}/${o.flavor}`); heap = 20 * MB; },
  });
  const run = (series: number[]): boolean[] => series.map((mb) => { heap = mb * MB; return c.tick(); });
  return { c, calls, run };
}

test('compacts once the heap has grown past the threshold and stopped growing, with a last-resort major GC', () => {
  const r = rig([20]);
  assert.deepEqual(r.run([22, 26, 30, 35, 35]), [false, false, false, false, true]);
  assert.deepEqual(r.calls, ['major/sync/last-resort']);
  assert.equal(r.c.compactions, 1);
});

test('never while growing, never for growth under the threshold, never while idle at the floor', () => {
  const r = rig([20]);
  assert.deepEqual(r.run([21, 22, 23, 23.5, 23, 22, 20, 20, 20]), Array(9).fill(false));
  assert.deepEqual(r.run([30, 40, 50, 60]), [false, false, false, false]);
  assert.equal(r.calls.length, 0);
});

test('at most once per cooldown, even if the heap keeps swinging', () => {
  const r = rig([20], { minTicksBetween: 3 });
  // After a compaction the rig's heap is 20 MB; it grows again at once.
  assert.deepEqual(r.run([30, 29, 35, 34, 33, 40, 39]), [false, true, false, false, true, false, false]);
  assert.equal(r.calls.length, 2);
});

test('a heap that V8 shrank by itself lowers the floor', () => {
  const r = rig([40]);
  assert.deepEqual(r.run([30, 30, 35, 34]), [false, false, false, true]);
});

test('without --expose-gc it is inactive and does nothing', () => {
  const r = rig([20], { gc: false });
  assert.equal(r.c.active, false);
  assert.deepEqual(r.run([30, 40, 40, 40]), [false, false, false, false]);
});
