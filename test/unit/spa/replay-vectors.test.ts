// SPDX-License-Identifier: MIT
// Numbered step tables for the replay guard, in the manner of wireguard-go
// replay/replay_test.go: each scenario is a list of operations with the expected answer, and a
// failure names the scenario and the step number written beside it.

import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReplayGuard, type Freshness, type ReplayOptions } from '../../../src/spa/replay.ts';

const W = 90_000; // default window
const NOW = 1_700_000_000_000; // a synced wall clock
const BOOT = 30_000; // a Pi without RTC, 30 s after boot: the clock reads 1970 (DESIGN.md fact 8)
const K1 = 0x0a0b0c0d;
const K2 = 0xffff_ffff;

type Mode = 'T' | 'U'; // clock trusted / untrusted
type Step =
  | readonly ['commit', key: number, tag: number, ts: number, now: number, mode: Mode, want: Freshness]
  | readonly ['peek', key: number, tag: number, want: boolean]
  | readonly ['prune', now: number, mode: Mode, removed: number]
  | readonly ['floor' | 'highwater', key: number, want: number | undefined]
  | readonly ['size', want: number]
  | readonly ['restore', opts: Partial<ReplayOptions>];

/** A realistic 16-byte SIV tag for packet n. */
function tag(n: number): Uint8Array {
  return new Uint8Array(createHash('sha256').update(`packet ${n}`).digest().subarray(0, 16));
}

function run(steps: readonly Step[], opts: Partial<ReplayOptions> = {}): ReplayGuard {
  let g = new ReplayGuard(opts);
  steps.forEach((step, i) => {
    const at = `step ${i + 1}: ${JSON.stringify(step)}`;
    switch (step[0]) {
      case 'commit': {
        const [, key, n, ts, now, mode, want] = step;
        const before = JSON.stringify(g.snapshot());
        // check() must agree with commit() and must not mutate anything.
        assert.equal(g.check(key, tag(n), ts, now, mode === 'T'), want, `${at} (check)`);
        assert.equal(JSON.stringify(g.snapshot()), before, `${at} (check mutated state)`);
        assert.equal(g.commit(key, tag(n), ts, now, mode === 'T'), want, at);
        if (want !== 'fresh') assert.equal(JSON.stringify(g.snapshot()), before, `${at} (refusal mutated state)`);
        break;
      }
      case 'peek':
        assert.equal(g.peek(step[1], tag(step[2])), step[3], at);
        break;
      case 'prune':
        assert.equal(g.prune(step[1], step[2] === 'T'), step[3], at);
        break;
      case 'floor':
        assert.equal(g.floor(step[1]), step[2], at);
        break;
      case 'highwater':
        assert.equal(g.highwater(step[1]), step[2], at);
        break;
      case 'size':
        assert.equal(g.size, step[1], at);
        break;
      case 'restore': {
        const r = ReplayGuard.restore(JSON.parse(JSON.stringify(g.snapshot())), step[1]);
        assert.ok(r.ok, at);
        g = r.value;
        break;
      }
    }
  });
  return g;
}

