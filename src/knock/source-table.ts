// SPDX-License-Identifier: MIT
// Per-source knock state in fixed arrays allocated once (STYLE.md principle 4: the window
// is fixed-size and allocation-free): a flood of spoofed first knocks from 100,000 sources
// reuses the same max_sources slots, so it costs no memory and leaves no garbage to
// promote into V8's old generation (ref/knockd.md K9: knockd's per-source list grows without
// bound). Slots form an LRU list (most recent at the head); a new source takes a free slot
// or the least recently used one.
//
// Sources are keyed by their address text, copied into a fixed byte array, and found through
// an open-addressing hash index (linear probing, backward-shift deletion: no tombstones).
// Not a Map of strings: under a random-source SYN flood every new source's string lived in
// the Map until evicted, long enough to be promoted to V8's old generation, and the Map's
// rehashes did the same with their tables; a 10 s flood at 20,000 pps left 10-20 MB of
// old-generation garbage and several MB of RSS (issue 9, test/bench/mem-flood.ts). Now the
// frame's source string dies young; a string is made back from the bytes only for an event.
// Keys are address texts: ASCII, at most MAX_KEY_CHARS (RFC 4291 §2.2's longest form is 45);
// anything else cannot be tracked (touch/find return NONE).
// Memory: max_sources * (doors * 21 + 75) bytes.

export const NONE = -1;
/** Longest textual address (six 4-digit groups, colons and a dotted quad). */
export const MAX_KEY_CHARS = 45;
const ASCII_MAX = 0x7f;
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** FNV-1a over the UTF-16 code units (ASCII here), without allocating. */
function hashText(text: string): number {
  let h = FNV_OFFSET;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), FNV_PRIME);
  return h >>> 0;
}

function storable(text: string): boolean {
  if (text.length === 0 || text.length > MAX_KEY_CHARS) return false;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > ASCII_MAX) return false;
  return true;
}

export class SourceTable {
  readonly capacity: number;
  readonly #doors: number;
  /** Per slot: the key's characters, its length (0 = free slot) and its hash. */
  readonly #chars: Uint8Array;
  readonly #keyLen: Uint8Array;
  readonly #keyHash: Uint32Array;
  /** Hash index: slot numbers or NONE; a power of two at least twice the capacity. */
  readonly #buckets: Int32Array;
  #size = 0;
  readonly #prev: Int32Array;
  readonly #next: Int32Array;
  readonly #penaltyUntil: Float64Array;
  /** Per (slot, door): 0 = no attempt, else 1 + knocks matched in order; first knock time;
   *  step; and a bit per sequence position seen early (door-runtime.ts says when). */
  readonly #stage: Uint8Array;
  readonly #early: Uint32Array;
  readonly #firstMs: Float64Array;
  readonly #step: Float64Array;
  readonly #active: Uint8Array;
  #head = NONE;
  #tail = NONE;
  #free: number[];
  #evicted = 0;

  constructor(capacity: number, doors: number) {
    this.capacity = capacity;
    this.#doors = Math.max(doors, 1);
    this.#chars = new Uint8Array(capacity * MAX_KEY_CHARS);
    this.#keyLen = new Uint8Array(capacity);
    this.#keyHash = new Uint32Array(capacity);
    this.#buckets = new Int32Array(2 ** Math.ceil(Math.log2(capacity * 2))).fill(NONE);
    this.#prev = new Int32Array(capacity).fill(NONE);
    this.#next = new Int32Array(capacity).fill(NONE);
    this.#penaltyUntil = new Float64Array(capacity);
    this.#stage = new Uint8Array(capacity * this.#doors);
    this.#early = new Uint32Array(capacity * this.#doors);
    this.#firstMs = new Float64Array(capacity * this.#doors);
    this.#step = new Float64Array(capacity * this.#doors).fill(Number.NaN);
    this.#active = new Uint8Array(capacity);
    this.#free = Array.from({ length: capacity }, (_, i) => capacity - 1 - i);
  }

  get size(): number {
    return this.#size;
  }

  get evicted(): number {
    return this.#evicted;
  }

  /** The source's slot, or NONE when it is not tracked (or cannot be: see the header). */
  find(src: string): number {
    return storable(src) ? this.#lookup(src, hashText(src)) : NONE;
  }

  /** The source's slot, made most recent; a new source evicts the least recent when full.
   *  NONE for a key that cannot be tracked (not an address text). */
  touch(src: string): number {
    if (!storable(src)) return NONE;
    const hash = hashText(src);
    let slot: number | undefined = this.#lookup(src, hash);
    if (slot !== NONE) {
      this.#unlink(slot);
    } else {
      slot = this.#free.pop();
      if (slot === undefined) {
        slot = this.#tail;
        this.release(slot);
        this.#free.pop();
        this.#evicted++;
      }
      this.#insert(slot, src, hash);
    }
    this.#pushHead(slot);
    return slot;
  }

