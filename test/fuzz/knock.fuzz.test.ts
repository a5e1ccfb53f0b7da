// SPDX-License-Identifier: MIT
// The knock engine (src/knock/engine.ts) and its parsers (src/knock/sequence.ts) under random
// input: knockd-syntax sequence and tcpflags items, random door sets (static sequences of
// 1..8 knocks sharing a small port space, optional tcpflags and target), and random packet
// streams from many IPv4/IPv6 sources with random ports, flags, destinations and time steps.
// Invariants: nothing throws; the source table never exceeds its cap; an open names a door
// whose last knock is the packet that opened it, from an address that sent every knock of
// that door in order.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { KnockEngine, type KnockEvent } from '../../src/knock/engine.ts';
import type { DoorConfig } from '../../src/knock/door.ts';
import { parseSequence, parseTcpFlags, type KnockPort } from '../../src/knock/sequence.ts';
import { TotpKey } from '../../src/knock/totp.ts';
import { parseCidr } from '../../src/wire/address.ts';
import { fuzzRuns } from './runs.ts';

const ALL = [parseCidr('0.0.0.0/0'), parseCidr('::/0')].flatMap((c) => (c.ok ? [c.value] : []));
const PORT_BASE = 7000;
const PORT_SPAN = 24;
const MAX_SOURCES = 8;

test('knockd sequence and tcpflags items: typed results, never a throw', () => {
  const item = fc.oneof(fc.string({ maxLength: 16 }), fc.tuple(fc.integer({ min: -5, max: 70000 }), fc.constantFrom('', ':tcp', ':udp', ':UDP', ':icmp', ':')).map(([p, s]) => `${p}${s}`));
  const flag = fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('syn', 'ack', '!ack', 'fin', 'rst', 'psh', 'urg', '!syn', 'SYN', '!'));
  fc.assert(fc.property(fc.array(item, { maxLength: 40 }), fc.array(flag, { maxLength: 10 }), (items, flags) => {
    const s = parseSequence(items);
    if (s.ok) for (const p of s.value) assert.ok(Number.isInteger(p.port) && p.port >= 1 && p.port <= 65535 && (p.proto === 'tcp' || p.proto === 'udp'));
    else assert.equal(typeof s.reason, 'string');
    const f = parseTcpFlags(flags);
    if (!f.ok) assert.equal(typeof f.reason, 'string');
  }), { numRuns: fuzzRuns(5000) });
});

const knockPort = fc.record({ proto: fc.constantFrom('tcp' as const, 'udp' as const), port: fc.integer({ min: PORT_BASE, max: PORT_BASE + PORT_SPAN }) });
const doorArb = fc.record({
  sequence: fc.array(knockPort, { minLength: 1, maxLength: 8 }),
  seqTimeoutS: fc.integer({ min: 1, max: 30 }),
  syn: fc.boolean(),
  target: fc.option(fc.constantFrom('198.18.0.1', '198.18.0.9'), { nil: undefined }),
});
const hitArb = fc.record({
  src: fc.integer({ min: 0, max: 40 }),
  v6: fc.boolean(),
  proto: fc.constantFrom('tcp' as const, 'udp' as const),
  port: fc.oneof(fc.integer({ min: PORT_BASE - 3, max: PORT_BASE + PORT_SPAN + 3 }), fc.integer({ min: 0, max: 65535 })),
  flags: fc.integer({ min: 0, max: 255 }),
  dst: fc.constantFrom('198.18.0.1', '198.18.0.9', ''),
  dt: fc.integer({ min: 0, max: 8000 }),
});

function buildDoors(raw: readonly { sequence: KnockPort[]; seqTimeoutS: number; syn: boolean; target: string | undefined }[]): DoorConfig[] {
  return raw.map((d, i) => {
    const flags = parseTcpFlags(['syn', '!ack']);
    return {
      name: `d${i}`, source: { kind: 'static', sequence: d.sequence }, seqTimeoutS: d.seqTimeoutS, services: [], durationS: 60,
      allowedAddresses: ALL, cmdTimeoutS: 5,
      ...(d.syn && flags.ok ? { tcpFlags: flags.value } : {}), ...(d.target !== undefined ? { target: d.target } : {}),
    };
  });
}

