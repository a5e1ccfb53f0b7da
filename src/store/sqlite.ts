// SPDX-License-Identifier: MIT
// Opening the state database: the only place better-sqlite3 is loaded (lazily, so
// technician commands never need the native addon). A file SQLite cannot read as a
// database is moved aside (`<path>.corrupt-<ms>`) and a fresh one is created: never
// deleted, so an operator can still inspect it (issue 6 "Store").

import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { migrate } from './migrations.ts';

export interface Statement {
  run(...params: unknown[]): { lastInsertRowid: number | bigint; changes: number };
  all(...params: unknown[]): unknown[];
  get(...params: unknown[]): unknown;
}

export interface Database {
  pragma(sql: string, opts?: { simple: boolean }): unknown;
  exec(sql: string): void;
  prepare(sql: string): Statement;
  transaction<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R;
  close(): void;
}

type SqliteCtor = new (path: string, opts?: { readonly?: boolean; fileMustExist?: boolean; timeout?: number }) => Database;

/** SQLite error codes that mean "this file is not a (sound) database". */
const CORRUPT_CODES = new Set(['SQLITE_CORRUPT', 'SQLITE_NOTADB', 'SQLITE_CORRUPT_VTAB', 'SQLITE_CORRUPT_SEQUENCE']);
/** How long a write waits for another process's lock before the store degrades. */
const BUSY_TIMEOUT_MS = 1000;

function sqlite(): SqliteCtor {
  return createRequire(import.meta.url)('better-sqlite3') as SqliteCtor;
}

export function errorCode(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : err instanceof Error ? err.message : String(err);
}

export function isCorrupt(err: unknown): boolean {
  return CORRUPT_CODES.has(errorCode(err));
}

function configure(db: Database): void {
  db.pragma('journal_mode = WAL');
  // FULL: an accepted packet is on disk before its grant (one fsync per authenticated packet).
  db.pragma('synchronous = FULL');
  // The working set is a few hundred KB; SQLite's default 2 MB page cache is RSS we would
  // rather not spend on a router.
  db.pragma('cache_size = -256');
  // Checkpoint often and truncate the WAL back to 64 KB: flash space, and a bounded file.
  db.pragma('wal_autocheckpoint = 64');
  db.pragma('journal_size_limit = 65536');
  const check = db.pragma('quick_check(1)', { simple: true });
  if (check !== 'ok') throw Object.assign(new Error(`quick_check: ${String(check)}`), { code: 'SQLITE_CORRUPT' });
}

function openOnce(path: string): Database {
  const db = new (sqlite())(path, { timeout: BUSY_TIMEOUT_MS });
  try {
    configure(db);
    migrate(db);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

export interface Opened {
  readonly db: Database;
  /** Where a corrupt file was moved, when it was. */
  readonly movedAside?: string;
}

/** Open (creating if needed) the database at `path`, moving a corrupt file aside. Throws
 *  (with the SQLite code) when it cannot: the caller then runs memory-only. */
export function openDatabase(path: string, nowMs: number): Opened {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  try {
    return { db: openOnce(path) };
  } catch (err) {
    if (path === ':memory:' || !isCorrupt(err)) throw err;
    const aside = `${path}.corrupt-${nowMs}`;
    renameSync(path, aside);
    // The WAL and shared-memory index belong to the corrupt file; keep them beside it.
    for (const ext of ['-wal', '-shm']) if (existsSync(path + ext)) renameSync(path + ext, aside + ext);
    return { db: openOnce(path), movedAside: aside };
  }
}

/** Read-only access for the CLI when the daemon is not running; never creates or migrates. */
export function openReadOnly(path: string): Database {
  const db = new (sqlite())(path, { readonly: true, fileMustExist: true, timeout: BUSY_TIMEOUT_MS });
  return db;
}
