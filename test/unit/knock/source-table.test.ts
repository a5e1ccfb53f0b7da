// SPDX-License-Identifier: MIT
// The fixed-size source table (src/knock/source-table.ts) against a naive LRU model
// (STYLE.md principle 12b): same members, same evictions, never above capacity.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SourceTable } from '../../../src/knock/source-table.ts';

test('behaves like a naive LRU of sources under random touches and releases', () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 8 }),
    fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 15 })), { maxLength: 300 }),
    (cap, ops) => {
      const t = new SourceTable(cap, 2);
      let model: string[] = []; // most recent last
      let evicted = 0;
      for (const [release, n] of ops) {
        const src = `10.0.0.${n}`;
        if (release) {
          const slot = t.find(src);
          if (slot >= 0) t.release(slot);
          model = model.filter((s) => s !== src);
        } else {
          const had = model.includes(src);
          model = model.filter((s) => s !== src);
          if (!had && model.length >= cap) { model.shift(); evicted++; }
          model.push(src);
          const slot = t.touch(src);
          assert.equal(t.find(src), slot);
        }
        assert.equal(t.size, model.length);
        assert.ok(t.size <= cap);
      }
      assert.deepEqual([...t.entries()].map(([s]) => s).sort(), [...model].sort());
      assert.equal(t.evicted, evicted);
    },
  ), { numRuns: 500 });
});

test('progress per door: begin, setProgress, end; a reused slot starts clean', () => {
  const t = new SourceTable(1, 3);
  const a = t.touch('a');
  t.begin(a, 2, 100, 7);
  t.setProgress(a, 2, 2, 0x80000000);
  assert.equal(t.matched(a, 2), 2);
  assert.equal(t.early(a, 2), 0x80000000);
  assert.equal(t.step(a, 2), 7);
  assert.equal(t.active(a), 1);
  t.setPenalty(a, 500);
  const b = t.touch('b'); // evicts a
  assert.equal(b, a);
  assert.equal(t.inAttempt(b, 2), false);
  assert.equal(t.early(b, 2), 0);
  assert.equal(t.step(b, 2), undefined);
  assert.equal(t.active(b), 0);
  assert.equal(t.penaltyUntil(b), 0);
  assert.equal(t.find('a'), -1);
});
