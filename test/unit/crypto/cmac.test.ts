// SPDX-License-Identifier: MIT
// AES-CMAC against RFC 4493 section 4 and, on random keys and messages, against
// node-aes-cmac (DESIGN.md fact 5: both are the oracles).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { Cmac, cmac, dbl } from '../../../src/crypto/cmac.ts';

// node-aes-cmac ships no types; this is the slice of its API (index.js) we call.
const { aesCmac } = createRequire(import.meta.url)('node-aes-cmac') as {
  aesCmac(key: Buffer, message: Buffer, options: { returnAsBuffer: true }): Buffer;
};
const oracle = (key: Uint8Array, msg: Uint8Array): Buffer =>
  aesCmac(Buffer.from(key), Buffer.from(msg), { returnAsBuffer: true });

interface Rfc4493 {
  key: string;
  subkeys: { l: string; k1: string; k2: string };
  examples: { name: string; message: string; mac: string }[];
}
const rfc = JSON.parse(
  readFileSync(new URL('../../vectors/rfc4493.json', import.meta.url), 'utf8'),
) as Rfc4493;
const hex = (s: string): Buffer => Buffer.from(s, 'hex');
const key = hex(rfc.key);

test('RFC 4493 section 4 subkey generation: L = AES(K, 0), K1 = dbl(L), K2 = dbl(K1)', () => {
  const ecb = createCipheriv('aes-128-ecb', key, null).setAutoPadding(false);
  assert.equal(ecb.update(Buffer.alloc(16)).toString('hex'), rfc.subkeys.l);
  assert.equal(dbl(hex(rfc.subkeys.l)).toString('hex'), rfc.subkeys.k1);
  assert.equal(dbl(hex(rfc.subkeys.k1)).toString('hex'), rfc.subkeys.k2);
});

test('RFC 4493 section 4 examples 1-4 (0, 16, 40, 64 bytes)', () => {
  assert.equal(rfc.examples.length, 4);
  const mac = new Cmac(key);
  for (const ex of rfc.examples) {
    assert.equal(mac.mac(hex(ex.message)).toString('hex'), ex.mac, ex.name);
    assert.equal(cmac(key, hex(ex.message)).toString('hex'), ex.mac, ex.name);
  }
  // One instance serves any sequence of messages: run them again in reverse order.
  for (const ex of rfc.examples.toReversed()) {
    assert.equal(mac.mac(hex(ex.message)).toString('hex'), ex.mac, `${ex.name} (again)`);
  }
});

test('mac accepts plain Uint8Array views, and a caller mutating a tag does not disturb the next', () => {
  const mac = new Cmac(new Uint8Array(key));
  const backing = new Uint8Array(100);
  backing.set(hex(rfc.examples[1]!.message), 10);
  const tag = mac.mac(backing.subarray(10, 26));
  assert.equal(tag.toString('hex'), rfc.examples[1]!.mac);
  tag.fill(0xaa);
  assert.equal(mac.mac(hex(rfc.examples[2]!.message)).toString('hex'), rfc.examples[2]!.mac);
});

test('Cmac rejects keys that are not 16 bytes (programmer error)', () => {
  for (const n of [0, 15, 17, 24, 32]) {
    assert.throws(() => new Cmac(new Uint8Array(n)), RangeError, `length ${n}`);
  }
});

test('dbl matches a BigInt model of multiplication by x in GF(2^128)', () => {
  const mask = (1n << 128n) - 1n;
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (block) => {
      const x = BigInt(`0x${Buffer.from(block).toString('hex')}`);
      const want = ((x << 1n) & mask) ^ (x >> 127n === 1n ? 0x87n : 0n);
      assert.equal(dbl(block).toString('hex'), want.toString(16).padStart(32, '0'));
    }),
    { numRuns: 500 },
  );
});

test('equals node-aes-cmac on 3000 random keys, 1-3 messages of 0..200 bytes per key', () => {
  const messages = fc.array(fc.uint8Array({ maxLength: 200 }), { minLength: 1, maxLength: 3 });
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), messages, (k, msgs) => {
      const mac = new Cmac(k);
      for (const m of msgs) assert.deepEqual(mac.mac(m), oracle(k, m));
    }),
    { numRuns: 3000 },
  );
});

test('every length 0..80 around the block boundaries equals node-aes-cmac', () => {
  const mac = new Cmac(key);
  const data = Buffer.from(Array.from({ length: 80 }, (_, i) => (i * 37 + 11) & 0xff));
  for (let len = 0; len <= 80; len++) {
    assert.deepEqual(mac.mac(data.subarray(0, len)), oracle(key, data.subarray(0, len)), `len ${len}`);
  }
});
