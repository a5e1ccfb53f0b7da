// SPDX-License-Identifier: MIT
// Hands the heap back once a burst is over (issue 9: RSS growth <= 5 MB after every flood
// and after 10,000 grants opened and expired).
//
// Why: a burst that keeps objects alive for a while (10,000 grants in 10 s: grants, journal
// rows, firewall scripts, log fields) grows V8's old generation, and V8 keeps the pages
// after the objects die. Its memory reducer gives them back only once the allocation rate
// has stayed low for about 8 s (--gc-memory-reducer-start-delay-ms; measured on Node 24: a
// heap grown by 150 MB came back 9 s after the burst, not before). On a 128 MB router those
// are 8 s in which the board's other processes cannot have the memory. So the daemon checks
// its heap once a second and, when it has grown past a threshold and stopped growing, asks
// for the same full, compacting, memory-reducing collection itself (V8's gc extension,
// `flavor: 'last-resort'`), at most once per two checks: a pause of a few tens of ms (45 ms
// measured for a heap with 20 MB live; the daemon's is smaller) after a burst, none while
// idle (the heap does not grow then) or during steady traffic (it does not grow past the
// threshold). 10,000 grants in 10 s (h2h memory): +17 MB without, +2.5-4.9 MB with, at
// the same CPU.
//
// `globalThis.gc` exists only with --expose-gc, which the tuned re-exec sets (src/cli/daemon.ts);
// without it (POSTERN_DAEMON_TUNED set by hand) the compactor does nothing and V8's own
// reducer acts later.

import { getHeapStatistics } from 'node:v8';

/** V8's gc extension (v8/src/extensions/gc-extension.cc): options as an object. */
type GcFunction = (opts: { type: 'major'; execution: 'sync'; flavor: 'last-resort' }) => void;

export interface HeapCompactorOptions {
  /** Heap growth over the size after the last compaction that makes one worth it. */
  readonly growthBytes: number;
  /** Ticks (of the caller's period) at least between two compactions. */
  readonly minTicksBetween: number;
  /** Defaults: the process's heap size and gc function. */
  readonly heapBytes?: () => number;
  readonly gc?: GcFunction | undefined;
}

export const DEFAULT_COMPACTOR: HeapCompactorOptions = { growthBytes: 2 * 1024 * 1024, minTicksBetween: 2 };

const processHeap = (): number => getHeapStatistics().total_heap_size;
const exposedGc = (): GcFunction | undefined => {
  const gc: unknown = (globalThis as { gc?: unknown }).gc;
  return typeof gc === 'function' ? (gc as GcFunction) : undefined;
};

export class HeapCompactor {
  readonly #opts: HeapCompactorOptions;
  readonly #heap: () => number;
  readonly #gc: GcFunction | undefined;
  #floor: number;
  #last: number;
  #ticksSince: number;
  compactions = 0;

  constructor(opts: HeapCompactorOptions = DEFAULT_COMPACTOR) {
    this.#opts = opts;
    this.#heap = opts.heapBytes ?? processHeap;
    this.#gc = 'gc' in opts ? opts.gc : exposedGc();
    this.#floor = this.#heap();
    this.#last = this.#floor;
    this.#ticksSince = opts.minTicksBetween;
  }

  get active(): boolean {
    return this.#gc !== undefined;
  }

  /** Call periodically (the daemon: every second). Returns whether it compacted. */
  tick(): boolean {
    this.#ticksSince++;
    const now = this.#heap();
    const grewSinceLast = now > this.#last;
    this.#last = now;
    // A heap smaller than the floor (V8's own reducer ran) is the new floor.
    if (now < this.#floor) this.#floor = now;
    if (this.#gc === undefined || grewSinceLast || now - this.#floor < this.#opts.growthBytes) return false;
    if (this.#ticksSince < this.#opts.minTicksBetween) return false;
    this.#gc({ type: 'major', execution: 'sync', flavor: 'last-resort' });
    this.compactions++;
    this.#ticksSince = 0;
    this.#floor = this.#heap();
    this.#last = this.#floor;
    return true;
  }
}
