// SPDX-License-Identifier: MIT
// The alert outbox (issue 6): every alert and grant message is appended here before it is
// published, and deleted only once the broker acknowledged it (QoS 1 PUBACK), so a broker
// outage loses nothing under the cap. The daemon uses the SQLite outbox (src/store);
// MemoryOutbox is the fallback when the database is unavailable, and the unit-test twin.

export interface OutboxMessage {
  readonly topic: string;
  readonly payload: string;
  readonly qos: 0 | 1;
  readonly retain: boolean;
}

export interface OutboxEntry extends OutboxMessage {
  readonly id: number;
  readonly createdMs: number;
}

export interface Outbox {
  /** Appends in order; when over the cap drops the OLDEST entries and returns how many it dropped. */
  append(messages: readonly OutboxMessage[], nowMs: number): { readonly dropped: number };
  /** Oldest first, at most `limit`. */
  peek(limit: number): OutboxEntry[];
  /** Deletes every entry with id <= `id` (delivered). */
  ack(id: number): void;
  size(): number;
}

export class MemoryOutbox implements Outbox {
  readonly #cap: number;
  #entries: OutboxEntry[] = [];
  #nextId = 1;

  constructor(cap: number) {
    if (!Number.isInteger(cap) || cap < 1) throw new RangeError(`outbox cap must be a positive integer, got ${cap}`);
    this.#cap = cap;
  }

  append(messages: readonly OutboxMessage[], nowMs: number): { readonly dropped: number } {
    for (const m of messages) {
      this.#entries.push({ topic: m.topic, payload: m.payload, qos: m.qos, retain: m.retain, id: this.#nextId++, createdMs: nowMs });
    }
    const dropped = Math.max(0, this.#entries.length - this.#cap);
    if (dropped > 0) this.#entries = this.#entries.slice(dropped);
    return { dropped };
  }

  peek(limit: number): OutboxEntry[] {
    return this.#entries.slice(0, Math.max(0, limit));
  }

  ack(id: number): void {
    let n = 0;
    while (n < this.#entries.length && (this.#entries[n]?.id ?? Infinity) <= id) n++;
    if (n > 0) this.#entries = this.#entries.slice(n);
  }

  size(): number {
    return this.#entries.length;
  }
}
