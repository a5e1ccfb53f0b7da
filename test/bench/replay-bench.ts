// SPDX-License-Identifier: MIT
// Replay guard micro-benchmark: median ns per operation on the per-packet path, with the ring
// at its default capacity and full (so every commit also evicts), plus the timer-driven prune
// and the memory the ring holds. Run: node test/bench/replay-bench.ts

import { randomBytes } from 'node:crypto';
import { ReplayGuard } from '../../src/spa/replay.ts';

const BATCH = 10_000;
const SAMPLES = 31;
const NOW = 1_700_000_000_000;
const KEYS = [0x11111111, 0x22222222, 0x33333333, 0x44444444];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1] ?? Number.NaN;
}

function spread(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  return `p10 ${(s[Math.floor(s.length * 0.1)] ?? 0).toFixed(0)} / p90 ${(s[Math.floor(s.length * 0.9)] ?? 0).toFixed(0)}`;
}

function tags(n: number): Uint8Array[] {
  const bytes = randomBytes(n * 16);
  return Array.from({ length: n }, (_, i) => bytes.subarray(i * 16, i * 16 + 16));
}

/** ns/op of fn over one batch of fresh tags. */
function sample(fn: (keyId: number, tag: Uint8Array, i: number) => void): number {
  const ts = tags(BATCH);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < BATCH; i++) fn(KEYS[i & 3] ?? 0, ts[i] ?? new Uint8Array(16), i);
  return Number(process.hrtime.bigint() - t0) / BATCH;
}

function measure(name: string, fn: (keyId: number, tag: Uint8Array, i: number) => void): void {
  for (let i = 0; i < 5; i++) sample(fn); // warm up
  const xs = Array.from({ length: SAMPLES }, () => sample(fn));
  console.log(`${name.padEnd(34)} median ${median(xs).toFixed(0).padStart(5)} ns/op  (${spread(xs)})`);
}

const g = new ReplayGuard();
let t = NOW;
measure('check + commit (full ring, evicts)', (k, tag) => {
  t++;
  if (g.check(k, tag, t, t, true) === 'fresh') g.commit(k, tag, t, t, true);
});
measure('peek (miss)', (k, tag) => g.peek(k, tag));
const seen = tags(4096);
seen.forEach((tag, i) => g.commit(KEYS[i & 3] ?? 0, tag, ++t, t, true));
measure('peek (hit)', (_k, _tag, i) => g.peek(KEYS[(i % 4096) & 3] ?? 0, seen[i % 4096] ?? new Uint8Array(16)));
measure('check (replay)', (_k, _tag, i) => g.check(KEYS[(i % 4096) & 3] ?? 0, seen[i % 4096] ?? new Uint8Array(16), t, t, true));

const pruneNs: number[] = [];
for (let s = 0; s < SAMPLES; s++) {
  const p = new ReplayGuard();
  tags(4096).forEach((tag, i) => p.commit(KEYS[i & 3] ?? 0, tag, NOW + i, NOW + i, true));
  const t0 = process.hrtime.bigint();
  p.prune(NOW + 2048 + p.windowMs, true); // drops half, rebuilds the index
  pruneNs.push(Number(process.hrtime.bigint() - t0));
}
console.log(`${'prune 4096 -> 2048'.padEnd(34)} median ${(median(pruneNs) / 1000).toFixed(1)} us  (${spread(pruneNs.map((x) => x / 1000))} us)`);

const before = process.memoryUsage().arrayBuffers;
const m = new ReplayGuard({ capacity: 4096, hashSeed: 1 });
const after = process.memoryUsage().arrayBuffers;
void m;
console.log(`${'ring memory at 4096 entries'.padEnd(34)} ${((after - before) / 1024).toFixed(0)} KiB of typed arrays (fixed at construction)`);

const full = new ReplayGuard();
tags(4096).forEach((tag, i) => full.commit(KEYS[i & 3] ?? 0, tag, NOW + i, NOW + i, true));
const snapUs: number[] = [];
for (let s = 0; s < SAMPLES; s++) {
  const t0 = process.hrtime.bigint();
  JSON.stringify(full.snapshot());
  snapUs.push(Number(process.hrtime.bigint() - t0) / 1000);
}
console.log(`${'snapshot + JSON.stringify, 4096'.padEnd(34)} median ${median(snapUs).toFixed(0)} us  (${spread(snapUs)} us)`);
