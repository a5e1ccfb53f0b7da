// SPDX-License-Identifier: MIT
// Persisted grants (issue 6 "Persistence wiring"): written before the firewall applies a
// grant and deleted when it closes, so a restarted daemon restores open grants until their
// expiry and removes expired ones. Capped: the row with the earliest expiry goes first.

import type { Family, Grant, Service } from '../firewall/types.ts';
import type { Database, Statement } from './sqlite.ts';

export interface StoredGrant {
  readonly grant: Grant;
  /** Where the packet that earned it came from (may differ from grant.address). */
  readonly source: string;
  /** The grant's full duration: a restore never gives more than this, whatever the wall clock did. */
  readonly durationMs: number;
  readonly createdMs: number;
}

export interface GrantRow {
  id: string; key: string; source: string; family: number; address: string; prefix: number | null;
  services: string; forward: string | null; expires_ms: number; duration_ms: number; created_ms: number;
}

export function toStored(r: GrantRow): StoredGrant | undefined {
  const services = JSON.parse(r.services) as Service[];
  const forward = r.forward === null ? undefined : JSON.parse(r.forward) as Grant['forward'];
  if ((r.family !== 4 && r.family !== 6) || !Array.isArray(services)) return undefined;
  const grant: Grant = {
    id: r.id, key: r.key, family: r.family as Family, address: r.address, services,
    ...(r.prefix !== null && { prefix: r.prefix }), ...(forward && { forward }), expiresAtMs: r.expires_ms,
  };
  return { grant, source: r.source, durationMs: r.duration_ms, createdMs: r.created_ms };
}

export class GrantTable {
  readonly #upsert: Statement;
  readonly #delete: Statement;
  readonly #all: Statement;
  readonly #prune: Statement;
  readonly #save: (g: StoredGrant, cap: number) => void;

  constructor(db: Database) {
    this.#upsert = db.prepare(`INSERT INTO grants (id, key, source, family, address, prefix, services, forward, expires_ms, duration_ms, created_ms)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT(id) DO UPDATE SET expires_ms = excluded.expires_ms, duration_ms = excluded.duration_ms`);
    this.#delete = db.prepare('DELETE FROM grants WHERE id = ?');
    this.#all = db.prepare('SELECT * FROM grants ORDER BY expires_ms');
    this.#prune = db.prepare('DELETE FROM grants WHERE id IN (SELECT id FROM grants ORDER BY expires_ms LIMIT max(0, (SELECT count(*) FROM grants) - ?))');
    this.#save = db.transaction((s: StoredGrant, cap: number) => {
      const g = s.grant;
      this.#upsert.run(g.id, g.key, s.source, g.family, g.address, g.prefix ?? null, JSON.stringify(g.services),
        g.forward ? JSON.stringify(g.forward) : null, g.expiresAtMs, s.durationMs, s.createdMs);
      this.#prune.run(cap);
    });
  }

  save(g: StoredGrant, cap: number): void {
    this.#save(g, cap);
  }

  remove(id: string): void {
    this.#delete.run(id);
  }

  all(): StoredGrant[] {
    return (this.#all.all() as GrantRow[]).flatMap((r) => toStored(r) ?? []);
  }
}
