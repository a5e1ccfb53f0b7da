// SPDX-License-Identifier: MIT
// The state store (issue 6 "Store"; DESIGN.md "State"): one SQLite file with replay state,
// grants, an aggregated audit log, the MQTT outbox and lifetime counters. Writes that
// guard security (replay state, grants) are synchronous transactions; audit rows and
// counters are buffered and written in one transaction per flush interval, so a flood
// costs a bounded number of writes whatever its rate.
//
// Failure contract: no method throws. If the database cannot be opened or a write fails
// (missing directory, lock held elsewhere, corrupt file, full disk, read-only media), the
// store closes the database, reports state 'memory' once through onState, and every later
// call is a no-op: the daemon keeps guarding from its in-memory state.

import { statSync } from 'node:fs';
import { MemoryOutbox, type Outbox } from '../alert/outbox.ts';
import type { Logger } from '../log/logger.ts';
import type { ReplayState } from '../spa/replay.ts';
import { AuditBuffer } from './audit.ts';
import { GrantTable, type StoredGrant } from './grant-table.ts';
import { KnockStepTable, type UsedStep } from './knock-steps.ts';
import { SqliteOutbox } from './outbox.ts';
import { readCounters } from './read.ts';
import { ReplayTable, type AcceptedPacket, type ReplayNamespace } from './replay-store.ts';
import { errorCode, openDatabase, type Database } from './sqlite.ts';

export interface StoreCaps {
  readonly auditRows: number;
  readonly outboxRows: number;
  readonly grantRows: number;
  /** Distinct (kind, source, key) audit rows per flush interval. */
  readonly auditSources: number;
}

export interface StoreStatus {
  readonly state: 'ok' | 'memory';
  readonly path: string;
  readonly reason?: string;
  /** Write transactions committed by this process. */
  readonly writes: number;
  /** Database + WAL size on disk, bytes. */
  readonly bytes: number;
}

export interface StoreOptions {
  readonly path: string;
  readonly caps: StoreCaps;
  readonly log: Logger;
  readonly nowMs: number;
  /** Called once when the store falls back to memory. */
  readonly onState?: (state: 'ok' | 'memory', reason: string) => void;
}

interface Tables {
  readonly db: Database;
  readonly replay: Record<ReplayNamespace, ReplayTable>;
  readonly grants: GrantTable;
  readonly knockSteps: KnockStepTable;
  readonly flush: (rows: ReturnType<AuditBuffer['take']>, counters: Record<string, number>) => void;
  readonly outbox: SqliteOutbox;
}

export class Store {
  readonly #opts: StoreOptions;
  readonly #audit: AuditBuffer;
  #tables: Tables | undefined;
  #reason = '';
  #writes = 0;
  #baseCounters: Record<string, number> = {};
  #counters: Record<string, number> = {};
  #memoryOutbox: MemoryOutbox | undefined;
  #closed = false;

  private constructor(opts: StoreOptions) {
    this.#opts = opts;
    this.#audit = new AuditBuffer(opts.caps.auditSources);
  }

  /** Never throws: a database that cannot be used gives a memory-only store. */
  static open(opts: StoreOptions): Store {
    const store = new Store(opts);
    store.#open();
    return store;
  }

