// SPDX-License-Identifier: MIT
// Per-source knock state in fixed arrays allocated once (STYLE.md principle 4: the window
// is fixed-size and allocation-free): a flood of spoofed first knocks from 100,000 sources
// reuses the same max_sources slots, so it costs no memory and leaves no garbage to
// promote into V8's old generation (ref/knockd.md K9: knockd's per-source list grows without
// bound). Slots form an LRU list (most recent at the head); a new source takes a free slot
// or the least recently used one. Memory: max_sources * doors * 21 bytes.

const NONE = -1;

export class SourceTable {
  readonly capacity: number;
  readonly #doors: number;
  readonly #index = new Map<string, number>();
  readonly #keys: (string | undefined)[];
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
    this.#keys = new Array<string | undefined>(capacity).fill(undefined);
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
    return this.#index.size;
  }

  get evicted(): number {
    return this.#evicted;
  }

  find(src: string): number {
    return this.#index.get(src) ?? NONE;
  }

  /** The source's slot, made most recent; a new source evicts the least recent when full. */
  touch(src: string): number {
    let slot = this.#index.get(src);
    if (slot !== undefined) {
      this.#unlink(slot);
    } else {
      slot = this.#free.pop();
      if (slot === undefined) {
        slot = this.#tail;
        this.release(slot);
        this.#free.pop();
        this.#evicted++;
      }
      this.#keys[slot] = src;
      this.#index.set(src, slot);
    }
    this.#pushHead(slot);
    return slot;
  }

  /** Forget a source: its slot goes back to the free list, its state is cleared. */
  release(slot: number): void {
    const key = this.#keys[slot];
    if (key === undefined) return;
    this.#index.delete(key);
    this.#keys[slot] = undefined;
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

  /** Every tracked source and its slot (safe to release slots while iterating). */
  entries(): IterableIterator<[string, number]> {
    return this.#index.entries();
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
