// SPDX-License-Identifier: MIT
// Which grant each set element carries (nft.ts header; DESIGN.md "Firewall model"). Pure.
//
// A grant claims one source range in one lane per service (nft-elements.ts laneKey): a
// plain grant in grants<f>[net] per service; a forwarding grant in dnat<f>[net] (its
// external service, with its target as the map's data) and in fwd<f>[net] (target . proto
// . target port). Several grants may claim overlapping ranges of one lane: two keys
// opening ssh for one address, or a /64 and a /56 grant (two keys with different
// ipv6_prefix) for the same service. A set holds one element per key and an interval set
// refuses overlapping elements, so a lane's elements are its segments: the claimed ranges
// cut at every claim boundary, each piece carrying its best claim (latest expiry, ties:
// smallest id; in a map, that claim's target), adjacent pieces of one claim merged. Then
// at every instant an address is in the set exactly while some grant that covers it is
// live, even after the daemon died: each element's kernel timeout is its claim's expiry,
// and where one claim ends inside another the rest of the other is its own element.
// Claims are prefixes, so they nest or are disjoint and a lane of n claims has at most
// 2n+1 segments. A hash-set lane holds one address, hence one element.

import { checkGrant } from './iptables-rules.ts';
import { canonical, diffElements, laneKey, networkRange, timeoutOf } from './nft-elements.ts';
import type { Cover, Desired, ElementKey, SetKind } from './nft-elements.ts';
import type { ListedElement } from './nft-listing.ts';
import type { Family, ForwardTarget, Grant } from './types.ts';

const HOST_BITS: Readonly<Record<Family, number>> = { 4: 32, 6: 128 };

export interface Claim extends Cover {
  readonly lo: bigint;
  readonly hi: bigint;
  readonly data: ForwardTarget | null;
}

export interface LaneClaim {
  /** The lane (set and rest of the key; lo..hi is this claim's range). */
  readonly key: ElementKey;
  readonly claim: Claim;
}

/** A grant names a network when its prefix is shorter than one address. */
export const isNetworkGrant = (g: Pick<Grant, 'family' | 'prefix'>): boolean =>
  g.prefix !== undefined && g.prefix < HOST_BITS[g.family];

/** The claims of a valid grant (checkGrant), one per lane. */
export function grantClaims(g: Grant): LaneClaim[] {
  checkGrant(g);
  const { lo, hi } = networkRange(g.address, g.family, isNetworkGrant(g) ? g.prefix : undefined);
  const net = isNetworkGrant(g);
  const claim = (kind: SetKind, target: string | null, proto: string, port: number, data: ForwardTarget | null): LaneClaim => ({
    key: { set: { kind, family: g.family, net }, lo, hi, target, proto, port },
    claim: { id: g.id, expiresAtMs: g.expiresAtMs, lo, hi, data },
  });
  const [external] = g.services;
  const fwd = g.forward;
  if (fwd === undefined || external === undefined) {
    const unique = new Map(g.services.map((s) => [`${s.proto}/${s.port}`, s]));
    return [...unique.values()].map((s) => claim('grants', null, s.proto, s.port, null));
  }
  // Canonical as nft lists it, so that listed and wanted elements compare equal.
  const to = canonical(fwd.address, g.family);
  return [
    claim('dnat', null, external.proto, external.port, { address: to, port: fwd.port }),
    claim('fwd', to, external.proto, fwd.port, null),
  ];
}

export const grantLanes = (g: Grant): string[] => grantClaims(g).map((c) => laneKey(c.key));

const byLo = (a: Claim, b: Claim): number => (a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : 0);

/** Latest expiry; ties: the smallest id. */
function best(claims: readonly Claim[]): Claim | undefined {
  let top: Claim | undefined;
  for (const c of claims) {
    if (top === undefined || c.expiresAtMs > top.expiresAtMs || (c.expiresAtMs === top.expiresAtMs && c.id < top.id)) top = c;
  }
  return top;
}

