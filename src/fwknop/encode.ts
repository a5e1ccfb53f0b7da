// SPDX-License-Identifier: MIT
// Sender side of fwknop 3.0.0 SPA (ref/fwknop.md §1 steps 1-7), for `postern open --fwknop`
// and for test vectors. Pure: the salt and the 16-digit random field come from the caller
// (crypto.randomBytes(8) and crypto.randomInt, §13.5), so vectors are reproducible.
// Invalid requests are programmer/config errors and throw RangeError; the caller's input is
// trusted here, unlike the decoder's.

import { createCipheriv } from 'node:crypto';
import { parseAddress, formatAddress } from '../wire/address.ts';
import {
  FWKNOP_PROTOCOL_VERSION, MAX_CLIENT_TIMEOUT, MAX_COMPAT_WIRE_LEN, MAX_MESSAGE_B64, MAX_NAT_B64, MAX_NAT_HOST_CHARS,
  MAX_PORT, MAX_TIMESTAMP_CHARS, MAX_USERNAME_B64, MAX_VERSION_CHARS, RANDOM_DIGITS, SALT_LEN, SALTED_MAGIC,
  SALTED_PREFIX_B64, hasNat, hasTimeout, type DigestType,
} from './constants.ts';
import { b64NoPad, digestText, validUsername, type FwknopAccess, type FwknopAccessType, type FwknopNat } from './fields.ts';
import { evpBytesToKey, type FwknopKey } from './keys.ts';

export interface FwknopRequest {
  readonly username: string;
  readonly timestampS: number;
  /** Defaults to "3.0.0". */
  readonly version?: string;
  readonly type: FwknopAccessType;
  /** Dotted IPv4; '0.0.0.0' asks the server to use the packet's source (client -s). */
  readonly allowIp: string;
  readonly access: readonly FwknopAccess[];
  /** Required for types 2, 4, 5, 6; refused otherwise. */
  readonly nat?: FwknopNat;
  /** Required for types 3, 4, 6; refused otherwise. */
  readonly clientTimeoutS?: number;
  /** Inner digest type; defaults to SHA-256 like the C client. */
  readonly digestType?: DigestType;
}

export interface FwknopRandomness {
  /** 8 random bytes (the OpenSSL salt). */
  readonly salt: Buffer;
  /** 16 random decimal digits. */
  readonly random16: string;
}

const RANDOM_FIELD = new RegExp(`^[0-9]{${RANDOM_DIGITS}}$`);
const VERSION_TEXT = /^[\x20-\x39\x3b-\x7e]+$/; // printable, no ':'
const NAT_HOST = /^[A-Za-z0-9._-]+$/;

function need(cond: boolean, what: string): void {
  if (!cond) throw new RangeError(`fwknop encode: ${what}`);
}

function validPort(p: number): boolean {
  return Number.isInteger(p) && p >= 1 && p <= MAX_PORT;
}

function fieldsOf(req: FwknopRequest, random16: string): string[] {
  need(RANDOM_FIELD.test(random16), 'random16 must be 16 decimal digits');
  need(validUsername(req.username), 'username has a forbidden character');
  const user = b64NoPad(Buffer.from(req.username, 'latin1'));
  need(user.length <= MAX_USERNAME_B64, 'username too long');
  need(Number.isSafeInteger(req.timestampS) && req.timestampS >= 0 && String(req.timestampS).length <= MAX_TIMESTAMP_CHARS, 'timestamp out of range');
  const version = req.version ?? FWKNOP_PROTOCOL_VERSION;
  need(version.length <= MAX_VERSION_CHARS && VERSION_TEXT.test(version), 'bad version text');
  const ip = parseAddress(req.allowIp);
  need(ip.ok && ip.value.family === 4 && formatAddress(ip.value) === req.allowIp, 'allowIp must be canonical dotted IPv4');
  need(req.access.length > 0 && req.access.every((a) => validPort(a.port) && (a.proto === 'tcp' || a.proto === 'udp')), 'bad access list');
  const message = b64NoPad([req.allowIp, ...req.access.map((a) => `${a.proto}/${a.port}`)].join(','));
  need(message.length <= MAX_MESSAGE_B64, 'too many ports for one message');
  const fields = [random16, user, String(req.timestampS), version, String(req.type), message];
  return [...fields, ...tailOf(req)];
}

function tailOf(req: FwknopRequest): string[] {
  const tail: string[] = [];
  need(hasNat(req.type) === (req.nat !== undefined), 'nat is required exactly for types 2, 4, 5, 6');
  if (req.nat !== undefined) {
    const { host, port } = req.nat;
    need(host.length <= MAX_NAT_HOST_CHARS && NAT_HOST.test(host) && validPort(port), 'bad nat target');
    const nat = b64NoPad(`${host},${port}`);
    need(nat.length <= MAX_NAT_B64, 'nat field too long');
    tail.push(nat);
  }
  need(hasTimeout(req.type) === (req.clientTimeoutS !== undefined), 'clientTimeoutS is required exactly for types 3, 4, 6');
  if (req.clientTimeoutS !== undefined) {
    const t = req.clientTimeoutS;
    need(Number.isInteger(t) && t >= 0 && t <= MAX_CLIENT_TIMEOUT, 'client timeout out of range');
    tail.push(String(t));
  }
  return tail;
}

/** The plaintext: fields joined by ':', then ':' + inner digest of everything before it (§1 steps 1-2). */
export function buildFwknopPlaintext(req: FwknopRequest, random16: string): string {
  const body = fieldsOf(req, random16).join(':');
  return `${body}:${digestText(req.digestType ?? 'sha256', body)}`;
}

/**
 * Encrypt and authenticate any plaintext (§1 steps 3-7): AES-256-CBC in an OpenSSL "Salted__"
 * container, base64 without '=', HMAC over that text, prefix cut, HMAC appended. No length
 * cap here (tests seal odd plaintexts); `encodeFwknop` applies the 400-char one.
 */
export function sealFwknopPlaintext(plaintext: string, key: FwknopKey, salt: Buffer): string {
  need(salt.length === SALT_LEN, 'salt must be 8 bytes');
  const { key: aesKey, iv } = evpBytesToKey(key.passphrase, salt);
  const c = createCipheriv('aes-256-cbc', aesKey, iv);
  const container = Buffer.concat([Buffer.from(SALTED_MAGIC, 'latin1'), salt, c.update(Buffer.from(plaintext, 'latin1')), c.final()]);
  const text = b64NoPad(container);
  const tag = b64NoPad(key.hmac.mac('', text));
  return text.slice(SALTED_PREFIX_B64.length) + tag;
}

/** The wire string of a request; throws RangeError at ≥ 400 chars, which C peers take for GPG (§8). */
export function encodeFwknop(req: FwknopRequest, key: FwknopKey, rng: FwknopRandomness): string {
  const wire = sealFwknopPlaintext(buildFwknopPlaintext(req, rng.random16), key, rng.salt);
  need(wire.length <= MAX_COMPAT_WIRE_LEN, `wire would be ${wire.length} chars; fwknopd takes ≥ 400 for GPG`);
  return wire;
}
