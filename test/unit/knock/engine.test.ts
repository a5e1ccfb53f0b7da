// SPDX-License-Identifier: MIT
// The knock engine (src/knock/engine.ts): progress, duplicates, timeouts, sweeps, the LRU
// cap, tcpflags, target, one-time and time-derived doors. Pure: times are passed in.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { KnockEngine, type KnockEvent, type KnockHit } from '../../../src/knock/engine.ts';
import type { DoorConfig } from '../../../src/knock/door.ts';
import { parseSequence, parseTcpFlags, type KnockPort } from '../../../src/knock/sequence.ts';
import { TotpKey, currentStep, deriveSequence } from '../../../src/knock/totp.ts';
import { parseCidr } from '../../../src/wire/address.ts';

const ALL = [parseCidr('0.0.0.0/0'), parseCidr('::/0')].flatMap((c) => (c.ok ? [c.value] : []));
const seq = (...items: string[]): KnockPort[] => { const s = parseSequence(items); assert.ok(s.ok); return s.value; };

function door(name: string, sequence: KnockPort[], extra: Partial<DoorConfig> = {}): DoorConfig {
  return { name, source: { kind: 'static', sequence }, seqTimeoutS: 25, services: [], durationS: 60, allowedAddresses: ALL, cmdTimeoutS: 10, ...extra };
}

const OPTS = { maxSources: 64, guardWidth: 2, penaltyMs: 10_000 };
const SYN = 0x02;

class Driver {
  readonly engine: KnockEngine;
  mono = 0;
  wall = 1_700_000_000_000;
  constructor(doors: DoorConfig[], opts = OPTS) { this.engine = new KnockEngine(doors, opts); }
  knock(port: number, o: Partial<KnockHit> = {}): KnockEvent[] {
    return this.engine.hit({ src: '198.18.0.2', dst: '198.18.0.1', proto: 'tcp', port, tcpFlags: SYN, ...o }, { monoMs: this.mono, wallMs: this.wall });
  }
  all(ports: number[], o: Partial<KnockHit> = {}): KnockEvent[] { return ports.flatMap((p) => this.knock(p, o)); }
}

const opens = (ev: KnockEvent[]): string[] => ev.flatMap((e) => (e.kind === 'open' ? [e.door.name] : []));
const reasons = (ev: KnockEvent[]): string[] => ev.flatMap((e) => (e.kind === 'refused' ? [e.reason] : []));

test('a static sequence opens; mixed tcp/udp; wrong order does not', () => {
  const d = new Driver([door('ssh', seq('7000', '8000:udp', '9000'))]);
  assert.deepEqual(opens([...d.knock(7000), ...d.knock(8000, { proto: 'udp', tcpFlags: 0 }), ...d.knock(9000)]), ['ssh']);
  const w = new Driver([door('ssh', seq('7000', '8000', '9000'))]);
  const ev = w.all([8000, 7000, 9000]);
  assert.deepEqual(opens(ev), []);
  assert.deepEqual(reasons(ev), ['knock_wrong', 'knock_wrong', 'knock_wrong']);
});

test('mixed protocols: a knock of the other protocol may arrive early (two raw sockets), one protocol never reorders', () => {
  const doors = [door('m', seq('7000', '8000:udp', '8001:udp', '9000'))];
  const u = { proto: 'udp' as const, tcpFlags: 0 };
  const d = new Driver(doors);
  assert.deepEqual(opens([...d.knock(8000, u), ...d.knock(8001, u), ...d.knock(8000, u), ...d.knock(7000), ...d.knock(9000)]), ['m']);
  const swapped = new Driver(doors);
  assert.deepEqual(opens([...swapped.knock(7000), ...swapped.knock(8001, u), ...swapped.knock(8000, u), ...swapped.knock(9000)]), [], 'UDP order kept');
  const tcp = new Driver([door('t', seq('7000', '8000', '9000'))]);
  assert.deepEqual(opens(tcp.all([8000, 7000, 9000])), [], 'no tolerance within one protocol');
});

test('duplicates of the knock just matched are tolerated; a later repeat resets', () => {
  const d = new Driver([door('ssh', seq('7000', '8000', '9000'))]);
  assert.deepEqual(opens(d.all([7000, 7000, 8000, 8000, 9000])), ['ssh']);
  assert.equal(d.engine.stats.duplicates, 2);
  const r = new Driver([door('ssh', seq('7000', '8000', '9000'))]);
  assert.deepEqual(opens(r.all([7000, 8000, 7000, 9000])), []);
});

