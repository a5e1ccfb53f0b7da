// SPDX-License-Identifier: MIT
// Random and mutated payloads through the fwknop codec (STYLE.md principle 12b). 200,000
// inputs: random byte strings and base64-alphabet strings; mutations of real packets (client
// vectors and encoder output: truncation, character flips, insertions, deletions, length
// changes, U2FsdGVkX1 put back); and a smaller share of authenticated packets whose plaintext
// is mutated (digest recomputed for half of them) so the post-HMAC parser sees junk too.
// Invariants: decodeFwknop never throws; every rejection is a named reason; a mutated wire
// string never decodes (that would be an HMAC forgery); anything that does decode is in range.
// The PRNG is seeded: the seed is printed as a diagnostic and in every failure; rerun with
// POSTERN_FUZZ_SEED=<seed> to reproduce.

import assert from 'node:assert/strict';
import { it } from 'node:test';
import { decodeFwknop, FWKNOP_REASONS, type FwknopMessage } from '../../src/fwknop/codec.ts';
import { HMAC_TYPES } from '../../src/fwknop/constants.ts';
import { buildFwknopPlaintext, encodeFwknop, sealFwknopPlaintext } from '../../src/fwknop/encode.ts';
import { prepareFwknopKey, type FwknopKey } from '../../src/fwknop/keys.ts';
import { keysOf, VECTORS, withDigest } from '../unit/fwknop/oracle.ts';
import { fuzzTotal } from './runs.ts';
import { below, mulberry32, type Rng } from './prng.ts';

const TOTAL = fuzzTotal(200_000);
const SEALED = 12_000;
const RANDOM_SHARE = 0.25;
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[below(rng, xs.length)] as T;

interface Seed { readonly wire: string; readonly key: FwknopKey }

function seeds(): Seed[] {
  const out: Seed[] = [...VECTORS.reference, ...VECTORS.client].map((v) => ({ wire: v.wire, key: prepareFwknopKey(keysOf(v)) }));
  const base = { username: 'fuzz', timestampS: 1700000000, allowIp: '192.0.2.7', access: [{ proto: 'udp' as const, port: 53 }] };
  HMAC_TYPES.forEach((t, i) => {
    const key = prepareFwknopKey({ key: Buffer.alloc(16, i + 1), hmacKey: Buffer.alloc(40, i + 9), hmacType: t });
    out.push({ wire: encodeFwknop({ ...base, type: 3, clientTimeoutS: i }, key, { salt: Buffer.alloc(8, i), random16: '9'.repeat(16) }), key });
  });
  return out;
}

function randomText(rng: Rng): string {
  const n = below(rng, 4) === 0 ? below(rng, 1600) : 140 + below(rng, 300);
  const alpha = below(rng, 2) === 0 ? B64 : undefined;
  let s = below(rng, 2) === 0 ? pick(rng, ['8', '9', '+', '/']) : '';
  while (s.length < n) s += alpha ? alpha[below(rng, 64)] : String.fromCharCode(below(rng, 256));
  return s;
}

function mutate(rng: Rng, wire: string): string {
  const i = below(rng, wire.length);
  switch (below(rng, 8)) {
    case 0: return wire.slice(0, i); // truncation
    case 1: return wire.slice(0, i) + pick(rng, [...B64]) + wire.slice(i + 1); // char flip
    case 2: return wire.slice(0, i) + String.fromCharCode(below(rng, 256)) + wire.slice(i + 1);
    case 3: return wire.slice(0, i) + pick(rng, [...B64]) + wire.slice(i); // insertion
    case 4: return wire.slice(0, i) + wire.slice(i + 1 + below(rng, 8)); // deletion
    case 5: return 'U2FsdGVkX1' + wire; // prefix put back
    case 6: return wire + wire.slice(0, below(rng, 64)); // length change
    default: { const j = below(rng, wire.length); return wire.slice(0, j) + wire.slice(i) + wire.slice(j, i); } // swap
  }
}

