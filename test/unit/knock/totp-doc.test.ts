// SPDX-License-Identifier: MIT
// docs/protocol.md "Time-derived knock sequences" is part of the spec: its key, derived
// CMAC key and vectors must be what src/knock/totp.ts computes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { currentStep, deriveSequence, knockBlockMessage, parseDoorKey } from '../../../src/knock/totp.ts';
import { Cmac } from '../../../src/crypto/cmac.ts';

const doc = readFileSync(new URL('../../../docs/protocol.md', import.meta.url), 'utf8');
const section = doc.slice(doc.indexOf('## Time-derived knock sequences'));
const KEY = /Key `(postern-door1:[A-Za-z0-9_-]+)`/.exec(section)?.[1] ?? '';
const CMAC_KEY = /`K = ([0-9a-f]{32})`/.exec(section)?.[1] ?? '';

interface KnockVector {
  unixMs: number; stepS: number; length: number; portMin: number; portMax: number;
  avoid: number[]; step: number; block0: string; ports: number[];
}

const vectors = [...section.matchAll(/```knock-vector\n([\s\S]*?)```/g)].map((m) => JSON.parse(m[1] ?? '') as KnockVector);

test('the doc section has a key, its CMAC key and at least four vectors', () => {
  assert.ok(parseDoorKey(KEY).ok);
  assert.equal(CMAC_KEY.length, 32);
  assert.ok(vectors.length >= 4);
});

test('the documented CMAC key is AES-CMAC(key[0..16), "postern-door-key" || key[16..32))', () => {
  const raw = Buffer.from(KEY.slice('postern-door1:'.length), 'base64url');
  const k = new Cmac(raw.subarray(0, 16)).mac(Buffer.concat([Buffer.from('postern-door-key'), raw.subarray(16)]));
  assert.equal(k.toString('hex'), CMAC_KEY);
  const parsed = parseDoorKey(KEY);
  assert.ok(parsed.ok);
  const msg = knockBlockMessage(1, 2, 3);
  assert.deepEqual(parsed.value.cmac().mac(msg), new Cmac(k).mac(msg));
});

for (const [n, v] of vectors.entries()) {
  test(`knock vector ${n + 1}: step, first block and ports match the doc`, () => {
    const key = parseDoorKey(KEY);
    assert.ok(key.ok);
    assert.equal(currentStep(v.unixMs, v.stepS), v.step);
    assert.equal(key.value.cmac().mac(knockBlockMessage(v.step, 0, 0)).toString('hex'), v.block0);
    const opts = { length: v.length, portMin: v.portMin, portMax: v.portMax, avoid: new Set(v.avoid) };
    assert.deepEqual(deriveSequence(key.value, v.step, opts), v.ports);
  });
}

test('the byte-by-byte block of vector 1 is the documented message', () => {
  const m = /```\n([0-9a-f]{16})\s+step[\s\S]*?\n([0-9a-f]{32})\s+"postern-knock-v1"/.exec(section);
  assert.ok(m);
  const v = vectors[0];
  assert.ok(v);
  assert.equal(knockBlockMessage(v.step, 0, 0).toString('hex'), `${m[1]}0000${m[2]}`);
});