  /** The source text of a tracked slot ('' for a free one); allocates: for events only. */
  text(slot: number): string {
    const len = this.#keyLen[slot] ?? 0;
    const off = slot * MAX_KEY_CHARS;
    return String.fromCharCode(...this.#chars.subarray(off, off + len));
  }

  /** Every tracked slot (safe to release slots while iterating). */
  *slots(): Generator<number> {
    for (let slot = 0; slot < this.capacity; slot++) if ((this.#keyLen[slot] ?? 0) > 0) yield slot;
  }

  #sameKey(slot: number, src: string): boolean {
    if (this.#keyLen[slot] !== src.length) return false;
    const off = slot * MAX_KEY_CHARS;
    for (let i = 0; i < src.length; i++) if (this.#chars[off + i] !== src.charCodeAt(i)) return false;
    return true;
  }

  #lookup(src: string, hash: number): number {
    const mask = this.#buckets.length - 1;
    for (let i = hash & mask; ; i = (i + 1) & mask) {
      const slot = this.#buckets[i] ?? NONE;
      if (slot === NONE) return NONE;
      if (this.#keyHash[slot] === hash && this.#sameKey(slot, src)) return slot;
    }
  }

  #insert(slot: number, src: string, hash: number): void {
    const off = slot * MAX_KEY_CHARS;
    for (let i = 0; i < src.length; i++) this.#chars[off + i] = src.charCodeAt(i);
    this.#keyLen[slot] = src.length;
    this.#keyHash[slot] = hash;
    const mask = this.#buckets.length - 1;
    let i = hash & mask;
    while (this.#buckets[i] !== NONE) i = (i + 1) & mask;
    this.#buckets[i] = slot;
    this.#size++;
  }

  /** Take the slot out of the index; later entries of its probe run shift back into the hole
   *  unless their home bucket lies cyclically after it (Knuth 6.4, algorithm R). */
  #removeKey(slot: number): void {
    const mask = this.#buckets.length - 1;
    let hole = (this.#keyHash[slot] ?? 0) & mask;
    while (this.#buckets[hole] !== slot) hole = (hole + 1) & mask;
    for (let j = (hole + 1) & mask; this.#buckets[j] !== NONE; j = (j + 1) & mask) {
      const moved = this.#buckets[j] ?? NONE;
      const home = (this.#keyHash[moved] ?? 0) & mask;
      const stays = hole <= j ? hole < home && home <= j : hole < home || home <= j;
      if (stays) continue;
      this.#buckets[hole] = moved;
      hole = j;
    }
    this.#buckets[hole] = NONE;
    this.#keyLen[slot] = 0;
    this.#size--;
  }

  /** Forget a source: its slot goes back to the free list, its state is cleared. */
  release(slot: number): void {
    if ((this.#keyLen[slot] ?? 0) === 0) return;
    this.#removeKey(slot);
    this.#unlink(slot);
    this.clearProgress(slot);
    this.#penaltyUntil[slot] = 0;
    this.#free.push(slot);
  }

  #unlink(slot: number): void {
    const p = this.#prev[slot] ?? NONE;
    const n = this.#next[slot] ?? NONE;
    if (p !== NONE) this.#next[p] = n;
    else if (this.#head === slot) this.#head = n;
    if (n !== NONE) this.#prev[n] = p;
    else if (this.#tail === slot) this.#tail = p;
    this.#prev[slot] = NONE;
    this.#next[slot] = NONE;
  }

  #pushHead(slot: number): void {
    this.#next[slot] = this.#head;
    this.#prev[slot] = NONE;
    if (this.#head !== NONE) this.#prev[this.#head] = slot;
    this.#head = slot;
    if (this.#tail === NONE) this.#tail = slot;
  }

  inAttempt(slot: number, door: number): boolean {
    return (this.#stage[slot * this.#doors + door] ?? 0) > 0;
  }

  /** Knocks of the attempt matched in order so far. */
  matched(slot: number, door: number): number {
    return Math.max((this.#stage[slot * this.#doors + door] ?? 0) - 1, 0);
  }

  /** Positions of the sequence already seen ahead of their turn (bit i = position i). */
  early(slot: number, door: number): number {
    return this.#early[slot * this.#doors + door] ?? 0;
  }

  firstMs(slot: number, door: number): number {
    return this.#firstMs[slot * this.#doors + door] ?? 0;
  }

  /** The time step an attempt on a time-derived door follows; undefined otherwise. */
  step(slot: number, door: number): number | undefined {
    const s = this.#step[slot * this.#doors + door] ?? Number.NaN;
    return Number.isNaN(s) ? undefined : s;
  }

  /** Start an attempt (nothing matched yet; setProgress follows). */
  begin(slot: number, door: number, firstMs: number, step: number | undefined): void {
    const i = slot * this.#doors + door;
    if (this.#stage[i] === 0) this.#active[slot] = (this.#active[slot] ?? 0) + 1;
    this.#stage[i] = 1;
    this.#early[i] = 0;
    this.#firstMs[i] = firstMs;
    this.#step[i] = step ?? Number.NaN;
  }

  setProgress(slot: number, door: number, matched: number, early: number): void {
    const i = slot * this.#doors + door;
    this.#stage[i] = matched + 1;
    this.#early[i] = early;
  }

  end(slot: number, door: number): void {
    const i = slot * this.#doors + door;
    if (this.#stage[i] === 0) return;
    this.#stage[i] = 0;
    this.#early[i] = 0;
    this.#step[i] = Number.NaN;
    this.#active[slot] = (this.#active[slot] ?? 1) - 1;
  }

  /** Attempts in progress for this source. */
  active(slot: number): number {
    return this.#active[slot] ?? 0;
  }

  clearProgress(slot: number): void {
    for (let d = 0; d < this.#doors; d++) this.end(slot, d);
  }

  penaltyUntil(slot: number): number {
    return this.#penaltyUntil[slot] ?? 0;
  }

  setPenalty(slot: number, untilMs: number): void {
    this.#penaltyUntil[slot] = untilMs;
  }
}