/** The lane's elements at nowMs (see the header): disjoint, sorted, merged. */
export function segments(lane: ElementKey, claims: readonly Claim[], nowMs: number): Desired[] {
  const live = claims.filter((c) => c.expiresAtMs > nowMs).sort(byLo);
  const cuts = [...new Set(live.flatMap((c) => [c.lo, c.hi + 1n]))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const out: Desired[] = [];
  let active: Claim[] = [];
  let next = 0;
  for (let i = 0; i + 1 < cuts.length; i++) {
    const lo = cuts[i] ?? 0n;
    const hi = (cuts[i + 1] ?? 0n) - 1n;
    // Every claim starts and ends on a cut, so it covers a piece wholly or not at all.
    for (let c = live[next]; c !== undefined && c.lo <= lo; c = live[++next]) active.push(c);
    active = active.filter((c) => c.hi >= lo);
    const top = best(active);
    if (top === undefined) continue;
    const last = out.at(-1);
    if (last !== undefined && last.cover.id === top.id && last.hi + 1n === lo) out[out.length - 1] = { ...last, hi };
    else out.push({ ...lane, lo, hi, data: top.data, cover: { id: top.id, expiresAtMs: top.expiresAtMs } });
  }
  return out;
}

interface Lane {
  readonly key: ElementKey;
  readonly claims: Map<string, Claim>;
}

/** The claims of the grants applied, per lane. Memory is bounded by the live grants:
 *  claims leave on remove, expired ones when their lane is computed, and reconcile
 *  rebuilds the table from the daemon's live grants. */
export class CoverTable {
  readonly #lanes = new Map<string, Lane>();

  get size(): number {
    return this.#lanes.size;
  }

  add(g: Grant): void {
    for (const { key, claim } of grantClaims(g)) {
      const k = laneKey(key);
      const lane = this.#lanes.get(k) ?? { key, claims: new Map<string, Claim>() };
      lane.claims.set(g.id, claim);
      this.#lanes.set(k, lane);
    }
  }

  remove(g: Grant): void {
    for (const { key } of grantClaims(g)) this.#drop(laneKey(key), (id) => id === g.id);
  }

  /** Forgets every lane of these set kinds (forwarding switched off). */
  removeKinds(kinds: readonly SetKind[]): void {
    for (const [k, lane] of this.#lanes) if (kinds.includes(lane.key.set.kind)) this.#lanes.delete(k);
  }

  /** The lane's elements at nowMs; expired claims are forgotten. */
  desired(lane: string, nowMs: number): Desired[] {
    const entry = this.#lanes.get(lane);
    if (entry === undefined) return [];
    this.#drop(lane, (_, c) => c.expiresAtMs <= nowMs);
    return segments(entry.key, [...entry.claims.values()], nowMs);
  }

  lanes(): string[] {
    return [...this.#lanes.keys()];
  }

  /** Remembers these lanes; the returned function puts them back as they were. */
  save(lanes: readonly string[]): () => void {
    const saved = lanes.map((k) => {
      const lane = this.#lanes.get(k);
      return [k, lane === undefined ? undefined : { key: lane.key, claims: new Map(lane.claims) }] as const;
    });
    return () => {
      for (const [k, lane] of saved) {
        if (lane === undefined) this.#lanes.delete(k);
        else this.#lanes.set(k, { key: lane.key, claims: new Map(lane.claims) });
      }
    };
  }

  clear(): void {
    this.#lanes.clear();
  }

  #drop(lane: string, pred: (id: string, c: Claim) => boolean): void {
    const entry = this.#lanes.get(lane);
    if (entry === undefined) return;
    for (const [id, c] of entry.claims) if (pred(id, c)) entry.claims.delete(id);
    if (entry.claims.size === 0) this.#lanes.delete(lane);
  }
}

/** `expires` is listed in whole seconds (truncated): an element agrees with its grant when
 *  the two expiries are within this much, on top of that second. */
export const EXPIRY_SLACK_MS = 1_000;

const sameData = (a: ForwardTarget | null, b: ForwardTarget | null): boolean =>
  a === b || (a !== null && b !== null && a.address === b.address && a.port === b.port);

/** An element the backend wrote and the one it wants now are the same element. */
export const sameElement = (h: Desired, d: Desired): boolean =>
  h.cover.id === d.cover.id && h.cover.expiresAtMs === d.cover.expiresAtMs && sameData(h.data, d.data);

function agrees(listed: ListedElement, want: Desired, nowMs: number): boolean {
  const left = listed.expiresInMs;
  const t = timeoutOf(want.cover, nowMs);
  return listed.grantId === want.cover.id && sameData(listed.data, want.data) && left !== null
    && left <= t + EXPIRY_SLACK_MS && left + 1_000 >= t - EXPIRY_SLACK_MS;
}

/** Desired elements grouped by lane: what the backend remembers as written. */
export function byLane(elements: readonly Desired[]): Map<string, Desired[]> {
  const out = new Map<string, Desired[]>();
  for (const e of elements) out.set(laneKey(e), [...(out.get(laneKey(e)) ?? []), e]);
  return out;
}

export interface NftReconcilePlan {
  readonly lines: readonly string[];
  readonly removed: readonly string[];
  readonly restored: readonly string[];
  /** Live grants that failed checkGrant: treated as expired (fail closed). */
  readonly invalid: readonly string[];
  /** Live forwarding grants left out: forwarding is off (GuardSpec.forwarding). */
  readonly unplaced: readonly string[];
  /** Elements without a postern id, removed. */
  readonly untagged: number;
  /** The claims of the live grants and the elements written, for the backend to keep. */
  readonly covers: CoverTable;
  readonly installed: Map<string, Desired[]>;
}

function liveCovers(live: readonly Grant[], nowMs: number, forwarding: boolean) {
  const covers = new CoverTable();
  const active = new Set<string>();
  const invalid: string[] = [];
  const unplaced: string[] = [];
  for (const g of live) {
    if (!(g.expiresAtMs > nowMs)) continue;
    try {
      grantClaims(g);
    } catch {
      invalid.push(String(g.id));
      continue;
    }
    if (g.forward !== undefined && !forwarding) unplaced.push(g.id);
    else {
      covers.add(g);
      active.add(g.id);
    }
  }
  return { covers, active, invalid, unplaced };
}

/** Makes every listed set hold exactly the elements of the live grants unexpired at nowMs:
 *  missing ones are added, elements of unknown or expired ids (and untagged ones) deleted,
 *  an element whose owner, data or expiry disagrees rewritten. */
export function planReconcile(existing: readonly ListedElement[], live: readonly Grant[], nowMs: number, forwarding: boolean): NftReconcilePlan {
  const { covers, active, invalid, unplaced } = liveCovers(live, nowMs, forwarding);
  const want = covers.lanes().flatMap((l) => covers.desired(l, nowMs));
  const diff = diffElements(existing, want, (h, d) => agrees(h, d, nowMs), nowMs);
  const removed = new Set(diff.dropped.flatMap((e) => (e.grantId === null || active.has(e.grantId) ? [] : [e.grantId])));
  return {
    lines: diff.lines,
    removed: [...removed],
    restored: [...new Set(diff.written.map((d) => d.cover.id))],
    invalid,
    unplaced,
    untagged: diff.dropped.filter((e) => e.grantId === null).length,
    covers,
    installed: byLane(want),
  };
}