/** True when `sent` holds `seq` as a subsequence (duplicates and noise allowed between),
 *  per protocol: the engine lets a knock of the other protocol arrive early (two raw sockets,
 *  src/knock/engine.ts), never reordering within one protocol. */
function holdsInOrder(sent: readonly string[], seq: readonly KnockPort[]): boolean {
  return (['tcp', 'udp'] as const).every((proto) => {
    const want = seq.filter((p) => p.proto === proto).map((p) => `${p.proto}/${p.port}`);
    let i = 0;
    for (const s of sent) if (i < want.length && s === want[i]) i++;
    return i === want.length;
  });
}

test('random doors and packet streams: bounded state, opens only after the whole sequence', (t) => {
  let opened = 0;
  fc.assert(fc.property(fc.array(doorArb, { minLength: 1, maxLength: 4 }), fc.array(hitArb, { maxLength: 300, size: 'large' }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 20_000 }), (rawDoors, hits, guardWidth, penaltyMs) => {
    const doors = buildDoors(rawDoors);
    const engine = new KnockEngine(doors, { maxSources: MAX_SOURCES, guardWidth, penaltyMs });
    const sent = new Map<string, string[]>();
    let mono = 0;
    for (const h of hits) {
      mono += h.dt;
      const src = h.v6 ? `2001:db8::${h.src.toString(16)}` : `203.0.113.${h.src}`;
      const now = { monoMs: mono, wallMs: 1_700_000_000_000 + mono };
      const tcpFlags = h.proto === 'udp' ? 0 : h.flags;
      const ev: KnockEvent[] = [...engine.hit({ src, dst: h.dst, proto: h.proto, port: h.port, tcpFlags }, now), ...engine.expire(now)];
      sent.set(src, [...(sent.get(src) ?? []), `${h.proto}/${h.port}`]);
      assert.ok(engine.stats.tracked <= MAX_SOURCES, `tracked ${engine.stats.tracked}`);
      for (const e of ev) {
        if (e.kind !== 'open') continue;
        assert.equal(e.source, src);
        const seq = e.door.source.kind === 'static' ? e.door.source.sequence : [];
        const last = seq[seq.length - 1];
        assert.ok(last && last.port === h.port && last.proto === h.proto, 'opened on a packet that is not the last knock');
        assert.ok(holdsInOrder(sent.get(src) ?? [], seq), `opened ${e.door.name} without its sequence`);
        opened++;
      }
    }
  }), { numRuns: fuzzRuns(1500) });
  t.diagnostic(`doors opened: ${opened}`);
  assert.ok(opened > 0, 'random streams never opened a door: the open check was never exercised');
});

test('time-derived doors at any wall time (the epoch included): knocks in range never throw', () => {
  const door: DoorConfig = {
    name: 't', source: { kind: 'totp', key: new TotpKey(Buffer.alloc(32, 4)), stepS: 30, length: 3, portMin: 20000, portMax: 20063, proto: 'tcp' },
    seqTimeoutS: 25, services: [], durationS: 60, allowedAddresses: ALL, cmdTimeoutS: 5,
  };
  const wall = fc.oneof(fc.integer({ min: 0, max: 120_000 }), fc.integer({ min: 0, max: 2 ** 42 }));
  fc.assert(fc.property(wall, fc.array(fc.record({ port: fc.integer({ min: 19990, max: 20070 }), dt: fc.integer({ min: 0, max: 40_000 }) }), { maxLength: 60 }), (start, hits) => {
    const engine = new KnockEngine([door], { maxSources: 4, guardWidth: 1, penaltyMs: 1000 });
    let mono = 0;
    for (const h of hits) {
      mono += h.dt;
      const now = { monoMs: mono, wallMs: start + mono };
      engine.hit({ src: '203.0.113.1', dst: '', proto: 'tcp', port: h.port, tcpFlags: 2 }, now);
      engine.expire(now);
    }
  }), { numRuns: fuzzRuns(500) });
});
