// SPDX-License-Identifier: MIT
// Pure IP address helpers shared by the frame decoder, the SPA codec, the config validator
// and policy. No node:net here (STYLE.md layout: wire/ stays free of I/O modules); the tests
// use node:net's isIPv4/isIPv6 and BlockList as oracles instead.
//
// API
//   formatIPv4(bytes, off)   dotted quad of bytes[off..off+4)
//   formatIPv6(bytes, off)   RFC 5952 text of bytes[off..off+16)
//     Both return '' when the range is out of bounds (callers check lengths first; '' is also
//     the frame decoder's "unknown address" marker), so they never throw.
//   parseAddress(text)       strict textual address -> { family, bytes } | 'bad_address'
//   formatAddress(addr)      canonical text of a parsed Address
//   canonicalAddress(text)   parse then format; undefined when the text is not an address
//   parseCidr(text)          'addr/prefix' or a bare address (host prefix) -> Cidr | 'bad_cidr'
//   cidrContains(cidr, text) true iff text is an address of the cidr's family inside it
//
// Accepted text (matches node:net isIPv4/isIPv6 on every input without '%'):
//   IPv4: exactly four decimal octets 0..255, no leading zeros ("01.2.3.4" is refused: inet_aton
//         reads it as octal, so it would mean different things to different tools).
//   IPv6: RFC 4291 §2.2 forms: eight 1..4-digit hex groups, at most one "::" for one or more
//         zero groups, optional trailing dotted IPv4 for the last 32 bits. Zone ids ("%eth0") are
//         refused: an address in policy or on the wire never names a local interface.

import { IPV4_ADDR_LEN, IPV6_ADDR_LEN } from './constants.ts';
import { fail, ok, type Decoded } from './result.ts';

export type AddressFamily = 4 | 6;

export interface Address {
  readonly family: AddressFamily;
  readonly bytes: Buffer;
}

export interface Cidr {
  readonly family: AddressFamily;
  /** Network address; every bit past `prefix` is zero. */
  readonly bytes: Buffer;
  readonly prefix: number;
  /** Canonical text, always with a prefix ("10.0.0.0/8", "2001:db8::/32"). */
  readonly text: string;
}

/** Longest textual address: six 4-digit groups, colons and a dotted quad (RFC 4291 §2.2). */
const MAX_ADDRESS_TEXT = 45;
const IPV6_GROUPS = 8;
const BYTE_BITS = 8;
/** RFC 5952 §4.2.2: "::" MUST NOT shorten just one 16-bit 0 field. */
const MIN_ZERO_RUN = 2;
/** ::ffff:0:0/96 (RFC 4291 §2.5.5.2) is printed in mixed notation (RFC 5952 §5). */
const V4_MAPPED_PREFIX: readonly number[] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

const DECIMAL_OCTET = /^(?:0|[1-9][0-9]{0,2})$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;
const PREFIX_TEXT = /^(?:0|[1-9][0-9]{0,2})$/;

export function formatIPv4(bytes: Uint8Array, off: number): string {
  if (!inBounds(bytes, off, IPV4_ADDR_LEN)) return '';
  return `${bytes[off]}.${bytes[off + 1]}.${bytes[off + 2]}.${bytes[off + 3]}`;
}

export function formatIPv6(bytes: Uint8Array, off: number): string {
  if (!inBounds(bytes, off, IPV6_ADDR_LEN)) return '';
  if (isV4Mapped(bytes, off)) return '::ffff:' + formatIPv4(bytes, off + V4_MAPPED_PREFIX.length);
  const groups: number[] = [];
  for (let i = 0; i < IPV6_GROUPS; i++) {
    groups.push(((bytes[off + 2 * i] ?? 0) << BYTE_BITS) | (bytes[off + 2 * i + 1] ?? 0));
  }
  const run = longestZeroRun(groups);
  let text = '';
  for (let i = 0; i < IPV6_GROUPS; i++) {
    if (run.length >= MIN_ZERO_RUN && i >= run.start && i < run.start + run.length) {
      if (i === run.start) text += '::';
      continue;
    }
    // A separator goes before every group except the first and the one right after "::".
    if (i > 0 && !text.endsWith(':')) text += ':';
    text += (groups[i] ?? 0).toString(16);
  }
  return text;
}

function inBounds(bytes: Uint8Array, off: number, len: number): boolean {
  return Number.isInteger(off) && off >= 0 && off + len <= bytes.length;
}

function isV4Mapped(bytes: Uint8Array, off: number): boolean {
  for (let i = 0; i < V4_MAPPED_PREFIX.length; i++) if (bytes[off + i] !== V4_MAPPED_PREFIX[i]) return false;
  return true;
}

/** RFC 5952 §4.2.3: compress the longest run of zero groups; the first one on a tie. */
function longestZeroRun(groups: readonly number[]): { start: number; length: number } {
  let best = { start: 0, length: 0 };
  let start = -1;
  for (let i = 0; i <= groups.length; i++) {
    if (i < groups.length && groups[i] === 0) {
      if (start < 0) start = i;
    } else if (start >= 0) {
      if (i - start > best.length) best = { start, length: i - start };
      start = -1;
    }
  }
  return best;
}

export function parseAddress(text: string): Decoded<Address, 'bad_address'> {
  if (typeof text !== 'string' || text.length === 0 || text.length > MAX_ADDRESS_TEXT) return fail('bad_address');
  const bytes = text.includes(':') ? parseIPv6(text) : parseIPv4(text);
  if (bytes === undefined) return fail('bad_address');
  return ok({ family: bytes.length === IPV4_ADDR_LEN ? 4 : 6, bytes });
}

