// SPDX-License-Identifier: MIT
// AES-SIV (RFC 5297), the AEAD of postern SPA v1 (DESIGN.md "SPA protocol v1").
// Key = K1 (16 bytes, S2V via AES-CMAC) || K2 (16 bytes, AES-CTR), i.e. AEAD_AES_SIV_CMAC_256
// (RFC 5297 section 6.1). The AD of a packet (its key id) is fixed per key, so `prepare()`
// runs the AD part of S2V once; each packet then costs one CMAC plus one CTR pass.
//
// CTR is done with one persistent aes-128-ecb cipher per key that encrypts all counter
// blocks in a single `update()`: creating an aes-128-ctr cipher per packet (the IV changes
// every time) costs ~15 us on Node 24, an order of magnitude more than the whole open.

import { createCipheriv, type Cipheriv } from 'node:crypto';
import { AES_BLOCK_SIZE, Cmac, dbl, xorBlockInto } from './cmac.ts';
import { equalCT } from './ct.ts';

export const SIV_KEY_SIZE = 32;
export const SIV_TAG_SIZE = 16;
/** S2V takes at most 127 strings (RFC 5297 section 7); the plaintext is the last one. */
export const SIV_MAX_AD = 126;

const HALF_KEY = SIV_KEY_SIZE / 2;
// <one> = 0^127 || 1, the S2V input when there are no strings at all (section 2.4).
const ONE_BLOCK = Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1);
const ZERO_BLOCK = new Uint8Array(AES_BLOCK_SIZE);

export interface SivSealed {
  readonly tag: Buffer;
  readonly ciphertext: Buffer;
}

/** AES-SIV bound to one key and one fixed AD vector. */
export interface PreparedSiv {
  seal(plaintext: Uint8Array): SivSealed;
  /** The plaintext, or undefined if authentication failed. Never throws on any sizes. */
  open(tag: Uint8Array, ciphertext: Uint8Array): Buffer | undefined;
}

/** S2V state after the AD strings: D, and dbl(D) for a final string shorter than a block. */
interface S2vChain {
  readonly d: Buffer;
  readonly dd: Buffer;
}

/**
 * S2V chaining state after strings S1..Sk (section 2.4): D = CMAC(<zero>), then for each
 * string D = dbl(D) xor CMAC(Si).
 */
function s2vChain(mac: Cmac, strings: readonly Uint8Array[]): S2vChain {
  let d = mac.mac(ZERO_BLOCK);
  for (const s of strings) {
    d = dbl(d);
    xorBlockInto(d, 0, mac.mac(s));
  }
  return { d, dd: dbl(d) };
}

/** Last step of S2V over string Sn (section 2.4): xorend for len >= 128 bits, else dbl + pad. */
function s2vFinish(mac: Cmac, chain: S2vChain, last: Uint8Array): Buffer {
  if (last.length >= AES_BLOCK_SIZE) {
    const t = Buffer.from(last); // T = Sn xorend D
    xorBlockInto(t, t.length - AES_BLOCK_SIZE, chain.d);
    return mac.mac(t);
  }
  const t = Buffer.alloc(AES_BLOCK_SIZE); // T = dbl(D) xor pad(Sn)
  t.set(last);
  t[last.length] = 0x80;
  xorBlockInto(t, 0, chain.dd);
  return mac.mac(t);
}

/** S2V(K, S1, ..., Sn) of RFC 5297 section 2.4, including n = 0. */
export function s2v(mac: Cmac, strings: readonly Uint8Array[]): Buffer {
  const last = strings.at(-1);
  if (last === undefined) return mac.mac(ONE_BLOCK);
  return s2vFinish(mac, s2vChain(mac, strings.slice(0, -1)), last);
}

/** Big-endian +1 mod 2^128 of the block at `off`. The counter is public (from the tag). */
function incrementBlock(buf: Buffer, off: number): void {
  for (let i = off + AES_BLOCK_SIZE - 1; i >= off; i--) {
    buf[i] = (buf[i]! + 1) & 0xff;
    if (buf[i] !== 0) return;
  }
}

