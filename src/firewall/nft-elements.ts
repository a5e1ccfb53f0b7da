// SPDX-License-Identifier: MIT
// Set elements of the nft backend (nft.ts header; DESIGN.md fact 2, "Firewall model";
// STYLE.md principle 9): which sets and maps exist, what one element is, its exact text,
// and the recipes that take a set from what it holds to what it should hold. Pure.
//
// Sources are ranges (lo..hi as bigints): a host grant is one address in a hash set
// (grants4, dnat4, fwd4, ...), a network grant a prefix in the matching interval set
// (grants4net, ...). Interval sets reject an element whose range overlaps another one
// (checked: Linux 6.x pipapo, "File exists"), so elements of one lane (nft-covers.ts) are
// kept pairwise disjoint; every transaction removes before it adds.
//
// Every variable part of a line is checked here: addresses are parsed and printed again
// (src/wire/address.ts), ports and timeouts are integers in range, ids [a-z0-9]{1,16},
// protocols a closed word. No value can carry a quote, a newline, `;` or `}` into a script.

import { formatAddress, parseAddress } from '../wire/address.ts';
import { FirewallValueError } from './iptables-rules.ts';
import type { Family, ForwardTarget } from './types.ts';

/** postern owns this table and nothing else. */
export const NFT_TABLE = 'inet postern';
/** Element timeouts stay far below what any kernel's jiffies conversion accepts (grants
 *  last a day at most, config schema); a longer grant gets a week, and reconcile renews it. */
export const MAX_ELEMENT_TIMEOUT_MS = 7 * 86_400_000;
/** Lifetime of the placeholder a removal adds before its delete (removeLines). */
export const PLACEHOLDER_TIMEOUT_MS = 1_000;

/** grants: input accepts (source . proto . port); dnat: prerouting map (source . proto .
 *  external port : target . port); fwd: forward accepts (source . target . proto . port). */
export type SetKind = 'grants' | 'dnat' | 'fwd';
export interface SetId {
  readonly kind: SetKind;
  readonly family: Family;
  /** An interval set of networks; false: a hash set of single addresses. */
  readonly net: boolean;
}

export const setName = (s: SetId): string => `${s.kind}${s.family}${s.net ? 'net' : ''}`;
const ids = (kinds: readonly SetKind[]): SetId[] =>
  kinds.flatMap((kind) => [false, true].flatMap((net) => ([4, 6] as const).map((family) => ({ kind, family, net }))));
/** Always present. */
export const GRANT_SET_IDS: readonly SetId[] = ids(['grants']);
/** Present with spec.forwarding only. */
export const FORWARD_SET_IDS: readonly SetId[] = ids(['dnat', 'fwd']);

const BITS: Readonly<Record<Family, number>> = { 4: 32, 6: 128 };
const ADDR_TYPE: Readonly<Record<Family, string>> = { 4: 'ipv4_addr', 6: 'ipv6_addr' };
const GRANT_ID_RE = /^[a-z0-9]{1,16}$/;
/** Protocol as nft lists it (tcp, udp, sctp, ...) or its number. */
export const PROTO_RE = /^(?:[a-z][a-z0-9-]{0,15}|[0-9]{1,3})$/;

/** `add set|map` for one of ours; idempotent when the existing one has the same shape. */
export function setDeclaration(s: SetId): string {
  const a = ADDR_TYPE[s.family];
  const key = s.kind === 'fwd' ? `${a} . ${a} . inet_proto . inet_service` : `${a} . inet_proto . inet_service`;
  const type = s.kind === 'dnat' ? `${key} : ${a} . inet_service` : key;
  return `add ${s.kind === 'dnat' ? 'map' : 'set'} ${NFT_TABLE} ${setName(s)} { type ${type}; flags ${s.net ? 'interval, timeout' : 'timeout'}; }`;
}

/** What identifies one element in its set. */
export interface ElementKey {
  readonly set: SetId;
  /** Source range, inclusive; lo === hi in a hash set. */
  readonly lo: bigint;
  readonly hi: bigint;
  /** fwd sets: the target address (second key field); null elsewhere. */
  readonly target: string | null;
  readonly proto: string;
  readonly port: number;
}

