// SPDX-License-Identifier: MIT
// `postern doctor`: checks what the daemon needs on this device, and says how to fix each
// failure. Read-only: it never changes the firewall or the database.

import { loadConfigFile, type Config } from '../config/load.ts';
import { probeRawSocket } from '../capture/raw.ts';
import { spawnRunner } from '../firewall/exec.ts';
import { resolveBackendName } from '../daemon/wiring.ts';
import { clockTrusted, SYNC_MARKERS } from '../platform/clock-sync.ts';
import { EXIT_FAIL, EXIT_OK, out, parseCommandArgs, type Command } from './command.ts';
import { firewallChecks } from './doctor-firewall.ts';
import { brokerCheck, controlCheck, databaseCheck } from './doctor-state.ts';

export type Status = 'ok' | 'warn' | 'fail';

export interface Check {
  readonly name: string;
  readonly status: Status;
  readonly detail: string;
  readonly fix?: string;
}

const USAGE = `usage: postern doctor [--config FILE] [--json]

  Checks, without changing anything: the config, raw-socket permission, the firewall
  backend and its binaries and state, OpenWrt fw4 integration, clock sync, the state
  database, whether the daemon answers on its control socket, and (with mqtt) broker
  reachability. Each failure says how to fix it. Exit 0 when nothing failed, 1 otherwise.
  --config FILE   the daemon's config (default /etc/postern/config.json)
  --json          {"checks": [{"name", "status", "detail", "fix"?}]}`;

const DEFAULT_CONFIG = '/etc/postern/config.json';

function check(name: string, status: Status, detail: string, fix?: string): Check {
  return fix === undefined ? { name, status, detail } : { name, status, detail, fix };
}

function rawSocketCheck(): Check {
  const err = probeRawSocket();
  return err === undefined
    ? check('raw socket', 'ok', 'can open raw IPv4/IPv6 sockets')
    : check('raw socket', 'fail', err, 'run the daemon as root, or with CAP_NET_RAW and CAP_NET_ADMIN (systemd: AmbientCapabilities=)');
}

function clockCheck(config: Config): Check {
  const mode = config.raw.spa.clock;
  const trusted = clockTrusted(mode);
  if (trusted) return check('clock', 'ok', `trusted (spa.clock=${mode})`);
  return check('clock', 'warn', `untrusted (spa.clock=${mode}): freshness uses per-key high-water marks; replays are still refused`,
    `sync time (systemd-timesyncd creates ${SYNC_MARKERS[0]}; on OpenWrt an NTP hotplug hook touches ${SYNC_MARKERS[1]})`);
}

export async function runChecks(configPath: string): Promise<Check[]> {
  const loaded = loadConfigFile(configPath);
  if (!loaded.ok) {
    return [check('config', 'fail', `${configPath}: ${loaded.errors.length} error(s): ${loaded.errors.slice(0, 3).join('; ')}`,
      `run: postern config check ${configPath}`)];
  }
  const { config } = loaded;
  const backend = await resolveBackendName(config, spawnRunner);
  return [
    check('config', 'ok', `${configPath} is valid (${config.keys.length} key(s), guarding ${config.raw.guarded.join(' ')})`),
    rawSocketCheck(),
    ...(await firewallChecks(config, backend, spawnRunner)),
    clockCheck(config),
    databaseCheck(config),
    await controlCheck(config),
    ...[await brokerCheck(config)].flatMap((c) => c ?? []),
  ];
}

const MARK: Record<Status, string> = { ok: 'ok  ', warn: 'warn', fail: 'FAIL' };

async function run(args: string[]): Promise<number> {
  const { values } = parseCommandArgs(args, { config: { type: 'string', short: 'c' }, json: { type: 'boolean' } }, false);
  if (values.help) {
    out(USAGE);
    return EXIT_OK;
  }
  const checks = await runChecks(values.config ?? DEFAULT_CONFIG);
  if (values.json) out(JSON.stringify({ checks }));
  else {
    for (const c of checks) {
      out(`${MARK[c.status]}  ${c.name}: ${c.detail}`);
      if (c.fix && c.status !== 'ok') out(`      fix: ${c.fix}`);
    }
  }
  return checks.some((c) => c.status === 'fail') ? EXIT_FAIL : EXIT_OK;
}

export const doctorCommand: Command = { name: 'doctor', summary: 'Check permissions, firewall, clock and database; say how to fix', usage: USAGE, run };
