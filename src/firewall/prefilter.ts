// SPDX-License-Identifier: MIT
// The kernel-side SPA prefilter (issue 9; docs/firewall.md "Prefilter"): pure rule text for
// both backends, its validation, and the parsers of its drop counters.
//
// Why: the raw socket only sees datagrams that the input hook accepted (DESIGN.md fact 1).
// A datagram of random bytes costs the daemon a wakeup, a copy and a decode before it is
// dropped as `too_short` or `unknown_key`; at 20,000 packets/s that is the whole budget
// of a small board, and the one valid packet waits behind the junk in the socket queue.
// Every native packet starts with its 4-byte key id and is 45..512 bytes long
// (docs/protocol.md "Packet", "Asymmetric message class"), so the kernel can check both
// for free: only datagrams of a configured shape reach the socket; the rest are dropped
// in the input hook and counted there. fwknop packets carry no key id, so their port is
// checked by length only (140..1500 bytes, fwknopd's own capture bounds).
//
// The prefilter decides nothing about authenticity: it only keeps away what the daemon
// would drop unread. A datagram it lets through still goes through every daemon check.
//
// nft: `udp length` is the UDP header's length field (payload + 8); `@th,64,32` is the
// 32 bits after the 8-byte UDP header, big-endian, matched against an anonymous set.
// iptables: the u32 match (xt_u32) reads the same fields: for IPv4 through the header
// length (`0>>22&0x3C@`), for IPv6 at fixed offsets after the 40-byte header, with the
// next header required to be UDP (a datagram behind extension headers is dropped: no
// postern client sends one). u32 takes at most 10 values per test, so key ids go in
// groups of 10. Both checked with nft 1.0.6 and iptables 1.8.9 (nf_tables) on Linux 6.x.

import { FirewallValueError } from './iptables-rules.ts';
import type { Family, GuardSpec, SpaPrefilter } from './types.ts';

const UDP_HEADER_LEN = 8;
/** The largest UDP payload an IPv4 datagram can carry (65535 - 20 - 8). */
const MAX_PAYLOAD = 65507;
const MAX_KEY_ID = 0xffffffff;
/** XT_U32_MAXSIZE: values (or ranges) one u32 test may list. */
const U32_MAX_VALUES = 10;
/** Shapes per port and key ids per shape that one guard transaction carries at most. */
const MAX_SHAPES = 8;
const MAX_KEY_IDS = 4096;

/** The named nft counter, and the comment tag of the iptables drop rule. */
export const NFT_PREFILTER_COUNTER = 'spa_prefilter';
export const IPT_PREFILTER_TAG = 'postern:prefilter';

const hex32 = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;

function checkLen(n: unknown, what: string): void {
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_PAYLOAD) {
    throw new FirewallValueError(`bad prefilter ${what} ${JSON.stringify(n)}`);
  }
}

/** Values reach rule text: each must be an integer in range (no text is ever pasted). */
export function checkPrefilter(list: readonly SpaPrefilter[]): void {
  const ports = new Set<number>();
  for (const p of list) {
    if (!Number.isInteger(p.port) || p.port < 1 || p.port > 65535) throw new FirewallValueError(`bad prefilter port ${JSON.stringify(p.port)}`);
    if (ports.has(p.port)) throw new FirewallValueError(`prefilter port ${p.port} given twice`);
    ports.add(p.port);
    if (p.shapes.length > MAX_SHAPES) throw new FirewallValueError(`prefilter port ${p.port}: more than ${MAX_SHAPES} shapes`);
    for (const s of p.shapes) {
      checkLen(s.minLen, 'length');
      checkLen(s.maxLen, 'length');
      if (s.minLen > s.maxLen) throw new FirewallValueError(`bad prefilter length range ${s.minLen}-${s.maxLen}`);
      if (s.keyIds === undefined) continue;
      if (s.keyIds.length > MAX_KEY_IDS) throw new FirewallValueError(`prefilter port ${p.port}: more than ${MAX_KEY_IDS} key ids`);
      for (const id of s.keyIds) {
        if (!Number.isInteger(id) || id < 0 || id > MAX_KEY_ID) throw new FirewallValueError(`bad prefilter key id ${JSON.stringify(id)}`);
      }
    }
  }
}

/** The spec's prefilter, checked: every prefiltered port is a UDP capture port (a port
 *  that is not captured has no accept to keep datagrams away from). */
