// SPDX-License-Identifier: MIT
// AES-CMAC (RFC 4493) with per-key state kept for the life of the key.
//
// Why not node-aes-cmac on the hot path (DESIGN.md fact 5): it builds a fresh cipher for
// every 16-byte block. Why not one `createCipheriv('aes-128-cbc')` per message either: on
// Node 24 / OpenSSL 3 creating a cipher costs ~15 us by itself. So each Cmac owns ONE
// aes-128-cbc cipher, created in the constructor and never finalised, and each message is
// one `update()` call over the prepared blocks (~1 us for 64 bytes; figures in
// test/bench/crypto-bench.ts). CBC carries its chaining value across `update()` calls; we
// remember that value (the last ciphertext block, i.e. the previous tag) and XOR it into
// the first block of the next message, which cancels it: the pass then computes exactly
// the zero-IV CBC-MAC of RFC 4493 section 2.4 steps 5-6.

import { createCipheriv, type Cipheriv } from 'node:crypto';

export const AES_BLOCK_SIZE = 16;
export const CMAC_KEY_SIZE = 16;
export const CMAC_TAG_SIZE = 16;

// R_128 = 0^120 || 10000111 (RFC 4493 section 2.3; RFC 5297 section 2.3 calls it dbl).
const RB = 0x87;
const ZERO_BLOCK = new Uint8Array(AES_BLOCK_SIZE);

/** dst[offset .. offset+16) ^= src[0 .. 16). Callers guarantee both ranges exist. */
export function xorBlockInto(dst: Uint8Array, offset: number, src: Uint8Array): void {
  for (let i = 0; i < AES_BLOCK_SIZE; i++) dst[offset + i]! ^= src[i]!;
}

/**
 * dbl(S): multiplication by x in GF(2^128), i.e. shift left one bit and, if the dropped
 * bit was 1, XOR R_128 into the last byte (RFC 5297 section 2.3; the same operation makes
 * K1 and K2 in RFC 4493 section 2.3). Branch-free on the secret top bit.
 */
export function dbl(block: Uint8Array): Buffer {
  const out = Buffer.alloc(AES_BLOCK_SIZE);
  const carry = block[0]! >> 7;
  for (let i = 0; i < AES_BLOCK_SIZE - 1; i++) out[i] = (block[i]! << 1) | (block[i + 1]! >> 7);
  out[AES_BLOCK_SIZE - 1] = (block[AES_BLOCK_SIZE - 1]! << 1) ^ (-carry & RB);
  return out;
}

/** AES-CMAC with subkeys K1, K2 and the AES key schedule computed once per key. */
export class Cmac {
  readonly #cbc: Cipheriv;
  readonly #k1: Buffer;
  readonly #k2: Buffer;
  // The CBC cipher's current chaining value: all zero right after creation.
  readonly #chain = Buffer.alloc(AES_BLOCK_SIZE);

  /** @throws RangeError unless `key` is 16 bytes (a programmer error, never wire input). */
  constructor(key: Uint8Array) {
    if (key.length !== CMAC_KEY_SIZE) {
      throw new RangeError(`AES-CMAC key must be ${CMAC_KEY_SIZE} bytes, got ${key.length}`);
    }
    this.#cbc = createCipheriv('aes-128-cbc', key, ZERO_BLOCK);
    this.#cbc.setAutoPadding(false);
    // RFC 4493 section 2.3 step 1: L = AES-128(K, const_Zero). With a zero chain this
    // first update is exactly that, and it leaves L as the chaining value.
    const l = this.#cbc.update(ZERO_BLOCK);
    this.#chain.set(l);
    this.#k1 = dbl(l); // step 2
    this.#k2 = dbl(this.#k1); // step 3
  }

  /** The 16-byte AES-CMAC tag of `msg` (any length, including 0). */
  mac(msg: Uint8Array): Buffer {
    const blocks = this.#prepareBlocks(msg);
    xorBlockInto(blocks, 0, this.#chain);
    const out = this.#cbc.update(blocks);
    const tag = out.subarray(out.length - AES_BLOCK_SIZE);
    this.#chain.set(tag);
    return tag;
  }

  // RFC 4493 section 2.4 steps 2-4: n = max(1, ceil(len/16)) blocks; a complete last block
  // is XORed with K1, an incomplete one is padded with 10^i and XORed with K2.
  #prepareBlocks(msg: Uint8Array): Buffer {
    const n = Math.max(1, Math.ceil(msg.length / AES_BLOCK_SIZE));
    const blocks = Buffer.alloc(n * AES_BLOCK_SIZE);
    blocks.set(msg);
    const complete = msg.length > 0 && msg.length % AES_BLOCK_SIZE === 0;
    if (!complete) blocks[msg.length] = 0x80;
    const subkey = complete ? this.#k1 : this.#k2;
    xorBlockInto(blocks, blocks.length - AES_BLOCK_SIZE, subkey);
    return blocks;
  }
}

/** One-shot AES-CMAC; builds the per-key state each call, so keep a Cmac on hot paths. */
export function cmac(key: Uint8Array, msg: Uint8Array): Buffer {
  return new Cmac(key).mac(msg);
}
