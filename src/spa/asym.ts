// SPDX-License-Identifier: MIT
// The asymmetric message class (issue 10; docs/protocol.md "Asymmetric message class"). A
// technician signs with Ed25519; the request is encrypted to the device's own X25519 key:
//
//   wire   = key id (4) || E (32) || hint (4) || V (16) || C
//   E      = ephemeral X25519 public key; bit 255 random (RFC 7748 section 5: the receiver masks it)
//   hint   = SHA-256(HINT_LABEL || D || key id || E)[0..4], D = the device's X25519 public key
//   K      = HKDF-SHA-256(ikm = X25519(e, D), salt = E || D, info = KDF_LABEL || key id, 32)
//   V, C   = AES-SIV(K, AD = [key id || E || hint], P)   (RFC 5297, as the symmetric class)
//   P      = S (64) || M, M = the symmetric class's plaintext (message + padding)
//   S      = Ed25519(technician, SIG_LABEL || D || E || M)
//
// The signature covers D and E, so a packet cannot be redirected to another device or
// re-wrapped under a new ephemeral key. The hint is a cheap (one SHA-256), public-data check
// that the packet was made for this device: it runs before any public-key operation, and a
// packet made for another device is refused as wrong_device without X25519. Pure: no I/O.

import { createHash, randomBytes, type KeyObject } from 'node:crypto';
import { ed25519Sign, ed25519Verify, generateX25519, hkdfSha256, rawPublicKey, x25519, x25519PrivateKey, x25519PublicKey } from '../crypto/asym.ts';
import { AesSiv } from '../crypto/siv.ts';
import { equalCT } from '../crypto/ct.ts';
import {
  ASYM_EPHEMERAL_OFFSET, ASYM_HEADER_SIZE, ASYM_HINT_OFFSET, ASYM_HINT_SIZE, ASYM_TAG_OFFSET,
  KEY_ID_SIZE, MAX_PACKET, MIN_ASYM_PACKET, SECRET_SIZE, SIGNATURE_SIZE,
} from './constants.ts';
import type { TechIdentity, TechPublicKey } from './asym-keys.ts';
import { decodeMessage, encodeMessage, type SpaMessage } from './message.ts';
import { fail, ok, type Decoded } from '../wire/result.ts';

const HINT_LABEL = Buffer.from('postern asym v1 hint');
const KDF_LABEL = Buffer.from('postern asym v1 key');
const SIG_LABEL = Buffer.from('postern asym v1 sig');

/** The device's X25519 key, loaded once (the daemon reads it from state.device_key). */
export interface DeviceKey {
  readonly privateKey: KeyObject;
  readonly publicKey: Buffer;
}

export function deviceKeyFromRaw(privateKey: Uint8Array, publicKey: Uint8Array): DeviceKey {
  return { privateKey: x25519PrivateKey(privateKey), publicKey: Buffer.from(publicKey) };
}

export function deviceHint(device: Uint8Array, keyId: Uint8Array, ephemeral: Uint8Array): Buffer {
  return createHash('sha256').update(HINT_LABEL).update(device).update(keyId).update(ephemeral).digest().subarray(0, ASYM_HINT_SIZE);
}

function sessionSiv(shared: Uint8Array, header: Buffer, device: Uint8Array): AesSiv {
  const keyId = header.subarray(0, KEY_ID_SIZE);
  const ephemeral = header.subarray(ASYM_EPHEMERAL_OFFSET, ASYM_HINT_OFFSET);
  return new AesSiv(hkdfSha256(shared, Buffer.concat([ephemeral, device]), Buffer.concat([KDF_LABEL, keyId]), SECRET_SIZE));
}

function signedBytes(device: Uint8Array, ephemeral: Uint8Array, message: Uint8Array): Buffer {
  return Buffer.concat([SIG_LABEL, device, ephemeral, message]);
}

export interface AsymSealInput {
  readonly identity: TechIdentity;
  readonly device: Uint8Array;
  readonly message: SpaMessage;
  readonly padding: Uint8Array;
  /** For vectors and tests: a fixed ephemeral private key and bit-255 choice. Default: fresh. */
  readonly ephemeral?: { readonly privateKey: Uint8Array; readonly topBit: 0 | 1 };
}

