// SPDX-License-Identifier: MIT
// One exact-reason fixture (or more) for every FwknopReason (STYLE.md principle 5), built with
// the independent oracle so post-HMAC fixtures are properly authenticated; the last test
// proves the fixtures reach every reason in FWKNOP_REASONS.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeFwknop, FWKNOP_REASONS, precheckFwknop, type FwknopReason } from '../../../src/fwknop/codec.ts';
import { prepareFwknopKey } from '../../../src/fwknop/keys.ts';
import { keysOf, oracleSeal, VECTORS, withDigest, type OracleKeys } from './oracle.ts';

const ref = VECTORS.reference[0];
assert.ok(ref);
const K: OracleKeys = keysOf(ref);
const KEY = prepareFwknopKey(K);
const SALT = Buffer.from('0706050403020100', 'hex');
const b64 = (s: string) => Buffer.from(s, 'latin1').toString('base64').replace(/=+$/, '');
const R = '1234567890123456';
const USER = b64('alice');
const MSG = b64('203.0.113.5,tcp/22');
const seal = (plaintext: string) => oracleSeal(plaintext, K, SALT);
/** A digest-correct plaintext from its fields. */
const pt = (...fields: string[]) => withDigest(fields.join(':'));
const access = (...rest: string[]) => pt(R, USER, '1700000000', '3.0.0', ...rest);

const seen = new Set<FwknopReason>();
function expectReason(input: Buffer | string, reason: FwknopReason, key = KEY): void {
  const r = decodeFwknop(input, key);
  // By-design refusals also carry the authenticated timestamp (for the replay ring).
  const ts = reason === 'command_refused' || reason === 'unsupported_proto' ? { timestampS: 1700000000 } : {};
  assert.deepEqual(r, { ok: false, reason, ...ts });
  seen.add(reason);
}

describe('precheck reasons (no key needed)', () => {
  const good = ref.wire;
  it('too_short / too_long at the fwknopd bounds 140 and 1500', () => {
    expectReason(good.slice(0, 139), 'too_short');
    expectReason('', 'too_short');
    expectReason('8'.repeat(1501), 'too_long');
    assert.equal(precheckFwknop('8'.repeat(140)).ok, true);
    assert.equal(precheckFwknop('8'.repeat(1500)).ok, true);
  });
  it('salted_prefix: a real packet replayed with U2FsdGVkX1 put back', () => {
    expectReason('U2FsdGVkX1' + good, 'salted_prefix');
    expectReason(Buffer.from('U2FsdGVkX1' + VECTORS.client[0]?.wire), 'salted_prefix');
  });
  it('bad_container: first char must be 8, 9, + or /', () => {
    expectReason('A' + good.slice(1), 'bad_container');
    expectReason('U2FsdGVkX2' + good, 'bad_container');
    for (const c of '89+/') assert.equal(precheckFwknop(c + good.slice(1)).ok, true);
  });
  it('bad_chars: =, URL-safe alphabet, NUL, newline, non-ASCII (string and Buffer)', () => {
    for (const bad of ['=', '-', '_', '\0', '\n', ' ', '\u0138', '\u00e9']) {
      expectReason(good.slice(0, 100) + bad + good.slice(101), 'bad_chars');
    }
    const buf = Buffer.from(good, 'latin1');
    buf[50] = 0xb8; // '8' | 0x80
    expectReason(buf, 'bad_chars');
    expectReason(good + '\n', 'bad_chars'); // --save-packet files end in a newline
  });
});

describe('authentication', () => {
  it('bad_hmac: tampered tag, tampered ciphertext, truncated, wrong HMAC key or type', () => {
    const good = ref.wire;
    const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
    expectReason(flip(good, good.length - 1), 'bad_hmac');
    expectReason(flip(good, 40), 'bad_hmac');
    expectReason(good.slice(0, -1), 'bad_hmac'); // length no longer whole blocks for SHA-256
    expectReason(good.slice(0, -4), 'bad_hmac');
    expectReason(good, 'bad_hmac', prepareFwknopKey({ ...K, hmacKey: Buffer.from('another hmac key') }));
    expectReason(good, 'bad_hmac', prepareFwknopKey({ ...K, hmacType: 'sha3_256' })); // same length, other MAC
    expectReason(good, 'bad_hmac', prepareFwknopKey({ ...K, hmacType: 'sha512' })); // length mismatch
  });
});

