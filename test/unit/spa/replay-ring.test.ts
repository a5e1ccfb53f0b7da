// SPDX-License-Identifier: MIT
// The replay ring against an array: order, eviction, removal, index lookups and the onLeave
// contract. Tags come from a small pool and key ids repeat them, so probe runs are long, wrap
// around the table and mix keys, which is where open addressing goes wrong.

import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { ReplayRing, tagWord } from '../../../src/spa/replay-ring.ts';

interface Entry {
  readonly key: number;
  readonly hi: number;
  readonly lo: number;
  readonly ts: number;
}

type Op =
  | { t: 'push'; key: number; tag: number }
  | { t: 'drop'; key: number; parity: number }
  | { t: 'probe'; key: number; tag: number };

const KEYS = [0, 7, 0xffff_ffff];
const TAGS: readonly [number, number][] = Array.from({ length: 40 }, (_, i) => [(i * 0x9e3779b9) >>> 0, i % 5]);

const keyArb = fc.constantFrom(...KEYS);
const tagArb = fc.nat({ max: TAGS.length - 1 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ t: fc.constant('push' as const), key: keyArb, tag: tagArb }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('drop' as const), key: keyArb, parity: fc.nat({ max: 2 }) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('probe' as const), key: keyArb, tag: tagArb }) },
);
const opsArb = fc.array(opArb, { minLength: 50, maxLength: 300 });

it('ring matches an array model (order, eviction, removal, lookups, onLeave)', () => {
  fc.assert(
    fc.property(fc.integer({ min: 16, max: 24 }), fc.nat(), opsArb, (capacity, seed, ops) => {
      const left: Entry[] = [];
      const ring = new ReplayRing(capacity, seed, (key, ts) => left.push({ key, hi: 0, lo: 0, ts }));
      let model: Entry[] = [];
      let expectLeft: Entry[] = [];
      let ts = 0;
      const holds = (key: number, [hi, lo]: [number, number]) => model.some((e) => e.key === key && e.hi === hi && e.lo === lo);
      for (const o of ops) {
        const tag = TAGS[o.t === 'drop' ? 0 : o.tag] ?? [0, 0];
        if (o.t === 'push' && !holds(o.key, tag)) {
          const e = { key: o.key, hi: tag[0], lo: tag[1], ts: ts++ };
          if (model.length === capacity) expectLeft.push(model.shift() as Entry);
          model.push(e);
          ring.push(e.key, e.hi, e.lo, e.ts);
        } else if (o.t === 'drop') {
          const drop = (e: { key: number; ts: number }) => e.key === o.key && e.ts % 3 !== o.parity;
          const dropped = model.filter(drop);
          expectLeft = [...expectLeft, ...dropped];
          model = model.filter((e) => !drop(e));
          assert.equal(ring.removeWhere((key, t) => drop({ key, ts: t })), dropped.length);
        }
        if (o.t !== 'drop') assert.equal(ring.has(o.key, tag[0], tag[1]), holds(o.key, tag));
        for (const e of model) assert.ok(ring.has(e.key, e.hi, e.lo), 'every live entry is found');
        const seen: Entry[] = [];
        ring.forEach((key, hi, lo, t) => seen.push({ key, hi, lo, ts: t }));
        assert.deepEqual(seen, model, 'oldest first, nothing lost');
        assert.equal(ring.size, model.length);
        assert.deepEqual(
          left.map((e) => [e.key, e.ts]),
          expectLeft.map((e) => [e.key, e.ts]),
          'onLeave reports each departure once, in order',
        );
      }
    }),
    { numRuns: 300 },
  );
});

it('large capacity uses a 32-bit index and still finds everything', () => {
  const capacity = 70_000;
  let left = 0;
  const ring = new ReplayRing(capacity, 1, () => left++);
  for (let i = 0; i < capacity + 5_000; i++) ring.push(i & 3, i, i ^ 0x5555_5555, i);
  assert.equal(ring.size, capacity);
  assert.equal(left, 5_000);
  for (let i = 0; i < 5_000; i++) assert.equal(ring.has(i & 3, i, i ^ 0x5555_5555), false);
  for (let i = 5_000; i < capacity + 5_000; i += 7) assert.equal(ring.has(i & 3, i, i ^ 0x5555_5555), true);
  assert.equal(ring.has(1, 5_000, 5_000 ^ 0x5555_5555), false, 'key id is part of the identity');
});

it('tagWord reads big-endian words of the truncated tag', () => {
  const tag = Uint8Array.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02, 0x03, 0xff, 0xff]);
  assert.equal(tagWord(tag, 0), 0xdeadbeef);
  assert.equal(tagWord(tag, 4), 0x00010203);
});