describe('replay guard vectors', () => {
  it('trusted clock: window, replays, reordering, prune floor', () => {
    run([
      ['commit', K1, 1, NOW, NOW, 'T', 'fresh'], //                   1 first packet
      ['commit', K1, 1, NOW, NOW, 'T', 'replay'], //                  2 exact replay
      ['peek', K1, 1, true], //                                       3 seen before auth
      ['peek', K2, 1, false], //                                      4 same tag, other key
      ['commit', K2, 1, NOW, NOW, 'T', 'fresh'], //                   5 keys are separate
      ['commit', K1, 2, NOW + 1_000, NOW, 'T', 'fresh'], //           6 other traffic
      ['commit', K1, 1, NOW, NOW + 500, 'T', 'replay'], //            7 replay after other traffic
      ['commit', K1, 3, NOW - 5_000, NOW, 'T', 'fresh'], //           8 reordered, below high-water
      ['commit', K1, 4, NOW - W, NOW, 'T', 'fresh'], //               9 past edge is inclusive
      ['commit', K1, 5, NOW - W - 1, NOW, 'T', 'stale'], //          10 too old
      ['commit', K1, 6, NOW + W, NOW, 'T', 'fresh'], //              11 future edge is inclusive
      ['commit', K1, 7, NOW + W + 1, NOW, 'T', 'stale'], //          12 too far in the future
      ['commit', K1, 8, Number.NaN, NOW, 'T', 'stale'], //           13 non-finite ts never throws
      ['commit', K1, 9, Number.POSITIVE_INFINITY, NOW, 'T', 'stale'], // 14
      ['commit', K1, 10, -1e308, NOW, 'T', 'stale'], //              15
      ['commit', K1, 11, NOW, Number.NaN, 'T', 'stale'], //          16 a broken clock refuses
      ['peek', K1, 5, false], //                                     17 refusals are not recorded
      ['size', 6], //                                                18
      ['highwater', K1, NOW + W], //                                 19
      ['commit', K1, 1, NOW, NOW + W + 2_000, 'T', 'replay'], //     20 still in the ring, not yet pruned
      ['prune', NOW + W + 2_000, 'T', 5], //                         21 drops ts < NOW + 2000
      ['floor', K1, NOW + 1_000], //                                 22 floor = newest pruned ts
      ['floor', K2, NOW], //                                         23
      ['peek', K1, 2, false], //                                     24
      ['commit', K1, 2, NOW + 1_000, NOW + 1_000, 'T', 'stale'], //  25 clock stepped back: floor refuses
      ['commit', K1, 12, NOW + 1_500, NOW + 1_000, 'T', 'fresh'], // 26 above the floor: accepted
      ['commit', K1, 13, NOW + 500, NOW + 1_000, 'T', 'stale'], //   27 in window but under the floor
      ['commit', K1, 6, NOW + W, NOW + 1_000, 'T', 'replay'], //     28 survived the prune
      ['size', 2], //                                                29
    ]);
  });

  it('untrusted clock stuck at 1970: high-water window', () => {
    run([
      ['commit', K1, 1, NOW, BOOT, 'U', 'fresh'], //                  1 first packet sets the mark
      ['highwater', K1, NOW], //                                      2
      ['commit', K1, 1, NOW, BOOT, 'U', 'replay'], //                 3
      ['commit', K1, 2, NOW + 60_000, BOOT + 1, 'U', 'fresh'], //     4 increasing ts
      ['commit', K1, 3, NOW + 60_000 - W + 1, BOOT, 'U', 'fresh'], // 5 just above hw - window
      ['commit', K1, 4, NOW + 60_000 - W, BOOT, 'U', 'stale'], //     6 at hw - window: refused
      ['commit', K1, 5, NOW + 30_000, BOOT, 'U', 'fresh'], //         7 reordered within window
      ['commit', K1, 6, NOW + 61_000, BOOT, 'T', 'stale'], //         8 same packet, clock trusted: stale
      ['commit', K1, 2, NOW + 60_000, BOOT, 'U', 'replay'], //        9 replay after other traffic
      ['prune', BOOT, 'U', 0], //                                    10 nothing at/below hw - window yet
      ['commit', K1, 7, NOW + 200_000, BOOT, 'U', 'fresh'], //       11 big step forward
      ['prune', BOOT, 'U', 4], //                                    12 drops ts <= NOW + 110000
      ['floor', K1, NOW + 60_000], //                                13
      ['commit', K1, 2, NOW + 60_000, BOOT, 'U', 'stale'], //        14 replay of a pruned packet
      ['commit', K1, 7, NOW + 200_000, BOOT, 'U', 'replay'], //      15
      ['commit', K2, 1, 5, BOOT, 'U', 'fresh'], //                   16 other key, client clock at 1970 too
      ['commit', K2, 2, 6, BOOT, 'U', 'fresh'], //                   17
      ['commit', K2, 1, 5, BOOT, 'U', 'replay'], //                  18
      ['highwater', K2, 6], //                                       19
      ['commit', K1, 8, Number.NaN, BOOT, 'U', 'stale'], //          20
    ]);
  });

  it('mode switches: pruned packets stay refused', () => {
    run([
      // untrusted -> trusted -> untrusted (reboot without RTC after NTP had synced)
      ['commit', K1, 1, NOW, BOOT, 'U', 'fresh'], //                  1
      ['commit', K1, 1, NOW, NOW + 20_000, 'T', 'replay'], //         2 NTP synced: ring still refuses
      ['commit', K1, 2, NOW + 20_000, NOW + 20_000, 'T', 'fresh'], // 3
      ['prune', NOW + W + 30_000, 'T', 2], //                         4 both left the window
      ['floor', K1, NOW + 20_000], //                                 5
      // By the untrusted rule alone (ts > hw - window) packet 2 would pass again.
      ['commit', K1, 2, NOW + 20_000, BOOT, 'U', 'stale'], //         6 reboot: floor refuses
      ['commit', K1, 3, NOW + 25_000, BOOT, 'U', 'fresh'], //         7
      // untrusted prune relative to a high-water mark pushed ahead by a fast client clock
      ['commit', K2, 1, NOW, BOOT, 'U', 'fresh'], //                  8
      ['commit', K2, 2, NOW + 10 * W, BOOT, 'U', 'fresh'], //         9 client clock runs fast
      ['prune', BOOT, 'U', 1], //                                    10 drops K2/1 (ts <= hw - window)
      // By the trusted rule alone (|ts - now| <= window) packet 1 would pass again.
      ['commit', K2, 1, NOW, NOW + 1_000, 'T', 'stale'], //          11 NTP synced: floor refuses
      ['commit', K2, 3, NOW + 2_000, NOW + 1_000, 'T', 'fresh'], //  12 honest clients still get in
      ['floor', K2, NOW], //                                         13
    ]);
  });

  it('overflow at capacity 16 raises floors; nothing evicted can be replayed', () => {
    const fill: Step[] = [];
    for (let i = 0; i < 16; i++) fill.push(['commit', K1, i, NOW + i, NOW, 'T', 'fresh']); // 1-16
    run(
      [
        ...fill,
        ['size', 16], //                                       17
        ['floor', K1, undefined], //                           18 nothing evicted yet
        ['commit', K1, 16, NOW + 16, NOW, 'T', 'fresh'], //    19 evicts packet 0
        ['size', 16], //                                       20
        ['floor', K1, NOW], //                                 21
        ['peek', K1, 0, false], //                             22 gone from the ring...
        ['commit', K1, 0, NOW, NOW, 'T', 'stale'], //          23 ...but refused by the floor
        ['commit', K1, 1, NOW + 1, NOW, 'T', 'replay'], //     24 still in the ring
        ['commit', K1, 100, NOW, NOW, 'T', 'stale'], //        25 new packet at the floor: refused
        ['commit', K2, 100, NOW, NOW, 'T', 'fresh'], //        26 floors are per key; evicts packet 1
        ['floor', K2, undefined], //                           27
        ['floor', K1, NOW + 1], //                             28
        ['commit', K1, 1, NOW + 1, NOW, 'T', 'stale'], //      29
        ['commit', K1, 101, NOW + 50, NOW, 'T', 'fresh'], //   30 above the floor: accepted
        ['highwater', K1, NOW + 50], //                        31
      ],
      { capacity: 16 },
    );
  });

  it('snapshot/restore mid-stream, including a smaller capacity', () => {
    const fill: Step[] = [];
    for (let i = 0; i < 20; i++) fill.push(['commit', K1, i, NOW + i, NOW, 'U', 'fresh']); // 1-20
    run(
      [
        ...fill,
        ['restore', {}], //                                    21 same capacity (32)
        ['size', 20], //                                       22
        ['commit', K1, 0, NOW, NOW, 'U', 'replay'], //         23
        ['highwater', K1, NOW + 19], //                        24
        ['restore', { capacity: 16 }], //                      25 shrink: oldest 4 evicted
        ['size', 16], //                                       26
        ['floor', K1, NOW + 3], //                             27
        ['commit', K1, 3, NOW + 3, NOW, 'U', 'stale'], //      28 evicted by the shrink
        ['commit', K1, 4, NOW + 4, NOW, 'U', 'replay'], //     29 kept
        ['restore', { capacity: 64, windowMs: 10 }], //        30 grow, narrower window
        ['commit', K1, 20, NOW + 10, NOW, 'U', 'fresh'], //    31 ts > hw - 10
        ['commit', K1, 21, NOW + 9, NOW, 'U', 'stale'], //     32 ts = hw - 10: the new window applies
        ['commit', K1, 19, NOW + 19, NOW, 'U', 'replay'], //   33
      ],
      { capacity: 32 },
    );
  });

  it('prune edges: ts = now - window is still acceptable, so it stays', () => {
    run([
      ['commit', K1, 1, NOW, NOW, 'T', 'fresh'], //       1
      ['prune', NOW + W, 'T', 0], //                      2 trusted edge kept
      ['commit', K1, 1, NOW, NOW + W, 'T', 'replay'], //  3
      ['prune', NOW + W + 1, 'T', 1], //                  4
      ['commit', K2, 1, NOW, BOOT, 'U', 'fresh'], //      5
      ['commit', K2, 2, NOW + W, BOOT, 'U', 'fresh'], //  6 hw = NOW + W
      ['prune', BOOT, 'U', 1], //                         7 untrusted: ts <= hw - W goes (packet 1)
      ['commit', K2, 3, NOW + 1, BOOT, 'U', 'fresh'], //  8 ts > hw - W
      ['prune', BOOT, 'U', 0], //                         9 ...and stays
      ['size', 2], //                                    10
    ]);
  });

  it('forgetKey drops a removed key without touching the others', () => {
    const g = run([
      ['commit', K1, 1, NOW, NOW, 'T', 'fresh'],
      ['commit', K2, 2, NOW, NOW, 'T', 'fresh'],
      ['prune', NOW + W + 1, 'T', 2],
      ['commit', K1, 3, NOW + W, NOW + W, 'T', 'fresh'],
      ['commit', K2, 4, NOW + W, NOW + W, 'T', 'fresh'],
    ]);
    g.forgetKey(K1);
    assert.equal(g.size, 1);
    assert.equal(g.floor(K1), undefined);
    assert.equal(g.highwater(K1), undefined);
    assert.equal(g.peek(K1, tag(3)), false);
    assert.equal(g.peek(K2, tag(4)), true);
    assert.equal(g.floor(K2), NOW);
  });
});

