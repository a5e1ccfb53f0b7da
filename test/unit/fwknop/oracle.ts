// SPDX-License-Identifier: MIT
// An independent fwknop implementation for tests, built only from node:crypto's createHmac,
// createHash and createCipheriv/createDecipheriv (no code shared with src/fwknop), plus the
// vector file. Used as the oracle for the codec and to craft authenticated fixtures whose
// plaintext or padding is deliberately wrong.

import { createCipheriv, createDecipheriv, createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { HmacType } from '../../../src/fwknop/constants.ts';

const PREFIX = 'U2FsdGVkX1';
const NODE_ALG: Record<HmacType, string> = {
  md5: 'md5', sha1: 'sha1', sha256: 'sha256', sha384: 'sha384', sha512: 'sha512', sha3_256: 'sha3-256', sha3_512: 'sha3-512',
};

export const strip = (b64: string): string => b64.replace(/=+$/, '');

export function digestOf(alg: HmacType, body: string): string {
  return strip(createHash(NODE_ALG[alg]).update(body, 'latin1').digest('base64'));
}

/** body ‖ ':' ‖ digest(body): a plaintext whose inner digest is right. */
export function withDigest(body: string, alg: HmacType = 'sha256'): string {
  return `${body}:${digestOf(alg, body)}`;
}

function evp(pass: Buffer, salt: Buffer): { key: Buffer; iv: Buffer } {
  let prev = Buffer.alloc(0);
  const out: Buffer[] = [];
  for (let i = 0; i < 3; i++) {
    prev = createHash('md5').update(prev).update(pass).update(salt).digest();
    out.push(prev);
  }
  return { key: Buffer.concat(out.slice(0, 2)), iv: out[2] as Buffer };
}

export function oracleKeyIv(pass: Buffer, salt: Buffer): { key: Buffer; iv: Buffer } {
  return evp(pass, salt);
}

export function oracleHmac(alg: HmacType, hmacKey: Buffer, text: string): string {
  return strip(createHmac(NODE_ALG[alg], hmacKey).update(text, 'latin1').digest('base64'));
}

export interface OracleKeys {
  readonly key: Buffer;
  readonly hmacKey: Buffer;
  readonly hmacType: HmacType;
}

/**
 * Seal raw plaintext bytes. With `padded` the bytes are encrypted as given (their length must
 * be a multiple of 16) so a test can plant bad PKCS#7 padding.
 */
export function oracleSeal(plain: Buffer | string, k: OracleKeys, salt: Buffer, padded = false): string {
  const bytes = typeof plain === 'string' ? Buffer.from(plain, 'latin1') : plain;
  const { key, iv } = evp(k.key, salt);
  const c = createCipheriv('aes-256-cbc', key, iv).setAutoPadding(!padded);
  const text = strip(Buffer.concat([Buffer.from('Salted__'), salt, c.update(bytes), c.final()]).toString('base64'));
  return text.slice(PREFIX.length) + oracleHmac(k.hmacType, k.hmacKey, text);
}

/** Verify and decrypt a wire string; undefined when the HMAC or padding is wrong. */
export function oracleOpen(wire: string, k: OracleKeys): string | undefined {
  const n = oracleHmac(k.hmacType, k.hmacKey, '').length;
  const body = wire.slice(0, wire.length - n);
  if (oracleHmac(k.hmacType, k.hmacKey, PREFIX + body) !== wire.slice(wire.length - n)) return undefined;
  const container = Buffer.from(PREFIX + body, 'base64');
  if (container.subarray(0, 8).toString('latin1') !== 'Salted__') return undefined;
  const { key, iv } = evp(k.key, container.subarray(8, 16));
  try {
    const d = createDecipheriv('aes-256-cbc', key, iv);
    return Buffer.concat([d.update(container.subarray(16)), d.final()]).toString('latin1');
  } catch {
    return undefined;
  }
}

export interface ReferenceVector {
  readonly name: string;
  readonly keyBase64: string;
  readonly hmacKeyBase64: string;
  readonly hmacType: HmacType;
  readonly saltHex: string;
  readonly request: Record<string, unknown>;
  readonly random16: string;
  readonly plaintext: string;
  readonly aesKeyHex: string;
  readonly aesIvHex: string;
  readonly hmac: string;
  readonly wire: string;
}

export interface ClientVector {
  readonly name: string;
  readonly client: string;
  readonly keyBase64: string;
  readonly hmacKeyBase64: string;
  readonly hmacType: HmacType;
  readonly wire: string;
  readonly plaintext: string;
  readonly expected?: Record<string, unknown>;
  readonly reason?: string;
}

export const VECTORS = JSON.parse(readFileSync(new URL('../../vectors/fwknop.json', import.meta.url), 'utf8')) as {
  readonly reference: readonly ReferenceVector[];
  readonly client: readonly ClientVector[];
};

export function keysOf(v: { keyBase64: string; hmacKeyBase64: string; hmacType: HmacType }): OracleKeys {
  return { key: Buffer.from(v.keyBase64, 'base64'), hmacKey: Buffer.from(v.hmacKeyBase64, 'base64'), hmacType: v.hmacType };
}
