// SPDX-License-Identifier: MIT
// SPA v1 envelope: key id (4) || SIV tag (16) || AES-SIV ciphertext, with the key id as
// the associated data (DESIGN.md "SPA protocol v1", docs/protocol.md). The receive side
// is ordered cheapest rejection first (STYLE.md principle 3): length, then key id lookup,
// then the crypto. Nothing here throws on hostile input.

import { AesSiv, type PreparedSiv } from '../crypto/siv.ts';
import { HEADER_SIZE, KEY_ID_SIZE, MAX_PACKET, MIN_PACKET } from './constants.ts';
import type { Credential } from './credential.ts';
import { decodeMessage, encodeMessage, type MessageReason, type SpaMessage } from './message.ts';
import { fail, ok, type Decoded } from '../wire/result.ts';

/** A key ready for the hot path: its SIV state with the associated data precomputed. */
export interface SpaKey {
  readonly name: string;
  readonly keyId: number;
  readonly siv: PreparedSiv;
}

export function prepareKey(name: string, cred: Credential): SpaKey {
  return { name, keyId: cred.keyId, siv: new AesSiv(cred.revealSecret()).prepare([keyIdBytes(cred.keyId)]) };
}

export function keyIdBytes(keyId: number): Buffer {
  const b = Buffer.alloc(KEY_ID_SIZE);
  b.writeUInt32BE(keyId, 0);
  return b;
}

/** O(1) lookup by key id, built once per config load. */
export type KeyTable = ReadonlyMap<number, SpaKey>;

export function buildKeyTable(keys: readonly SpaKey[]): KeyTable {
  return new Map(keys.map((k) => [k.keyId, k]));
}

/** Seal a message for `key`. `padding` is random bytes from the caller (0..MAX_PADDING). */
export function sealPacket(key: SpaKey, msg: SpaMessage, padding: Uint8Array): Buffer {
  const { tag, ciphertext } = key.siv.seal(encodeMessage(msg, padding));
  const out = Buffer.alloc(HEADER_SIZE + ciphertext.length);
  out.writeUInt32BE(key.keyId, 0);
  tag.copy(out, KEY_ID_SIZE);
  ciphertext.copy(out, HEADER_SIZE);
  return out;
}

export type EnvelopeReason = 'too_short' | 'too_long' | 'unknown_key';
export type OpenReason = EnvelopeReason | 'bad_auth' | 'bad_payload';

export interface Envelope {
  readonly key: SpaKey;
  readonly tag: Buffer;
  readonly ciphertext: Buffer;
}

/** The pre-crypto checks: length bounds and key id. Subarrays, no copies. */
export function splitPacket(buf: Buffer, keys: KeyTable): Decoded<Envelope, EnvelopeReason> {
  if (buf.length < MIN_PACKET) return fail('too_short');
  if (buf.length > MAX_PACKET) return fail('too_long');
  const key = keys.get(buf.readUInt32BE(0));
  if (key === undefined) return fail('unknown_key');
  return ok({
    key,
    tag: buf.subarray(KEY_ID_SIZE, HEADER_SIZE),
    ciphertext: buf.subarray(HEADER_SIZE),
  });
}

export interface Opened {
  readonly key: SpaKey;
  readonly tag: Buffer;
  readonly message: SpaMessage;
  /** Why an authenticated plaintext failed to parse, if it did (client bug or version skew). */
  readonly detail?: MessageReason;
}

/** Authenticate and decode an envelope. */
export function openEnvelope(env: Envelope): Decoded<Opened, 'bad_auth' | 'bad_payload'> {
  const plaintext = env.key.siv.open(env.tag, env.ciphertext);
  if (plaintext === undefined) return fail('bad_auth');
  const msg = decodeMessage(plaintext);
  if (!msg.ok) return fail('bad_payload');
  return ok({ key: env.key, tag: Buffer.from(env.tag), message: msg.value });
}

/** Convenience for tools and tests: split, then open. */
export function openPacket(buf: Buffer, keys: KeyTable): Decoded<Opened, OpenReason> {
  const env = splitPacket(buf, keys);
  return env.ok ? openEnvelope(env.value) : env;
}

