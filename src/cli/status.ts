// SPDX-License-Identifier: MIT
// `postern status`: the running daemon's state over the control socket; without a daemon,
// what the database last recorded (read-only). Exit 0 when the daemon answered, 1 when
// it did not (the fallback is still printed).

import type { DaemonStatus, GrantView } from '../daemon/status.ts';
import type { PrefilterStatus } from '../firewall/types.ts';
import { grantView } from '../daemon/status.ts';
import { readCounters, readGrants } from '../store/read.ts';
import { EXIT_FAIL, EXIT_OK, UsageError, out, parseCommandArgs, type Command } from './command.ts';
import { ask, deviceConfig, readDatabase, span } from './device.ts';

const USAGE = `usage: postern status [--config FILE] [--json]

  Shows the daemon's state, firewall backend, clock trust, database state, counters
  and open grants, asked over the control socket. Without a running daemon it reads
  the database read-only instead (lifetime counters, grants not yet expired) and exits 1.
  --config FILE   the daemon's config (default /etc/postern/config.json)
  --json          one JSON object`;

export function formatGrants(grants: readonly GrantView[], nowMs: number): string[] {
  return grants.map((g) => `  ${g.id}  ${g.key}  ${g.address}${g.prefix === undefined ? '' : `/${g.prefix}`}  ${g.services.join(',')}`
    + `${g.forward ? ` -> ${g.forward}` : ''}  expires in ${span(g.expiresMs - nowMs)}`);
}

function counterLine(counters: Readonly<Record<string, number>>): string {
  const nonzero = Object.entries(counters).filter(([, v]) => v !== 0);
  return nonzero.length === 0 ? '(all zero)' : nonzero.map(([k, v]) => `${k}=${v}`).join(' ');
}

function prefilterLine(p: PrefilterStatus): string {
  if (p.state === 'on') return `on, ${p.dropped === undefined ? 'drop count unreadable' : `${p.dropped} datagrams dropped`}`;
  return p.state === 'off' ? 'off (spa.prefilter)' : `REFUSED by the firewall, guarding without it (${p.reason ?? 'no reason given'})`;
}

function printLive(s: DaemonStatus, nowMs: number): void {
  const db = s.database;
  out([
    `postern: ${s.state} (pid ${s.pid}, up ${span(nowMs - s.startedMs)}), device ${s.device}`,
    `backend: ${s.backend}   clock: ${s.clock}   memory: ${Math.round(s.rssBytes / 1048576)} MB RSS`,
    `database: ${db.state}${db.state === 'memory' ? ` (NOT persisted: ${db.reason ?? 'unknown'})` : ''} ${db.path}, ${Math.ceil(db.bytes / 1024)} KB, ${db.writes} writes`,
    `counters: ${counterLine(s.counters)}`,
    ...(s.prefilter === undefined ? [] : [`kernel prefilter: ${prefilterLine(s.prefilter)}`]),
    `grants: ${s.grantsOpen} open`,
    ...formatGrants(s.grants, nowMs),
  ].join('\n'));
}

function fallback(config: ReturnType<typeof deviceConfig>, why: string, json: boolean, nowMs: number): number {
  const read = readDatabase(config, (db) => ({ counters: readCounters(db), grants: readGrants(db, nowMs).map((g) => grantView(g.grant)) }));
  const database = 'value' in read ? { path: config.raw.state.database, ...read.value } : { path: config.raw.state.database, error: read.error };
  if (json) out(JSON.stringify({ daemon: 'not running', reason: why, database }));
  else {
    out(`postern: not running (${why})`);
    if ('value' in read) {
      out(`database: ${config.raw.state.database} (read-only, as of the daemon's last flush)`);
      out(`counters (lifetime): ${counterLine(read.value.counters)}`);
      out(`grants in the database: ${read.value.grants.length}`);
      out(formatGrants(read.value.grants, nowMs).join('\n'));
    } else out(`database: unreadable (${read.error})`);
  }
  return EXIT_FAIL;
}

async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, { config: { type: 'string', short: 'c' }, json: { type: 'boolean' } }, false);
  if (values.help) {
    out(USAGE);
    return EXIT_OK;
  }
  if (positionals.length > 0) throw new UsageError('status takes no positional arguments');
  const config = deviceConfig(values.config);
  const r = await ask(config, { cmd: 'status' });
  const nowMs = Date.now();
  if (!r.ok) return fallback(config, r.error, values.json === true, nowMs);
  if (!r.response.ok) throw new Error(r.response.message);
  const s = r.response.data as DaemonStatus;
  if (values.json) out(JSON.stringify({ daemon: 'running', ...s }));
  else printLive(s, nowMs);
  return EXIT_OK;
}

export const statusCommand: Command = { name: 'status', summary: 'Show the daemon\'s state, counters and open grants', usage: USAGE, run };
