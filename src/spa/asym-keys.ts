// SPDX-License-Identifier: MIT
// Key strings of the asymmetric message class (docs/protocol.md "Asymmetric message class"):
//   postern-pub1:<base64url(key id (4) || Ed25519 public key (32))>   a technician's public key
//   postern-id1:<base64url(key id (4) || Ed25519 seed (32))>          a technician's identity (secret)
//   postern-dev1:<base64url(X25519 public key (32))>                  a device's public key
// Public strings are safe to publish; the identity is printed by nobody (toString hides it).
// Parsing never throws and never echoes its input.

import { createHash, randomBytes, type KeyObject } from 'node:crypto';
import { ed25519PrivateKey, ed25519PublicKey, generateEd25519, rawPublicKey } from '../crypto/asym.ts';
import { KEY_ID_SIZE } from './constants.ts';
import { keyIdHex } from './credential.ts';
import { fail, ok, type Decoded } from '../wire/result.ts';

export const TECH_PUBLIC_PREFIX = 'postern-pub1:';
export const TECH_IDENTITY_PREFIX = 'postern-id1:';
export const DEVICE_PUBLIC_PREFIX = 'postern-dev1:';
export const ASYM_KEY_SIZE = 32;
/** Fingerprint: the first FINGERPRINT_BYTES of SHA-256 over the raw device public key. */
export const FINGERPRINT_BYTES = 10;

const BASE64URL = /^[A-Za-z0-9_-]+$/;
const HIDDEN = '(hidden)';

export type KeyStringError = 'missing_prefix' | 'bad_characters' | 'bad_length' | 'bad_key';

export const KEY_STRING_ERRORS: Record<KeyStringError, string> = {
  missing_prefix: `expected ${TECH_PUBLIC_PREFIX}, ${TECH_IDENTITY_PREFIX} or ${DEVICE_PUBLIC_PREFIX} as the string requires`,
  bad_characters: 'only base64url characters (A-Z a-z 0-9 - _) may follow the prefix',
  bad_length: 'wrong length after the prefix (was it cut off?)',
  bad_key: 'the bytes are not a valid public key',
};

function body(text: string, prefix: string, size: number): Decoded<Buffer, KeyStringError> {
  const t = text.trim();
  if (!t.startsWith(prefix)) return fail('missing_prefix');
  const b64 = t.slice(prefix.length);
  if (!BASE64URL.test(b64)) return fail('bad_characters');
  if (b64.length !== Math.ceil((size * 4) / 3)) return fail('bad_length');
  const raw = Buffer.from(b64, 'base64url');
  return raw.length === size ? ok(raw) : fail('bad_length');
}

/** A technician's public key as a device stores it in a key stanza. */
export class TechPublicKey {
  readonly keyId: number;
  readonly publicKey: Buffer;
  /** The node:crypto key, built once at config load; verification reuses it per packet. */
  readonly verifyKey: KeyObject;

  private constructor(keyId: number, publicKey: Buffer, verifyKey: KeyObject) {
    this.keyId = keyId;
    this.publicKey = publicKey;
    this.verifyKey = verifyKey;
  }

  static fromRaw(keyId: number, publicKey: Uint8Array): TechPublicKey | undefined {
    const key = ed25519PublicKey(publicKey);
    return key && new TechPublicKey(keyId, Buffer.from(publicKey), key);
  }

  get keyIdHex(): string {
    return keyIdHex(this.keyId);
  }

  encode(): string {
    const b = Buffer.alloc(KEY_ID_SIZE + ASYM_KEY_SIZE);
    b.writeUInt32BE(this.keyId, 0);
    this.publicKey.copy(b, KEY_ID_SIZE);
    return TECH_PUBLIC_PREFIX + b.toString('base64url');
  }
}

export function parseTechPublic(text: string): Decoded<TechPublicKey, KeyStringError> {
  const raw = body(text, TECH_PUBLIC_PREFIX, KEY_ID_SIZE + ASYM_KEY_SIZE);
  if (!raw.ok) return raw;
  const key = TechPublicKey.fromRaw(raw.value.readUInt32BE(0), raw.value.subarray(KEY_ID_SIZE));
  return key ? ok(key) : fail('bad_key');
}

/** A technician's signing identity. Printing, JSON or inspect never shows the seed. */
export class TechIdentity {
  readonly keyId: number;
  readonly signKey: KeyObject;
  readonly #seed: Buffer;

  constructor(keyId: number, seed: Uint8Array) {
    if (!Number.isInteger(keyId) || keyId < 0 || keyId > 0xffffffff) throw new RangeError('key id must be uint32');
    this.keyId = keyId;
    this.#seed = Buffer.from(seed);
    this.signKey = ed25519PrivateKey(this.#seed);
  }

  get keyIdHex(): string {
    return keyIdHex(this.keyId);
  }

  publicKey(): TechPublicKey {
    const pub = TechPublicKey.fromRaw(this.keyId, rawPublicKey(this.signKey));
    if (!pub) throw new Error('unreachable: a seed always has a public key');
    return pub;
  }

  /** The secret string; call sites are the identity file writer only. */
  encodeSecret(): string {
    const b = Buffer.alloc(KEY_ID_SIZE + ASYM_KEY_SIZE);
    b.writeUInt32BE(this.keyId, 0);
    this.#seed.copy(b, KEY_ID_SIZE);
    return TECH_IDENTITY_PREFIX + b.toString('base64url');
  }

  toString(): string {
    return `TechIdentity(${this.keyIdHex}, ${HIDDEN})`;
  }

  toJSON(): string {
    return this.toString();
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}

export function parseTechIdentity(text: string): Decoded<TechIdentity, KeyStringError> {
  const raw = body(text, TECH_IDENTITY_PREFIX, KEY_ID_SIZE + ASYM_KEY_SIZE);
  return raw.ok ? ok(new TechIdentity(raw.value.readUInt32BE(0), raw.value.subarray(KEY_ID_SIZE))) : raw;
}

/** A new technician identity: random key id, Ed25519 seed from the kernel CSPRNG. */
export function generateTechIdentity(): TechIdentity {
  return new TechIdentity(randomBytes(KEY_ID_SIZE).readUInt32BE(0), generateEd25519().privateKey);
}

export function encodeDevicePublic(publicKey: Uint8Array): string {
  return DEVICE_PUBLIC_PREFIX + Buffer.from(publicKey).toString('base64url');
}

export function parseDevicePublic(text: string): Decoded<Buffer, KeyStringError> {
  return body(text, DEVICE_PUBLIC_PREFIX, ASYM_KEY_SIZE);
}

/** Short, human-comparable fingerprint of a device key: 5 groups of 4 hex digits. */
export function deviceFingerprint(publicKey: Uint8Array): string {
  const hex = createHash('sha256').update(publicKey).digest().subarray(0, FINGERPRINT_BYTES).toString('hex');
  return hex.match(/.{4}/g)?.join('-') ?? hex;
}
