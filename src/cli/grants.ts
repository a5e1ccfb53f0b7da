// SPDX-License-Identifier: MIT
// `postern grants [revoke ID]`: list the daemon's open grants, or close one now. Listing
// falls back to the database (read-only) without a daemon; revoking needs the daemon.

import type { GrantView } from '../daemon/status.ts';
import { grantView } from '../daemon/status.ts';
import { readGrants } from '../store/read.ts';
import { EXIT_FAIL, EXIT_OK, UsageError, errOut, out, parseCommandArgs, type Command } from './command.ts';
import { ask, deviceConfig, readDatabase } from './device.ts';
import { formatGrants } from './status.ts';

const USAGE = `usage: postern grants [--config FILE] [--json]
       postern grants revoke ID [--config FILE] [--json]

  Lists open grants (id, key, address, services, time left), or closes grant ID now:
  its firewall rules are removed and it leaves the database. Listing without a running
  daemon reads the database read-only and exits 1.
  --config FILE   the daemon's config (default /etc/postern/config.json)
  --json          JSON output`;

async function list(config: ReturnType<typeof deviceConfig>, json: boolean): Promise<number> {
  const r = await ask(config, { cmd: 'grants' });
  const nowMs = Date.now();
  let grants: GrantView[];
  let code = EXIT_OK;
  if (r.ok) {
    if (!r.response.ok) throw new Error(r.response.message);
    grants = r.response.data as GrantView[];
  } else {
    const read = readDatabase(config, (db) => readGrants(db, nowMs).map((g) => grantView(g.grant)));
    if ('error' in read) throw new Error(`daemon not running (${r.error}) and database unreadable (${read.error})`);
    errOut(`postern grants: daemon not running (${r.error}); showing the database's grants`);
    grants = read.value;
    code = EXIT_FAIL;
  }
  if (json) out(JSON.stringify({ grants }));
  else out(grants.length === 0 ? 'no open grants' : formatGrants(grants, nowMs).join('\n'));
  return code;
}

async function revoke(config: ReturnType<typeof deviceConfig>, id: string, json: boolean): Promise<number> {
  if (!/^[a-z0-9]{1,16}$/.test(id)) throw new UsageError('ID is a grant id as postern grants shows it (1-16 of a-z 0-9)');
  const r = await ask(config, { cmd: 'revoke', id });
  if (!r.ok) throw new Error(`cannot reach the daemon: ${r.error}`);
  if (!r.response.ok) {
    errOut(`postern grants: ${r.response.message}`);
    return EXIT_FAIL;
  }
  out(json ? JSON.stringify({ revoked: id }) : `grant ${id} closed`);
  return EXIT_OK;
}

async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, { config: { type: 'string', short: 'c' }, json: { type: 'boolean' } });
  if (values.help) {
    out(USAGE);
    return EXIT_OK;
  }
  const json = values.json === true;
  const [sub, id, ...extra] = positionals;
  if (sub === undefined) return list(deviceConfig(values.config), json);
  if (sub !== 'revoke') throw new UsageError(`unknown grants subcommand ${JSON.stringify(sub)}`);
  if (id === undefined || extra.length > 0) throw new UsageError('grants revoke takes exactly one grant ID');
  return revoke(deviceConfig(values.config), id, json);
}

export const grantsCommand: Command = { name: 'grants', summary: 'List open grants, or revoke one', usage: USAGE, run };
