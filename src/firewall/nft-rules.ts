// SPDX-License-Identifier: MIT
// Pure nftables text for the nft backend (nft.ts; DESIGN.md fact 2, "Firewall model";
// STYLE.md principle 9): script builders for `nft -f -`, the per-tuple cover table, the
// reconcile planner and the parser for `nft -j list set` output. No I/O, no clock.
//
// Every variable part of a script (address, protocol, port, grant id, timeout, mark) is
// validated here, with the same checks as iptables-rules.ts: canonical addresses through
// node:net, ids [a-z0-9]{1,16}, integer ports and timeouts. Each has a closed syntax, so no
// value can carry a quote, a newline, a `;` or a `}` into the transaction; comments are
// `postern:<id>` and need no escaping. Syntax checked with nft 1.0.6 (Debian 12) and
// kernel 6.x; OpenWrt 22.03 ships nft 1.0.2, which has `th`, concatenations, element
// comments and set timeouts (all older than 1.0).

import { isIP, SocketAddress } from 'node:net';
import { fail, ok } from '../wire/result.ts';
import type { Decoded } from '../wire/result.ts';
import { FirewallValueError, checkAddress, checkGuardSpec, checkService } from './iptables-rules.ts';
import type { Family, Grant, GuardSpec, Proto, Service } from './types.ts';

/** postern owns this table and nothing else. */
export const NFT_TABLE = 'inet postern';
/** The one packet-mark bit postern sets on packets it accepts (capture and grants). */
export const DEFAULT_NFT_MARK = 0x10000000;
export const GRANT_SETS: Readonly<Record<Family, string>> = { 4: 'grants4', 6: 'grants6' };
/** Element timeouts stay far below what any kernel's jiffies conversion accepts (grants
 *  last a day at most, config schema); a longer grant gets a week, and reconcile renews it. */
export const MAX_ELEMENT_TIMEOUT_MS = 7 * 86_400_000;
/** Lifetime of the placeholder a removal adds before its delete (elementLines). */
export const PLACEHOLDER_TIMEOUT_MS = 1_000;
/** `expires` is listed in whole seconds (truncated): an element agrees with its grant when
 *  the two expiries are within this much, on top of that second. */
export const EXPIRY_SLACK_MS = 1_000;

const GRANT_ID_RE = /^[a-z0-9]{1,16}$/;
const COMMENT_RE = /^postern:([a-z0-9]{1,16})$/;
/** Protocol as nft lists it (tcp, udp, sctp, ...) or its number. */
const PROTO_RE = /^(?:[a-z][a-z0-9-]{0,15}|[0-9]{1,3})$/;

export function checkMark(mark: number): void {
  if (!Number.isInteger(mark) || mark < 1 || mark > 0x80000000 || !Number.isInteger(Math.log2(mark))) {
    throw new FirewallValueError(`bad mark ${JSON.stringify(mark)}: want a single bit, 0x1 .. 0x80000000`);
  }
}

export const hexMark = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;

/** The key of one set element. Elements postern writes have proto tcp|udp; a listing may
 *  show others (an operator's hand-added element), which reconcile can still delete. */
export interface ElementKey {
  readonly family: Family;
  readonly address: string;
  readonly proto: string;
  readonly port: number;
}

export interface NftTuple extends ElementKey {
  readonly proto: Proto;
}

export const tupleKey = (k: ElementKey): string => `${k.family}|${k.address}|${k.proto}|${k.port}`;

function checkElementKey(k: ElementKey): void {
  if (k.family !== 4 && k.family !== 6) throw new FirewallValueError(`bad family ${JSON.stringify(k.family)}`);
  checkAddress(k.address, k.family);
  if (typeof k.proto !== 'string' || !PROTO_RE.test(k.proto)) throw new FirewallValueError(`bad protocol ${JSON.stringify(k.proto)}`);
  if (!Number.isInteger(k.port) || k.port < 0 || k.port > 65535) throw new FirewallValueError(`bad port ${JSON.stringify(k.port)}`);
}

/** One tuple per distinct service of the grant. Validates the grant's address and services. */
export function grantTuples(g: Pick<Grant, 'family' | 'address' | 'services'>): NftTuple[] {
  const seen = new Map<string, NftTuple>();
  for (const s of g.services) {
    checkService(s);
    const t: NftTuple = { family: g.family, address: g.address, proto: s.proto, port: s.port };
    checkElementKey(t);
    seen.set(tupleKey(t), t);
  }
  return [...seen.values()];
}

function elements(set: string, services: readonly Service[]): string[] {
  const unique = [...new Set(services.map((s) => `${s.proto} . ${s.port}`))];
  return unique.length === 0 ? [] : [`add element ${NFT_TABLE} ${set} { ${unique.join(', ')} }`];
}

