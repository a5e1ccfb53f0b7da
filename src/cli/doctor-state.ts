// SPDX-License-Identifier: MIT
// State checks for `postern doctor`: the database (opened read-only: schema version and
// SQLite's quick_check), the control socket (is a daemon answering), and broker
// reachability when alerts are configured. Read-only, like every doctor check.

import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Config } from '../config/load.ts';
import { probeConfiguredBroker } from '../alert/probe.ts';
import { controlRequest } from '../control/client.ts';
import { SCHEMA_VERSION, schemaVersion } from '../store/migrations.ts';
import { errorCode, openReadOnly } from '../store/sqlite.ts';
import type { Check } from './doctor.ts';

const BROKER_TIMEOUT_MS = 3000;

function check(name: string, status: Check['status'], detail: string, fix?: string): Check {
  return fix === undefined ? { name, status, detail } : { name, status, detail, fix };
}

function inspectDatabase(path: string): Check {
  let db: ReturnType<typeof openReadOnly> | undefined;
  try {
    db = openReadOnly(path);
    const version = schemaVersion(db);
    const sound = db.pragma('quick_check(1)', { simple: true });
    if (sound !== 'ok') {
      return check('database', 'fail', `${path} is corrupt (${String(sound)})`,
        'restart the daemon: it moves the file aside (FILE.corrupt-<ms>) and starts a fresh one; keep the old file for inspection');
    }
    if (version > SCHEMA_VERSION) {
      return check('database', 'fail', `${path} has schema ${version}, newer than this postern (${SCHEMA_VERSION})`, 'upgrade postern, or point state.database at a new file');
    }
    return check('database', 'ok', `${path}: schema ${version}/${SCHEMA_VERSION}, ${Math.ceil(statSync(path).size / 1024)} KB, readable`);
  } catch (err) {
    const code = errorCode(err);
    const fix = code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT'
      ? 'restart the daemon: it moves the file aside (FILE.corrupt-<ms>) and starts a fresh one'
      : code === 'SQLITE_BUSY' ? 'another process holds a lock on it: stop it (only the daemon should write this file)'
        : 'check the file\'s owner and permissions, and that its filesystem is mounted read-write';
    return check('database', 'fail', `${path}: ${code}`, fix);
  } finally {
    db?.close();
  }
}

export function databaseCheck(config: Config): Check {
  const path = config.raw.state.database;
  if (path === ':memory:') return check('database', 'warn', 'state.database is :memory:: replay state and grants do not survive a restart', 'set state.database to a file on persistent storage');
  if (existsSync(path)) {
    const c = inspectDatabase(path);
    if (c.status !== 'ok') return c;
    try {
      accessSync(path, constants.W_OK);
      accessSync(dirname(path), constants.W_OK);
      return c;
    } catch {
      return check('database', 'fail', `${path} or its directory is not writable: the daemon would run memory-only`, `make ${dirname(path)} and the file writable by the daemon's user, or remount it read-write`);
    }
  }
  const dir = existsSync(dirname(path)) ? dirname(path) : dirname(dirname(path));
  try {
    accessSync(dir, constants.W_OK);
    return check('database', 'ok', `${path} will be created (${dir} writable)`);
  } catch {
    return check('database', 'fail', `${dir} is not writable: the daemon would run memory-only`, `create ${dirname(path)} owned by the daemon's user, or point state.database elsewhere`);
  }
}

export async function controlCheck(config: Config): Promise<Check> {
  const path = config.raw.control.socket;
  const r = await controlRequest(path, { cmd: 'status' }, 3000);
  if (r.ok && r.response.ok) {
    const s = r.response.data as { pid?: number; database?: { state?: string; reason?: string }; prefilter?: { state?: string; reason?: string } };
    const db = s.database?.state === 'memory' ? `; database memory-only (${s.database.reason ?? '?'})` : '';
    // A refused prefilter still guards; it only means junk floods reach the daemon.
    const pf = s.prefilter?.state === 'refused' ? `; kernel prefilter refused by the firewall (${s.prefilter.reason ?? '?'})` : '';
    const fix = db !== '' ? 'fix the database problem above, then restart the daemon'
      : pf !== '' ? 'iptables: load the u32 match (modprobe xt_u32; OpenWrt: kmod-ipt-u32), or use the nft backend; then reload the daemon (SIGHUP)' : undefined;
    return check('daemon', db === '' && pf === '' ? 'ok' : 'warn', `running (pid ${s.pid ?? '?'}), answering on ${path}${db}${pf}`, fix);
  }
  return check('daemon', 'warn', `not answering on ${path} (${r.ok ? 'error response' : r.error})`,
    'start it (systemctl start postern / service postern start); status and log then read the database only');
}

export async function brokerCheck(config: Config): Promise<Check | undefined> {
  const mqtt = config.raw.mqtt;
  if (!mqtt) return undefined;
  const shown = mqtt.url.replace(/\/\/[^@/]*@/, '//');
  // Connects as the daemon would (credentials, TLS files), so a private CA or a password
  // does not show as a failure the daemon would not have.
  const r = await probeConfiguredBroker(mqtt, config.device, BROKER_TIMEOUT_MS);
  return r.ok ? check('broker', 'ok', `${shown} answers (MQTT CONNACK)`)
    : check('broker', 'fail', `${shown}: ${r.error}`, 'check mqtt.url, the credentials and TLS files, that the broker runs and that this device may reach it (firewall, DNS, TLS port 8883 for mqtts://); alerts wait in the outbox meanwhile');
}
