// SPDX-License-Identifier: MIT
// Time-derived knock sequences (docs/protocol.md "Time-derived knock sequences").
//
// A door key is 32 random bytes, written `postern-door1:` + base64url. AES-CMAC (RFC 4493,
// src/crypto/cmac.ts) takes a 16-byte key, so the door's CMAC key is derived once:
//   K = AES-CMAC(key[0..16), "postern-door-key" || key[16..32))
// which keeps every key bit in play. For each step and knock index i the port comes from
//   block(j) = AES-CMAC(K, u64be(step) || u8(i) || u8(j) || "postern-knock-v1"), j = 0, 1, ...
// read as four big-endian u32 candidates. A candidate is used only if it is below the
// largest multiple of the range size that fits in 2^32 (rejection sampling: no modulo
// bias), and the port it maps to is skipped if well-known (< 1024), in `avoid` (guard
// ports) or already earlier in this sequence. Pure: no clock, no I/O.

import { Cmac, CMAC_KEY_SIZE } from '../crypto/cmac.ts';
import { fail, ok, type Decoded } from '../wire/result.ts';

export const DOOR_KEY_PREFIX = 'postern-door1:';
export const DOOR_KEY_SIZE = 32;
/** base64url without padding of 32 bytes is exactly 43 characters. */
const DOOR_KEY_CHARS = 43;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const KEY_LABEL = Buffer.from('postern-door-key', 'ascii');
const KNOCK_LABEL = Buffer.from('postern-knock-v1', 'ascii');
/** u64be(step) || u8(i) || u8(j) || label. */
const STEP_SIZE = 8;
const MESSAGE_SIZE = STEP_SIZE + 1 + 1 + KNOCK_LABEL.length;
const CANDIDATE_SIZE = 4;
const TWO_POW_32 = 0x1_0000_0000;
/** Ports below this are well-known (IANA) and never part of a derived sequence. */
export const FIRST_UNPRIVILEGED_PORT = 1024;
export const MAX_PORT = 65535;
export const MAX_TOTP_LENGTH = 32;
/** j is one byte, so at most 256 blocks (1024 candidates) per knock index. */
const MAX_BLOCKS = 256;

/** A door key. Printing, JSON-encoding or inspecting it never shows the secret. */
export class TotpKey {
  readonly #raw: Buffer;
  #cmac: Cmac | undefined;

  /** @throws RangeError unless `raw` is 32 bytes (a programmer error: parse text with parseDoorKey). */
  constructor(raw: Uint8Array) {
    if (raw.length !== DOOR_KEY_SIZE) throw new RangeError(`door key must be ${DOOR_KEY_SIZE} bytes`);
    this.#raw = Buffer.from(raw);
  }

