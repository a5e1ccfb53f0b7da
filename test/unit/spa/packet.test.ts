// SPDX-License-Identifier: MIT
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { Credential, generateCredential } from '../../../src/spa/credential.ts';
import { decodeMessage, encodeMessage, type SpaMessage } from '../../../src/spa/message.ts';
import { buildKeyTable, openPacket, prepareKey, sealPacket, splitPacket } from '../../../src/spa/packet.ts';
import { MAX_PACKET, MIN_PACKET, MIN_PLAINTEXT } from '../../../src/spa/constants.ts';
import { buildPacket } from '../../../src/cli/spa-client.ts';

const cred = new Credential(0x01020304, Buffer.alloc(32, 7));
const key = prepareKey('k', cred);
const keys = buildKeyTable([key]);

const base: SpaMessage = {
  type: 'open', timestampMs: 1_764_150_000_000, nonce: Buffer.alloc(8, 1), durationS: 60,
  address: undefined, services: [{ proto: 'tcp', port: 22 }], nat: undefined,
};

const arbMessage: fc.Arbitrary<SpaMessage> = fc.record({
  type: fc.constantFrom('open' as const, 'close' as const),
  timestampMs: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  nonce: fc.uint8Array({ minLength: 8, maxLength: 8 }).map((u) => Buffer.from(u)),
  durationS: fc.integer({ min: 0, max: 0xffffffff }),
  address: fc.option(fc.oneof(fc.ipV4(), fc.constantFrom('2001:db8::1', '::1', 'fe80::1:2')), { nil: undefined }),
  services: fc.array(fc.record({ proto: fc.constantFrom('tcp' as const, 'udp' as const), port: fc.integer({ min: 1, max: 65535 }) }).map((s) => ({ ...s })), { maxLength: 16 }),
  nat: fc.constant(undefined),
}).map((m) => ({ ...m }));

test('message encode/decode mirror (property)', () => {
  fc.assert(fc.property(arbMessage, fc.uint8Array({ maxLength: 64 }), (msg, pad) => {
    const decoded = decodeMessage(encodeMessage(msg, pad));
    assert.ok(decoded.ok);
    assert.deepEqual(decoded.value, msg);
  }), { numRuns: 500 });
});

test('forward messages carry a NAT target; others must not', () => {
  const fwd: SpaMessage = { ...base, type: 'forward', nat: { address: '198.18.0.20', port: 8080 } };
  assert.deepEqual(decodeMessage(encodeMessage(fwd, Buffer.alloc(0))), { ok: true, value: fwd });
  const bad = encodeMessage({ ...base, nat: { address: '198.18.0.20', port: 8080 } }, Buffer.alloc(0));
  assert.deepEqual(decodeMessage(bad), { ok: false, reason: 'bad_nat' });
});

test('malformed plaintexts give exact reasons', () => {
  const good = encodeMessage(base, Buffer.alloc(0));
  const mutate = (f: (b: Buffer) => void) => { const b = Buffer.from(good); f(b); return decodeMessage(b); };
  assert.deepEqual(decodeMessage(good.subarray(0, MIN_PLAINTEXT - 1)), { ok: false, reason: 'truncated' });
  assert.deepEqual(mutate((b) => { b[0] = 2; }), { ok: false, reason: 'bad_version' });
  assert.deepEqual(mutate((b) => { b[1] = 9; }), { ok: false, reason: 'bad_type' });
  assert.deepEqual(mutate((b) => { b.writeBigUInt64BE(2n ** 60n, 2); }), { ok: false, reason: 'bad_timestamp' });
  assert.deepEqual(mutate((b) => { b[22] = 5; }), { ok: false, reason: 'bad_address' });
  assert.deepEqual(mutate((b) => { b[23] = 17; }), { ok: false, reason: 'bad_services' });
  assert.deepEqual(mutate((b) => { b[24] = 1; }), { ok: false, reason: 'bad_services' }); // protocol 1 (ICMP)
  assert.deepEqual(mutate((b) => { b.writeUInt16BE(0, 25); }), { ok: false, reason: 'bad_services' });
  assert.deepEqual(mutate((b) => { b[23] = 3; }), { ok: false, reason: 'truncated' });
  assert.deepEqual(mutate((b) => { b[27] = 7; }), { ok: false, reason: 'bad_nat' });
});

test('decodeMessage never throws on random bytes', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 120 }), (u) => {
    const r = decodeMessage(Buffer.from(u));
    assert.equal(typeof r.ok, 'boolean');
  }), { numRuns: 5000 });
});

test('seal then open returns the message; the tag is what enters the replay ring', () => {
  const pkt = sealPacket(key, base, Buffer.alloc(5));
  const r = openPacket(pkt, keys);
  assert.ok(r.ok);
  assert.deepEqual(r.value.message, base);
  assert.deepEqual(r.value.tag, pkt.subarray(4, 20));
});

test('envelope reasons: too short, too long, unknown key, bad auth', () => {
  const pkt = sealPacket(key, base, Buffer.alloc(0));
  assert.deepEqual(openPacket(pkt.subarray(0, MIN_PACKET - 1), keys), { ok: false, reason: 'too_short' });
  assert.deepEqual(openPacket(Buffer.alloc(MAX_PACKET + 1), keys), { ok: false, reason: 'too_long' });
  const other = Buffer.from(pkt);
  other.writeUInt32BE(0xdeadbeef, 0);
  assert.deepEqual(openPacket(other, keys), { ok: false, reason: 'unknown_key' });
  const wrongKey = sealPacket(prepareKey('x', new Credential(0x01020304, Buffer.alloc(32, 8))), base, Buffer.alloc(0));
  assert.deepEqual(openPacket(wrongKey, keys), { ok: false, reason: 'bad_auth' });
});

test('any single bit flip after the key id fails authentication (property)', () => {
  const pkt = sealPacket(key, base, Buffer.alloc(9));
  fc.assert(fc.property(fc.integer({ min: 32, max: pkt.length * 8 - 1 }), (bit) => {
    const t = Buffer.from(pkt);
    t[bit >> 3]! ^= 1 << (bit & 7);
    assert.deepEqual(openPacket(t, keys), { ok: false, reason: 'bad_auth' });
  }), { numRuns: 300 });
});

test('wire: lengths vary and no byte but the key id is constant across packets', () => {
  const c = generateCredential();
  const packets = Array.from({ length: 200 }, () => buildPacket({
    credential: c, type: 'open', services: [{ proto: 'tcp', port: 22 }], durationS: 0, allowAddress: undefined, nowMs: 1_764_150_000_000,
  }));
  assert.ok(new Set(packets.map((p) => p.length)).size > 20, 'lengths vary');
  const minLen = Math.min(...packets.map((p) => p.length));
  for (let i = 0; i < minLen; i++) {
    const values = new Set(packets.map((p) => p[i]));
    if (i < 4) assert.equal(values.size, 1, 'the key id is the same in every packet');
    else assert.ok(values.size > 1, `byte ${i} varies`);
  }
  assert.equal(packets[0]!.readUInt32BE(0), c.keyId);
});

test('splitPacket does not copy and never throws on random input', () => {
  for (let i = 0; i < 20000; i++) {
    const b = randomBytes(i % 600);
    if (i % 3 === 0 && b.length >= 4) b.writeUInt32BE(0x01020304, 0);
    const r = openPacket(b, keys);
    assert.equal(r.ok, false);
  }
  const pkt = sealPacket(key, base, Buffer.alloc(0));
  const s = splitPacket(pkt, keys);
  assert.ok(s.ok && s.value.ciphertext.buffer === pkt.buffer);
});