test('timeouts: lazily on the next hit and by expire(), once each', () => {
  const d = new Driver([door('ssh', seq('7000', '8000', '9000'), { seqTimeoutS: 5 })]);
  d.knock(7000);
  d.mono += 5001;
  assert.deepEqual(reasons(d.engine.expire({ monoMs: d.mono, wallMs: d.wall })), ['knock_timeout']);
  assert.deepEqual(reasons(d.engine.expire({ monoMs: d.mono, wallMs: d.wall })), []);
  assert.equal(d.engine.stats.tracked, 0, 'idle sources are forgotten');
  d.knock(7000);
  d.mono += 6000;
  const ev = d.all([8000, 9000]);
  assert.equal(reasons(ev)[0], 'knock_timeout');
  assert.deepEqual(opens(ev), []);
});

test('sweeps open nothing: ordered, reverse, random (guard ports and penalty)', () => {
  const doors = [door('open', seq('7000', '8000', '9000')), door('close', seq('9000', '8000', '7000'))];
  const orders: number[][] = [];
  const up = Array.from({ length: 65535 }, (_, i) => i + 1);
  orders.push(up, [...up].reverse());
  // Seeded Fisher-Yates shuffles (fast-check's PRNG through fc.sample for reproducibility).
  for (const seed of [1, 2, 3]) {
    const rnd = fc.sample(fc.integer({ min: 0, max: 0x7fffffff }), { seed, numRuns: 65535 });
    const a = [...up];
    for (let i = a.length - 1; i > 0; i--) { const j = (rnd[i] ?? 0) % (i + 1); [a[i], a[j]] = [a[j] as number, a[i] as number]; }
    orders.push(a);
  }
  // With the default penalty, and without one (guard ports and scan-like SYNs alone).
  for (const [order, opts] of orders.flatMap((o) => [[o, OPTS], [o, { ...OPTS, penaltyMs: 0 }]] as const)) {
    const d = new Driver(doors, opts);
    const ev: KnockEvent[] = [];
    for (const p of order) { ev.push(...d.knock(p)); d.mono += 0.01; }
    assert.deepEqual(opens(ev), []);
    assert.ok(reasons(ev).includes('knock_guard'));
  }
});

test('penalty: a legitimate knock after a guard hit waits penalty_s, then opens', () => {
  const d = new Driver([door('ssh', seq('7000', '8000', '9000'))]);
  assert.deepEqual(reasons(d.knock(7001)), ['knock_guard']);
  assert.deepEqual(opens(d.all([7000, 8000, 9000])), []);
  d.mono += 10_001;
  assert.deepEqual(opens(d.all([7000, 8000, 9000])), ['ssh']);
});

test('a scan-like SYN to an unrelated port mid-sequence resets; other traffic does not', () => {
  const d = new Driver([door('ssh', seq('7000', '8000', '9000'))]);
  d.knock(7000);
  d.knock(22, { tcpFlags: 0x10 }); // ACK of an established session: ignored
  d.knock(53, { proto: 'udp', tcpFlags: 0 });
  assert.deepEqual(opens(d.all([8000, 9000])), ['ssh']);
  d.knock(7000);
  assert.deepEqual(reasons(d.knock(443)), ['knock_guard']);
  assert.deepEqual(opens(d.all([8000, 9000])), []);
});

test('tcpflags: non-matching TCP packets are ignored, not resets (knockd)', () => {
  const f = parseTcpFlags(['syn', '!ack']);
  assert.ok(f.ok);
  const d = new Driver([door('ssh', seq('7000', '8000', '9000'), { tcpFlags: f.value })]);
  d.knock(7000);
  assert.deepEqual(reasons(d.knock(9000, { tcpFlags: 0x12 })), []);
  assert.deepEqual(opens(d.all([8000, 9000])), ['ssh']);
});

test('target and allowed_addresses select the knocks a door sees', () => {
  const lan = parseCidr('10.0.0.0/8');
  assert.ok(lan.ok);
  const d = new Driver([door('t', seq('7000', '8000'), { target: '198.18.0.9' }), door('a', seq('7100', '7200'), { allowedAddresses: [lan.value] })]);
  assert.deepEqual(opens(d.all([7000, 8000])), []);
  assert.deepEqual(opens(d.all([7000, 8000], { dst: '198.18.0.9' })), ['t']);
  assert.deepEqual(opens(d.all([7100, 7200])), []);
  assert.deepEqual(opens(d.all([7100, 7200], { src: '10.1.2.3' })), ['a']);
  assert.deepEqual(opens(d.all([7100, 7200], { src: '2001:db8::1', dst: '' })), [], 'IPv6 source outside 10/8');
});

