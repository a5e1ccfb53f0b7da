// SPDX-License-Identifier: MIT
// Durable replay state in SQLite: the only importer of better-sqlite3 (loaded lazily, so
// technician commands never need the native addon). DESIGN.md "Freshness and the replay
// ring": ring, floors and high-water marks are persisted before a grant is made, so a
// crash or reboot does not reopen a replay window.
//
// The table keeps its own invariant, independent of the in-memory ring: every accepted
// packet is either a row of replay_entries or has ts <= its key's floor. Rows beyond the
// ring capacity are trimmed oldest first, and trimming raises the floors first, in the
// same transaction. Loading the last `capacity` rows back is therefore always safe.

import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import type { ReplayState } from '../spa/replay.ts';

interface Statement {
  run(...params: unknown[]): { lastInsertRowid: number | bigint };
  all(...params: unknown[]): unknown[];
}

interface Database {
  pragma(sql: string, opts?: { simple: boolean }): unknown;
  exec(sql: string): void;
  prepare(sql: string): Statement;
  transaction<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void;
  close(): void;
}

const SCHEMA_VERSION = 1;

/** Replay domains: postern's native SPA keys, and fwknop stanzas (their own ring). */
export type ReplayNamespace = 'replay' | 'fwknop_replay';

const tables = (ns: ReplayNamespace) => `
CREATE TABLE IF NOT EXISTS ${ns}_entries (seq INTEGER PRIMARY KEY, key_id INTEGER NOT NULL, tag TEXT NOT NULL, ts INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ${ns}_keys (key_id INTEGER PRIMARY KEY, floor INTEGER, highwater INTEGER);
`;

export interface AcceptedPacket {
  readonly keyId: number;
  /** The first 8 bytes of the SIV tag, as the ring keeps it, in hex. */
  readonly tag: string;
  readonly tsMs: number;
}

export class ReplayStore {
  readonly #db: Database;
  readonly #record: (p: AcceptedPacket, capacity: number) => void;

  readonly #ns: ReplayNamespace;

  private constructor(db: Database, ns: ReplayNamespace) {
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

  /** Open (creating if needed) the database at `path`. Throws if it cannot. */
  static open(path: string, ns: ReplayNamespace = 'replay'): ReplayStore {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const require = createRequire(import.meta.url);
    const Sqlite = require('better-sqlite3') as new (p: string) => Database;
    const db = new Sqlite(path);
    try {
      db.pragma('journal_mode = WAL');
      // FULL: the accept is on disk before the grant; one fsync per authenticated packet.
      db.pragma('synchronous = FULL');
      // The working set is a few hundred KB; SQLite's default 2 MB page cache is RSS we
      // would rather not spend on a router.
      db.pragma('cache_size = -256');
      const version = Number(db.pragma('user_version', { simple: true }));
      if (version > SCHEMA_VERSION) throw new Error(`database schema ${version} is newer than this postern (${SCHEMA_VERSION})`);
      db.exec(tables('replay') + tables('fwknop_replay'));
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
      return new ReplayStore(db, ns);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  /** Record an accepted packet. Synchronous: returns once it is durable. */
  recordAccept(p: AcceptedPacket, capacity: number): void {
    this.#record(p, capacity);
  }

  /** The persisted state in ReplayGuard.restore() form. */
  load(capacity: number, windowMs: number): ReplayState {
    const entries = this.#db.prepare(`SELECT key_id AS keyId, tag, ts AS tsMs FROM ${this.#ns}_entries ORDER BY seq DESC LIMIT ?`)
      .all(capacity).reverse() as ReplayState['entries'];
    const keys = this.#db.prepare(`SELECT key_id AS keyId, floor, highwater FROM ${this.#ns}_keys`).all() as
      { keyId: number; floor: number | null; highwater: number | null }[];
    return {
      version: 1, capacity, windowMs, entries,
      floors: keys.flatMap((k) => (k.floor === null ? [] : [{ keyId: k.keyId, tsMs: k.floor }])),
      highwaters: keys.flatMap((k) => (k.highwater === null ? [] : [{ keyId: k.keyId, tsMs: k.highwater }])),
    };
  }

  close(): void {
    this.#db.close();
  }
}
