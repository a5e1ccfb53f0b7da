// SPDX-License-Identifier: MIT
// ref/fwknop.md §12 vectors (decoded exactly, re-encoded byte for byte) and packets made by
// the real fwknop 2.6.10 client (test/vectors/fwknop.json), checked against the codec and
// against the independent oracle.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeFwknop } from '../../../src/fwknop/codec.ts';
import { buildFwknopPlaintext, encodeFwknop, type FwknopRequest } from '../../../src/fwknop/encode.ts';
import { evpBytesToKey, prepareFwknopKey } from '../../../src/fwknop/keys.ts';
import { keysOf, oracleHmac, oracleOpen, VECTORS } from './oracle.ts';

describe('fwknop reference vectors (ref §12)', () => {
  for (const v of VECTORS.reference) {
    const k = keysOf(v);
    const key = prepareFwknopKey({ key: k.key, hmacKey: k.hmacKey, hmacType: k.hmacType });
    const salt = Buffer.from(v.saltHex, 'hex');
    const req = v.request as unknown as FwknopRequest;

    it(`${v.name}: EVP_BytesToKey key and IV`, () => {
      const { key: aesKey, iv } = evpBytesToKey(k.key, salt);
      assert.equal(aesKey.toString('hex'), v.aesKeyHex);
      assert.equal(iv.toString('hex'), v.aesIvHex);
    });

    it(`${v.name}: plaintext and wire byte for byte`, () => {
      assert.equal(buildFwknopPlaintext(req, v.random16), v.plaintext);
      const wire = encodeFwknop(req, key, { salt, random16: v.random16 });
      assert.equal(wire, v.wire);
      assert.ok(wire.endsWith(v.hmac));
      assert.equal(oracleHmac(k.hmacType, k.hmacKey, 'U2FsdGVkX1' + wire.slice(0, -v.hmac.length)), v.hmac);
    });

    it(`${v.name}: decodes to the request`, () => {
      const r = decodeFwknop(v.wire, key);
      assert.ok(r.ok, JSON.stringify(r));
      const digest = v.plaintext.slice(v.plaintext.lastIndexOf(':') + 1);
      assert.deepEqual(r.value, { random: v.random16, version: '3.0.0', digestType: 'sha256', digest, ...req });
      assert.deepEqual(decodeFwknop(Buffer.from(v.wire, 'latin1'), key), r);
    });
  }
});

describe('packets from the real fwknop 2.6.10 client', () => {
  for (const v of VECTORS.client) {
    it(`${v.name} (${v.client})`, () => {
      const k = keysOf(v);
      const key = prepareFwknopKey({ key: k.key, hmacKey: k.hmacKey, hmacType: k.hmacType });
      assert.equal(oracleOpen(v.wire, k), v.plaintext, 'oracle agrees with the client printout');
      const r = decodeFwknop(Buffer.from(v.wire, 'latin1'), key);
      if (v.reason !== undefined) {
        assert.ok(!r.ok);
        assert.equal(r.reason, v.reason);
        // An authenticated refusal carries the client's timestamp (field 3) for the replay ring.
        assert.equal('timestampS' in r ? r.timestampS : undefined, Number(v.plaintext.split(':')[2]));
      } else {
        assert.ok(r.ok, JSON.stringify(r));
        assert.deepEqual({ ...r.value }, v.expected);
      }
    });
  }
});
