// SPDX-License-Identifier: MIT
// RFC 8032 section 7.1 (Ed25519) and RFC 7748 sections 5.2 and 6.1 (X25519) vectors, run
// through our wrappers (src/crypto/asym.ts), plus RFC 5869 A.1 for HKDF-SHA-256.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ed25519PrivateKey, ed25519PublicKey, ed25519Sign, ed25519Verify, generateEd25519, generateX25519, hkdfSha256,
  rawPublicKey, x25519, x25519PrivateKey, x25519PublicKey,
} from '../../../src/crypto/asym.ts';

const h = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// RFC 8032 section 7.1, TEST 1-3.
const ED25519 = [
  {
    name: 'TEST 1', seed: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
    pk: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a', msg: '',
    sig: 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
  },
  {
    name: 'TEST 2', seed: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
    pk: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c', msg: '72',
    sig: '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
  },
  {
    name: 'TEST 3', seed: 'c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7',
    pk: 'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025', msg: 'af82',
    sig: '6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a',
  },
];

for (const v of ED25519) {
  test(`RFC 8032 7.1 ${v.name}: public key, signature and verification through our wrappers`, () => {
    const priv = ed25519PrivateKey(h(v.seed));
    assert.equal(rawPublicKey(priv).toString('hex'), v.pk);
    assert.equal(ed25519Sign(priv, h(v.msg)).toString('hex'), v.sig);
    const pub = ed25519PublicKey(h(v.pk));
    assert.ok(pub);
    assert.equal(ed25519Verify(pub, h(v.msg), h(v.sig)), true);
    const bad = h(v.sig);
    bad[0]! ^= 1;
    assert.equal(ed25519Verify(pub, h(v.msg), bad), false, 'a flipped signature bit fails');
    assert.equal(ed25519Verify(pub, Buffer.concat([h(v.msg), Buffer.of(0)]), h(v.sig)), false, 'another message fails');
    assert.equal(ed25519Verify(pub, h(v.msg), h(v.sig).subarray(1)), false, 'a short signature is false, not a throw');
  });
}

// RFC 7748 section 5.2: X25519(scalar, u). The second u has its top bit set: section 5
// says it MUST be masked, which x25519PublicKey does.
const X25519_52 = [
  ['a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4', 'e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c', 'c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552'],
  ['4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d', 'e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493', '95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957'],
] as const;

for (const [i, [k, u, out]] of X25519_52.entries()) {
  test(`RFC 7748 5.2 vector ${i + 1} through our wrappers`, () => {
    const pub = x25519PublicKey(h(u));
    assert.ok(pub);
    assert.equal(x25519(x25519PrivateKey(h(k)), pub)?.toString('hex'), out);
  });
}

test('RFC 7748 6.1: Alice and Bob derive their public keys and the same shared secret', () => {
  const a = x25519PrivateKey(h('77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a'));
  const b = x25519PrivateKey(h('5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb'));
  assert.equal(rawPublicKey(a).toString('hex'), '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a');
  assert.equal(rawPublicKey(b).toString('hex'), 'de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f');
  const k = '4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742';
  assert.equal(x25519(a, x25519PublicKey(rawPublicKey(b))!)?.toString('hex'), k);
  assert.equal(x25519(b, x25519PublicKey(rawPublicKey(a))!)?.toString('hex'), k);
});

test('X25519 with a low-order point (u = 0 or 1) is undefined, never a throw', () => {
  const a = x25519PrivateKey(generateX25519().privateKey);
  for (const u of [Buffer.alloc(32), Buffer.from('01'.padEnd(64, '0'), 'hex')]) {
    const pub = x25519PublicKey(u);
    assert.equal(pub === undefined ? undefined : x25519(a, pub), undefined);
  }
  assert.equal(x25519PublicKey(Buffer.alloc(31)), undefined);
});

test('RFC 5869 A.1: HKDF-SHA-256', () => {
  const okm = hkdfSha256(Buffer.alloc(22, 0x0b), h('000102030405060708090a0b0c'), h('f0f1f2f3f4f5f6f7f8f9'), 42);
  assert.equal(okm.toString('hex'), '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865');
});

test('generated key pairs round-trip through raw bytes', () => {
  const ed = generateEd25519();
  assert.deepEqual(rawPublicKey(ed25519PrivateKey(ed.privateKey)), ed.publicKey);
  const x = generateX25519();
  assert.deepEqual(rawPublicKey(x25519PrivateKey(x.privateKey)), x.publicKey);
  assert.equal(ed25519PublicKey(Buffer.alloc(5)), undefined);
});
