// SPDX-License-Identifier: MIT
// Queries shared by the daemon's store and the CLI's read-only fallback (`postern log`,
// `postern status` without a daemon). Plain rows in, plain objects out.

import type { AuditRow } from './audit.ts';
import { toStored, type GrantRow, type StoredGrant } from './grant-table.ts';
import type { Database } from './sqlite.ts';

export interface AuditRecord extends AuditRow {
  readonly id: number;
}

export interface AuditQuery {
  /** Rows whose last attempt is at or after this wall-clock time. */
  readonly sinceMs?: number;
  readonly kind?: string;
  /** Rows with a larger id only (`--follow` polling). */
  readonly afterId?: number;
  readonly limit: number;
}

interface Row { id: number; kind: string; source: string; key: string | null; count: number; first_ms: number; last_ms: number }

export function readAudit(db: Database, q: AuditQuery): AuditRecord[] {
  const rows = db.prepare(`SELECT * FROM (SELECT * FROM audit WHERE last_ms >= ? AND (? IS NULL OR kind = ?) AND id > ?
    ORDER BY id DESC LIMIT ?) ORDER BY id`).all(q.sinceMs ?? 0, q.kind ?? null, q.kind ?? null, q.afterId ?? 0, q.limit) as Row[];
  return rows.map((r) => ({
    id: r.id, kind: r.kind, source: r.source, ...(r.key !== null && { key: r.key }), count: r.count, firstMs: r.first_ms, lastMs: r.last_ms,
  }));
}

export function readCounters(db: Database): Record<string, number> {
  const rows = db.prepare('SELECT name, value FROM counters ORDER BY name').all() as { name: string; value: number }[];
  return Object.fromEntries(rows.map((r) => [r.name, r.value]));
}

/** Persisted grants not yet expired at nowMs, soonest expiry first. */
export function readGrants(db: Database, nowMs: number): StoredGrant[] {
  const rows = db.prepare('SELECT * FROM grants WHERE expires_ms > ? ORDER BY expires_ms').all(nowMs) as GrantRow[];
  return rows.flatMap((r) => toStored(r) ?? []);
}
