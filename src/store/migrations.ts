// SPDX-License-Identifier: MIT
// Schema migrations, applied in order inside one transaction each; `PRAGMA user_version`
// holds how many have run. Never edit a released migration: append a new one.

import type { Database } from './sqlite.ts';

const replayTables = (ns: string) => `
CREATE TABLE IF NOT EXISTS ${ns}_entries (seq INTEGER PRIMARY KEY, key_id INTEGER NOT NULL, tag TEXT NOT NULL, ts INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ${ns}_keys (key_id INTEGER PRIMARY KEY, floor INTEGER, highwater INTEGER);
`;

export const MIGRATIONS: readonly string[] = [
  // 1: replay state (ring entries, per-key floors and high-water marks), one per domain.
  replayTables('replay') + replayTables('fwknop_replay'),
  // 2: grants, aggregated audit, MQTT outbox, lifetime counters.
  `
CREATE TABLE grants (id TEXT PRIMARY KEY, key TEXT NOT NULL, source TEXT NOT NULL, family INTEGER NOT NULL,
  address TEXT NOT NULL, prefix INTEGER, services TEXT NOT NULL, forward TEXT,
  expires_ms INTEGER NOT NULL, duration_ms INTEGER NOT NULL, created_ms INTEGER NOT NULL);
CREATE TABLE audit (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, source TEXT NOT NULL, key TEXT,
  count INTEGER NOT NULL, first_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL);
CREATE INDEX audit_last ON audit (last_ms);
CREATE TABLE outbox (id INTEGER PRIMARY KEY, topic TEXT NOT NULL, payload TEXT NOT NULL, qos INTEGER NOT NULL,
  retain INTEGER NOT NULL, created_ms INTEGER NOT NULL);
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
`,
  // 3: steps of time-derived knock doors whose sequence already opened the door.
  `
CREATE TABLE knock_steps (id INTEGER PRIMARY KEY, door TEXT NOT NULL, step INTEGER NOT NULL, UNIQUE (door, step));
`,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

export function schemaVersion(db: Database): number {
  return Number(db.pragma('user_version', { simple: true }));
}

/** Bring the schema to SCHEMA_VERSION. Refuses a database from a newer postern. */
export function migrate(db: Database): void {
  const from = schemaVersion(db);
  if (from > SCHEMA_VERSION) throw new Error(`database schema ${from} is newer than this postern (${SCHEMA_VERSION})`);
  for (let v = from; v < SCHEMA_VERSION; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v] ?? '');
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