/** start and update: create what is missing, rebuild chains and the constant sets in one
 *  transaction, and never touch the grant sets (reconcile owns them). Rule order is
 *  explained in the header of nft.ts. */
export function guardLines(spec: GuardSpec, mark: number): string[] {
  checkGuardSpec(spec);
  checkMark(mark);
  const m = hexMark(mark);
  const rule = (chain: string, text: string): string => `add rule ${NFT_TABLE} ${chain} ${text}`;
  return [
    `add table ${NFT_TABLE}`,
    `add set ${NFT_TABLE} guarded { type inet_proto . inet_service; }`,
    `add set ${NFT_TABLE} capture { type inet_proto . inet_service; }`,
    `add set ${NFT_TABLE} grants4 { type ipv4_addr . inet_proto . inet_service; flags timeout; }`,
    `add set ${NFT_TABLE} grants6 { type ipv6_addr . inet_proto . inet_service; flags timeout; }`,
    `add chain ${NFT_TABLE} input { type filter hook input priority filter - 10; policy accept; }`,
    `add chain ${NFT_TABLE} output { type filter hook output priority filter - 10; policy accept; }`,
    `flush chain ${NFT_TABLE} input`,
    `flush chain ${NFT_TABLE} output`,
    `flush set ${NFT_TABLE} guarded`,
    `flush set ${NFT_TABLE} capture`,
    ...elements('guarded', spec.guarded),
    ...elements('capture', spec.capture),
    rule('input', `meta mark & ${m} == ${m} meta mark set meta mark & ${hexMark(0xffffffff - mark)}`),
    rule('input', 'iif "lo" return'),
    rule('input', `meta l4proto . th dport @capture meta mark set meta mark | ${m} accept`),
    rule('input', 'ct state established,related meta l4proto . th dport @guarded accept'),
    rule('input', `ip saddr . meta l4proto . th dport @grants4 meta mark set meta mark | ${m} accept`),
    rule('input', `ip6 saddr . meta l4proto . th dport @grants6 meta mark set meta mark | ${m} accept`),
    rule('input', 'meta l4proto . th dport @guarded drop'),
    rule('output', 'meta l4proto . th sport @capture tcp flags & rst == rst drop'),
  ];
}

/** Fallback for start when an existing table cannot be amended (a set or chain of another
 *  shape, left by another version): replace the whole table, still in one transaction. */
export const recreateLines = (spec: GuardSpec, mark: number): string[] =>
  [`add table ${NFT_TABLE}`, `delete table ${NFT_TABLE}`, ...guardLines(spec, mark)];

export function stopLines(keepGuarding: boolean): string[] {
  return keepGuarding
    ? [`flush set ${NFT_TABLE} ${GRANT_SETS[4]}`, `flush set ${NFT_TABLE} ${GRANT_SETS[6]}`]
    : [`add table ${NFT_TABLE}`, `delete table ${NFT_TABLE}`]; // `add` first: idempotent
}

export interface Cover {
  readonly id: string;
  readonly timeoutMs: number;
}

/** Lines that leave exactly one element for `key`, carrying `cover`, or (cover undefined)
 *  none, whatever the set held before. `delete` of an absent element fails the whole
 *  transaction and a plain `add` of a present one keeps its comment (and, before Linux
 *  6.10, its timeout), so: add (makes it present), delete, add. Checked on nft 1.0.6 with
 *  present, absent and expired-but-not-yet-collected elements. */
export function elementLines(key: ElementKey, cover: Cover | undefined): string[] {
  checkElementKey(key);
  const target = `${NFT_TABLE} ${GRANT_SETS[key.family]} { ${key.address} . ${key.proto} . ${key.port}`;
  const del = `delete element ${target} }`;
  if (cover === undefined) return [`add element ${target} timeout ${PLACEHOLDER_TIMEOUT_MS}ms }`, del];
  if (!GRANT_ID_RE.test(cover.id)) throw new FirewallValueError(`bad grant id ${JSON.stringify(cover.id)}`);
  if (!Number.isInteger(cover.timeoutMs) || cover.timeoutMs < 1 || cover.timeoutMs > MAX_ELEMENT_TIMEOUT_MS) {
    throw new FirewallValueError(`bad timeout ${JSON.stringify(cover.timeoutMs)}`);
  }
  const add = `add element ${target} timeout ${cover.timeoutMs}ms comment "postern:${cover.id}" }`;
  return [add, del, add];
}