export function canonicalAddress(text: string): string | undefined {
  const parsed = parseAddress(text);
  if (!parsed.ok) return undefined;
  return formatAddress(parsed.value);
}

/** Canonical text of a parsed address (formatIPv4 / formatIPv6 at offset 0). */
export function formatAddress(addr: Address): string {
  return addr.family === 4 ? formatIPv4(addr.bytes, 0) : formatIPv6(addr.bytes, 0);
}

function parseIPv4(text: string): Buffer | undefined {
  const parts = text.split('.');
  if (parts.length !== IPV4_ADDR_LEN) return undefined;
  const out = Buffer.alloc(IPV4_ADDR_LEN);
  for (let i = 0; i < IPV4_ADDR_LEN; i++) {
    const part = parts[i] ?? '';
    if (!DECIMAL_OCTET.test(part)) return undefined;
    const value = Number(part);
    if (value > 0xff) return undefined;
    out[i] = value;
  }
  return out;
}

function parseIPv6(text: string): Buffer | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const head = parseGroups(halves[0] ?? '', halves.length === 1);
  const tail = halves.length === 2 ? parseGroups(halves[1] ?? '', true) : [];
  if (head === undefined || tail === undefined) return undefined;
  const used = head.length + tail.length;
  // Without "::" all eight groups are spelled out; with it, "::" stands for at least one.
  if (halves.length === 1 ? used !== IPV6_GROUPS : used > IPV6_GROUPS - 1) return undefined;
  const out = Buffer.alloc(IPV6_ADDR_LEN);
  head.forEach((g, i) => out.writeUInt16BE(g, 2 * i));
  tail.forEach((g, i) => out.writeUInt16BE(g, 2 * (IPV6_GROUPS - tail.length + i)));
  return out;
}

/**
 * Colon-separated hex groups; '' is zero groups (either side of "::"). A dotted quad is
 * allowed only as the last part of the whole address (`mayEndInV4`), and counts as two groups.
 */
function parseGroups(part: string, mayEndInV4: boolean): number[] | undefined {
  if (part === '') return [];
  const texts = part.split(':');
  const groups: number[] = [];
  for (let i = 0; i < texts.length; i++) {
    const t = texts[i] ?? '';
    if (HEX_GROUP.test(t)) {
      groups.push(parseInt(t, 16));
      continue;
    }
    const v4 = mayEndInV4 && i === texts.length - 1 ? parseIPv4(t) : undefined;
    if (v4 === undefined) return undefined;
    groups.push(v4.readUInt16BE(0), v4.readUInt16BE(2));
  }
  return groups;
}

export function parseCidr(text: string): Decoded<Cidr, 'bad_cidr'> {
  if (typeof text !== 'string') return fail('bad_cidr');
  const slash = text.indexOf('/');
  const addr = parseAddress(slash < 0 ? text : text.slice(0, slash));
  if (!addr.ok) return fail('bad_cidr');
  const maxPrefix = addr.value.bytes.length * BYTE_BITS;
  const prefixText = slash < 0 ? String(maxPrefix) : text.slice(slash + 1);
  if (!PREFIX_TEXT.test(prefixText)) return fail('bad_cidr');
  const prefix = Number(prefixText);
  if (prefix > maxPrefix) return fail('bad_cidr');
  // Host bits set ("192.168.1.7/24") are refused, not masked: the writer meant either the
  // host or the network, and guessing wrong would widen or narrow access silently.
  if (!hostBitsZero(addr.value.bytes, prefix)) return fail('bad_cidr');
  const canonical = `${formatAddress(addr.value)}/${prefix}`;
  return ok({ family: addr.value.family, bytes: addr.value.bytes, prefix, text: canonical });
}

function hostBitsZero(bytes: Buffer, prefix: number): boolean {
  for (let i = 0; i < bytes.length; i++) {
    if (((bytes[i] ?? 0) & ~prefixMask(prefix, i) & 0xff) !== 0) return false;
  }
  return true;
}

/** The mask byte for byte `i` of an address under `prefix` leading one-bits. */
function prefixMask(prefix: number, i: number): number {
  const bits = Math.min(Math.max(prefix - i * BYTE_BITS, 0), BYTE_BITS);
  return (0xff << (BYTE_BITS - bits)) & 0xff;
}

export function cidrContains(cidr: Cidr, addressText: string): boolean {
  const addr = parseAddress(addressText);
  if (!addr.ok || addr.value.family !== cidr.family) return false;
  for (let i = 0; i < cidr.bytes.length; i++) {
    const mask = prefixMask(cidr.prefix, i);
    if (((addr.value.bytes[i] ?? 0) & mask) !== ((cidr.bytes[i] ?? 0) & mask)) return false;
  }
  return true;
}

/** The network address of `addressText` under `prefix` (host bits cleared), in canonical
 *  text; undefined when the text is not an address or the prefix is out of range. */
export function networkOf(addressText: string, prefix: number): string | undefined {
  const addr = parseAddress(addressText);
  if (!addr.ok) return undefined;
  const bytes = Buffer.from(addr.value.bytes);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > bytes.length * 8) return undefined;
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    bytes[i] = (bytes[i] ?? 0) & ((0xff << (8 - keep)) & 0xff);
  }
  return addr.value.family === 4 ? formatIPv4(bytes, 0) : formatIPv6(bytes, 0);
}