describe('replay guard state and options', () => {
  const base = () => {
    const g = new ReplayGuard({ capacity: 16 });
    g.commit(K1, tag(1), NOW, NOW, true);
    return JSON.parse(JSON.stringify(g.snapshot())) as Record<string, unknown>;
  };

  it('snapshot is plain JSON with hex tags in ring order', () => {
    const g = new ReplayGuard({ capacity: 16, windowMs: 5_000 });
    g.commit(K1, tag(1), NOW, NOW, true);
    g.commit(K2, tag(2), NOW + 1, NOW, true);
    g.prune(NOW + 5_002, true);
    g.commit(K1, tag(3), NOW + 5_000, NOW + 5_001, true);
    const hex = (n: number) => Buffer.from(tag(n).subarray(0, 8)).toString('hex');
    assert.deepEqual(g.snapshot(), {
      version: 1,
      capacity: 16,
      windowMs: 5_000,
      entries: [{ keyId: K1, tag: hex(3), tsMs: NOW + 5_000 }],
      floors: [
        { keyId: K1, tsMs: NOW },
        { keyId: K2, tsMs: NOW + 1 },
      ],
      highwaters: [
        { keyId: K1, tsMs: NOW + 5_000 },
        { keyId: K2, tsMs: NOW + 1 },
      ],
    });
  });

  const broken: [string, (s: Record<string, unknown>) => unknown, string][] = [
    ['not an object', () => 'replay', 'malformed_state'],
    ['null', () => null, 'malformed_state'],
    ['future version', (s) => ({ ...s, version: 2 }), 'unsupported_version'],
    ['capacity too small', (s) => ({ ...s, capacity: 15 }), 'malformed_state'],
    ['capacity not an integer', (s) => ({ ...s, capacity: 16.5 }), 'malformed_state'],
    ['window zero', (s) => ({ ...s, windowMs: 0 }), 'malformed_state'],
    ['entries missing', (s) => ({ ...s, entries: undefined }), 'malformed_state'],
    ['tag too short', (s) => ({ ...s, entries: [{ keyId: 1, tag: 'abcd', tsMs: 1 }] }), 'malformed_state'],
    ['tag upper case', (s) => ({ ...s, entries: [{ keyId: 1, tag: '00112233445566AA', tsMs: 1 }] }), 'malformed_state'],
    ['key id negative', (s) => ({ ...s, floors: [{ keyId: -1, tsMs: 1 }] }), 'malformed_state'],
    ['key id above uint32', (s) => ({ ...s, highwaters: [{ keyId: 2 ** 32, tsMs: 1 }] }), 'malformed_state'],
    ['ts as string', (s) => ({ ...s, floors: [{ keyId: 1, tsMs: '1' }] }), 'malformed_state'],
    ['ts null (JSON NaN)', (s) => ({ ...s, highwaters: [{ keyId: 1, tsMs: null }] }), 'malformed_state'],
    [
      'duplicate entry',
      (s) => ({ ...s, entries: [...(s['entries'] as unknown[]), ...(s['entries'] as unknown[])] }),
      'malformed_state',
    ],
  ];
  for (const [name, mutate, reason] of broken) {
    it(`restore refuses a damaged state: ${name}`, () => {
      assert.deepEqual(ReplayGuard.restore(mutate(base())), { ok: false, reason });
    });
  }

  it('restore raises high-water marks to cover entries and floors', () => {
    const s = { ...base(), highwaters: [], floors: [{ keyId: K2, tsMs: 7 }] };
    const r = ReplayGuard.restore(s);
    assert.ok(r.ok);
    assert.equal(r.value.highwater(K1), NOW);
    assert.equal(r.value.highwater(K2), 7);
    assert.equal(r.value.check(K2, tag(9), 7, 0, false), 'stale');
  });

  it('rejects out-of-range options and malformed identities (programmer errors)', () => {
    for (const opts of [{ capacity: 15 }, { capacity: 1_048_577 }, { capacity: 100.5 }, { windowMs: 0 }, { windowMs: Number.NaN }]) {
      assert.throws(() => new ReplayGuard(opts), RangeError, JSON.stringify(opts));
    }
    const g = new ReplayGuard();
    assert.equal(g.capacity, 4096);
    assert.equal(g.windowMs, 90_000);
    assert.throws(() => g.peek(K1, new Uint8Array(7)), RangeError);
    assert.throws(() => g.check(-1, tag(1), NOW, NOW, true), RangeError);
    assert.throws(() => g.commit(2 ** 32, tag(1), NOW, NOW, true), RangeError);
  });

  it('only the first 8 tag bytes identify a packet', () => {
    const g = new ReplayGuard();
    const a = tag(1);
    const b = new Uint8Array(a);
    b[15] = (b[15] ?? 0) ^ 0xff;
    assert.equal(g.commit(K1, a, NOW, NOW, true), 'fresh');
    assert.equal(g.commit(K1, b, NOW, NOW, true), 'replay');
  });
});
