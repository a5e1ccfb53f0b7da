// SPDX-License-Identifier: MIT
// Thin wrappers over node:crypto's Ed25519 (RFC 8032), X25519 (RFC 7748) and HKDF (RFC 5869)
// that speak raw 32-byte keys, the form our wire and config use. node:crypto takes keys as
// KeyObjects built from DER, so raw keys are wrapped in the fixed PKCS#8 / SPKI prefixes of
// RFC 8410 (OIDs 1.3.101.110 X25519 and 1.3.101.112 Ed25519). The RFC vectors are checked
// through these functions in test/unit/crypto/asym.test.ts.
//
// node:crypto throws on some hostile inputs (X25519 with a low-order point yields an all-zero
// secret, which OpenSSL refuses: RFC 7748 section 6.1 allows that check). Every function fed
// wire bytes returns undefined instead of throwing (STYLE.md principle 1).

import {
  createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, sign, verify, type KeyObject,
} from 'node:crypto';

export const X25519_KEY_SIZE = 32;
export const ED25519_KEY_SIZE = 32;
export const ED25519_SIG_SIZE = 64;

// RFC 8410 section 7 / 10.3: PKCS#8 PrivateKeyInfo and SPKI prefixes for a 32-byte key
// (X25519 public keys are imported as JWK instead, see x25519PublicKey).
const X25519_PKCS8 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const ED25519_PKCS8 = Buffer.from('302e020100300506032b657004220420', 'hex');
const ED25519_SPKI = Buffer.from('302a300506032b6570032100', 'hex');

function rawKey(bytes: Uint8Array, what: string): Buffer {
  if (bytes.length !== 32) throw new RangeError(`${what} must be 32 bytes, got ${bytes.length}`);
  return Buffer.from(bytes);
}

/** A private X25519 key from its 32 raw bytes (RFC 7748 section 5 scalar; clamping is X25519's). */
export function x25519PrivateKey(raw: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([X25519_PKCS8, rawKey(raw, 'X25519 private key')]), format: 'der', type: 'pkcs8' });
}

/** An X25519 public key from 32 wire bytes. RFC 7748 section 5: "implementations of X25519
 *  MUST mask the most significant bit in the final byte"; we clear it here so a sender may
 *  randomise that bit (then the 32 bytes carry no constant bit on the wire). */
export function x25519PublicKey(raw: Uint8Array): KeyObject | undefined {
  if (raw.length !== X25519_KEY_SIZE) return undefined;
  const u = Buffer.from(raw);
  u[31]! &= 0x7f;
  try {
    // JWK (RFC 8037) rather than SPKI DER: measured about 4x cheaper per import on Node 24,
    // and this runs once per asymmetric packet.
    return createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: u.toString('base64url') }, format: 'jwk' });
  } catch {
    return undefined;
  }
}

/** The raw 32 bytes of an X25519 or Ed25519 public key (the last 32 bytes of its SPKI). */
export function rawPublicKey(key: KeyObject): Buffer {
  const der = (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'der', type: 'spki' });
  return Buffer.from(der.subarray(der.length - 32));
}

/** The raw 32 bytes of an X25519 or Ed25519 private key (the last 32 bytes of its PKCS#8). */
export function rawPrivateKey(key: KeyObject): Buffer {
  const der = key.export({ format: 'der', type: 'pkcs8' });
  return Buffer.from(der.subarray(der.length - 32));
}

/** X25519(k, u) of RFC 7748 section 5 / 6.1. undefined for an all-zero result (low-order u). */
export function x25519(privateKey: KeyObject, publicKey: KeyObject): Buffer | undefined {
  try {
    return diffieHellman({ privateKey, publicKey });
  } catch {
    return undefined;
  }
}

export interface RawKeyPair {
  readonly privateKey: Buffer;
  readonly publicKey: Buffer;
}

/** A fresh X25519 key pair from the kernel CSPRNG, as raw bytes. */
export function generateX25519(): RawKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  return { privateKey: rawPrivateKey(privateKey), publicKey: rawPublicKey(publicKey) };
}

/** A fresh Ed25519 key pair: privateKey is the 32-byte seed of RFC 8032 section 5.1.5. */
export function generateEd25519(): RawKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privateKey: rawPrivateKey(privateKey), publicKey: rawPublicKey(publicKey) };
}

export function ed25519PrivateKey(seed: Uint8Array): KeyObject {
  return createPrivateKey({ key: Buffer.concat([ED25519_PKCS8, rawKey(seed, 'Ed25519 seed')]), format: 'der', type: 'pkcs8' });
}

/** An Ed25519 public key from 32 bytes; undefined if they do not decode (RFC 8032 5.1.3). */
export function ed25519PublicKey(raw: Uint8Array): KeyObject | undefined {
  if (raw.length !== ED25519_KEY_SIZE) return undefined;
  try {
    return createPublicKey({ key: Buffer.concat([ED25519_SPKI, Buffer.from(raw)]), format: 'der', type: 'spki' });
  } catch {
    return undefined;
  }
}

/** Pure Ed25519 signature (RFC 8032 section 5.1.6), 64 bytes. */
export function ed25519Sign(privateKey: KeyObject, message: Uint8Array): Buffer {
  return sign(null, message, privateKey);
}

/** RFC 8032 section 5.1.7 verification. Never throws; a wrong-size signature is false. */
export function ed25519Verify(publicKey: KeyObject, message: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== ED25519_SIG_SIZE) return false;
  try {
    return verify(null, message, publicKey, signature);
  } catch {
    return false;
  }
}

/** HKDF-SHA-256 (RFC 5869) of `length` bytes. */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, length));
}
