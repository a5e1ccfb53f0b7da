// SPDX-License-Identifier: MIT
// Native SPA v1 (src/spa/packet.ts, message.ts): random and mutated envelopes with a known
// key id (so they reach the crypto), and authenticated junk: random or mutated plaintexts
// sealed with the real key, so the post-SIV parser sees hostile bytes that passed the tag
// (a buggy or malicious key holder). Invariants: nothing throws; every refusal is one of the
// named reasons; a mutated wire packet never opens (that would be a SIV forgery); whatever
// decodes re-encodes to the bytes it came from (less padding).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { Credential } from '../../src/spa/credential.ts';
import { decodeMessage, encodeMessage, messageLength, type SpaMessage } from '../../src/spa/message.ts';
import { buildKeyTable, openPacket, prepareKey, sealPacket } from '../../src/spa/packet.ts';
import { HEADER_SIZE, KEY_ID_SIZE, MAX_PACKET } from '../../src/spa/constants.ts';
import { fuzzRuns } from './runs.ts';

const cred = new Credential(0x0a0b0c0d, Buffer.alloc(32, 0x5a));
const key = prepareKey('fuzz', cred);
const keys = buildKeyTable([key]);
const OPEN_REASONS = new Set(['too_short', 'too_long', 'unknown_key', 'bad_auth', 'bad_payload']);
const MESSAGE_REASONS = new Set(['bad_version', 'bad_type', 'bad_timestamp', 'bad_address', 'bad_services', 'bad_nat', 'truncated']);

const base: SpaMessage = {
  type: 'open', timestampMs: 1_764_150_000_000, nonce: Buffer.alloc(8, 3), durationS: 60,
  address: '192.0.2.9', services: [{ proto: 'tcp', port: 22 }, { proto: 'udp', port: 53 }], nat: undefined,
};
const forward: SpaMessage = { ...base, type: 'forward', address: '2001:db8::7', nat: { address: '198.18.0.20', port: 8080 } };

/** Byte-level mutations: flip, overwrite, truncate, insert, delete. */
const mutation = fc.record({ op: fc.integer({ min: 0, max: 4 }), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }), n: fc.integer({ min: 1, max: 8 }) });
function mutate(buf: Buffer, muts: readonly { op: number; at: number; byte: number; n: number }[], keep = 0): Buffer {
  let b = Buffer.from(buf);
  for (const m of muts) {
    const at = keep + (b.length > keep ? m.at % (b.length - keep) : 0);
    if (m.op === 0 && at < b.length) b[at] = (b[at] ?? 0) ^ (1 << (m.byte % 8));
    else if (m.op === 1 && at < b.length) b[at] = m.byte;
    else if (m.op === 2) b = b.subarray(0, Math.max(keep, at));
    else if (m.op === 3) b = Buffer.concat([b.subarray(0, at), Buffer.alloc(m.n, m.byte), b.subarray(at)]);
    else b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.n)]);
  }
  return b;
}

function checkMessage(m: SpaMessage, plaintext: Buffer): void {
  // What decodes is well-formed: it re-encodes, and the re-encoding is a prefix of the input
  // (the rest being padding).
  const again = encodeMessage(m, Buffer.alloc(0));
  assert.equal(again.length, messageLength(m));
  assert.ok(plaintext.subarray(0, again.length).equals(again), 'decoded message does not re-encode to its own bytes');
}

test('random envelopes with a known key id: never throw, never open, named reasons', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: MAX_PACKET + 16 }), fc.boolean(), (u, known) => {
    const b = Buffer.from(u);
    if (known && b.length >= KEY_ID_SIZE) b.writeUInt32BE(cred.keyId, 0);
    const r = openPacket(b, keys);
    assert.equal(r.ok, false, 'a random packet opened');
    if (!r.ok) assert.ok(OPEN_REASONS.has(r.reason), r.reason);
  }), { numRuns: fuzzRuns(5000) });
});

test('mutated sealed packets never open (no SIV forgery); the original always does', () => {
  fc.assert(fc.property(fc.constantFrom(base, forward), fc.uint8Array({ maxLength: 48 }), fc.array(mutation, { minLength: 1, maxLength: 4 }), (msg, pad, muts) => {
    const pkt = sealPacket(key, msg, pad);
    assert.ok(openPacket(pkt, keys).ok);
    const bad = mutate(pkt, muts);
    const r = openPacket(bad, keys);
    if (bad.equals(pkt)) return;
    assert.equal(r.ok, false, `mutation opened: ${bad.toString('hex')}`);
    if (!r.ok) assert.ok(OPEN_REASONS.has(r.reason));
  }), { numRuns: fuzzRuns(3000) });
});

test('authenticated junk: random and mutated plaintexts under a valid tag never throw', () => {
  const valid = [encodeMessage(base, Buffer.alloc(0)), encodeMessage(forward, Buffer.alloc(5, 1))];
  const plaintext = fc.oneof(
    fc.uint8Array({ maxLength: MAX_PACKET - HEADER_SIZE }).map((u) => Buffer.from(u)),
    fc.tuple(fc.constantFrom(...valid), fc.array(mutation, { minLength: 1, maxLength: 5 })).map(([v, m]) => mutate(v, m)),
  );
  const seen = new Map<string, number>();
  fc.assert(fc.property(plaintext, (pt) => {
    const direct = decodeMessage(pt);
    if (direct.ok) checkMessage(direct.value, pt);
    else assert.ok(MESSAGE_REASONS.has(direct.reason), direct.reason);
    seen.set(direct.ok ? 'ok' : direct.reason, (seen.get(direct.ok ? 'ok' : direct.reason) ?? 0) + 1);
    const { tag, ciphertext } = key.siv.seal(pt);
    const wire = Buffer.concat([Buffer.from([0x0a, 0x0b, 0x0c, 0x0d]), tag, ciphertext]);
    const r = openPacket(wire, keys);
    if (wire.length > MAX_PACKET) assert.deepEqual(r, { ok: false, reason: 'too_long' });
    else if (direct.ok) assert.ok(r.ok && r.value.message.timestampMs === direct.value.timestampMs);
    else assert.ok(!r.ok && (r.reason === 'bad_payload' || r.reason === 'too_short'), JSON.stringify(r));
  }), { numRuns: fuzzRuns(4000) });
  // The mutations must reach the parser's branches, or passing means little.
  for (const reason of ['ok', 'truncated', 'bad_version', 'bad_type']) assert.ok((seen.get(reason) ?? 0) > 0, `never saw ${reason}`);
});