test("another door's port is no wrong knock for a door that does not know it", () => {
  const d = new Driver([door('a', seq('7000', '8000')), door('b', seq('7100', '7200'), { target: '198.18.0.9' })]);
  assert.deepEqual(reasons(d.knock(7100)), [], 'b does not apply (target), a does not know 7100');
  assert.deepEqual(opens(d.all([7000, 8000])), ['a']);
  d.knock(7000);
  assert.deepEqual(reasons(d.knock(7100)), ['knock_wrong'], 'but it breaks an attempt in progress');
});

test('IPv6 sources knock like IPv4 ones', () => {
  const d = new Driver([door('ssh', seq('7000', '8000'))]);
  assert.deepEqual(opens(d.all([7000, 8000], { src: '2001:db8::7', dst: '' })), ['ssh']);
});

test('the LRU never tracks more than max_sources; a fast legitimate knock survives a flood', () => {
  const d = new Driver([door('ssh', seq('7000', '8000', '9000'))], { ...OPTS, maxSources: 100 });
  const ev: KnockEvent[] = [];
  for (let i = 0; i < 20_000; i++) {
    ev.push(...d.knock(7000, { src: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` }));
    if (i === 10_000) ev.push(...d.knock(7000));
    if (i === 10_050) ev.push(...d.knock(8000));
    if (i === 10_090) ev.push(...d.knock(9000));
    assert.ok(d.engine.stats.tracked <= 100);
  }
  assert.deepEqual(opens(ev), ['ssh']);
  assert.ok(d.engine.stats.evicted >= 19_900);
});

test('one-time doors: each line opens once, then the door waits for the next one', () => {
  const d = new Driver([{ ...door('ots', []), source: { kind: 'one_time', path: '/x' } }]);
  assert.deepEqual(opens(d.all([7000, 8000])), []);
  d.engine.setOneTime('ots', seq('7000', '8000'));
  assert.deepEqual(opens(d.all([7000, 8000])), ['ots']);
  assert.deepEqual(opens(d.all([7000, 8000])), [], 'consumed');
  d.engine.setOneTime('ots', seq('7300', '7400'));
  assert.deepEqual(opens(d.all([7300, 7400])), ['ots']);
});

test('time-derived doors: current and previous step open once each; replays refused', () => {
  const key = new TotpKey(Buffer.alloc(32, 7));
  const totp = { kind: 'totp' as const, key, stepS: 30, length: 4, portMin: 20000, portMax: 40000, proto: 'tcp' as const };
  const d = new Driver([{ ...door('otp', []), source: totp }]);
  const at = (step: number) => deriveSequence(key, step, { length: 4, portMin: 20000, portMax: 40000, avoid: new Set() });
  const now = currentStep(d.wall, 30);
  assert.deepEqual(opens(d.all(at(now))), ['otp']);
  const replay = d.all(at(now), { src: '203.0.113.66' });
  assert.deepEqual(opens(replay), []);
  assert.ok(reasons(replay).includes('knock_replay'));
  assert.deepEqual(opens(d.all(at(now - 1))), ['otp'], 'previous step still accepted');
  d.mono += 20_000; // past the penalty the replay's range hits may have started
  assert.deepEqual(opens(d.all(at(now - 2))), [], 'two steps back is too old');
});

test('property: random hits never throw, never track more than the cap, and open only after the whole sequence in order', () => {
  const SEQ = [7000, 7005, 7010];
  const ports = [6999, 7000, 7001, 7004, 7005, 7006, 7010, 7011, 7100, 22];
  fc.assert(fc.property(
    fc.array(fc.record({ src: fc.integer({ min: 0, max: 5 }), port: fc.constantFrom(...ports), dt: fc.integer({ min: 0, max: 4000 }), flags: fc.constantFrom(0x02, 0x12, 0x10) }), { maxLength: 200 }),
    fc.integer({ min: 0, max: 10_000 }),
    (hits, penaltyMs) => {
      const d = new Driver([door('x', seq(...SEQ.map(String)), { seqTimeoutS: 5 })], { maxSources: 4, guardWidth: 1, penaltyMs });
      const sent = new Map<string, number[]>();
      for (const h of hits) {
        d.mono += h.dt;
        const src = `10.0.0.${h.src}`;
        const ev = [...d.knock(h.port, { src, tcpFlags: h.flags }), ...d.engine.expire({ monoMs: d.mono, wallMs: d.wall })];
        sent.set(src, [...(sent.get(src) ?? []), h.port]); // no tcpflags: every TCP packet is a knock
        assert.ok(d.engine.stats.tracked <= 4);
        if (opens(ev).length > 0) {
          assert.equal(h.port, SEQ[2]);
          const mine = sent.get(src) ?? [];
          let i = 0;
          for (const p of mine) if (p === SEQ[i]) i++;
          assert.equal(i >= SEQ.length, true, `opened without the sequence: ${mine.join(',')}`);
        }
      }
    },
  ), { numRuns: 1000 });
});
