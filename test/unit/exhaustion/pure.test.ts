// SPDX-License-Identifier: MIT
// Resource exhaustion (issue 9): every in-memory structure a flood can reach, driven with a
// bounded hostile input (100,000 distinct sources, keys or tags), must stay under its cap.
// One test per structure: replay ring and per-key floors, knock source table, failure log
// aggregator (log lines), alert aggregator, audit buffer, memory outbox, token buckets,
// time-derived door's used-step and derived-sequence sets.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { randomBytes } from 'node:crypto';
import { AlertAggregator } from '../../../src/alert/aggregate.ts';
import { MemoryOutbox } from '../../../src/alert/outbox.ts';
import { validateConfig } from '../../../src/config/load.ts';
import { generateX25519 } from '../../../src/crypto/asym.ts';
import { DoorRuntime } from '../../../src/knock/door-runtime.ts';
import { KnockEngine } from '../../../src/knock/engine.ts';
import { parseSequence } from '../../../src/knock/sequence.ts';
import { TotpKey } from '../../../src/knock/totp.ts';
import { FailureAggregator } from '../../../src/log/aggregate.ts';
import { decideSpa, type SpaContext } from '../../../src/pipeline/spa.ts';
import { KeyBuckets } from '../../../src/pipeline/token-bucket.ts';
import { deviceKeyFromRaw } from '../../../src/spa/asym.ts';
import { generateTechIdentity } from '../../../src/spa/asym-keys.ts';
import { buildKeyTable } from '../../../src/spa/packet.ts';
import { ReplayGuard } from '../../../src/spa/replay.ts';
import { AuditBuffer } from '../../../src/store/audit.ts';
import { parseCidr } from '../../../src/wire/address.ts';

const FLOOD = 100_000;
const NOW = 1_764_150_000_000;
const src = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

test('replay ring and floors: 100,000 accepted packets from 16 keys stay within capacity and 16 marks', () => {
  const guard = new ReplayGuard({ capacity: 256, windowMs: 90_000 });
  for (let i = 0; i < FLOOD; i++) {
    const verdict = guard.commit(1 + (i % 16), randomBytes(16), NOW + i, NOW + i, true);
    assert.equal(verdict, 'fresh');
    if (i % 10_000 === 0) guard.prune(NOW + i, true);
  }
  assert.ok(guard.size <= 256, `ring ${guard.size}`);
  const snap = guard.snapshot();
  assert.ok(snap.entries.length <= 256);
  assert.ok(snap.floors.length <= 16 && snap.highwaters.length <= 16, `marks ${snap.floors.length}/${snap.highwaters.length}`);
  // Junk never moves the ring: peek/check of 100,000 unknown tags leave it as it was.
  const before = guard.size;
  for (let i = 0; i < FLOOD; i++) { guard.peek(i, randomBytes(16)); guard.check(i, randomBytes(16), NOW, NOW, true); }
  assert.equal(guard.size, before);
  assert.deepEqual(guard.snapshot().highwaters, snap.highwaters);
});

test('knock source table: 100,000 spoofed first knocks track at most maxSources', () => {
  const seq = parseSequence(['7000', '8000', '9000']);
  assert.ok(seq.ok);
  const all = [parseCidr('0.0.0.0/0')].flatMap((c) => (c.ok ? [c.value] : []));
  const engine = new KnockEngine([{ name: 'd', source: { kind: 'static', sequence: seq.value }, seqTimeoutS: 25, services: [], durationS: 60, allowedAddresses: all, cmdTimeoutS: 5 }], { maxSources: 1024, guardWidth: 2, penaltyMs: 10_000 });
  for (let i = 0; i < FLOOD; i++) engine.hit({ src: src(i), dst: '', proto: 'tcp', port: i % 3 === 0 ? 7000 : 7001, tcpFlags: 2 }, { monoMs: i, wallMs: NOW + i });
  assert.ok(engine.stats.tracked <= 1024, `tracked ${engine.stats.tracked}`);
  assert.ok(engine.stats.evicted >= FLOOD - 1024);
});

test('failure log aggregator: 100,000 distinct sources give at most maxTracked + 1 log lines per interval', () => {
  let lines = 0;
  let overflow = { count: 0, sources: 0 };
  const agg = new FailureAggregator({ maxTracked: 64, emit: () => { lines++; }, emitOverflow: (o) => { overflow = o; lines++; } });
  for (let round = 0; round < 3; round++) {
    lines = 0;
    for (let i = 0; i < FLOOD; i++) agg.record('unknown_key', src(i));
    agg.flush();
    assert.ok(lines <= 64 + 1, `lines ${lines}`);
    assert.equal(overflow.count, FLOOD - 64);
    assert.ok(overflow.sources <= 4 * 64, `overflow source set ${overflow.sources}`);
  }
});

