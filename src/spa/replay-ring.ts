// SPDX-License-Identifier: MIT
// The replay ring of DESIGN.md "Freshness and the replay ring": a fixed-capacity,
// insertion-ordered ring of (key id, truncated tag, ts) with an O(1) index, evicting the
// oldest entry when full. It knows nothing about time; replay.ts decides what enters
// and when entries leave.
//
// Fixed-size and allocation-free after construction (STYLE.md principle 4): four typed arrays
// hold the entries (20 bytes each) and an open-addressing table (linear probing, load <= 1/2,
// backward-shift deletion, so no tombstones) holds ring slot + 1 per (key id, tag). At the
// default 4096 entries that is 80 KiB of entries + 16 KiB of index. A Map keyed by BigInt or
// string measured 240-480 KiB for the same 4096 entries, before the entries themselves, and
// allocates a key per lookup. The table has at least 2 * capacity cells, so it always has an
// empty cell and every probe loop below terminates.
//
// CONTRACT: every entry that leaves the ring, for any reason (eviction when full, removeWhere),
// is reported to onLeave exactly once. replay.ts builds its floor invariant on this.

/** Bytes of the 16-byte SIV tag kept per entry. 64 bits: tags are PRF outputs, so two distinct
 *  authenticated packets of one key collide with probability ~n^2/2^65, and a collision only
 *  refuses a packet; a real replay carries the same tag and is always found. */
export const TRUNCATED_TAG_SIZE = 8;
export const MIN_RING_CAPACITY = 16;
export const MAX_RING_CAPACITY = 1_048_576;

/** Index cell value meaning "empty"; other cells hold ring slot + 1. */
const EMPTY = 0;

/** Told about every entry that leaves the ring. Must not call back into the ring. */
export type LeaveHandler = (keyId: number, tsMs: number) => void;

/** The first TRUNCATED_TAG_SIZE bytes of a tag as two big-endian uint32 words. */
export function tagWord(tag: Uint8Array, offset: 0 | 4): number {
  return (
    (((tag[offset] ?? 0) << 24) | ((tag[offset + 1] ?? 0) << 16) | ((tag[offset + 2] ?? 0) << 8) | (tag[offset + 3] ?? 0)) >>>
    0
  );
}

/** Seeded 32-bit mix (murmur3 finaliser constants). The seed is secret per process, so even a
 *  key holder grinding tags cannot build long probe chains that slow the pre-auth peek. */