export function prefilterOf(spec: GuardSpec): readonly SpaPrefilter[] {
  const list = spec.spaPrefilter ?? [];
  checkPrefilter(list);
  for (const p of list) {
    if (!spec.capture.some((s) => s.proto === 'udp' && s.port === p.port)) {
      throw new FirewallValueError(`prefilter port ${p.port} is not a udp capture port`);
    }
  }
  return list;
}

/** A shape with an empty key id list matches nothing: it gets no rule. */
const live = (p: SpaPrefilter): SpaPrefilter['shapes'] => p.shapes.filter((s) => s.keyIds === undefined || s.keyIds.length > 0);
const sortedIds = (ids: readonly number[]): number[] => [...new Set(ids)].sort((a, b) => a - b);

/** nft: the counter declaration (kept across updates: `add` is idempotent). */
export const nftPrefilterDeclarations = (table: string): string[] => [`add counter ${table} ${NFT_PREFILTER_COUNTER}`];

/** nft rule bodies for the input chain, before the capture accept: each shape accepts
 *  (with the capture mark), then everything else on the port is counted and dropped. */
export function nftPrefilterRules(list: readonly SpaPrefilter[], accept: string): string[] {
  checkPrefilter(list);
  return list.flatMap((p) => [
    ...live(p).map((s) => {
      const len = `udp length ${s.minLen + UDP_HEADER_LEN}-${s.maxLen + UDP_HEADER_LEN}`;
      const ids = s.keyIds === undefined ? '' : ` @th,64,32 { ${sortedIds(s.keyIds).map(hex32).join(', ')} }`;
      return `udp dport ${p.port} ${len}${ids} ${accept}`;
    }),
    `udp dport ${p.port} counter name "${NFT_PREFILTER_COUNTER}" drop`,
  ]);
}

/** Where the UDP length field and the first payload word are, per family (u32 syntax). */
const U32_FIELDS: Readonly<Record<Family, { proto: string; len: string; word: string }>> = {
  4: { proto: '', len: '0>>22&0x3C@4>>16', word: '0>>22&0x3C@8' },
  6: { proto: '4>>8&0xFF=0x11&&', len: '44>>16', word: '48' },
};

function chunks<T>(list: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size));
  return out;
}

/** iptables rule specs (after `-A <chain> `) for one family, before the capture accept. */
export function iptablesPrefilterRules(list: readonly SpaPrefilter[], family: Family): string[] {
  checkPrefilter(list);
  const f = U32_FIELDS[family];
  return list.flatMap((p) => {
    const port = `-p udp -m udp --dport ${p.port}`;
    const accepts = live(p).flatMap((s) => {
      const len = `${f.proto}${f.len}=${s.minLen + UDP_HEADER_LEN}:${s.maxLen + UDP_HEADER_LEN}`;
      const groups = s.keyIds === undefined ? [undefined] : chunks(sortedIds(s.keyIds), U32_MAX_VALUES);
      return groups.map((ids) => `${port} -m u32 --u32 "${len}${ids === undefined ? '' : `&&${f.word}=${ids.map(hex32).join(',')}`}" -j ACCEPT`);
    });
    return [...accepts, `${port} -m comment --comment "${IPT_PREFILTER_TAG}" -j DROP`];
  });
}

/** Packets counted by the nft counter, from `nft -j list counter inet postern spa_prefilter`.
 *  undefined when the output holds no such counter (never throws: it is a listing). */
export function parseNftCounter(json: string): number | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch {
    return undefined;
  }
  const items = (doc as { nftables?: unknown } | null)?.nftables;
  if (!Array.isArray(items)) return undefined;
  for (const item of items as unknown[]) {
    const c = (item as { counter?: { name?: unknown; packets?: unknown } } | null)?.counter;
    if (c?.name === NFT_PREFILTER_COUNTER && typeof c.packets === 'number' && Number.isSafeInteger(c.packets) && c.packets >= 0) return c.packets;
  }
  return undefined;
}

/** Packets counted by the tagged drop rules in `iptables -w -v -S <chain>` output (iptables
 *  prints `-c <packets> <bytes>` there). undefined when no tagged rule is listed. */
export function parseIptablesCounter(listing: string): number | undefined {
  let total: number | undefined;
  for (const line of listing.split('\n')) {
    if (!line.includes(`"${IPT_PREFILTER_TAG}"`)) continue;
    const m = / -c ([0-9]{1,20}) [0-9]{1,20}(?: |$)/.exec(line);
    const n = m?.[1] === undefined ? NaN : Number(m[1]);
    if (Number.isSafeInteger(n)) total = (total ?? 0) + n;
  }
  return total;
}
