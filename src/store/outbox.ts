// SPDX-License-Identifier: MIT
// The MQTT outbox in SQLite (contract: src/alert/outbox.ts). Appends in order, capped at
// `cap` rows by dropping the oldest; deleted only when the broker acknowledged delivery.
// If the database fails, the outbox carries on in memory (MemoryOutbox) and reports it
// through `onError`: alerts keep flowing while the store is degraded.

import { MemoryOutbox, type Outbox, type OutboxEntry, type OutboxMessage } from '../alert/outbox.ts';
import type { Database, Statement } from './sqlite.ts';

interface Row { id: number; topic: string; payload: string; qos: number; retain: number; created_ms: number }

export class SqliteOutbox implements Outbox {
  readonly #cap: number;
  readonly #onError: (err: unknown) => void;
  readonly #append: (messages: readonly OutboxMessage[], nowMs: number) => number;
  readonly #peek: Statement;
  readonly #ack: Statement;
  readonly #count: Statement;
  #memory: MemoryOutbox | undefined;

  readonly #onWrite: () => void;

  constructor(db: Database, cap: number, hooks: { onError: (err: unknown) => void; onWrite: () => void }) {
    this.#cap = cap;
    this.#onError = hooks.onError;
    this.#onWrite = hooks.onWrite;
    const insert = db.prepare('INSERT INTO outbox (topic, payload, qos, retain, created_ms) VALUES (?, ?, ?, ?, ?)');
    const trim = db.prepare('DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT max(0, (SELECT count(*) FROM outbox) - ?))');
    this.#peek = db.prepare('SELECT * FROM outbox ORDER BY id LIMIT ?');
    this.#ack = db.prepare('DELETE FROM outbox WHERE id <= ?');
    this.#count = db.prepare('SELECT count(*) AS n FROM outbox');
    this.#append = db.transaction((messages: readonly OutboxMessage[], nowMs: number) => {
      for (const m of messages) insert.run(m.topic, m.payload, m.qos, m.retain ? 1 : 0, nowMs);
      return trim.run(cap).changes;
    });
  }

  /** Whether the outbox has fallen back to memory. */
  get degraded(): boolean {
    return this.#memory !== undefined;
  }

  #fallback(err: unknown): MemoryOutbox {
    this.#memory = new MemoryOutbox(this.#cap);
    this.#onError(err);
    return this.#memory;
  }

  append(messages: readonly OutboxMessage[], nowMs: number): { readonly dropped: number } {
    if (this.#memory) return this.#memory.append(messages, nowMs);
    try {
      const dropped = this.#append(messages, nowMs);
      this.#onWrite();
      return { dropped };
    } catch (err) {
      return this.#fallback(err).append(messages, nowMs);
    }
  }

  peek(limit: number): OutboxEntry[] {
    if (this.#memory) return this.#memory.peek(limit);
    try {
      return (this.#peek.all(Math.max(0, limit)) as Row[]).map((r) => ({
        id: r.id, topic: r.topic, payload: r.payload, qos: r.qos === 0 ? 0 : 1, retain: r.retain === 1, createdMs: r.created_ms,
      }));
    } catch (err) {
      return this.#fallback(err).peek(limit);
    }
  }

  ack(id: number): void {
    if (this.#memory) return this.#memory.ack(id);
    try {
      this.#ack.run(id);
      this.#onWrite();
    } catch (err) {
      this.#fallback(err);
    }
  }

  size(): number {
    if (this.#memory) return this.#memory.size();
    try {
      return (this.#count.get() as { n: number }).n;
    } catch (err) {
      return this.#fallback(err).size();
    }
  }
}