  /** The per-door CMAC state, derived on first use (constructors do no work, STYLE.md 13). */
  cmac(): Cmac {
    if (this.#cmac === undefined) {
      const outer = new Cmac(this.#raw.subarray(0, CMAC_KEY_SIZE));
      const k = outer.mac(Buffer.concat([KEY_LABEL, this.#raw.subarray(CMAC_KEY_SIZE)]));
      this.#cmac = new Cmac(k);
    }
    return this.#cmac;
  }

  encode(): string {
    return formatDoorKey(this.#raw);
  }

  toString(): string {
    return 'TotpKey((hidden))';
  }

  toJSON(): string {
    return this.toString();
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}

export type DoorKeyError = 'missing_prefix' | 'bad_characters' | 'bad_length';

export const DOOR_KEY_ERRORS: Record<DoorKeyError, string> = {
  missing_prefix: `a door key starts with "${DOOR_KEY_PREFIX}"`,
  bad_characters: 'a door key holds only base64url characters (A-Z a-z 0-9 - _) after the prefix',
  bad_length: `a door key holds exactly ${DOOR_KEY_CHARS} characters after the prefix (was it cut off?)`,
};

/** Parse `postern-door1:<base64url 32 bytes>`. Failures never echo the input: it is a secret. */
export function parseDoorKey(text: string): Decoded<TotpKey, DoorKeyError> {
  const trimmed = text.trim();
  if (!trimmed.startsWith(DOOR_KEY_PREFIX)) return fail('missing_prefix');
  const body = trimmed.slice(DOOR_KEY_PREFIX.length);
  if (!BASE64URL.test(body)) return fail('bad_characters');
  if (body.length !== DOOR_KEY_CHARS) return fail('bad_length');
  const raw = Buffer.from(body, 'base64url');
  // 43 chars carry 258 bits; a non-canonical last char would alias another key text.
  if (raw.length !== DOOR_KEY_SIZE || raw.toString('base64url') !== body) return fail('bad_length');
  return ok(new TotpKey(raw));
}

export function formatDoorKey(raw: Uint8Array): string {
  if (raw.length !== DOOR_KEY_SIZE) throw new RangeError(`door key must be ${DOOR_KEY_SIZE} bytes`);
  return DOOR_KEY_PREFIX + Buffer.from(raw).toString('base64url');
}

/** step = floor(unixSeconds / stepS), computed from milliseconds without rounding drift. */
export function currentStep(unixMs: number, stepS: number): number {
  return Math.floor(unixMs / (stepS * 1000));
}

export interface TotpOptions {
  readonly length: number;
  readonly portMin: number;
  readonly portMax: number;
  readonly avoid: ReadonlySet<number>;
}

/**
 * Why a range cannot carry a sequence, or undefined when it can. Config validation calls
 * this so deriveSequence never meets a bad range. At least a quarter of the range must stay
 * usable once `length - 1` ports are taken: each candidate then succeeds with probability
 * > 1/8, and 1024 candidates all failing has probability < 2^-190.
 */
export function totpRangeProblem(opts: TotpOptions): string | undefined {
  const { length, portMin, portMax } = opts;
  if (!Number.isInteger(length) || length < 1 || length > MAX_TOTP_LENGTH) return `length must be 1..${MAX_TOTP_LENGTH}`;
  if (!Number.isInteger(portMin) || !Number.isInteger(portMax)) return 'port_min and port_max must be integers';
  if (portMin < FIRST_UNPRIVILEGED_PORT || portMax > MAX_PORT) return `ports must be in ${FIRST_UNPRIVILEGED_PORT}..${MAX_PORT}`;
  if (portMin > portMax) return 'port_min must not exceed port_max';
  const size = portMax - portMin + 1;
  let usable = 0;
  for (let p = portMin; p <= portMax; p++) if (!opts.avoid.has(p)) usable++;
  if ((usable - (length - 1)) * 4 < size) {
    return `too few usable ports: ${usable} of ${size} in ${portMin}..${portMax} are not guarded; need a quarter of the range plus ${length - 1}`;
  }
  return undefined;
}

/** The message CMAC'd for knock index i, block j of a step (layout in the file header). */
export function knockBlockMessage(step: number, index: number, block: number): Buffer {
  const msg = Buffer.alloc(MESSAGE_SIZE);
  msg.writeBigUInt64BE(BigInt(step), 0);
  msg[STEP_SIZE] = index;
  msg[STEP_SIZE + 1] = block;
  KNOCK_LABEL.copy(msg, STEP_SIZE + 2);
  return msg;
}

/**
 * The ports of the sequence for `step`. Deterministic in (key, step, opts).
 * @throws RangeError on options that totpRangeProblem rejects (programmer error).
 */
export function deriveSequence(key: TotpKey, step: number, opts: TotpOptions): number[] {
  const problem = totpRangeProblem(opts);
  if (problem !== undefined) throw new RangeError(problem);
  if (!Number.isSafeInteger(step) || step < 0) throw new RangeError('step must be a non-negative safe integer');
  const ports: number[] = [];
  for (let i = 0; i < opts.length; i++) ports.push(derivePort(key.cmac(), step, i, { ...opts, used: ports }));
  return ports;
}

interface PortContext extends TotpOptions {
  readonly used: readonly number[];
}

function derivePort(mac: Cmac, step: number, index: number, ctx: PortContext): number {
  const size = ctx.portMax - ctx.portMin + 1;
  // Largest multiple of `size` not above 2^32: candidates at or above it are rejected.
  const limit = TWO_POW_32 - (TWO_POW_32 % size);
  for (let j = 0; j < MAX_BLOCKS; j++) {
    const block = mac.mac(knockBlockMessage(step, index, j));
    for (let off = 0; off + CANDIDATE_SIZE <= block.length; off += CANDIDATE_SIZE) {
      const v = block.readUInt32BE(off);
      if (v >= limit) continue;
      const port = ctx.portMin + (v % size);
      if (port < FIRST_UNPRIVILEGED_PORT || ctx.avoid.has(port) || ctx.used.includes(port)) continue;
      return port;
    }
  }
  // Unreachable for ranges totpRangeProblem accepts (probability < 2^-190, see there).
  throw new RangeError('no usable port found for a derived knock');
}