/** `nft -f -` input: one transaction, all or nothing. */
export function nftScript(lines: readonly string[]): string {
  for (const l of lines) if (/[\r\n]/.test(l)) throw new FirewallValueError(`newline in nft line ${JSON.stringify(l)}`);
  return lines.map((l) => `${l}\n`).join('');
}

export const applyArgv = (bin: string): string[] => [bin, '-f', '-'];
export const listSetArgv = (bin: string, family: Family): string[] => [bin, '-j', 'list', 'set', 'inet', 'postern', GRANT_SETS[family]];
export const listTableArgv = (bin: string): string[] => [bin, 'list', 'table', 'inet', 'postern'];

/** Which live grants cover each tuple. A set holds one element per tuple and its comment
 *  names one grant, so when two grants (two keys, one address and port) cover a tuple the
 *  element carries the longest cover, and revoking one grant re-adds the tuple for the
 *  other instead of cutting it. Memory is bounded by the live grants: entries leave on
 *  revoke, expired covers are dropped when met, and reconcile rebuilds the table. */
export class CoverTable {
  readonly #tuples = new Map<string, { tuple: NftTuple; by: Map<string, number> }>();

  get size(): number {
    return this.#tuples.size;
  }

  add(g: Grant): void {
    for (const t of grantTuples(g)) {
      const k = tupleKey(t);
      const entry = this.#tuples.get(k) ?? { tuple: t, by: new Map<string, number>() };
      entry.by.set(g.id, g.expiresAtMs);
      this.#tuples.set(k, entry);
    }
  }

  remove(g: Pick<Grant, 'id' | 'family' | 'address' | 'services'>): void {
    for (const t of grantTuples(g)) {
      const entry = this.#tuples.get(tupleKey(t));
      entry?.by.delete(g.id);
      if (entry?.by.size === 0) this.#tuples.delete(tupleKey(t));
    }
  }

  /** The cover the tuple's element should carry at nowMs: the latest expiry (ties: the
   *  smallest id), or undefined when no unexpired grant covers it. */
  best(t: ElementKey, nowMs: number): Cover | undefined {
    const entry = this.#tuples.get(tupleKey(t));
    if (entry === undefined) return undefined;
    let bestId: string | undefined;
    let bestExp = -Infinity;
    for (const [id, exp] of entry.by) {
      if (exp <= nowMs) entry.by.delete(id);
      else if (exp > bestExp || (exp === bestExp && bestId !== undefined && id < bestId)) [bestId, bestExp] = [id, exp];
    }
    if (bestId === undefined) this.#tuples.delete(tupleKey(t));
    return bestId === undefined ? undefined : { id: bestId, timeoutMs: Math.min(MAX_ELEMENT_TIMEOUT_MS, Math.ceil(bestExp - nowMs)) };
  }

