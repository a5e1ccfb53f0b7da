// SPDX-License-Identifier: MIT
// Time-derived sequences: key text, step arithmetic, range checks and the properties every
// derived sequence must have (docs/protocol.md "Time-derived knock sequences").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import {
  TotpKey, currentStep, deriveSequence, formatDoorKey, knockBlockMessage, parseDoorKey, totpRangeProblem,
} from '../../../src/knock/totp.ts';

const RAW = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');
const KEY = new TotpKey(RAW);
const NONE = new Set<number>();

test('door key text round-trips and is canonical', () => {
  const text = formatDoorKey(RAW);
  assert.equal(text, 'postern-door1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8');
  const parsed = parseDoorKey(`  ${text}\n`);
  assert.ok(parsed.ok);
  assert.equal(parsed.value.encode(), text);
  // Last char '8' = 1111 00: '9' (1111 01) sets an unused bit, decodes to the same bytes but is refused.
  assert.deepEqual(parseDoorKey(`${text.slice(0, -1)}9`), { ok: false, reason: 'bad_length' });
});

test('door key errors are named and never echo the key', () => {
  assert.deepEqual(parseDoorKey('postern1:AAAA'), { ok: false, reason: 'missing_prefix' });
  assert.deepEqual(parseDoorKey('postern-door1:AAEC+wQ'), { ok: false, reason: 'bad_characters' });
  assert.deepEqual(parseDoorKey('postern-door1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh'), { ok: false, reason: 'bad_length' });
  assert.throws(() => new TotpKey(new Uint8Array(16)), RangeError);
  assert.throws(() => formatDoorKey(new Uint8Array(31)), RangeError);
});

test('a door key never prints its secret', () => {
  const text = formatDoorKey(RAW);
  for (const shown of [String(KEY), JSON.stringify({ KEY }), inspect(KEY), `${KEY}`]) {
    assert.ok(!shown.includes(text.slice(14, 30)), shown);
    assert.match(shown, /hidden/);
  }
});

test('currentStep floors at step boundaries', () => {
  assert.equal(currentStep(0, 30), 0);
  assert.equal(currentStep(29_999, 30), 0);
  assert.equal(currentStep(30_000, 30), 1);
  assert.equal(currentStep(1_764_150_000_000, 30), 58_805_000);
  assert.equal(currentStep(1_764_150_000_000, 1), 1_764_150_000);
});

test('knockBlockMessage lays out u64be(step) || i || j || label', () => {
  assert.equal(knockBlockMessage(0x0102030405, 7, 9).toString('hex'), `0000000102030405${'07'}${'09'}${Buffer.from('postern-knock-v1').toString('hex')}`);
});

test('totpRangeProblem refuses unusable ranges and accepts sane ones', () => {
  const base = { length: 4, portMin: 20000, portMax: 40000, avoid: NONE };
  assert.equal(totpRangeProblem(base), undefined);
  assert.match(totpRangeProblem({ ...base, length: 0 }) ?? '', /length/);
  assert.match(totpRangeProblem({ ...base, length: 33 }) ?? '', /length/);
  assert.match(totpRangeProblem({ ...base, portMin: 80 }) ?? '', /1024/);
  assert.match(totpRangeProblem({ ...base, portMax: 70000 }) ?? '', /65535/);
  assert.match(totpRangeProblem({ ...base, portMin: 40001 }) ?? '', /exceed/);
  assert.match(totpRangeProblem({ ...base, portMin: 5000, portMax: 5002 }) ?? '', /too few/);
  const mostlyGuarded = new Set(Array.from({ length: 16000 }, (_, k) => 20000 + k));
  assert.match(totpRangeProblem({ ...base, avoid: mostlyGuarded }) ?? '', /too few/);
  assert.throws(() => deriveSequence(KEY, 1, { ...base, length: 0 }), RangeError);
  assert.throws(() => deriveSequence(KEY, -1, base), RangeError);
});

const rangeArb = fc
  .record({ portMin: fc.integer({ min: 1024, max: 65535 }), span: fc.integer({ min: 0, max: 4000 }), length: fc.integer({ min: 1, max: 32 }) })
  .map(({ portMin, span, length }) => ({ portMin, portMax: Math.min(65535, portMin + span), length }))
  .filter((r) => r.portMax - r.portMin + 1 >= 4 * r.length);

test('property: derived ports are in range, unique, unguarded and deterministic', () => {
  fc.assert(
    fc.property(rangeArb, fc.integer({ min: 0, max: 2 ** 40 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.array(fc.nat(), { maxLength: 20 }), (r, step, raw, picks) => {
      const size = r.portMax - r.portMin + 1;
      const avoid = new Set(picks.slice(0, Math.floor(size / 2)).map((p) => r.portMin + (p % size)));
      const opts = { ...r, avoid };
      if (totpRangeProblem(opts) !== undefined) return;
      const key = new TotpKey(raw);
      const seq = deriveSequence(key, step, opts);
      assert.equal(seq.length, r.length);
      assert.equal(new Set(seq).size, seq.length);
      for (const p of seq) {
        assert.ok(p >= r.portMin && p <= r.portMax && p >= 1024, `${p}`);
        assert.ok(!avoid.has(p));
      }
      assert.deepEqual(deriveSequence(new TotpKey(raw), step, opts), seq);
    }),
    { numRuns: 300 },
  );
});

test('consecutive steps and different keys give different sequences', () => {
  const opts = { length: 4, portMin: 20000, portMax: 40000, avoid: NONE };
  const seen = new Set<string>();
  for (let s = 0; s < 200; s++) seen.add(deriveSequence(KEY, 58_805_000 + s, opts).join(','));
  assert.equal(seen.size, 200);
  const other = new TotpKey(randomBytes(32));
  assert.notDeepEqual(deriveSequence(other, 58_805_000, opts), deriveSequence(KEY, 58_805_000, opts));
});

test('ports are spread uniformly over a small range (chi-square, 8 bins)', () => {
  // Range 1024..1031: 8 ports, so a biased mapping or a stuck candidate shows at once.
  const counts = new Array<number>(8).fill(0);
  const N = 4000;
  for (let s = 0; s < N; s++) {
    const [p] = deriveSequence(KEY, s, { length: 1, portMin: 1024, portMax: 1031, avoid: NONE });
    counts[(p ?? 0) - 1024]! += 1;
  }
  const expected = N / 8;
  const chi2 = counts.reduce((acc, c) => acc + (c - expected) ** 2 / expected, 0);
  // 7 degrees of freedom: P(chi2 > 24.3) < 0.001.
  assert.ok(chi2 < 24.3, `chi2 ${chi2} counts ${counts.join(',')}`);
});
