// SPDX-License-Identifier: MIT
// Differential property test of the replay guard against a naive model: the Set of every
// (key, tag) ever accepted (STYLE.md principle 12b; wireguard-go allowedips_rand_test.go).
// A second, exact model (an array ring with O(n) scans) predicts every verdict, entry, floor
// and high-water mark, so precision bugs (pruning too much, evicting the wrong entry, a lost
// index cell) fail as surely as safety bugs.
// Random interleavings of new packets, replays, reordering, clock steps both ways, mode
// switches, prunes, tiny rings (overflow), persistence through JSON, and key removal.
// After every step: nothing accepted twice, every acceptance obeyed its mode's rule, and the
// floor invariant of src/spa/replay.ts holds.

import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { ReplayGuard } from '../../../src/spa/replay.ts';

const KEYS = [0, 1, 0xffff_ffff] as const;
const START_NOW = 1_700_000_000_000;

type Op =
  | { t: 'new'; key: number; base: 'now' | 'hw'; dt: number }
  | { t: 'replay'; pick: number }
  | { t: 'crosskey'; pick: number; key: number } // another key's tag under this key: a new packet
  | { t: 'tick'; ms: number }
  | { t: 'jump'; ms: number }
  | { t: 'reboot' }
  | { t: 'mode' }
  | { t: 'prune' }
  | { t: 'persist'; capacity: number | null }
  | { t: 'forget'; key: number };

interface Packet {
  readonly key: number;
  readonly epoch: number;
  readonly tag: Uint8Array;
  readonly hex: string; // the truncated tag, as in snapshots
  readonly ts: number;
}

interface World {
  guard: ReplayGuard;
  now: number;
  trusted: boolean;
  serial: number;
  readonly windowMs: number;
  readonly sent: Packet[]; // every packet ever offered, accepted or not
  readonly accepted: Set<string>; // the model
  readonly acceptedList: Packet[];
  readonly epoch: Map<number, number>; // bumped by forgetKey
  readonly hw: Map<number, number>; // model high-water mark per key (current epoch)
  // A naive reference of the whole guard: an array ring and plain maps, O(n) everything.
  capacity: number;
  ring: Packet[];
  readonly floors: Map<number, number>;
}

const id = (p: Packet) => `${p.key}/${p.epoch}/${p.hex}`;

/** A pseudo-random 16-byte tag for packet n (splitmix32), so the index sees spread-out keys. */
function makeTag(n: number): Uint8Array {
  const out = new Uint8Array(16);
  let x = n * 0x9e3779b9;
  for (let i = 0; i < 16; i += 4) {
    x = (x + 0x9e3779b9) | 0;
    let z = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    new DataView(out.buffer).setUint32(i, (z ^ (z >>> 16)) >>> 0);
  }
  return out;
}

// Exact window edges, so off-by-one errors at the boundaries are hit, not just hoped for.
const edge = (w: number) => fc.constantFrom(-w - 1, -w, -w + 1, 0, w - 1, w, w + 1);
const weird = fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -1, 0, 1e15, -1e300);

function opArb(windowMs: number, pruneWeight: number): fc.Arbitrary<Op> {
  const w = windowMs;
  const key = fc.constantFrom(...KEYS);
  const dt = fc.oneof(
    { weight: 12, arbitrary: fc.integer({ min: -2 * w, max: 2 * w }) },
    { weight: 3, arbitrary: edge(w) },
    { weight: 1, arbitrary: weird },
  );
  const jump = fc.oneof(fc.integer({ min: -3 * w, max: 3 * w }), fc.integer({ min: -1e12, max: 1e12 }));
  const base = fc.constantFrom('now' as const, 'hw' as const);
  const tick = fc.oneof(fc.integer({ min: 0, max: w }), edge(w).map(Math.abs));
  const ring = fc.option(fc.integer({ min: 16, max: 40 }));
  const op = <T>(weight: number, arbitrary: fc.Arbitrary<T>) => ({ weight, arbitrary });
  return fc.oneof(
    op(10, fc.record({ t: fc.constant('new' as const), key, base, dt })),
    op(6, fc.record({ t: fc.constant('replay' as const), pick: fc.nat() })),
    op(1, fc.record({ t: fc.constant('crosskey' as const), pick: fc.nat(), key })),
    op(4, fc.record({ t: fc.constant('tick' as const), ms: tick })),
    op(1, fc.record({ t: fc.constant('jump' as const), ms: jump })),
    op(1, fc.constant({ t: 'reboot' as const })),
    op(2, fc.constant({ t: 'mode' as const })),
    op(pruneWeight, fc.constant({ t: 'prune' as const })),
    op(1, fc.record({ t: fc.constant('persist' as const), capacity: ring })),
    op(1, fc.record({ t: fc.constant('forget' as const), key })),
  );
}

