// SPDX-License-Identifier: MIT
// Durable replay state (DESIGN.md "Freshness and the replay ring"): ring, floors and
// high-water marks are persisted before a grant is made, so a crash or reboot does not
// reopen a replay window. One table pair per replay domain, in the shared state database.
//
// The table keeps its own invariant, independent of the in-memory ring: every accepted
// packet is either a row of <ns>_entries or has ts <= its key's floor. Rows beyond the
// ring capacity are trimmed oldest first, and trimming raises the floors first, in the
// same transaction. Loading the last `capacity` rows back is therefore always safe.

import type { ReplayState } from '../spa/replay.ts';
import type { Database } from './sqlite.ts';

/** Replay domains: postern's native SPA keys, and fwknop stanzas (their own ring). */
export type ReplayNamespace = 'replay' | 'fwknop_replay';

export interface AcceptedPacket {
  readonly keyId: number;
  /** The first 8 bytes of the SIV tag, as the ring keeps it, in hex. */
  readonly tag: string;
  readonly tsMs: number;
}

export class ReplayTable {
  readonly #db: Database;
  readonly #ns: ReplayNamespace;
  readonly #record: (p: AcceptedPacket, capacity: number) => void;

  constructor(db: Database, ns: ReplayNamespace) {
    this.#db = db;
    this.#ns = ns;
    const insert = db.prepare(`INSERT INTO ${ns}_entries (key_id, tag, ts) VALUES (?, ?, ?)`);
    const high = db.prepare(`INSERT INTO ${ns}_keys (key_id, highwater) VALUES (?, ?)
      ON CONFLICT(key_id) DO UPDATE SET highwater = max(coalesce(highwater, excluded.highwater), excluded.highwater)`);
    const raise = db.prepare(`INSERT INTO ${ns}_keys (key_id, floor)
      SELECT key_id, max(ts) FROM ${ns}_entries WHERE seq <= ? GROUP BY key_id
      ON CONFLICT(key_id) DO UPDATE SET floor = max(coalesce(floor, excluded.floor), excluded.floor)`);
    const trim = db.prepare(`DELETE FROM ${ns}_entries WHERE seq <= ?`);
    this.#record = db.transaction((p: AcceptedPacket, capacity: number) => {
      const seq = Number(insert.run(p.keyId, p.tag, p.tsMs).lastInsertRowid);
      high.run(p.keyId, p.tsMs);
      if (seq > capacity) {
        raise.run(seq - capacity);
        trim.run(seq - capacity);
      }
    });
  }

  /** Record an accepted packet. Synchronous: returns once it is durable. Throws on I/O errors. */
  recordAccept(p: AcceptedPacket, capacity: number): void {
    this.#record(p, capacity);
  }

  /** The persisted state in ReplayGuard.restore() form. */
  load(capacity: number, windowMs: number): ReplayState {
    const ns = this.#ns;
    const entries = this.#db.prepare(`SELECT key_id AS keyId, tag, ts AS tsMs FROM ${ns}_entries ORDER BY seq DESC LIMIT ?`)
      .all(capacity).reverse() as ReplayState['entries'];
    const keys = this.#db.prepare(`SELECT key_id AS keyId, floor, highwater FROM ${ns}_keys`).all() as
      { keyId: number; floor: number | null; highwater: number | null }[];
    return {
      version: 1, capacity, windowMs, entries,
      floors: keys.flatMap((k) => (k.floor === null ? [] : [{ keyId: k.keyId, tsMs: k.floor }])),
      highwaters: keys.flatMap((k) => (k.highwater === null ? [] : [{ keyId: k.keyId, tsMs: k.highwater }])),
    };
  }
}
