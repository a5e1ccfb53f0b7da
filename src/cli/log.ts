// SPDX-License-Identifier: MIT
// `postern log`: the audit table, read-only (it works whether or not the daemon runs).
// Rows are aggregated: one per (kind, source, key) per flush interval, with a count and
// first/last times (docs/state.md). --follow polls for new rows.

import { ALL_DROP_REASONS } from '../pipeline/reasons.ts';
import { readAudit, type AuditRecord } from '../store/read.ts';
import { EXIT_FAIL, EXIT_OK, UsageError, errOut, intOption, out, parseCommandArgs, type Command } from './command.ts';
import { deviceConfig, isoTime, parseSince, readDatabase } from './device.ts';

const USAGE = `usage: postern log [--since DURATION|ISO] [--reason R] [--limit N] [--follow] [--config FILE] [--json]

  Prints the audit log: accepted, extended and closed grants and every classified
  refusal, aggregated per source and flush interval (count, first and last time).
  --since T       only rows active since T: a duration back from now (90s, 10m, 2h, 7d)
                  or an ISO time
  --reason R      only this kind: a refusal reason (replay, bad_auth, ...) or accepted,
                  extended, closed
  --limit N       at most the last N rows (default 100)
  --follow        keep printing new rows as the daemon writes them (Ctrl-C stops)
  --config FILE   the daemon's config (default /etc/postern/config.json)
  --json          one JSON object per line`;

const KINDS = new Set<string>(['accepted', 'extended', 'closed', ...ALL_DROP_REASONS]);
const FOLLOW_POLL_MS = 1000;

function line(r: AuditRecord, json: boolean): string {
  if (json) return JSON.stringify(r);
  const times = r.count === 1 ? isoTime(r.firstMs) : `${isoTime(r.firstMs)}..${isoTime(r.lastMs)}`;
  return `${times}  ${r.kind}  source=${r.source}${r.key === undefined ? '' : ` key=${r.key}`}  count=${r.count}`;
}

async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    since: { type: 'string' }, reason: { type: 'string' }, limit: { type: 'string' }, follow: { type: 'boolean' },
    config: { type: 'string', short: 'c' }, json: { type: 'boolean' },
  }, false);
  if (values.help) {
    out(USAGE);
    return EXIT_OK;
  }
  if (positionals.length > 0) throw new UsageError('log takes no positional arguments');
  if (values.reason !== undefined && !KINDS.has(values.reason)) throw new UsageError(`unknown --reason ${JSON.stringify(values.reason)}`);
  const sinceMs = values.since === undefined ? undefined : parseSince(values.since, Date.now());
  const limit = intOption(values.limit, 'limit', 1, 1_000_000) ?? 100;
  const config = deviceConfig(values.config);
  const json = values.json === true;
  let afterId = 0;
  let lastError = '';
  for (;;) {
    const read = readDatabase(config, (db) => readAudit(db, {
      ...(sinceMs !== undefined && { sinceMs }), ...(values.reason !== undefined && { kind: values.reason }), afterId, limit,
    }));
    if ('error' in read) {
      // --follow keeps trying (the daemon may be creating the file); the same error once.
      if (read.error !== lastError) errOut(`postern log: cannot read the audit log: ${read.error}`);
      lastError = read.error;
      if (!values.follow) return EXIT_FAIL;
    } else {
      lastError = '';
      for (const r of read.value) out(line(r, json));
      afterId = read.value.at(-1)?.id ?? afterId;
    }
    if (!values.follow) return EXIT_OK;
    await new Promise((r) => setTimeout(r, FOLLOW_POLL_MS));
  }
}

export const logCommand: Command = { name: 'log', summary: 'Print the audit log (grants and refusals)', usage: USAGE, run };
