// SPDX-License-Identifier: MIT
// Failure aggregation for logs (DESIGN.md "Alerts": a flood becomes a handful of lines
// with counts, never a line per packet). The first failure of each (reason, source) in
// an interval is reported at once; repeats are counted and reported when the interval
// ends. Distinct (reason, source) pairs per interval are capped, so a spoofed flood from
// 100,000 addresses costs a bounded map and a handful of lines.

export interface FailureLine {
  readonly reason: string;
  readonly source: string;
  readonly key?: string | undefined;
  /** Occurrences this line stands for. */
  readonly count: number;
  /** true for the immediate first report, false for the end-of-interval summary. */
  readonly first: boolean;
}

export interface Overflow {
  readonly count: number;
  readonly sources: number;
}

interface Entry { reason: string; source: string; key: string | undefined; repeats: number }

export class FailureAggregator {
  readonly #maxTracked: number;
  readonly #emit: (line: FailureLine) => void;
  readonly #emitOverflow: (o: Overflow) => void;
  #counts = new Map<string, Entry>();
  /** The entry the previous record() counted into (undefined after flush). */
  #last: Entry | undefined;
  #overflow = 0;
  #overflowSources = new Set<string>();

  constructor(opts: { maxTracked: number; emit: (l: FailureLine) => void; emitOverflow: (o: Overflow) => void }) {
    this.#maxTracked = opts.maxTracked;
    this.#emit = opts.emit;
    this.#emitOverflow = opts.emitOverflow;
  }

  record(reason: string, source: string, key?: string): void {
    // A flood usually repeats one (reason, source, key) many times in a row: compare with the
    // last entry before building the map key (a string concatenation and a hash per packet,
    // about a fifth of the daemon's JS time per junk packet in a --cpu-prof of a flood).
    const last = this.#last;
    if (last !== undefined && last.reason === reason && last.source === source && last.key === key) {
      last.repeats++;
      return;
    }
    const id = `${reason}|${source}|${key ?? ""}`;
    const entry = this.#counts.get(id);
    if (entry) {
      entry.repeats++;
      this.#last = entry;
      return;
    }
    if (this.#counts.size >= this.#maxTracked) {
      this.#overflow++;
      // The source set is capped too: its size only feeds a summary figure.
      if (this.#overflowSources.size < 4 * this.#maxTracked) this.#overflowSources.add(source);
      return;
    }
    const added = { reason, source, key, repeats: 0 };
    this.#counts.set(id, added);
    this.#last = added;
    this.#emit({ reason, source, key, count: 1, first: true });
  }

  /** End the interval: emit summaries of repeats and overflow, then start afresh. */
  flush(): void {
    for (const e of this.#counts.values()) {
      if (e.repeats > 0) this.#emit({ reason: e.reason, source: e.source, key: e.key, count: e.repeats, first: false });
    }
    if (this.#overflow > 0) this.#emitOverflow({ count: this.#overflow, sources: this.#overflowSources.size });
    this.#counts = new Map();
    this.#last = undefined;
    this.#overflow = 0;
    this.#overflowSources = new Set();
  }
}