  #open(): void {
    const { path, log, nowMs } = this.#opts;
    try {
      const opened = openDatabase(path, nowMs);
      if (opened.movedAside) {
        log.error('state database was corrupt: moved aside, starting a fresh one', { database: path, moved_to: opened.movedAside });
        this.#opts.onState?.('ok', `corrupt database moved to ${opened.movedAside}`);
      }
      this.#tables = this.#prepare(opened.db);
      this.#baseCounters = readCounters(opened.db);
    } catch (err) {
      this.#tables?.db.close();
      this.#degrade(err, 'open');
    }
  }

  #prepare(db: Database): Tables {
    const caps = this.#opts.caps;
    const insertAudit = db.prepare('INSERT INTO audit (kind, source, key, count, first_ms, last_ms) VALUES (?, ?, ?, ?, ?, ?)');
    const pruneAudit = db.prepare('DELETE FROM audit WHERE id <= (SELECT max(id) FROM audit) - ?');
    const setCounter = db.prepare('INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value');
    return {
      db,
      replay: { replay: new ReplayTable(db, 'replay'), fwknop_replay: new ReplayTable(db, 'fwknop_replay') },
      grants: new GrantTable(db),
      knockSteps: new KnockStepTable(db),
      flush: db.transaction((rows: ReturnType<AuditBuffer['take']>, counters: Record<string, number>) => {
        for (const r of rows) insertAudit.run(r.kind, r.source, r.key ?? null, r.count, r.firstMs, r.lastMs);
        if (rows.length > 0) pruneAudit.run(caps.auditRows);
        for (const [name, value] of Object.entries(counters)) setCounter.run(name, value);
      }),
      outbox: new SqliteOutbox(db, caps.outboxRows, { onError: (err) => this.#degrade(err, 'outbox'), onWrite: () => this.#writes++ }),
    };
  }

  #degrade(err: unknown, during: string): void {
    // After close() a late caller (the outbox) finds the database closed: not a failure.
    if (this.#reason !== '' || this.#closed) return;
    this.#reason = `${during}: ${errorCode(err)}`;
    const tables = this.#tables;
    this.#tables = undefined;
    try {
      tables?.db.close();
    } catch {
      // Closing a database whose file is gone or whose disk is full may fail too; nothing to add.
    }
    this.#opts.log.error('state database unusable: guarding from memory until restart', {
      database: this.#opts.path, during, error: errorCode(err),
    });
    this.#opts.onState?.('memory', this.#reason);
  }

  /** Run one write; on failure degrade to memory. */
  #write(during: string, fn: (t: Tables) => void): void {
    const t = this.#tables;
    if (!t) return;
    try {
      fn(t);
      this.#writes++;
    } catch (err) {
      this.#degrade(err, during);
    }
  }

  get state(): 'ok' | 'memory' {
    return this.#tables ? 'ok' : 'memory';
  }

  status(): StoreStatus {
    const bytes = this.#tables ? fileBytes(this.#opts.path) : 0;
    return { state: this.state, path: this.#opts.path, ...(this.#reason !== '' && { reason: this.#reason }), writes: this.#writes, bytes };
  }

  loadReplay(ns: ReplayNamespace, capacity: number, windowMs: number): ReplayState | undefined {
    const t = this.#tables;
    if (!t) return undefined;
    try {
      return t.replay[ns].load(capacity, windowMs);
    } catch (err) {
      this.#degrade(err, 'load replay');
      return undefined;
    }
  }

  /** Durable before it returns (the grant comes after it). */
  recordAccept(ns: ReplayNamespace, p: AcceptedPacket, capacity: number): void {
    this.#write('replay', (t) => t.replay[ns].recordAccept(p, capacity));
  }

  /** Used steps of time-derived knock doors (empty while degraded). */
  loadKnockSteps(): UsedStep[] {
    const t = this.#tables;
    if (!t) return [];
    try {
      return t.knockSteps.all();
    } catch (err) {
      this.#degrade(err, 'load knock steps');
      return [];
    }
  }

  /** Durable before it returns (the door's grant and commands come after it). */
  recordKnockStep(door: string, step: number, minStep: number): void {
    this.#write('knock step', (t) => t.knockSteps.record(door, step, minStep));
  }

  loadGrants(): StoredGrant[] {
    const t = this.#tables;
    if (!t) return [];
    try {
      return t.grants.all();
    } catch (err) {
      this.#degrade(err, 'load grants');
      return [];
    }
  }

  saveGrant(g: StoredGrant): void {
    this.#write('grant', (t) => t.grants.save(g, this.#opts.caps.grantRows));
  }

  removeGrant(id: string): void {
    this.#write('grant', (t) => t.grants.remove(id));
  }

  /** fn's writes (grant saves and removes of one GrantManager batch) in one transaction:
   *  durable together when it returns, one fsync instead of one per row. While degraded,
   *  fn still runs (its writes are then no-ops). */
  batch(fn: () => void): void {
    const t = this.#tables;
    if (!t) return fn();
    let ran = false;
    try {
      t.db.transaction(() => { ran = true; fn(); })();
    } catch (err) {
      this.#degrade(err, 'grant batch');
      if (!ran) fn();
    }
  }

  /** Buffered until the next flush(); memory only while the store is degraded. */
  audit(kind: string, source: string, key: string | undefined, atMs: number): void {
    if (this.#tables) this.#audit.record(kind, source, key, atMs);
  }

  /** This run's counters; written (as lifetime totals) at the next flush when changed. */
  setCounters(snapshot: Record<string, number>): void {
    this.#counters = snapshot;
  }

  #changedTotals(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, v] of Object.entries(this.#counters)) if (v !== 0) out[name] = (this.#baseCounters[name] ?? 0) + v;
    return out;
  }

  /** Write buffered audit rows and counters in one transaction (nothing when nothing changed). */
  flush(): void {
    const rows = this.#audit.take();
    const totals = this.#changedTotals();
    if (rows.length === 0 && this.#countersUnchanged(totals)) return;
    this.#write('flush', (t) => t.flush(rows, totals));
  }

  #lastTotals = '';

  #countersUnchanged(totals: Record<string, number>): boolean {
    const text = JSON.stringify(totals);
    if (text === this.#lastTotals) return true;
    this.#lastTotals = text;
    return false;
  }

  /** The MQTT outbox: SQLite while the database works, memory otherwise. */
  outbox(): Outbox {
    if (this.#tables) return this.#tables.outbox;
    this.#memoryOutbox ??= new MemoryOutbox(this.#opts.caps.outboxRows);
    return this.#memoryOutbox;
  }

  close(): void {
    this.flush();
    this.#closed = true;
    const t = this.#tables;
    this.#tables = undefined;
    try {
      t?.db.close();
    } catch (err) {
      this.#opts.log.error('closing the state database failed', { error: errorCode(err) });
    }
  }
}

function fileBytes(path: string): number {
  let n = 0;
  for (const p of [path, `${path}-wal`]) {
    try {
      n += statSync(p).size;
    } catch {
      // :memory: or no WAL yet: nothing on disk to count.
    }
  }
  return n;
}
