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

export class FailureAggregator {
  readonly #maxTracked: number;
  readonly #emit: (line: FailureLine) => void;
  readonly #emitOverflow: (o: Overflow) => void;
  #counts = new Map<string, { reason: string; source: string; key: string | undefined; repeats: number }>();
  #overflow = 0;
  #overflowSources = new Set<string>();

  constructor(opts: { maxTracked: number; emit: (l: FailureLine) => void; emitOverflow: (o: Overflow) => void }) {
    this.#maxTracked = opts.maxTracked;
    this.#emit = opts.emit;
    this.#emitOverflow = opts.emitOverflow;
  }

  record(reason: string, source: string, key?: string): void {
    const id = `${reason}|${source}|${key ?? ""}`;
    const entry = this.#counts.get(id);
    if (entry) {
      entry.repeats++;
      return;
    }
    if (this.#counts.size >= this.#maxTracked) {
      this.#overflow++;
      // The source set is capped too: its size only feeds a summary figure.
      if (this.#overflowSources.size < 4 * this.#maxTracked) this.#overflowSources.add(source);
      return;
    }
    this.#counts.set(id, { reason, source, key, repeats: 0 });
    this.#emit({ reason, source, key, count: 1, first: true });
  }

  /** End the interval: emit summaries of repeats and overflow, then start afresh. */
  flush(): void {
    for (const e of this.#counts.values()) {
      if (e.repeats > 0) this.#emit({ reason: e.reason, source: e.source, key: e.key, count: e.repeats, first: false });
    }
    if (this.#overflow > 0) this.#emitOverflow({ count: this.#overflow, sources: this.#overflowSources.size });
    this.#counts = new Map();
    this.#overflow = 0;
    this.#overflowSources = new Set();
  }
}
