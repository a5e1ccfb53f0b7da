// SPDX-License-Identifier: MIT
// The fwknop plaintext grammar (ref/fwknop.md §2, §7): parse an authenticated, decrypted
// plaintext into a typed message, and build one for the encoder. Stricter than libfko where
// that costs real clients nothing: exact field counts per type, canonical IPv4 allow address,
// ports and timeouts in range, no empty fields.

import { hash } from 'node:crypto';
import { equalCT } from '../crypto/ct.ts';
import { parseAddress } from '../wire/address.ts';
import { fail, ok, type Decoded } from '../wire/result.ts';
import {
  DIGEST_BY_LENGTH, HASHES, MANDATORY_FIELDS, MAX_CLIENT_TIMEOUT, MAX_CLIENT_TIMEOUT_CHARS, MAX_MESSAGE_B64,
  MAX_MSG_TYPE, MAX_NAT_B64, MAX_NAT_HOST_CHARS, MAX_PORT, MAX_SERVER_AUTH_B64, MAX_TIMESTAMP_CHARS,
  MAX_TYPE_CHARS, MAX_USERNAME_B64, MAX_VERSION_CHARS, MSG_COMMAND, hasNat, hasTimeout,
  type DigestType, type FwknopReason,
} from './constants.ts';

export type AccessProto = 'tcp' | 'udp';
export type FwknopAccessType = 1 | 2 | 3 | 4 | 5 | 6;

export interface FwknopAccess {
  readonly proto: AccessProto;
  readonly port: number;
}

export interface FwknopNat {
  /** IPv4 text or a host name ([A-Za-z0-9._-], ≤ 70 chars); policy decides what it accepts. */
  readonly host: string;
  readonly port: number;
}

export interface FwknopMessage {
  /** The 16-digit random field. */
  readonly random: string;
  readonly username: string;
  readonly timestampS: number;
  /** Field 4 as sent (normally "3.0.0"); not checked, like fwknopd. */
  readonly version: string;
  /** Type 0 (command) never decodes: it is refused with `command_refused`. */
  readonly type: FwknopAccessType;
  /** Canonical dotted IPv4; '0.0.0.0' means "use the packet's source address". */
  readonly allowIp: string;
  readonly access: readonly FwknopAccess[];
  readonly nat?: FwknopNat;
  readonly clientTimeoutS?: number;
  readonly digestType: DigestType;
  /** The inner digest text: identical for every encryption of one plaintext, so a replay key. */
  readonly digest: string;
}