function mix(keyId: number, hi: number, lo: number, seed: number): number {
  let h = Math.imul(lo ^ seed, 0xcc9e2d51);
  h = Math.imul(h ^ hi ^ (h >>> 15), 0x85ebca6b);
  h = Math.imul(h ^ keyId ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export class ReplayRing {
  readonly capacity: number;
  readonly #keyIds: Uint32Array;
  readonly #tagHi: Uint32Array;
  readonly #tagLo: Uint32Array;
  readonly #ts: Float64Array;
  readonly #index: Uint16Array | Uint32Array;
  readonly #mask: number;
  readonly #seed: number;
  readonly #onLeave: LeaveHandler;
  #head = 0;
  #size = 0;

  /** capacity must be an integer in MIN_RING_CAPACITY..MAX_RING_CAPACITY (checked by the caller). */
  constructor(capacity: number, seed: number, onLeave: LeaveHandler) {
    this.capacity = capacity;
    this.#keyIds = new Uint32Array(capacity);
    this.#tagHi = new Uint32Array(capacity);
    this.#tagLo = new Uint32Array(capacity);
    this.#ts = new Float64Array(capacity);
    const cells = 2 ** Math.ceil(Math.log2(capacity * 2));
    // Cells hold slot + 1 <= capacity; Uint16 halves the index at the default capacity.
    this.#index = capacity < 0xffff ? new Uint16Array(cells) : new Uint32Array(cells);
    this.#mask = cells - 1;
    this.#seed = seed >>> 0;
    this.#onLeave = onLeave;
  }

  get size(): number {
    return this.#size;
  }

  has(keyId: number, hi: number, lo: number): boolean {
    return this.#find(keyId, hi, lo) >= 0;
  }

  /** Append an entry the ring does not hold (caller checks has()). Evicts the oldest when full. */
  push(keyId: number, hi: number, lo: number, tsMs: number): void {
    if (this.#size === this.capacity) this.#evictOldest();
    const slot = this.#slotAt(this.#size);
    this.#keyIds[slot] = keyId;
    this.#tagHi[slot] = hi;
    this.#tagLo[slot] = lo;
    this.#ts[slot] = tsMs;
    this.#size++;
    this.#link(slot);
  }

  /** Remove every entry for which drop() is true, keeping the rest in order. O(capacity):
   *  meant for timers and administration, never for the per-packet path. */
  removeWhere(drop: (keyId: number, tsMs: number) => boolean): number {
    let kept = 0;
    for (let i = 0; i < this.#size; i++) {
      const from = this.#slotAt(i);
      const keyId = this.#keyIds[from] ?? 0;
      const ts = this.#ts[from] ?? 0;
      if (drop(keyId, ts)) {
        this.#onLeave(keyId, ts);
        continue;
      }
      this.#move(from, this.#slotAt(kept++));
    }
    const removed = this.#size - kept;
    if (removed > 0) this.#rebuildIndex(kept);
    return removed;
  }

  /** Visit entries oldest first. */
  forEach(visit: (keyId: number, hi: number, lo: number, tsMs: number) => void): void {
    for (let i = 0; i < this.#size; i++) {
      const s = this.#slotAt(i);
      visit(this.#keyIds[s] ?? 0, this.#tagHi[s] ?? 0, this.#tagLo[s] ?? 0, this.#ts[s] ?? 0);
    }
  }

  /** Ring slot of the i-th oldest entry. */
  #slotAt(i: number): number {
    const s = this.#head + i;
    return s >= this.capacity ? s - this.capacity : s;
  }

  #home(slot: number): number {
    return mix(this.#keyIds[slot] ?? 0, this.#tagHi[slot] ?? 0, this.#tagLo[slot] ?? 0, this.#seed) & this.#mask;
  }

  /** Ring slot holding (keyId, hi, lo), or -1. */
  #find(keyId: number, hi: number, lo: number): number {
    for (let c = mix(keyId, hi, lo, this.#seed) & this.#mask; ; c = (c + 1) & this.#mask) {
      const cell = this.#index[c] ?? EMPTY;
      if (cell === EMPTY) return -1;
      const s = cell - 1;
      if (this.#tagLo[s] === lo && this.#tagHi[s] === hi && this.#keyIds[s] === keyId) return s;
    }
  }

  #link(slot: number): void {
    let c = this.#home(slot);
    while ((this.#index[c] ?? EMPTY) !== EMPTY) c = (c + 1) & this.#mask;
    this.#index[c] = slot + 1;
  }

  /** Remove slot's cell, then shift later cells of the probe run back (Knuth 6.4 Algorithm R),
   *  so lookups never need tombstones. */
  #unlink(slot: number): void {
    let hole = this.#home(slot);
    while ((this.#index[hole] ?? EMPTY) !== slot + 1) hole = (hole + 1) & this.#mask;
    for (let c = (hole + 1) & this.#mask; ; c = (c + 1) & this.#mask) {
      const cell = this.#index[c] ?? EMPTY;
      if (cell === EMPTY) break;
      const home = this.#home(cell - 1);
      // The cell may move into the hole only if its home is not cyclically in (hole, c].
      const stays = hole <= c ? hole < home && home <= c : hole < home || home <= c;
      if (stays) continue;
      this.#index[hole] = cell;
      hole = c;
    }
    this.#index[hole] = EMPTY;
  }

  #evictOldest(): void {
    const slot = this.#head;
    this.#unlink(slot);
    this.#head = this.#slotAt(1);
    this.#size--;
    this.#onLeave(this.#keyIds[slot] ?? 0, this.#ts[slot] ?? 0);
  }

  #move(from: number, to: number): void {
    if (from === to) return;
    this.#keyIds[to] = this.#keyIds[from] ?? 0;
    this.#tagHi[to] = this.#tagHi[from] ?? 0;
    this.#tagLo[to] = this.#tagLo[from] ?? 0;
    this.#ts[to] = this.#ts[from] ?? 0;
  }

  #rebuildIndex(size: number): void {
    this.#size = size;
    this.#index.fill(EMPTY);
    for (let i = 0; i < size; i++) this.#link(this.#slotAt(i));
  }
}
