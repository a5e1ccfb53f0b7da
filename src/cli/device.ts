// SPDX-License-Identifier: MIT
// Shared by the device-side commands (status, grants, log, keys): the config they read
// the socket and database paths from, the control-socket call, the read-only database
// fallback, and time-option parsing.

import { loadConfigFile, type Config } from '../config/load.ts';
import { controlRequest, type ClientResult } from '../control/client.ts';
import type { ControlRequest } from '../control/protocol.ts';
import { openReadOnly, type Database } from '../store/sqlite.ts';
import { UsageError } from './command.ts';

export const DEFAULT_CONFIG = '/etc/postern/config.json';

/** The daemon's config; a broken one is a failure (exit 1) listing every error. */
export function deviceConfig(path: string | undefined): Config {
  const file = path ?? DEFAULT_CONFIG;
  const loaded = loadConfigFile(file);
  if (!loaded.ok) throw new Error(`${file} has ${loaded.errors.length} error(s):\n  ${loaded.errors.join('\n  ')}`);
  return loaded.config;
}

export function ask(config: Config, req: ControlRequest): Promise<ClientResult> {
  return controlRequest(config.raw.control.socket, req);
}

/** Run `fn` on the database opened read-only; undefined (with why) when it cannot be opened. */
export function readDatabase<T>(config: Config, fn: (db: Database) => T): { value: T } | { error: string } {
  const path = config.raw.state.database;
  if (path === ':memory:') return { error: 'state.database is :memory:: nothing on disk to read' };
  let db: Database | undefined;
  try {
    db = openReadOnly(path);
    return { value: fn(db) };
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return { error: `${path}: ${typeof code === 'string' ? code : err instanceof Error ? err.message : String(err)}` };
  } finally {
    db?.close();
  }
}

const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `--since`: a duration back from now (90s, 10m, 2h, 7d) or an ISO 8601 time. */
export function parseSince(text: string, nowMs: number): number {
  const m = /^([0-9]{1,6})([smhd])$/.exec(text);
  if (m) return nowMs - Number(m[1]) * (UNIT_MS[m[2] ?? 's'] ?? 1000);
  const t = /^[0-9]{4}-[0-9]{2}-[0-9]{2}/.test(text) ? Date.parse(text) : NaN;
  if (!Number.isFinite(t)) throw new UsageError('--since must be a duration (90s, 10m, 2h, 7d) or an ISO time (2026-01-31T12:00:00Z)');
  return t;
}

export function isoTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.[0-9]{3}Z$/, 'Z');
}

/** "3m20s" for a positive span, for expiries. */
export function span(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s >= 3600 ? `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m` : s >= 60 ? `${Math.floor(s / 60)}m${s % 60}s` : `${s}s`;
}
