// SPDX-License-Identifier: MIT
// The benchmarks' order statistics (test/bench/stats.ts): linear interpolation between closest
// ranks (Hyndman & Fan type 7). Expected values are what NumPy's default np.percentile gives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { median, quantile, quantileSorted, summarize, verdict } from '../../bench/stats.ts';

const close = (actual: number, expected: number): void => {
  assert.ok(Math.abs(actual - expected) < 1e-9, `${actual} != ${expected}`);
};

test('vectors (NumPy np.percentile, linear)', () => {
  const cases: [number[], number, number][] = [
    [[1, 2, 3, 4], 0.5, 2.5],
    [[1, 2, 3, 4], 0.1, 1.3],
    [[1, 2, 3, 4], 0.9, 3.7],
    [[1, 2, 3, 4], 0.95, 3.85],
    [[15, 20, 35, 40, 50], 0.4, 29],
    [[15, 20, 35, 40, 50], 0, 15],
    [[15, 20, 35, 40, 50], 1, 50],
    [[7], 0.95, 7],
  ];
  for (const [values, q, want] of cases) close(quantile(values, q), want);
});

test('input order does not matter and the input is not mutated', () => {
  const values = [9, 1, 8, 2, 7, 3];
  const copy = [...values];
  assert.equal(median(values), 5);
  assert.deepEqual(values, copy);
});

test('summarize: every field', () => {
  const s = summarize(Array.from({ length: 101 }, (_, i) => 100 - i));
  assert.deepEqual(s, { n: 101, min: 0, p10: 10, median: 50, p90: 90, p95: 95, max: 100, mean: 50 });
});

test('programmer errors throw: empty list, q out of range, non-finite values', () => {
  assert.throws(() => median([]), RangeError);
  assert.throws(() => quantile([1], -0.1), RangeError);
  assert.throws(() => quantile([1], 1.5), RangeError);
  assert.throws(() => quantile([1], Number.NaN), RangeError);
  assert.throws(() => summarize([1, Number.NaN]), RangeError);
  assert.throws(() => summarize([1, Number.POSITIVE_INFINITY]), RangeError);
});

test('properties: bounded by min/max, monotone in q, odd-length median is the middle value', () => {
  const values = fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { minLength: 1, maxLength: 50 });
  fc.assert(fc.property(values, fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }), (v, a, b) => {
    const sorted = [...v].sort((x, y) => x - y);
    const [lo, hi] = a <= b ? [a, b] : [b, a];
    const qa = quantileSorted(sorted, lo);
    const qb = quantileSorted(sorted, hi);
    // Interpolation rounds: allow a few ulps at this magnitude, nothing more.
    const le = (x: number, y: number): boolean => x <= y + 1e-9;
    assert.ok(le(sorted[0]!, qa) && le(qb, sorted.at(-1)!) && le(qa, qb));
    const s = summarize(v);
    const chain = [s.min, s.p10, s.median, s.p90, s.p95, s.max];
    assert.ok(chain.every((x, i) => i === 0 || le(chain[i - 1]!, x)), JSON.stringify(s));
    // === on purpose: interpolation may turn -0 into 0, which is the same median.
    if (v.length % 2 === 1) assert.ok(median(v) === sorted[(v.length - 1) / 2], `median ${median(v)}`);
  }));
});

test('verdict: lower is better, the target itself is met', () => {
  assert.equal(verdict(9.9, 10), 'ok');
  assert.equal(verdict(10, 10), 'ok');
  assert.equal(verdict(10.1, 10), 'MISSED');
});
