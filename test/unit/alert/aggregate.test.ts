// SPDX-License-Identifier: MIT
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AlertAggregator, OVERFLOW_SOURCE, type AlertCount } from '../../../src/alert/aggregate.ts';

const LIMITS = { intervalMs: 10_000, maxMessagesPerS: 5, maxSources: 16 };

test('a 100,000-packet flood from 100,000 sources: a bounded handful of messages whose counts add up', () => {
  const agg = new AlertAggregator(LIMITS, 0);
  const out: AlertCount[] = [];
  let mono = 0;
  for (let i = 0; i < 100_000; i++) {
    mono = i / 10; // 100,000 packets over 10 s
    const now = agg.record(i % 3 === 0 ? 'bad_auth' : 'unknown_key', `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, undefined, 1_000 + i, mono);
    if (now) out.push(now);
  }
  for (let k = 1; k <= 3; k++) out.push(...agg.flush(mono + k * LIMITS.intervalMs));
  const total = out.reduce((n, c) => n + c.count, 0);
  assert.equal(total, 100_000);
  assert.equal(agg.pendingCount(), 0);
  // 16 tracked sources, then per kind one (kind, "*") pair: its first at once, the sum later.
  assert.ok(out.length <= 16 + 2 * 2, `${out.length} messages`);
  const overflow = out.filter((c) => c.source === OVERFLOW_SOURCE);
  assert.deepEqual(overflow.map((c) => c.kind).sort(), ['bad_auth', 'bad_auth', 'unknown_key', 'unknown_key']);
  for (const c of overflow) assert.ok(c.firstMs <= c.lastMs && c.key === undefined);
});

test('the first failure of a pair goes out at once, repeats are summed at the interval end', () => {
  const agg = new AlertAggregator(LIMITS, 0);
  const first = agg.record('replay', '198.18.0.3', 'alice', 5_000, 0);
  assert.deepEqual(first, { kind: 'replay', source: '198.18.0.3', key: 'alice', count: 1, firstMs: 5_000, lastMs: 5_000 });
  for (let i = 1; i <= 9; i++) assert.equal(agg.record('replay', '198.18.0.3', 'alice', 5_000 + i, i), undefined);
  assert.deepEqual(agg.flush(10_000), [{ kind: 'replay', source: '198.18.0.3', key: 'alice', count: 9, firstMs: 5_001, lastMs: 5_009 }]);
  // Next interval: immediate again.
  assert.equal(agg.record('replay', '198.18.0.3', 'alice', 20_000, 10_001)?.count, 1);
});

test('the rate cap holds messages back without losing their counts', () => {
  const agg = new AlertAggregator({ intervalMs: 1000, maxMessagesPerS: 2, maxSources: 100 }, 0);
  const out: AlertCount[] = [];
  for (let i = 0; i < 10; i++) {
    const r = agg.record('stale', `10.0.0.${i}`, undefined, i, 0);
    if (r) out.push(r);
  }
  assert.equal(out.length, 2);
  let mono = 0;
  for (let k = 0; k < 6 && agg.pendingCount() > 0; k++) {
    mono += 1000;
    const batch = agg.flush(mono);
    assert.ok(batch.length <= 2);
    out.push(...batch);
  }
  assert.equal(out.reduce((n, c) => n + c.count, 0), 10);
  assert.deepEqual(out.map((c) => c.source), Array.from({ length: 10 }, (_, i) => `10.0.0.${i}`));
});

test('property: counts always add up to the failures recorded; messages per interval are capped', () => {
  const ev = fc.record({ kind: fc.constantFrom('bad_auth', 'replay', 'stale'), src: fc.integer({ min: 0, max: 40 }), dt: fc.integer({ min: 0, max: 3000 }) });
  fc.assert(fc.property(fc.array(ev, { maxLength: 400 }), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 10 }), (events, perS, maxSources) => {
    const limits = { intervalMs: 1000, maxMessagesPerS: perS, maxSources };
    const agg = new AlertAggregator(limits, 0);
    let mono = 0;
    let nextFlush = 1000;
    let total = 0;
    let sent = 0;
    for (const e of events) {
      mono += e.dt;
      while (mono >= nextFlush) {
        const b = agg.flush(nextFlush);
        assert.ok(b.length <= perS);
        total += b.reduce((n, c) => n + c.count, 0);
        nextFlush += 1000;
      }
      const r = agg.record(e.kind, `10.0.0.${e.src}`, undefined, mono, mono);
      if (r) { total += r.count; sent++; }
    }
    for (let k = 0; agg.pendingCount() > 0; k++) total += agg.flush(nextFlush + 1000 * k).reduce((n, c) => n + c.count, 0);
    assert.equal(total, events.length);
    assert.ok(sent <= events.length);
  }));
});