export interface Element extends ElementKey {
  /** dnat maps: where the traffic goes; null in sets. */
  readonly data: ForwardTarget | null;
}

/** The grant an element carries, and when it ends (wall clock). */
export interface Cover {
  readonly id: string;
  readonly expiresAtMs: number;
}

export interface Desired extends Element {
  readonly cover: Cover;
}

/** Elements that share one source space: the same set and rest of the key (and, in a hash
 *  set, the same address). Elements of one lane must never overlap. */
export const laneKey = (k: ElementKey): string =>
  `${setName(k.set)}|${k.target ?? ''}|${k.proto}|${k.port}${k.set.net ? '' : `|${k.lo}`}`;
export const elementKey = (k: ElementKey): string => `${setName(k.set)}|${k.target ?? ''}|${k.proto}|${k.port}|${k.lo}-${k.hi}`;

export function addressToBig(address: string, family: Family): bigint {
  const p = parseAddress(address);
  if (!p.ok || p.value.family !== family) throw new FirewallValueError(`bad IPv${family} address ${JSON.stringify(address)}`);
  return BigInt(`0x${p.value.bytes.toString('hex')}`);
}

export function bigToAddress(n: bigint, family: Family): string {
  if (n < 0n || n >= 1n << BigInt(BITS[family])) throw new FirewallValueError(`address ${n} out of range`);
  const hex = n.toString(16).padStart(BITS[family] / 4, '0');
  return formatAddress({ family, bytes: Buffer.from(hex, 'hex') });
}

/** The inclusive range of `address/prefix` (prefix absent: the one address). */
export function networkRange(address: string, family: Family, prefix?: number): { lo: bigint; hi: bigint } {
  const bits = BigInt(BITS[family] - (prefix ?? BITS[family]));
  const lo = addressToBig(address, family);
  const hi = lo | ((1n << bits) - 1n);
  if ((lo & ((1n << bits) - 1n)) !== 0n) throw new FirewallValueError(`${address}/${prefix} has host bits set`);
  return { lo, hi };
}

/** The prefix length when lo..hi is exactly one network, else null. */
function prefixLength(lo: bigint, hi: bigint, family: Family): number | null {
  const size = hi - lo + 1n;
  const bits = size.toString(2).length - 1;
  return size === 1n << BigInt(bits) && lo % size === 0n ? BITS[family] - bits : null;
}

/** As nft lists it: an address, a prefix, or lo-hi. */
export function sourceText(lo: bigint, hi: bigint, family: Family): string {
  if (lo === hi) return bigToAddress(lo, family);
  const len = prefixLength(lo, hi, family);
  return len === null ? `${bigToAddress(lo, family)}-${bigToAddress(hi, family)}` : `${bigToAddress(lo, family)}/${len}`;
}

/** The text nft lists for an address (RFC 5952 for IPv6). */
export const canonical = (address: string, family: Family): string => bigToAddress(addressToBig(address, family), family);

function checkPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new FirewallValueError(`bad ${what} ${JSON.stringify(port)}`);
}

/** The key text inside `{ }`, validated: `src . [target .] proto . port`. */
export function keyText(k: ElementKey): string {
  const { family, net, kind } = k.set;
  if (family !== 4 && family !== 6) throw new FirewallValueError(`bad family ${JSON.stringify(family)}`);
  if (typeof k.lo !== 'bigint' || typeof k.hi !== 'bigint' || k.lo > k.hi || (!net && k.lo !== k.hi)) {
    throw new FirewallValueError(`bad source range ${String(k.lo)}-${String(k.hi)} for ${setName(k.set)}`);
  }
  if ((kind === 'fwd') !== (k.target !== null)) throw new FirewallValueError(`target ${JSON.stringify(k.target)} in ${setName(k.set)}`);
  if (typeof k.proto !== 'string' || !PROTO_RE.test(k.proto)) throw new FirewallValueError(`bad protocol ${JSON.stringify(k.proto)}`);
  checkPort(k.port, 'port');
  const target = k.target === null ? '' : `${canonical(k.target, family)} . `;
  return `${sourceText(k.lo, k.hi, family)} . ${target}${k.proto} . ${k.port}`;
}