/** A plaintext that passes the HMAC but is probably wrong: a valid one with a field edited. */
function sealedJunk(rng: Rng, key: FwknopKey): string {
  const req = { username: 'u', timestampS: 1, allowIp: '198.51.100.1', access: [{ proto: 'tcp' as const, port: 22 }], type: 4 as const, nat: { host: 'h', port: 2 }, clientTimeoutS: 9 };
  const plain = buildFwknopPlaintext(req, '1234567890123456');
  const fields = plain.split(':').slice(0, -1);
  const f = below(rng, fields.length);
  const junk = Array.from({ length: below(rng, 12) }, () => String.fromCharCode(below(rng, 4) === 0 ? below(rng, 256) : 32 + below(rng, 95))).join('');
  fields[f] = below(rng, 2) === 0 ? junk : (fields[f] ?? '') + junk;
  if (below(rng, 8) === 0) fields.splice(f, 1);
  const body = fields.join(':');
  const text = below(rng, 2) === 0 ? withDigest(body, pick(rng, HMAC_TYPES)) : `${body}:${plain.slice(plain.lastIndexOf(':') + 1)}`;
  return sealFwknopPlaintext(text, key, Buffer.alloc(8, below(rng, 256)));
}

function checkMessage(m: FwknopMessage): void {
  assert.match(m.random, /^[0-9]{16}$/);
  assert.ok(m.type >= 1 && m.type <= 6);
  assert.match(m.allowIp, /^\d+\.\d+\.\d+\.\d+$/);
  assert.ok(m.access.length > 0 && m.access.every((a) => (a.proto === 'tcp' || a.proto === 'udp') && a.port >= 1 && a.port <= 65535));
  assert.ok(Number.isSafeInteger(m.timestampS) && m.timestampS >= 0);
  if (m.clientTimeoutS !== undefined) assert.ok(m.clientTimeoutS >= 0 && m.clientTimeoutS <= 65536);
  if (m.nat !== undefined) assert.ok(m.nat.port >= 1 && m.nat.port <= 65535 && /^[A-Za-z0-9._-]{1,70}$/.test(m.nat.host));
}

it(`fwknop codec survives ${TOTAL} random and mutated payloads`, (t) => {
  const seed = Number(process.env.POSTERN_FUZZ_SEED ?? (Date.now() >>> 0));
  t.diagnostic(`seed ${seed}`);
  const rng = mulberry32(seed);
  const pool = seeds();
  const sealKey = prepareFwknopKey({ key: Buffer.from('fuzz key'), hmacKey: Buffer.from('fuzz hmac key'), hmacType: 'sha256' });
  const reasons = new Map<string, number>();
  let accepted = 0;
  for (let n = 0; n < TOTAL; n++) {
    let input: string;
    let key: FwknopKey;
    let original: string | undefined;
    if (n < SEALED) {
      key = sealKey;
      input = sealedJunk(rng, key);
    } else if (rng() / 2 ** 32 < RANDOM_SHARE) {
      key = pick(rng, pool).key;
      input = randomText(rng);
    } else {
      const s = pick(rng, pool);
      key = s.key;
      original = s.wire;
      input = mutate(rng, s.wire);
      if (below(rng, 4) === 0) input = mutate(rng, input);
    }
    const asBuffer = below(rng, 2) === 0;
    let r;
    try {
      r = decodeFwknop(asBuffer ? Buffer.from(input, 'latin1') : input, key);
    } catch (e) {
      assert.fail(`seed ${seed} case ${n}: threw ${String(e)} on ${JSON.stringify(input)}`);
    }
    if (r.ok) {
      accepted++;
      assert.ok(original === undefined || input === original || (asBuffer && Buffer.from(input, 'latin1').toString('latin1') === original),
        `seed ${seed} case ${n}: mutated wire accepted: ${JSON.stringify(input)}`);
      checkMessage(r.value);
    } else {
      assert.ok(r.reason in FWKNOP_REASONS, `seed ${seed} case ${n}: unnamed reason ${r.reason}`);
      reasons.set(r.reason, (reasons.get(r.reason) ?? 0) + 1);
    }
  }
  t.diagnostic(`accepted ${accepted}; ${[...reasons].map(([k, v]) => `${k}=${v}`).join(' ')}`);
  for (const r of ['bad_hmac', 'bad_chars', 'too_short', 'salted_prefix', 'bad_digest', 'bad_fields']) assert.ok((reasons.get(r) ?? 0) > 0, `seed ${seed}: never reached ${r}`);
});