describe('post-HMAC reasons (authenticated fixtures)', () => {
  it('bad_decrypt: right HMAC key, wrong passphrase', () => {
    expectReason(ref.wire, 'bad_decrypt', prepareFwknopKey({ ...K, key: Buffer.from('not the key') }));
  });
  it('bad_decrypt: bad PKCS#7 padding', () => {
    const body = Buffer.from(access('1', MSG), 'latin1');
    const blocks = Math.ceil((body.length + 1) / 16) * 16;
    const pad = (last: number[]) => Buffer.concat([body, Buffer.alloc(blocks - body.length - last.length, 0x20), Buffer.from(last)]);
    expectReason(oracleSeal(pad([0]), K, SALT, true), 'bad_decrypt');
    expectReason(oracleSeal(pad([17]), K, SALT, true), 'bad_decrypt');
    expectReason(oracleSeal(pad([3, 2, 2]), K, SALT, true), 'bad_decrypt');
  });
  it('bad_decrypt: random field, printable check, plaintext length', () => {
    expectReason(seal(pt('123456789012345', USER, '1700000000', '3.0.0', '1', MSG)), 'bad_decrypt');
    expectReason(seal(pt('12345678901234567', USER, '1700000000', '3.0.0', '1', MSG)), 'bad_decrypt');
    expectReason(seal(pt('123456789012345a', USER, '1700000000', '3.0.0', '1', MSG)), 'bad_decrypt');
    expectReason(seal(access('1', MSG + '\t')), 'bad_decrypt');
    expectReason(seal(access('1', MSG) + '\u00ff'), 'bad_decrypt');
    // 34 bytes < 36: only a long tag (SHA-512) lifts such a packet over the 140-char minimum.
    const k512: OracleKeys = { ...K, hmacType: 'sha512' };
    expectReason(oracleSeal(`${R}:abcdefghijklmnopq`, k512, SALT), 'bad_decrypt', prepareFwknopKey(k512));
  });
  it('bad_digest: wrong digest, unknown digest length, digest of the wrong type', () => {
    const good = access('1', MSG);
    expectReason(seal(good.slice(0, -1) + (good.endsWith('A') ? 'B' : 'A')), 'bad_digest');
    expectReason(seal(good + 'A'), 'bad_digest');
    expectReason(seal(good.slice(0, good.lastIndexOf(':'))), 'bad_digest');
    const body = [R, USER, '1700000000', '3.0.0', '1', MSG].join(':');
    expectReason(seal(`${body}:${withDigest(body, 'sha512').slice(-86, -43)}`), 'bad_digest');
  });
  it('accepts every digest type, SHA-3 after the SHA-2 retry', () => {
    const body = [R, USER, '1700000000', '3.0.0', '1', MSG].join(':');
    for (const t of ['md5', 'sha1', 'sha256', 'sha384', 'sha512', 'sha3_256', 'sha3_512'] as const) {
      const r = decodeFwknop(seal(withDigest(body, t)), KEY);
      assert.ok(r.ok && r.value.digestType === t, t);
    }
  });
  it('bad_type and command_refused', () => {
    expectReason(seal(access('7', MSG)), 'bad_type');
    expectReason(seal(access('99', MSG)), 'bad_type');
    expectReason(seal(access('0', b64('203.0.113.5,touch /tmp/pwned'))), 'command_refused');
  });
  it('unsupported_proto: icmp and none parse but postern cannot open them', () => {
    expectReason(seal(access('1', b64('203.0.113.5,icmp/0'))), 'unsupported_proto');
    expectReason(seal(access('1', b64('203.0.113.5,tcp/22,none/0'))), 'unsupported_proto');
  });
  it('bad_fields: each field out of its grammar', () => {
    const cases: string[] = [
      pt(R, USER, '1700000000', '3.0.0', '1'), // too few fields
      access('1', MSG, b64('auth'), b64('extra')), // too many for type 1
      access('3', MSG), // type 3 without its timeout
      access('2', MSG), // type 2 without nat
      pt(R, b64('al/ice'), '1700000000', '3.0.0', '1', MSG), // forbidden username char
      pt(R, 'YWxp=', '1700000000', '3.0.0', '1', MSG), // '=' inside base64
      pt(R, 'Y', '1700000000', '3.0.0', '1', MSG), // impossible base64 length
      pt(R, b64('x'.repeat(49)), '1700000000', '3.0.0', '1', MSG), // username base64 > 64
      pt(R, b64('al\u00e9'), '1700000000', '3.0.0', '1', MSG), // non-ASCII username
      pt(R, USER, '17000000001234', '3.0.0', '1', MSG), // timestamp > 12 chars
      pt(R, USER, '-1', '3.0.0', '1', MSG),
      pt(R, USER, '1700000000', '3.0.0.1234', '1', MSG), // version > 8 chars
      pt(R, USER, '1700000000', '3.0.0', '1a', MSG),
      access('1', b64('203.0.113.5')), // no proto/port
      access('1', b64('203.0.113.5,tcp/0')),
      access('1', b64('203.0.113.5,tcp/65536')),
      access('1', b64('203.0.113.5,TCP/22')),
      access('1', b64('203.0.113.05,tcp/22')), // non-canonical IPv4
      access('1', b64('2001:db8::1,tcp/22')),
      access('1', b64('203.0.113.5,tcp/22,')),
      access('2', MSG, b64('192.168.1.10:22')), // nat without comma
      access('2', MSG, b64('192.168.1.10,22,23')),
      access('2', MSG, b64('evil host,22')),
      access('2', MSG, b64(`${'h'.repeat(71)},22`)),
      access('3', MSG, '65537'),
      access('3', MSG, '4x'),
      access('1', MSG, '***'), // server auth not base64
      access('1', MSG, ''), // empty trailing field
    ];
    for (const c of cases) expectReason(seal(c), 'bad_fields');
  });
  it('server auth is parsed and ignored; a type-3 timeout follows it', () => {
    const one = decodeFwknop(seal(access('1', MSG, b64('server-auth'))), KEY);
    assert.ok(one.ok && one.value.clientTimeoutS === undefined);
    const three = decodeFwknop(seal(access('3', MSG, b64('server-auth'), '60')), KEY);
    assert.ok(three.ok && three.value.clientTimeoutS === 60);
  });
});

describe('reason map', () => {
  it('every reason has text and a fixture above', () => {
    for (const [r, text] of Object.entries(FWKNOP_REASONS)) assert.ok(text.length > 10, r);
    assert.deepEqual([...seen].sort(), Object.keys(FWKNOP_REASONS).sort());
  });
});