function dataText(e: Element): string {
  if ((e.set.kind === 'dnat') !== (e.data !== null)) throw new FirewallValueError(`data in ${setName(e.set)}`);
  if (e.data === null) return '';
  checkPort(e.data.port, 'target port');
  return ` : ${canonical(e.data.address, e.set.family)} . ${e.data.port}`;
}

/** `add element` and `delete element` name a map like a set. */
const where = (k: ElementKey): string => `${NFT_TABLE} ${setName(k.set)}`;

/** The one element carrying `cover`, for timeoutMs. */
export function addLine(e: Element, cover: Cover, timeoutMs: number): string {
  if (typeof cover.id !== 'string' || !GRANT_ID_RE.test(cover.id)) throw new FirewallValueError(`bad grant id ${JSON.stringify(cover.id)}`);
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1 || timeoutMs > MAX_ELEMENT_TIMEOUT_MS) {
    throw new FirewallValueError(`bad timeout ${JSON.stringify(timeoutMs)}`);
  }
  return `add element ${where(e)} { ${keyText(e)} timeout ${timeoutMs}ms comment "postern:${cover.id}"${dataText(e)} }`;
}

/** Lines that leave no element for `e`'s key, whatever the set held: `delete` of an
 *  absent element fails the whole transaction, so a short-lived placeholder comes first
 *  (`add` of a present element is a no-op; of an expired one, a fresh element). In a map
 *  the placeholder must carry the data the element has: `add` with other data fails. */
export function removeLines(e: Element): string[] {
  const set = where(e);
  return [`add element ${set} { ${keyText(e)} timeout ${PLACEHOLDER_TIMEOUT_MS}ms${dataText(e)} }`, `delete element ${set} { ${keyText(e)} }`];
}

/** Remaining whole milliseconds, never 0 for a live cover, capped. */
export const timeoutOf = (cover: Cover, nowMs: number): number =>
  Math.min(MAX_ELEMENT_TIMEOUT_MS, Math.ceil(cover.expiresAtMs - nowMs));

export interface ElementDiff<H extends Element> {
  readonly lines: readonly string[];
  /** Elements of `have` removed or rewritten. */
  readonly dropped: readonly H[];
  /** Elements of `want` added or rewritten. */
  readonly written: readonly Desired[];
}

/** Lines that turn `have` into `want` (both disjoint per lane). Removals come first, so an
 *  added range never meets one that is on its way out; an unchanged element (`same`) is
 *  left alone; a key nobody held takes one plain `add` (the time-to-open path: a
 *  transaction with a `delete element` waits for an RCU grace period, ~20 ms against ~5 ms
 *  on Linux 6.x); a changed one is removed and added again in the same transaction, which
 *  also replaces its comment (a plain `add` keeps it, and before Linux 6.10 its timeout). */
export function diffElements<H extends Element>(have: readonly H[], want: readonly Desired[], same: (h: H, d: Desired) => boolean, nowMs: number): ElementDiff<H> {
  const wanted = new Map(want.map((d) => [elementKey(d), d]));
  const held = new Map(have.map((h) => [elementKey(h), h]));
  const removals: string[] = [];
  const writes: string[] = [];
  const dropped: H[] = [];
  const written: Desired[] = [];
  for (const [k, h] of held) {
    const d = wanted.get(k);
    if (d !== undefined && same(h, d)) continue;
    dropped.push(h);
    (d === undefined ? removals : writes).push(...removeLines(h));
    if (d !== undefined) {
      writes.push(addLine(d, d.cover, timeoutOf(d.cover, nowMs)));
      written.push(d);
    }
  }
  for (const [k, d] of wanted) {
    if (held.has(k)) continue;
    writes.push(addLine(d, d.cover, timeoutOf(d.cover, nowMs)));
    written.push(d);
  }
  return { lines: [...removals, ...writes], dropped, written };
}