  tuples(): NftTuple[] {
    return [...this.#tuples.values()].map((e) => e.tuple);
  }

  /** Remembers the covers of these tuples; the returned function puts them back. */
  save(tuples: readonly NftTuple[]): () => void {
    const saved = tuples.map((t) => [tupleKey(t), t, new Map(this.#tuples.get(tupleKey(t))?.by ?? [])] as const);
    return () => {
      for (const [k, tuple, by] of saved) {
        if (by.size === 0) this.#tuples.delete(k);
        else this.#tuples.set(k, { tuple, by: new Map(by) });
      }
    };
  }

  clear(): void {
    this.#tuples.clear();
  }
}

/** One element of a grant set, as listed. */
export interface ListedElement extends ElementKey {
  /** From a `postern:<id>` comment; null for any other comment or none. */
  readonly grantId: string | null;
  /** Remaining lifetime (the kernel's `expires`, truncated to seconds); null: no timeout. */
  readonly expiresInMs: number | null;
}

export interface NftReconcilePlan {
  readonly lines: readonly string[];
  readonly removed: readonly string[];
  readonly restored: readonly string[];
  /** Live grants that failed validation: treated as expired (fail closed). */
  readonly invalid: readonly string[];
  /** Elements without a postern id, removed. */
  readonly untagged: number;
  /** The covers of the live grants, for the backend to keep. */
  readonly covers: CoverTable;
}

function agrees(listed: ListedElement, want: Cover): boolean {
  const left = listed.expiresInMs;
  return listed.grantId === want.id && left !== null
    && left <= want.timeoutMs + EXPIRY_SLACK_MS && left + 1_000 >= want.timeoutMs - EXPIRY_SLACK_MS;
}

/** Makes both grant sets hold exactly the covers of the live grants unexpired at nowMs:
 *  missing tuples are added, elements of unknown or expired ids (and untagged ones) are
 *  deleted, an element with the wrong owner or an expiry that disagrees is rewritten. */
export function planReconcile(existing: readonly ListedElement[], live: readonly Grant[], nowMs: number): NftReconcilePlan {
  const covers = new CoverTable();
  const invalid: string[] = [];
  const active = new Set<string>();
  for (const g of live) {
    if (!(g.expiresAtMs > nowMs)) continue;
    try {
      if (!GRANT_ID_RE.test(g.id)) throw new FirewallValueError('bad id');
      covers.add(g);
      active.add(g.id);
    } catch {
      invalid.push(String(g.id));
    }
  }
  const want = new Map(covers.tuples().flatMap((t) => {
    const c = covers.best(t, nowMs);
    return c === undefined ? [] : [[tupleKey(t), { tuple: t, cover: c }] as const];
  }));
  const lines: string[] = [];
  const dropped = new Set<string>();
  const restored = new Set<string>();
  const done = new Set<string>();
  let untagged = 0;
  for (const e of existing) {
    const k = tupleKey(e);
    const w = done.has(k) ? undefined : want.get(k);
    if (w !== undefined) done.add(k);
    if (w !== undefined && agrees(e, w.cover)) continue;
    if (e.grantId === null) untagged++;
    else dropped.add(e.grantId);
    lines.push(...elementLines(w?.tuple ?? e, w?.cover));
    if (w !== undefined) restored.add(w.cover.id);
  }
  for (const [k, w] of want) {
    if (done.has(k)) continue;
    lines.push(...elementLines(w.tuple, w.cover));
    restored.add(w.cover.id);
  }
  const removed = [...dropped].filter((id) => !active.has(id));
  return { lines, removed, restored: [...restored], invalid, untagged, covers };
}

export type ListingFailure = 'bad_json' | 'bad_shape' | 'no_set';

export interface GrantSetListing {
  readonly elements: readonly ListedElement[];
  /** Elements whose key postern cannot read (left alone, reported). */
  readonly foreign: number;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function readProto(p: unknown): string | null {
  if (typeof p === 'number') return Number.isInteger(p) && p >= 0 && p <= 255 ? ({ 6: 'tcp', 17: 'udp' }[p] ?? String(p)) : null;
  return typeof p === 'string' && PROTO_RE.test(p) ? p : null;
}

function readPort(n: unknown): number | null {
  const v = typeof n === 'string' && /^[0-9]{1,5}$/.test(n) ? Number(n) : n;
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 65535 ? v : null;
}

function readSeconds(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.round(v * 1000) : null;
}

/** One `elem` entry: `{"concat": [...]}` when it has no timeout and no comment, else
 *  `{"elem": {"val": {"concat": [...]}, "timeout": s, "expires": s, "comment": "..."}}`. */
function readElement(raw: unknown, family: Family): ListedElement | null {
  const wrapped = isRecord(raw) && isRecord(raw.elem) ? raw.elem : undefined;
  const val = wrapped === undefined ? raw : wrapped.val;
  const parts = isRecord(val) && Array.isArray(val.concat) ? val.concat : undefined;
  if (parts === undefined || parts.length !== 3) return null;
  const [a, p, n] = parts as [unknown, unknown, unknown];
  const proto = readProto(p);
  const port = readPort(n);
  if (typeof a !== 'string' || isIP(a) !== family || proto === null || port === null) return null;
  const address = new SocketAddress({ address: a, family: family === 4 ? 'ipv4' : 'ipv6' }).address;
  const comment = typeof wrapped?.comment === 'string' ? wrapped.comment : '';
  const expiresInMs = readSeconds(wrapped?.expires) ?? readSeconds(wrapped?.timeout);
  return { family, address, proto, port, grantId: COMMENT_RE.exec(comment)?.[1] ?? null, expiresInMs };
}

/** Parses `nft -j list set inet postern grants4|grants6`. Never throws: the output of a
 *  binary is not ours to trust; a failure reason means reconcile must not act on it. */
export function parseGrantSet(json: string, family: Family): Decoded<GrantSetListing, ListingFailure> {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch {
    return fail('bad_json');
  }
  if (!isRecord(doc) || !Array.isArray(doc.nftables)) return fail('bad_shape');
  const set = doc.nftables
    .map((item: unknown) => (isRecord(item) ? item.set : undefined))
    .find((s: unknown) => isRecord(s) && s.family === 'inet' && s.table === 'postern' && s.name === GRANT_SETS[family]);
  if (!isRecord(set)) return fail('no_set');
  const raw = set.elem ?? [];
  if (!Array.isArray(raw)) return fail('bad_shape');
  const elements: ListedElement[] = [];
  let foreign = 0;
  for (const r of raw) {
    const e = readElement(r, family);
    if (e === null) foreign++;
    else elements.push(e);
  }
  return ok({ elements, foreign });
}