/**
 * AES-CTR keyed with K2 over `input` from the synthetic IV `v` (section 2.6): Q = V with the
 * 31st and 63rd bits from the right cleared, counter = Q + i mod 2^128, big-endian.
 */
function ctrXor(ecb: Cipheriv, v: Uint8Array, input: Uint8Array): Buffer {
  const n = Math.ceil(input.length / AES_BLOCK_SIZE);
  const counters = Buffer.alloc(n * AES_BLOCK_SIZE);
  if (n === 0) return counters;
  counters.set(v.subarray(0, AES_BLOCK_SIZE));
  counters[8]! &= 0x7f;
  counters[12]! &= 0x7f;
  for (let off = AES_BLOCK_SIZE; off < counters.length; off += AES_BLOCK_SIZE) {
    counters.copyWithin(off, off - AES_BLOCK_SIZE, off);
    incrementBlock(counters, off);
  }
  const stream = ecb.update(counters);
  for (let i = 0; i < input.length; i++) stream[i]! ^= input[i]!;
  stream.fill(0, input.length); // unused keystream stays out of the returned view's buffer
  return stream.subarray(0, input.length);
}

class PreparedAesSiv implements PreparedSiv {
  readonly #mac: Cmac;
  readonly #ecb: Cipheriv;
  readonly #chain: S2vChain;

  constructor(mac: Cmac, ecb: Cipheriv, chain: S2vChain) {
    this.#mac = mac;
    this.#ecb = ecb;
    this.#chain = chain;
  }

  // Section 2.6: V = S2V(K1, AD1..ADn, P); C = CTR(K2, Q, P).
  seal(plaintext: Uint8Array): SivSealed {
    const tag = s2vFinish(this.#mac, this.#chain, plaintext);
    return { tag, ciphertext: ctrXor(this.#ecb, tag, plaintext) };
  }

  // Section 2.7: decrypt with V, recompute T = S2V(K1, AD1..ADn, P), release P only if T = V.
  open(tag: Uint8Array, ciphertext: Uint8Array): Buffer | undefined {
    if (tag.length !== SIV_TAG_SIZE) return undefined;
    const plaintext = ctrXor(this.#ecb, tag, ciphertext);
    if (equalCT(s2vFinish(this.#mac, this.#chain, plaintext), tag)) return plaintext;
    plaintext.fill(0); // never let unauthenticated plaintext linger
    return undefined;
  }
}

/** AES-SIV with a 32-byte key; the AES key schedules are built once, here. */
export class AesSiv {
  readonly #mac: Cmac;
  readonly #ecb: Cipheriv;

  /** @throws RangeError unless `key` is 32 bytes (a programmer error, never wire input). */
  constructor(key: Uint8Array) {
    if (key.length !== SIV_KEY_SIZE) {
      throw new RangeError(`AES-SIV key must be ${SIV_KEY_SIZE} bytes, got ${key.length}`);
    }
    this.#mac = new Cmac(key.subarray(0, HALF_KEY));
    // ECB is stateless per block, so one cipher serves every packet; never finalised.
    this.#ecb = createCipheriv('aes-128-ecb', key.subarray(HALF_KEY), null);
    this.#ecb.setAutoPadding(false);
  }

  /** Precompute S2V over a fixed AD vector (at most SIV_MAX_AD strings, else RangeError). */
  prepare(ad: readonly Uint8Array[]): PreparedSiv {
    if (ad.length > SIV_MAX_AD) {
      throw new RangeError(`AES-SIV takes at most ${SIV_MAX_AD} AD strings, got ${ad.length}`);
    }
    return new PreparedAesSiv(this.#mac, this.#ecb, s2vChain(this.#mac, ad));
  }

  seal(ad: readonly Uint8Array[], plaintext: Uint8Array): SivSealed {
    return this.prepare(ad).seal(plaintext);
  }

  open(ad: readonly Uint8Array[], tag: Uint8Array, ciphertext: Uint8Array): Buffer | undefined {
    return this.prepare(ad).open(tag, ciphertext);
  }
}
