// SPDX-License-Identifier: MIT
// Per-stanza key material for fwknop packets, prepared once so the per-packet work is as small
// as possible (ref/fwknop.md §4-§6).
//
// HMAC (RFC 2104): the key is padded (or hashed, when longer than the block) once, and the
// ipad/opad blocks are kept. Per message we run two one-shot hashes over ipad‖msg and
// opad‖inner. Measured on Node 24 for a 192-char message: createHmac ~16 µs, hash.copy()
// ~4.4 µs, one-shot crypto.hash ~3.8 µs; createHmac stays the test oracle.
//
// AES key and IV: OpenSSL EVP_BytesToKey with MD5 and one round over passphrase ‖ salt (§4).
// The salt is per packet, so this runs once per authenticated packet.

import { hash } from 'node:crypto';
import { AES_BLOCK_LEN, AES_KEY_LEN, HASHES, MAX_HMAC_KEY_LEN, MAX_PASSPHRASE_LEN, SALT_LEN, type HmacType } from './constants.ts';

const IPAD = 0x36;
const OPAD = 0x5c;

export interface PreparedHmac {
  readonly type: HmacType;
  /** Length of the base64 tag text on the wire ('=' stripped). */
  readonly tagChars: number;
  /** HMAC over head ‖ body (latin1 text), as raw bytes. */
  mac(head: string, body: string): Buffer;
}

export interface FwknopKey {
  /** Rijndael passphrase: raw KEY bytes or decoded KEY_BASE64, 1..32 bytes (§4). */
  readonly passphrase: Buffer;
  readonly hmac: PreparedHmac;
  readonly hmacType: HmacType;
}

export function prepareHmac(type: HmacType, key: Buffer): PreparedHmac {
  const spec = HASHES[type];
  if (key.length === 0 || key.length > MAX_HMAC_KEY_LEN) throw new RangeError(`HMAC key must be 1..${MAX_HMAC_KEY_LEN} bytes`);
  const k = key.length > spec.block ? hash(spec.alg, key, 'buffer') : key;
  const ipad = Buffer.alloc(spec.block, IPAD);
  const opad = Buffer.alloc(spec.block, OPAD);
  for (let i = 0; i < k.length; i++) {
    ipad[i] = IPAD ^ (k[i] ?? 0);
    opad[i] = OPAD ^ (k[i] ?? 0);
  }
  const alg = spec.alg;
  return {
    type,
    tagChars: spec.b64Chars,
    mac(head: string, body: string): Buffer {
      const inner = hash(alg, Buffer.concat([ipad, Buffer.from(head, 'latin1'), Buffer.from(body, 'latin1')]), 'buffer');
      return hash(alg, Buffer.concat([opad, inner]), 'buffer');
    },
  };
}

/**
 * Programmer errors throw RangeError: an empty or over-long passphrase (libfko refuses > 32
 * bytes), an empty HMAC key, or an HMAC key equal to the encryption key (fwknopd refuses such
 * an access.conf stanza, §5).
 */
export function prepareFwknopKey(opts: { readonly key: Buffer; readonly hmacKey: Buffer; readonly hmacType: HmacType }): FwknopKey {
  if (opts.key.length === 0 || opts.key.length > MAX_PASSPHRASE_LEN) throw new RangeError(`fwknop key must be 1..${MAX_PASSPHRASE_LEN} bytes`);
  if (opts.hmacKey.equals(opts.key)) throw new RangeError('fwknop HMAC key must differ from the encryption key');
  return { passphrase: Buffer.from(opts.key), hmac: prepareHmac(opts.hmacType, opts.hmacKey), hmacType: opts.hmacType };
}

export interface AesKeyIv {
  readonly key: Buffer;
  readonly iv: Buffer;
}

/** EVP_BytesToKey(MD5, 1 round): D1 = MD5(p‖s), Di = MD5(Di-1‖p‖s); key = D1‖D2, IV = D3 (§4). */
export function evpBytesToKey(passphrase: Buffer, salt: Buffer): AesKeyIv {
  if (salt.length !== SALT_LEN) throw new RangeError(`salt must be ${SALT_LEN} bytes`);
  const ps = Buffer.concat([passphrase, salt]);
  const d1 = hash('md5', ps, 'buffer');
  const d2 = hash('md5', Buffer.concat([d1, ps]), 'buffer');
  const d3 = hash('md5', Buffer.concat([d2, ps]), 'buffer');
  const key = Buffer.concat([d1, d2]);
  if (key.length !== AES_KEY_LEN || d3.length !== AES_BLOCK_LEN) throw new RangeError('MD5 output size');
  return { key, iv: d3 };
}