/** Build one asymmetric packet. Throws only on programmer error (bad message fields, bad device key). */
export function sealAsym(input: AsymSealInput): Buffer {
  const eph = input.ephemeral ?? { privateKey: generateX25519().privateKey, topBit: ((randomBytes(1)[0] ?? 0) & 1) as 0 | 1 };
  const ephKey = x25519PrivateKey(eph.privateKey);
  const devicePub = x25519PublicKey(input.device);
  const shared = devicePub && x25519(ephKey, devicePub);
  if (!shared) throw new RangeError('device public key is not usable for X25519');
  const header = Buffer.alloc(ASYM_TAG_OFFSET);
  header.writeUInt32BE(input.identity.keyId, 0);
  const e = ephemeralBytes(ephKey, eph.topBit);
  e.copy(header, ASYM_EPHEMERAL_OFFSET);
  deviceHint(input.device, header.subarray(0, KEY_ID_SIZE), e).copy(header, ASYM_HINT_OFFSET);
  const m = encodeMessage(input.message, input.padding);
  const s = ed25519Sign(input.identity.signKey, signedBytes(input.device, e, m));
  const { tag, ciphertext } = sessionSiv(shared, header, input.device).seal([header], Buffer.concat([s, m]));
  return Buffer.concat([header, tag, ciphertext]);
}

/** E with bit 255 set to `topBit`: X25519 public keys are < 2^255, so without this the
 *  last wire byte of E would always be below 0x80 (RFC 7748 section 5 masks it on receipt). */
function ephemeralBytes(key: KeyObject, topBit: 0 | 1): Buffer {
  const pub = rawPublicKey(key);
  pub[31] = (pub[31]! & 0x7f) | (topBit << 7);
  return pub;
}

export type AsymPrefilterReason = 'too_short' | 'too_long' | 'wrong_device';

export interface AsymEnvelope {
  readonly header: Buffer;
  readonly ephemeral: Buffer;
  readonly tag: Buffer;
  readonly ciphertext: Buffer;
}

/** The cheap checks, before any public-key operation: length, then the device hint. The
 *  caller has already found the key id among the technician keys. */
export function prefilterAsym(buf: Buffer, device: DeviceKey): Decoded<AsymEnvelope, AsymPrefilterReason> {
  if (buf.length < MIN_ASYM_PACKET) return fail('too_short');
  if (buf.length > MAX_PACKET) return fail('too_long');
  const ephemeral = buf.subarray(ASYM_EPHEMERAL_OFFSET, ASYM_HINT_OFFSET);
  const hint = deviceHint(device.publicKey, buf.subarray(0, KEY_ID_SIZE), ephemeral);
  if (!equalCT(hint, buf.subarray(ASYM_HINT_OFFSET, ASYM_TAG_OFFSET))) return fail('wrong_device');
  return ok({ header: buf.subarray(0, ASYM_TAG_OFFSET), ephemeral, tag: buf.subarray(ASYM_TAG_OFFSET, ASYM_HEADER_SIZE), ciphertext: buf.subarray(ASYM_HEADER_SIZE) });
}

export type AsymOpenReason = 'bad_auth' | 'bad_signature' | 'bad_payload';

/** X25519 + HKDF + AES-SIV, then the Ed25519 signature, then the plaintext. */
export function openAsym(env: AsymEnvelope, tech: TechPublicKey, device: DeviceKey): Decoded<SpaMessage, AsymOpenReason> {
  const ephPub = x25519PublicKey(env.ephemeral);
  const shared = ephPub && x25519(device.privateKey, ephPub);
  if (!shared) return fail('bad_auth');
  const p = sessionSiv(shared, env.header, device.publicKey).open([env.header], env.tag, env.ciphertext);
  if (p === undefined) return fail('bad_auth');
  const m = p.subarray(SIGNATURE_SIZE);
  if (!ed25519Verify(tech.verifyKey, signedBytes(device.publicKey, env.ephemeral, m), p.subarray(0, SIGNATURE_SIZE))) return fail('bad_signature');
  const msg = decodeMessage(m);
  return msg.ok ? msg : fail('bad_payload');
}