const B64_TEXT = /^[A-Za-z0-9+/]+$/;
const DIGITS = /^[0-9]+$/;
const PROTO_PORT = /^(tcp|udp|icmp|none)\/([0-9]{1,5})$/;
const NAT_HOST = /^[A-Za-z0-9._-]+$/;
/** fko_user.c validate_username(): printable ASCII minus " / \ [ ] : ; | = , + * ? < > (§2). */
const USERNAME = /^[\x20-\x7e]+$/;
const USERNAME_FORBIDDEN = /["/\\[\]:;|=,+*?<>]/;
const B64_QUANTUM = 4;
const B64_BAD_REMAINDER = 1;

/** base64 with '=' stripped, as every fwknop field is sent (§3). */
export function b64NoPad(data: Buffer | string): string {
  const s = typeof data === 'string' ? Buffer.from(data, 'latin1').toString('base64') : data.toString('base64');
  const eq = s.indexOf('=');
  return eq === -1 ? s : s.slice(0, eq);
}

/** Strict unpadded base64 decode; undefined on any character outside the alphabet (§13.2). */
export function b64Strict(text: string, maxChars: number): string | undefined {
  if (text.length === 0 || text.length > maxChars || text.length % B64_QUANTUM === B64_BAD_REMAINDER) return undefined;
  if (!B64_TEXT.test(text)) return undefined;
  return Buffer.from(text, 'base64').toString('latin1');
}

/** Digest text of `body` for one type: base64, '=' stripped. */
export function digestText(type: DigestType, body: string): string {
  return b64NoPad(hash(HASHES[type].alg, Buffer.from(body, 'latin1'), 'buffer'));
}

/** The digest after the last ':' must match the fields before it; SHA-2 first, then SHA-3 (§2). */
export function checkDigest(plaintext: string): Decoded<{ body: string; digest: string; type: DigestType }, FwknopReason> {
  const cut = plaintext.lastIndexOf(':');
  if (cut < 0) return fail('bad_digest');
  const digest = plaintext.slice(cut + 1);
  const body = plaintext.slice(0, cut);
  const candidates = DIGEST_BY_LENGTH.get(digest.length);
  if (candidates === undefined) return fail('bad_digest');
  const got = Buffer.from(digest, 'latin1');
  for (const type of candidates) {
    if (equalCT(Buffer.from(digestText(type, body), 'latin1'), got)) return ok({ body, digest, type });
  }
  return fail('bad_digest');
}

const MAX_PORT_CHARS = 5;

function parsePort(text: string): number | undefined {
  if (text.length > MAX_PORT_CHARS || !DIGITS.test(text)) return undefined;
  const n = Number(text);
  return n >= 1 && n <= MAX_PORT ? n : undefined;
}

/** "<allow-IPv4>,<proto>/<port>[,…]" (§2 field 6; lib/fko_message.c validate_access_msg). */
function parseAccessMessage(text: string): Decoded<{ allowIp: string; access: FwknopAccess[] }, FwknopReason> {
  const parts = text.split(',');
  const ip = parseAddress(parts[0] ?? '');
  if (!ip.ok || ip.value.family !== 4 || parts.length < 2) return fail('bad_fields');
  const access: FwknopAccess[] = [];
  let unsupported = false;
  for (let i = 1; i < parts.length; i++) {
    const m = PROTO_PORT.exec(parts[i] ?? '');
    if (m === null) return fail('bad_fields');
    if (m[1] === 'icmp' || m[1] === 'none') { unsupported = true; continue; }
    const port = parsePort(m[2] ?? '');
    if (port === undefined) return fail('bad_fields');
    access.push({ proto: m[1] === 'tcp' ? 'tcp' : 'udp', port });
  }
  if (unsupported) return fail('unsupported_proto');
  return ok({ allowIp: parts[0] ?? '', access });
}

/** "<host-or-IPv4>,<port>", exactly one comma (§2 field 7). */
function parseNat(text: string): FwknopNat | undefined {
  const comma = text.indexOf(',');
  if (comma < 1 || comma !== text.lastIndexOf(',')) return undefined;
  const host = text.slice(0, comma);
  const port = parsePort(text.slice(comma + 1));
  if (host.length > MAX_NAT_HOST_CHARS || !NAT_HOST.test(host) || port === undefined) return undefined;
  return { host, port };
}

export function validUsername(name: string): boolean {
  return USERNAME.test(name) && !USERNAME_FORBIDDEN.test(name);
}

function parseUsername(text: string): string | undefined {
  const name = b64Strict(text, MAX_USERNAME_B64);
  return name !== undefined && validUsername(name) ? name : undefined;
}

/** Message type from field 5: digits that are not 0..6 are `bad_type`; anything else `bad_fields`. */
function parseType(text: string): Decoded<number, FwknopReason> {
  if (text.length > MAX_TYPE_CHARS || !DIGITS.test(text)) return fail('bad_fields');
  const t = Number(text);
  return t > MAX_MSG_TYPE ? fail('bad_type') : ok(t);
}

/**
 * A well-formed, authenticated request that postern refuses by design (a command message,
 * or an icmp/none access). It carries the packet's timestamp so the caller can enter the
 * packet in the replay ring before refusing it: otherwise a captured copy replayed from
 * spoofed addresses would be refused again, with a policy reason, once per address.
 */
export interface FwknopRefusal {
  readonly ok: false;
  readonly reason: 'command_refused' | 'unsupported_proto';
  readonly timestampS: number;
}

export type FwknopDecoded = Decoded<FwknopMessage, FwknopReason> | FwknopRefusal;

/**
 * Fields of a digest-checked body (plaintext minus ":digest"). Layout per type (§7):
 * six mandatory fields, then nat (2, 4, 5, 6), optional server auth (parsed, ignored), then
 * client timeout (3, 4, 6).
 */
export function parseFields(body: string, digest: string, digestType: DigestType): FwknopDecoded {
  const f = body.split(':');
  if (f.length < MANDATORY_FIELDS) return fail('bad_fields');
  const typed = parseType(f[4] ?? '');
  if (!typed.ok) return typed;
  const type = typed.value;
  const head = parseHead(f);
  if (head === undefined) return fail('bad_fields');
  if (type === MSG_COMMAND) return { ok: false, reason: 'command_refused', timestampS: head.timestampS };
  const nat = hasNat(type);
  const timeout = hasTimeout(type);
  const base = MANDATORY_FIELDS + (nat ? 1 : 0) + (timeout ? 1 : 0);
  if (f.length !== base && f.length !== base + 1) return fail('bad_fields');
  const msgText = b64Strict(f[5] ?? '', MAX_MESSAGE_B64);
  if (msgText === undefined) return fail('bad_fields');
  const msg = parseAccessMessage(msgText);
  if (!msg.ok) return msg.reason === 'unsupported_proto' ? { ok: false, reason: msg.reason, timestampS: head.timestampS } : msg;
  return parseTail(f, type as FwknopAccessType, nat, timeout, { ...head, ...msg.value, digest, digestType });
}

interface Head { random: string; username: string; timestampS: number; version: string }

function parseHead(f: readonly string[]): Head | undefined {
  const [random = '', user = '', ts = '', version = ''] = f;
  const username = parseUsername(user);
  if (username === undefined || ts.length > MAX_TIMESTAMP_CHARS || !DIGITS.test(ts)) return undefined;
  if (version.length === 0 || version.length > MAX_VERSION_CHARS) return undefined;
  return { random, username, timestampS: Number(ts), version };
}

type Fields = Omit<FwknopMessage, 'type' | 'nat' | 'clientTimeoutS'>;

function parseTail(f: readonly string[], type: FwknopAccessType, nat: boolean, timeout: boolean, msg: Fields): Decoded<FwknopMessage, FwknopReason> {
  let i = MANDATORY_FIELDS;
  let natValue: FwknopNat | undefined;
  if (nat) {
    const text = b64Strict(f[i++] ?? '', MAX_NAT_B64);
    natValue = text === undefined ? undefined : parseNat(text);
    if (natValue === undefined) return fail('bad_fields');
  }
  const serverAuth = f.length - i > (timeout ? 1 : 0);
  if (serverAuth && b64Strict(f[i++] ?? '', MAX_SERVER_AUTH_B64) === undefined) return fail('bad_fields');
  let clientTimeoutS: number | undefined;
  if (timeout) {
    const t = f[i] ?? '';
    if (t.length > MAX_CLIENT_TIMEOUT_CHARS || !DIGITS.test(t) || Number(t) > MAX_CLIENT_TIMEOUT) return fail('bad_fields');
    clientTimeoutS = Number(t);
  }
  return ok({
    ...msg, type,
    ...(natValue === undefined ? {} : { nat: natValue }),
    ...(clientTimeoutS === undefined ? {} : { clientTimeoutS }),
  });
}
