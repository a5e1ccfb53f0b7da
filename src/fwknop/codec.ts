// SPDX-License-Identifier: MIT
// Receiver side of fwknop 3.0.0 SPA (Rijndael + HMAC; ref/fwknop.md §1, §4, §5, §10 step 6).
// Pure: text in, typed message or named reason out (STYLE.md principles 1, 3, 5).
//
// Order, cheapest first; nothing is decrypted before the HMAC matches:
//   precheck (key-independent, O(1) then one scan)
//     too_short / too_long   140 ≤ length ≤ 1500 (fwknopd's capture bounds)
//     salted_prefix          starts with U2FsdGVkX1: a captured packet with the prefix put back
//                            would get a new replay digest for the same plaintext (§4)
//     bad_container          first char not 8, 9, + or /: after U2FsdGVkX1 it must finish the
//                            '_' of "Salted__" (§16.13), or no fwknop salt can be read
//     bad_chars              outside [A-Za-z0-9+/] ('=' is never sent: §3)
//   per key
//     bad_hmac               the ciphertext text (the last N chars cut, N from the key's HMAC
//                            type) cannot hold whole AES blocks, or the HMAC over U2FsdGVkX1 ‖
//                            text differs (compared as base64 text, in constant time). Both
//                            mean "not authenticated by this key": the caller tries the next.
//     bad_decrypt            EVP_BytesToKey + AES-256-CBC, then PKCS#7, 36..1499 bytes,
//                            "16 digits + ':'" and printable ASCII (a wrong passphrase with the
//                            right HMAC key lands here)
//     bad_digest             inner digest (length picks the type; SHA-2 then SHA-3)
//     bad_type / command_refused / bad_fields / unsupported_proto   field parse (fields.ts)
//
// fwknopd checks the digest before the fields too (lib/fko_decode.c). Unlike fwknopd we do not
// read a replay cache before the HMAC: the caller keys replay on `digest` after decoding.

import { createDecipheriv } from 'node:crypto';
import { equalCT } from '../crypto/ct.ts';
import { fail, type Decoded } from '../wire/result.ts';
import {
  AES_BLOCK_LEN, CONTAINER_HEADER_LEN, MAX_PLAINTEXT_LEN, MAX_WIRE_LEN, MIN_PLAINTEXT_LEN, MIN_WIRE_LEN,
  RANDOM_DIGITS, SALTED_MAGIC, SALTED_PREFIX_B64, type FwknopReason,
} from './constants.ts';
import { b64NoPad, checkDigest, parseFields, type FwknopDecoded } from './fields.ts';
import { evpBytesToKey, type FwknopKey } from './keys.ts';

export type { FwknopReason, HmacType, DigestType, FwknopType } from './constants.ts';
export { FWKNOP_REASONS } from './constants.ts';
export type { FwknopAccess, FwknopAccessType, FwknopDecoded, FwknopMessage, FwknopNat, FwknopRefusal } from './fields.ts';
export type { FwknopKey } from './keys.ts';

const B64_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const IS_B64 = new Uint8Array(256);
for (let i = 0; i < B64_ALPHABET.length; i++) IS_B64[B64_ALPHABET.charCodeAt(i)] = 1;
/** Base64 digits whose top 4 bits are 1111, the low nibble of '_' (0x5f). */
const FIRST_CHARS = '89+/';
const BITS_PER_CHAR = 6;
const BITS_PER_BYTE = 8;
const COLON = 0x3a;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const PRINTABLE_MIN = 0x20;
const PRINTABLE_MAX = 0x7e;

function charAt(payload: Buffer | string, i: number): number {
  return typeof payload === 'string' ? payload.charCodeAt(i) : (payload[i] ?? 0);
}

/**
 * Key-independent checks, for the key-selection loop: a payload failing these costs no HMAC.
 * Returns the payload as text (ASCII) for `decodePrechecked`.
 */
