// SPDX-License-Identifier: MIT
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MemoryOutbox } from '../../../src/alert/outbox.ts';

const msg = (n: number) => ({ topic: 't', payload: String(n), qos: 1 as const, retain: false });

test('MemoryOutbox: in order, capped oldest-first, ack deletes up to an id', () => {
  const box = new MemoryOutbox(3);
  assert.deepEqual(box.append([msg(1), msg(2)], 10), { dropped: 0 });
  assert.deepEqual(box.append([msg(3), msg(4), msg(5)], 11), { dropped: 2 });
  assert.deepEqual(box.peek(10).map((e) => e.payload), ['3', '4', '5']);
  assert.deepEqual(box.peek(2).map((e) => e.id), [3, 4]);
  box.ack(4);
  assert.deepEqual(box.peek(10).map((e) => [e.id, e.payload, e.createdMs]), [[5, '5', 11]]);
  box.ack(99);
  assert.equal(box.size(), 0);
  assert.throws(() => new MemoryOutbox(0), RangeError);
});

test('property: MemoryOutbox keeps the newest `cap` entries in order and counts every drop', () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 20 }), fc.array(fc.integer({ min: 0, max: 7 }), { maxLength: 40 }), (cap, sizes) => {
    const box = new MemoryOutbox(cap);
    let n = 0;
    let dropped = 0;
    for (const k of sizes) {
      dropped += box.append(Array.from({ length: k }, () => msg(++n)), 0).dropped;
      const ids = box.peek(cap).map((e) => e.id);
      assert.ok(ids.length <= cap);
      assert.deepEqual(ids, Array.from({ length: ids.length }, (_, i) => n - ids.length + 1 + i));
    }
    assert.equal(dropped + box.size(), n);
  }));
});