/** The freshness rule of DESIGN.md for the current mode, from the model's own state. */
function ruleHolds(w: World, p: Packet): boolean {
  if (!Number.isFinite(p.ts)) return false;
  if (w.trusted) return Math.abs(p.ts - w.now) <= w.windowMs;
  const hw = w.hw.get(p.key);
  return hw === undefined || p.ts > hw - w.windowMs;
}

function modelVerdict(w: World, p: Packet): 'fresh' | 'replay' | 'stale' {
  if (w.ring.some((q) => q.key === p.key && q.hex === p.hex)) return 'replay';
  if (!ruleHolds(w, p)) return 'stale';
  const floor = w.floors.get(p.key);
  return floor !== undefined && p.ts <= floor ? 'stale' : 'fresh';
}

/** Model: an entry leaves the ring, raising its key's floor. */
function modelLeave(w: World, p: Packet): void {
  const floor = w.floors.get(p.key);
  if (floor === undefined || p.ts > floor) w.floors.set(p.key, p.ts);
}

function modelAccept(w: World, p: Packet): void {
  if (w.ring.length === w.capacity) modelLeave(w, w.ring.shift() as Packet);
  w.ring.push(p);
}

function modelPrune(w: World): void {
  const gone = (p: Packet) => {
    if (w.trusted) return p.ts < w.now - w.windowMs;
    const hw = w.hw.get(p.key);
    return hw !== undefined && p.ts <= hw - w.windowMs;
  };
  for (const p of w.ring) if (gone(p)) modelLeave(w, p);
  w.ring = w.ring.filter((p) => !gone(p));
}

function offer(w: World, p: Packet, isNew: boolean): void {
  const g = w.guard;
  const before = JSON.stringify(g.snapshot());
  const seen = g.peek(p.key, p.tag);
  const checked = g.check(p.key, p.tag, p.ts, w.now, w.trusted);
  assert.equal(JSON.stringify(g.snapshot()), before, 'peek/check must not mutate');
  const verdict = g.commit(p.key, p.tag, p.ts, w.now, w.trusted);
  assert.equal(verdict, checked, 'commit agrees with check');
  assert.equal(seen, verdict === 'replay', 'replay verdict iff peek saw it');
  assert.equal(verdict, modelVerdict(w, p), 'verdict matches the reference model');
  const hw = w.hw.get(p.key);
  if (verdict === 'fresh') {
    assert.ok(!w.accepted.has(id(p)), `accepted twice: ${id(p)}`);
    assert.ok(ruleHolds(w, p), `accepted against the rule: ts=${p.ts} now=${w.now} trusted=${w.trusted} hw=${hw}`);
    w.accepted.add(id(p));
    w.acceptedList.push(p);
    modelAccept(w, p);
    if (hw === undefined || p.ts > hw) w.hw.set(p.key, p.ts);
  } else {
    assert.equal(JSON.stringify(g.snapshot()), before, 'a refusal must not mutate');
    if (verdict === 'replay') assert.ok(w.accepted.has(id(p)), 'replay verdict for a packet never accepted');
    // Liveness: floors never pass the high-water mark, so a new packet above it that obeys
    // the rule must get in.
    if (isNew && ruleHolds(w, p) && (hw === undefined || p.ts > hw)) assert.fail(`new packet refused: ${verdict}`);
  }
}

function apply(w: World, op: Op): void {
  switch (op.t) {
    case 'new': {
      const base = op.base === 'hw' ? (w.hw.get(op.key) ?? w.now) : w.now;
      const tag = makeTag(w.serial++);
      const hex = Buffer.from(tag.subarray(0, 8)).toString('hex');
      const p = { key: op.key, epoch: w.epoch.get(op.key) ?? 0, tag, hex, ts: base + op.dt };
      w.sent.push(p);
      return offer(w, p, true);
    }
    case 'replay': {
      const p = w.sent[op.pick % Math.max(1, w.sent.length)];
      // A replay of a forgotten key's packet could not authenticate any more: skip it.
      if (p && p.epoch === (w.epoch.get(p.key) ?? 0)) offer(w, p, false);
      return;
    }
    case 'crosskey': {
      const q = w.sent[op.pick % Math.max(1, w.sent.length)];
      if (!q || q.key === op.key) return;
      const p = { ...q, key: op.key, epoch: w.epoch.get(op.key) ?? 0 };
      const isNew = !w.sent.some((r) => r.key === p.key && r.epoch === p.epoch && r.hex === p.hex);
      w.sent.push(p);
      return offer(w, p, isNew);
    }
    case 'tick':
    case 'jump':
      w.now += op.ms;
      return;
    case 'reboot':
      w.now = 10_000; // no RTC: back to 1970
      w.trusted = false;
      return persist(w, null);
    case 'mode':
      w.trusted = !w.trusted;
      return;
    case 'prune': {
      const size = w.guard.size;
      assert.equal(w.guard.prune(w.now, w.trusted), size - w.guard.size);
      return modelPrune(w);
    }
    case 'persist':
      return persist(w, op.capacity);
    case 'forget':
      w.guard.forgetKey(op.key);
      w.epoch.set(op.key, (w.epoch.get(op.key) ?? 0) + 1);
      w.hw.delete(op.key);
      w.floors.delete(op.key);
      w.ring = w.ring.filter((p) => p.key !== op.key);
      assert.equal(w.guard.floor(op.key), undefined);
      return;
  }
}