export function precheckFwknop(payload: Buffer | string): Decoded<string, FwknopReason> {
  const n = payload.length;
  if (n < MIN_WIRE_LEN) return fail('too_short');
  if (n > MAX_WIRE_LEN) return fail('too_long');
  let prefixed = true;
  for (let i = 0; i < SALTED_PREFIX_B64.length && prefixed; i++) prefixed = charAt(payload, i) === SALTED_PREFIX_B64.charCodeAt(i);
  if (prefixed) return fail('salted_prefix');
  if (!FIRST_CHARS.includes(String.fromCharCode(charAt(payload, 0)))) return fail('bad_container');
  for (let i = 0; i < n; i++) {
    const c = charAt(payload, i);
    if (c > 0xff || IS_B64[c] !== 1) return fail('bad_chars');
  }
  return { ok: true, value: typeof payload === 'string' ? payload : payload.toString('latin1') };
}

/** Precheck then decode with one key. */
export function decodeFwknop(payload: Buffer | string, key: FwknopKey): FwknopDecoded {
  const pre = precheckFwknop(payload);
  return pre.ok ? decodePrechecked(pre.value, key) : pre;
}

/** Decode text that passed `precheckFwknop` with one key. A refusal with a `timestampS`
 *  (FwknopRefusal) was authenticated and well formed: the caller records it as replayed. */
export function decodePrechecked(text: string, key: FwknopKey): FwknopDecoded {
  const bodyLen = text.length - key.hmac.tagChars;
  if (!wholeBlocks(SALTED_PREFIX_B64.length + bodyLen)) return fail('bad_hmac');
  const body = text.slice(0, bodyLen);
  const expected = Buffer.from(b64NoPad(key.hmac.mac(SALTED_PREFIX_B64, body)), 'latin1');
  if (!equalCT(expected, Buffer.from(text.slice(bodyLen), 'latin1'))) return fail('bad_hmac');
  const plaintext = decrypt(Buffer.from(SALTED_PREFIX_B64 + body, 'base64'), key.passphrase);
  if (plaintext === undefined) return fail('bad_decrypt');
  const digest = checkDigest(plaintext);
  if (!digest.ok) return digest;
  return parseFields(digest.value.body, digest.value.digest, digest.value.type);
}

/** True when `chars` unpadded base64 chars hold "Salted__" ‖ salt ‖ k·16 bytes, k ≥ 1. */
function wholeBlocks(chars: number): boolean {
  if (chars % 4 === 1) return false;
  const bytes = Math.floor((chars * BITS_PER_CHAR) / BITS_PER_BYTE);
  return bytes >= CONTAINER_HEADER_LEN + AES_BLOCK_LEN && (bytes - CONTAINER_HEADER_LEN) % AES_BLOCK_LEN === 0;
}

/** AES-256-CBC with the EVP_BytesToKey key and IV; undefined when the result is not a plausible plaintext. */
function decrypt(container: Buffer, passphrase: Buffer): string | undefined {
  if (container.toString('latin1', 0, SALTED_MAGIC.length) !== SALTED_MAGIC) return undefined;
  const { key, iv } = evpBytesToKey(passphrase, container.subarray(SALTED_MAGIC.length, CONTAINER_HEADER_LEN));
  const d = createDecipheriv('aes-256-cbc', key, iv).setAutoPadding(false);
  const padded = Buffer.concat([d.update(container.subarray(CONTAINER_HEADER_LEN)), d.final()]);
  const pt = unpad(padded);
  if (pt === undefined || pt.length < MIN_PLAINTEXT_LEN || pt.length > MAX_PLAINTEXT_LEN) return undefined;
  for (let i = 0; i < RANDOM_DIGITS; i++) {
    const c = pt[i] ?? 0;
    if (c < DIGIT_0 || c > DIGIT_9) return undefined;
  }
  if (pt[RANDOM_DIGITS] !== COLON) return undefined;
  for (let i = RANDOM_DIGITS + 1; i < pt.length; i++) {
    const c = pt[i] ?? 0;
    if (c < PRINTABLE_MIN || c > PRINTABLE_MAX) return undefined;
  }
  return pt.toString('latin1');
}

/** PKCS#7 (RFC 5652 §6.3): 1..16 bytes, each equal to the count. */
function unpad(padded: Buffer): Buffer | undefined {
  const p = padded[padded.length - 1] ?? 0;
  if (p < 1 || p > AES_BLOCK_LEN || p > padded.length) return undefined;
  for (let i = padded.length - p; i < padded.length; i++) if (padded[i] !== p) return undefined;
  return padded.subarray(0, padded.length - p);
}