test('alert aggregator: 100,000 sources x 3 kinds leave at most maxSources + 3 pending messages', () => {
  const agg = new AlertAggregator({ intervalMs: 10_000, maxMessagesPerS: 5, maxSources: 32 }, 0);
  let sentNow = 0;
  for (let i = 0; i < FLOOD; i++) for (const kind of ['unknown_key', 'bad_auth', 'replay']) if (agg.record(kind, src(i), undefined, NOW, 0)) sentNow++;
  const flushed = agg.flush(10_000);
  assert.ok(sentNow + flushed.length <= 50 + 1, `messages ${sentNow + flushed.length} within one interval's rate cap`);
  assert.equal(agg.pendingCount() + sentNow + flushed.reduce((n, m) => n + m.count, 0), 3 * FLOOD, 'counts add up');
  // What is left pending is bounded by the distinct ids kept (maxSources + one '*' per kind).
  let rounds = 0;
  while (agg.pendingCount() > 0 && rounds < 100) { agg.flush(10_000 * (rounds + 2)); rounds++; }
  assert.ok(rounds <= Math.ceil((32 + 3) / 50) + 1, `drained in ${rounds} intervals`);
});

test('audit buffer: 100,000 distinct sources are at most maxEntries + one overflow row per kind', () => {
  const b = new AuditBuffer(128);
  for (let i = 0; i < FLOOD; i++) { b.record('bad_auth', src(i), 'k', NOW); b.record('too_short', src(i), undefined, NOW); }
  assert.ok(b.size <= 128 + 2, `buffer ${b.size}`);
  const rows = b.take();
  assert.equal(rows.reduce((n, r) => n + r.count, 0), 2 * FLOOD);
});

test('memory outbox: 100,000 appends while the broker is away keep at most cap entries, oldest dropped', () => {
  const box = new MemoryOutbox(500);
  let dropped = 0;
  for (let i = 0; i < FLOOD; i++) dropped += box.append([{ topic: 'postern/d/alert', payload: `{"n":${i}}`, qos: 1, retain: false }], NOW + i).dropped;
  assert.equal(box.size(), 500);
  assert.equal(dropped, FLOOD - 500);
});

test('token buckets: 100,000 packets with random key ids create buckets only for configured technician keys', () => {
  const id = generateTechIdentity();
  const kp = generateX25519();
  const v = validateConfig({ device: 'd', guarded: ['tcp/22'], keys: [{ name: 't', credential: id.publicKey().encode(), services: ['tcp/22'] }] });
  assert.ok(v.ok);
  const tech = v.config.techKeys[0];
  assert.ok(tech);
  const buckets = new KeyBuckets({ burst: 4, perSecond: 1 });
  const ctx: SpaContext = {
    keys: buildKeyTable([]), keyConfigs: new Map(), replay: new ReplayGuard({ capacity: 64, windowMs: 90_000 }), windowMs: 90_000,
    nowMs: NOW, clockTrusted: true, asym: { keys: new Map([[tech.keyId, tech]]), device: deviceKeyFromRaw(kp.privateKey, kp.publicKey), buckets, monoMs: 0 },
  };
  for (let i = 0; i < FLOOD; i++) {
    const pkt = randomBytes(120);
    if (i % 2 === 0) pkt.writeUInt32BE(tech.keyId, 0);
    assert.equal(decideSpa(pkt, src(i), ctx).kind, 'drop');
  }
  assert.ok(buckets.size <= 1, `buckets ${buckets.size}`);
});

test('time-derived door: 100,000 steps keep at most 3 derived sequences and 3 used steps', () => {
  const key = new TotpKey(Buffer.alloc(32, 9));
  const rt = new DoorRuntime({
    name: 't', source: { kind: 'totp', key, stepS: 30, length: 3, portMin: 20000, portMax: 20999, proto: 'tcp' },
    seqTimeoutS: 25, services: [], durationS: 60, allowedAddresses: [], cmdTimeoutS: 5,
  });
  for (let step = 0; step < FLOOD; step++) {
    rt.candidates(step * 30_000);
    assert.equal(rt.useStep(step), true);
    assert.equal(rt.useStep(step), false, 'a step opens once');
  }
  // Both sets are private; useStep and candidates scan them, so had either grown with the
  // steps, this loop would be quadratic (1e10 steps of work) and time the test out.
  for (const step of [FLOOD - 1, FLOOD - 2, FLOOD - 3]) assert.equal(rt.useStep(step), false);
});
