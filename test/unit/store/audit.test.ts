// SPDX-License-Identifier: MIT
// The audit buffer's aggregation (pure): rows per interval are bounded by the cap, counts
// always add up, first/last times are kept, and take() starts a fresh interval.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { AuditBuffer, OVERFLOW_SOURCE } from '../../../src/store/audit.ts';

test('repeats from one source are one row with a count and first/last times', () => {
  const b = new AuditBuffer(4);
  for (let i = 0; i < 1000; i++) b.record('replay', '198.18.0.3', 'tech', 1000 + i);
  assert.deepEqual(b.take(), [{ kind: 'replay', source: '198.18.0.3', key: 'tech', count: 1000, firstMs: 1000, lastMs: 1999 }]);
  assert.deepEqual(b.take(), []);
});

test('past the cap, attempts become one overflow row per kind', () => {
  const b = new AuditBuffer(2);
  for (let i = 0; i < 10; i++) b.record('unknown_key', `10.0.0.${i}`, undefined, i);
  b.record('too_short', '10.0.0.99', undefined, 50);
  const rows = b.take();
  assert.deepEqual(rows.map((r) => [r.kind, r.source, r.count]), [
    ['unknown_key', '10.0.0.0', 1], ['unknown_key', '10.0.0.1', 1], ['unknown_key', OVERFLOW_SOURCE, 8], ['too_short', OVERFLOW_SOURCE, 1],
  ]);
});

test('property: rows <= cap + kinds and counts add up, for any stream', () => {
  const ev = fc.record({ kind: fc.constantFrom('a', 'b', 'c'), source: fc.integer({ min: 0, max: 50 }), at: fc.integer({ min: 0, max: 1e6 }) });
  fc.assert(fc.property(fc.integer({ min: 1, max: 10 }), fc.array(ev, { maxLength: 300 }), (cap, evs) => {
    const b = new AuditBuffer(cap);
    for (const e of evs) b.record(e.kind, `s${e.source}`, undefined, e.at);
    const rows = b.take();
    assert.ok(rows.length <= cap + 3);
    assert.equal(rows.reduce((n, r) => n + r.count, 0), evs.length);
    for (const r of rows) assert.ok(r.firstMs <= r.lastMs);
  }));
});
