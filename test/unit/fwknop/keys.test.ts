// SPDX-License-Identifier: MIT
// Prepared key material: the precomputed HMAC equals createHmac (the oracle) for every type and
// for keys around each block size (longer keys are hashed first, RFC 2104 §2); EVP_BytesToKey
// equals an independent MD5 chain; programmer errors throw RangeError.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { HASHES, HMAC_TYPES } from '../../../src/fwknop/constants.ts';
import { evpBytesToKey, prepareFwknopKey, prepareHmac } from '../../../src/fwknop/keys.ts';
import { oracleHmac, oracleKeyIv } from './oracle.ts';

describe('prepareHmac', () => {
  it('matches createHmac for every type at block-size edges', () => {
    for (const t of HMAC_TYPES) {
      const b = HASHES[t].block;
      for (const len of [1, 16, b - 1, b, b + 1, 136].filter((n) => n <= 136)) {
        const key = Buffer.alloc(len, len & 0xff).fill(0xa5, 0, 1);
        const h = prepareHmac(t, key);
        const msg = 'x'.repeat(200);
        assert.equal(h.mac('U2FsdGVkX1', msg).toString('base64').replace(/=+$/, ''), oracleHmac(t, key, 'U2FsdGVkX1' + msg), `${t}/${len}`);
        assert.equal(h.tagChars, oracleHmac(t, key, '').length);
      }
    }
  });
  it('matches createHmac on random keys and messages (property)', () => {
    fc.assert(fc.property(
      fc.constantFrom(...HMAC_TYPES), fc.uint8Array({ minLength: 1, maxLength: 136 }), fc.string({ maxLength: 300 }), fc.string({ maxLength: 20 }),
      (t, key, body, head) => {
        const k = Buffer.from(key);
        const text = head + body;
        const latin1 = Buffer.from(text, 'latin1').toString('latin1');
        assert.equal(prepareHmac(t, k).mac(head, body).toString('base64').replace(/=+$/, ''), oracleHmac(t, k, latin1));
      }), { numRuns: 300 });
  });
  it('refuses empty and over-long keys', () => {
    assert.throws(() => prepareHmac('sha256', Buffer.alloc(0)), RangeError);
    assert.throws(() => prepareHmac('sha256', Buffer.alloc(137, 1)), RangeError);
  });
});

describe('prepareFwknopKey', () => {
  const hmacKey = Buffer.alloc(64, 2);
  it('refuses an empty key, a key over 32 bytes, and an HMAC key equal to the key', () => {
    assert.throws(() => prepareFwknopKey({ key: Buffer.alloc(0), hmacKey, hmacType: 'sha256' }), RangeError);
    assert.throws(() => prepareFwknopKey({ key: Buffer.alloc(33, 1), hmacKey, hmacType: 'sha256' }), RangeError);
    assert.throws(() => prepareFwknopKey({ key: hmacKey, hmacKey, hmacType: 'sha256' }), RangeError);
    assert.throws(() => prepareFwknopKey({ key: Buffer.alloc(32, 1), hmacKey: Buffer.alloc(0), hmacType: 'sha256' }), RangeError);
  });
  it('copies the passphrase so later changes to the caller buffer do not leak in', () => {
    const key = Buffer.alloc(32, 1);
    const k = prepareFwknopKey({ key, hmacKey, hmacType: 'sha512' });
    key.fill(9);
    assert.deepEqual(k.passphrase, Buffer.alloc(32, 1));
    assert.equal(k.hmacType, 'sha512');
    assert.equal(k.hmac.tagChars, 86);
  });
});

describe('evpBytesToKey', () => {
  it('equals an independent MD5 chain for any passphrase and salt', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 32 }), fc.uint8Array({ minLength: 8, maxLength: 8 }), (p, s) => {
      const got = evpBytesToKey(Buffer.from(p), Buffer.from(s));
      const want = oracleKeyIv(Buffer.from(p), Buffer.from(s));
      assert.deepEqual([got.key, got.iv], [want.key, want.iv]);
    }), { numRuns: 200 });
  });
  it('refuses a salt that is not 8 bytes', () => {
    assert.throws(() => evpBytesToKey(Buffer.from('k'), Buffer.alloc(7)), RangeError);
  });
});
