// SPDX-License-Identifier: MIT
// The audit log, aggregated (issue 6 "Store": never one row per junk packet). Between
// flushes, attempts are counted per (kind, source, key) with first/last times; distinct
// entries per interval are capped, and everything past the cap becomes one overflow row
// per kind with source "*". So a spoofed flood from 100,000 addresses costs at most
// `maxEntries + kinds` rows per interval, and a flood from one address costs one.

/** Source of the per-kind row that counts attempts past the per-interval cap. */
export const OVERFLOW_SOURCE = '*';

export interface AuditRow {
  /** A DropReason, or accepted / extended / closed. */
  readonly kind: string;
  readonly source: string;
  readonly key?: string | undefined;
  readonly count: number;
  readonly firstMs: number;
  readonly lastMs: number;
}

interface Pending { kind: string; source: string; key: string | undefined; count: number; firstMs: number; lastMs: number }

export class AuditBuffer {
  readonly #maxEntries: number;
  #pending = new Map<string, Pending>();
  #overflow = new Map<string, Pending>();

  constructor(maxEntries: number) {
    this.#maxEntries = maxEntries;
  }

  /** Attempts waiting for the next flush (for tests and the size-threshold flush). */
  get size(): number {
    return this.#pending.size + this.#overflow.size;
  }

  record(kind: string, source: string, key: string | undefined, atMs: number): void {
    const id = `${kind}|${source}|${key ?? ''}`;
    const entry = this.#pending.get(id)
      ?? (this.#pending.size < this.#maxEntries ? this.#add(this.#pending, id, kind, source, key, atMs) : undefined)
      ?? this.#overflow.get(kind) ?? this.#add(this.#overflow, kind, kind, OVERFLOW_SOURCE, undefined, atMs);
    entry.count++;
    entry.lastMs = Math.max(entry.lastMs, atMs);
  }

  #add(map: Map<string, Pending>, id: string, kind: string, source: string, key: string | undefined, atMs: number): Pending {
    const p: Pending = { kind, source, key, count: 0, firstMs: atMs, lastMs: atMs };
    map.set(id, p);
    return p;
  }

  /** The interval's rows (oldest first by firstMs), and a fresh interval. */
  take(): AuditRow[] {
    const rows = [...this.#pending.values(), ...this.#overflow.values()].sort((a, b) => a.firstMs - b.firstMs);
    this.#pending = new Map();
    this.#overflow = new Map();
    return rows;
  }
}
