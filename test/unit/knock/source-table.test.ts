// SPDX-License-Identifier: MIT
// The fixed-size source table (src/knock/source-table.ts) against a naive LRU model
// (STYLE.md principle 12b): same members, same evictions, never above capacity.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MAX_KEY_CHARS, NONE, SourceTable } from '../../../src/knock/source-table.ts';

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
      assert.deepEqual([...t.slots()].map((s) => t.text(s)).sort(), [...model].sort());
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

test('address keys: the hash index finds exactly the tracked sources through collisions and deletions', () => {
  const address = fc.oneof(fc.ipV4(), fc.ipV6());
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 40 }),
    fc.uniqueArray(address, { minLength: 1, maxLength: 80 }),
    fc.array(fc.tuple(fc.boolean(), fc.nat()), { maxLength: 400 }),
    (cap, pool, ops) => {
      const t = new SourceTable(cap, 1);
      let model: string[] = []; // most recent last
      for (const [release, n] of ops) {
        const src = pool[n % pool.length]!;
        if (release) {
          const slot = t.find(src);
          if (slot >= 0) t.release(slot);
          model = model.filter((s) => s !== src);
        } else {
          model = model.filter((s) => s !== src);
          if (model.length >= cap) model.shift();
          model.push(src);
          assert.equal(t.text(t.touch(src)), src);
        }
      }
      // Every key of the pool: found iff the model has it, and its slot gives back its text.
      for (const src of pool) {
        const slot = t.find(src);
        assert.equal(slot >= 0, model.includes(src), src);
        if (slot >= 0) assert.equal(t.text(slot), src);
      }
      assert.equal(t.size, model.length);
    },
  ), { numRuns: 300 });
});

test('a spoofed flood of 100,000 new sources keeps max_sources slots and counts the evictions', () => {
  const t = new SourceTable(256, 1);
  for (let i = 0; i < 100_000; i++) t.touch(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  assert.equal(t.size, 256);
  assert.equal(t.evicted, 100_000 - 256);
  // The 256 most recent are the ones kept.
  assert.ok(t.find('10.1.134.159') >= 0); // i = 99,999
  assert.equal(t.find('10.0.0.1'), -1);
  assert.equal([...t.slots()].length, 256);
});

test('a key that is not an address text (empty, too long, not ASCII) is never tracked', () => {
  const t = new SourceTable(4, 1);
  for (const bad of ['', 'x'.repeat(MAX_KEY_CHARS + 1), '10.0.0.1\u00e9']) {
    assert.equal(t.touch(bad), NONE);
    assert.equal(t.find(bad), NONE);
  }
  assert.equal(t.size, 0);
  const long = 'ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255';
  assert.equal(long.length, MAX_KEY_CHARS);
  assert.equal(t.text(t.touch(long)), long);
});
