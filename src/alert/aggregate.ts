// SPDX-License-Identifier: MIT
// Alert aggregation (issue 6, DESIGN.md "Alerts"): failures are summed per (kind, source)
// per interval, under a global cap on messages per second, so a flood becomes a bounded
// handful of messages whose counts add up to what the daemon counted. Nothing is lost to
// the caps: a (kind, source) pair beyond max_sources is summed into (kind, "*"), and a
// message the rate cap holds back keeps its count for the next interval.
// Pure: time comes in as arguments (monotonic ms for the token bucket, wall ms for payloads).

export interface AggregateLimits {
  readonly intervalMs: number;
  readonly maxMessagesPerS: number;
  readonly maxSources: number;
}

export interface AlertCount {
  readonly kind: string;
  readonly source: string;
  readonly key: string | undefined;
  readonly count: number;
  readonly firstMs: number;
  readonly lastMs: number;
}

interface Pending {
  kind: string;
  source: string;
  key: string | undefined;
  count: number;
  firstMs: number;
  lastMs: number;
}

/** Sources beyond max_sources share this one. */
export const OVERFLOW_SOURCE = '*';

export class AlertAggregator {
  readonly #limits: AggregateLimits;
  /** Insertion-ordered, so held-back messages go out oldest first. */
  #pending = new Map<string, Pending>();
  /** Pairs seen this interval: a repeat of one is summed, not sent at once. */
  #seen = new Set<string>();
  #tokens: number;
  #refillAtMono: number;

  constructor(limits: AggregateLimits, nowMono: number) {
    this.#limits = limits;
    this.#tokens = this.#capacity();
    this.#refillAtMono = nowMono;
  }

  /** Tokens: max_messages_per_s on average over an interval, spent in bursts. */
  #capacity(): number {
    return Math.max(1, Math.floor((this.#limits.maxMessagesPerS * this.#limits.intervalMs) / 1000));
  }

  #take(nowMono: number): boolean {
    const elapsed = Math.max(0, nowMono - this.#refillAtMono);
    this.#tokens = Math.min(this.#capacity(), this.#tokens + (elapsed * this.#limits.maxMessagesPerS) / 1000);
    this.#refillAtMono = nowMono;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** One failure. Returns the message to send now (the first of its pair this interval,
   *  when the rate cap allows), or undefined when it was summed for later. */
  record(kind: string, source: string, key: string | undefined, wallMs: number, nowMono: number): AlertCount | undefined {
    let id = `${kind}|${source}|${key ?? ''}`;
    if (!this.#seen.has(id) && this.#seen.size >= this.#limits.maxSources) {
      id = `${kind}|${OVERFLOW_SOURCE}|`;
      source = OVERFLOW_SOURCE;
      key = undefined;
    }
    const entry = this.#pending.get(id);
    if (entry) {
      entry.count++;
      entry.lastMs = wallMs;
      return undefined;
    }
    const first = !this.#seen.has(id);
    this.#seen.add(id);
    if (first && this.#take(nowMono)) return { kind, source, key, count: 1, firstMs: wallMs, lastMs: wallMs };
    this.#pending.set(id, { kind, source, key, count: 1, firstMs: wallMs, lastMs: wallMs });
    return undefined;
  }

  /** End of an interval: the summed counts, as many as the rate cap allows; the rest
   *  stay pending (with their counts) for the next interval. */
  flush(nowMono: number): AlertCount[] {
    const out: AlertCount[] = [];
    for (const [id, p] of this.#pending) {
      if (!this.#take(nowMono)) break;
      out.push({ ...p });
      this.#pending.delete(id);
    }
    this.#seen = new Set(this.#pending.keys());
    return out;
  }

  /** Failures counted but not yet handed out (for tests and stats). */
  pendingCount(): number {
    let n = 0;
    for (const p of this.#pending.values()) n += p.count;
    return n;
  }
}