function persist(w: World, capacity: number | null): void {
  const before = w.guard.snapshot();
  const r = ReplayGuard.restore(JSON.parse(JSON.stringify(before)), capacity === null ? {} : { capacity });
  assert.ok(r.ok, 'restore of our own snapshot');
  w.guard = r.value;
  if (capacity !== null) {
    w.capacity = capacity;
    while (w.ring.length > capacity) modelLeave(w, w.ring.shift() as Packet);
  }
  if (capacity === null || capacity === before.capacity) assert.deepEqual(w.guard.snapshot(), before, 'round trip');
}

/** INVARIANT of src/spa/replay.ts, plus bookkeeping that must agree with the model. */
function checkInvariant(w: World): void {
  const g = w.guard;
  const snap = g.snapshot();
  assert.ok(g.size <= g.capacity && snap.entries.length === g.size);
  const inRing = new Set(snap.entries.map((e) => `${e.keyId}/${w.epoch.get(e.keyId) ?? 0}/${e.tag}`));
  assert.equal(inRing.size, snap.entries.length, 'ring entries are unique');
  for (const e of inRing) assert.ok(w.accepted.has(e), `ring holds a packet never accepted: ${e}`);
  for (const p of w.acceptedList) {
    if (p.epoch !== (w.epoch.get(p.key) ?? 0)) continue; // key was removed since
    const floor = g.floor(p.key);
    const held = inRing.has(id(p)) || (floor !== undefined && p.ts <= floor);
    assert.ok(held, `invariant broken for ${id(p)} ts=${p.ts} floor=${floor}`);
  }
  assert.deepEqual(
    snap.entries.map((e) => `${e.keyId}/${e.tag}/${e.tsMs}`),
    w.ring.map((p) => `${p.key}/${p.hex}/${p.ts}`),
    'ring matches the reference model, in order',
  );
  for (const key of KEYS) {
    assert.equal(g.floor(key), w.floors.get(key), 'floor matches the reference model');
    assert.equal(g.highwater(key), w.hw.get(key), 'high-water mark matches the model');
    const floor = g.floor(key);
    if (floor !== undefined) assert.ok(floor <= (w.hw.get(key) ?? Number.NEGATIVE_INFINITY), 'floor <= high-water');
  }
}

const scenario = fc.record({
  capacity: fc.integer({ min: 16, max: 48 }),
  windowMs: fc.constantFrom(1_000, 90_000),
  trusted: fc.boolean(),
  now: fc.constantFrom(START_NOW, 10_000),
  pruneWeight: fc.integer({ min: 0, max: 4 }), // 0: the ring overflows all the time
});

it('replay guard never accepts a (key, tag) twice and keeps its floor invariant', () => {
  fc.assert(
    fc.property(
      scenario.chain((s) => {
        const ops = fc.array(opArb(s.windowMs, s.pruneWeight), { minLength: 100, maxLength: 400 });
        return fc.tuple(fc.constant(s), ops);
      }),
      ([s, ops]) => {
        const w: World = {
          guard: new ReplayGuard({ capacity: s.capacity, windowMs: s.windowMs }),
          now: s.now,
          trusted: s.trusted,
          serial: 0,
          windowMs: s.windowMs,
          sent: [],
          accepted: new Set(),
          acceptedList: [],
          epoch: new Map(),
          hw: new Map(),
          capacity: s.capacity,
          ring: [],
          floors: new Map(),
        };
        for (const op of ops) {
          apply(w, op);
          checkInvariant(w);
        }
      },
    ),
    { numRuns: 300 },
  );
});
