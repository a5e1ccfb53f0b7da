// SPDX-License-Identifier: MIT
// `flood` benchmark (root): what a flood costs the state database (issue 6 "Benchmark").
// The real daemon in the lab, per firewall backend, gets two bounded 10 s floods from the
// attacker host: random junk (net-probe udp-flood), then one valid SPA packet the daemon
// already accepted, sent again and again (a captured packet replayed). For each, from the
// daemon's status (control socket) and /proc: packets the daemon classified, SQLite write
// transactions (and per second), database + WAL size before/after, bytes the daemon wrote
// to storage (/proc/PID/io write_bytes: SQLite is its only file writer; logs go to a pipe),
// and audit rows added. With mosquitto installed, alerts are on (a broker on the router's
// loopback) and the MQTT alert/grant messages per second and the sum of their counts are
// reported too; the outbox is then part of the SQLite writes. Prints; never asserts.
// Figures are noisy on a shared machine.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { probeArgv } from '../lab/net-probe.ts';
import { SPA_PORT, bundleSkipReason, createWorld, sleep, type Backend, type World } from '../e2e/harness.ts';
import { labSkipReason } from '../lab/lab.ts';
import { FLOOD_PROBE_PATH } from './flood-probe.ts';
import { MOSQUITTO, startBroker, startTap, tapMessages } from '../e2e/mqtt-lab.ts';
import type { LabProcess } from '../lab/lab.ts';

const FLOOD_SECONDS = 10;
const MAX_PACKETS = 5_000_000;
/** flush_interval_s of the daemon under test (the default): figures are per this interval. */
const FLUSH_S = 5;
/** Wait after each flood: the audit flush and the alerts' aggregation interval (10 s) plus drain. */
const SETTLE_S = 12;

type Print = (line: string) => void;

interface Snapshot {
  readonly classified: number;
  readonly writes: number;
  readonly dbBytes: number;
  readonly walBytes: number;
  readonly ioBytes: number;
  readonly auditRows: number;
  readonly mqtt: number;
  readonly alertCounts: number;
}

function mqttFigures(tap: LabProcess | undefined): { mqtt: number; alertCounts: number } {
  if (!tap) return { mqtt: 0, alertCounts: 0 };
  const msgs = tapMessages(tap);
  const counts = msgs.filter((m) => m.topic.endsWith('/alert') && m.payload.startsWith('{'))
    .map((m) => Number((JSON.parse(m.payload) as { count?: unknown }).count ?? 0));
  return { mqtt: msgs.length, alertCounts: counts.reduce((a, b) => a + b, 0) };
}

interface Status { counters: Record<string, number>; database: { writes: number; bytes: number; state: string } }

async function snapshot(w: World, tap: LabProcess | undefined): Promise<Snapshot> {
  const r = await w.postern(w.lab.router, ['status', '--config', w.configPath, '--json']);
  const s = JSON.parse(r.stdout) as Status;
  const io = readFileSync(`/proc/${w.daemon.pid}/io`, 'utf8');
  const log = await w.postern(w.lab.router, ['log', '--config', w.configPath, '--limit', '1000000', '--json']);
  return {
    classified: Object.entries(s.counters).filter(([k]) => k !== 'closed').reduce((n, [, v]) => n + v, 0),
    writes: s.database.writes, dbBytes: size(join(w.dir, 'state.db')), walBytes: size(join(w.dir, 'state.db-wal')),
    ioBytes: Number(/^write_bytes: (\d+)/m.exec(io)?.[1] ?? NaN),
    auditRows: log.stdout.split('\n').filter(Boolean).length,
    ...mqttFigures(tap),
  };
}

function size(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

async function flood(w: World, kind: 'junk' | 'replayed', packetHex: string): Promise<{ sent: number }> {
  const { lab } = w;
  const argv = kind === 'junk'
    ? probeArgv(['udp-flood', lab.router.ip4, SPA_PORT, MAX_PACKETS, FLOOD_SECONDS, 42])
    : [process.execPath, FLOOD_PROBE_PATH, lab.router.ip4, String(SPA_PORT), packetHex, String(MAX_PACKETS), String(FLOOD_SECONDS)];
  const r = await lab.exec(lab.attacker, argv, { timeoutMs: (FLOOD_SECONDS + 20) * 1000 });
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { sent: number };
}

function report(print: Print, kind: string, sent: number, a: Snapshot, b: Snapshot): void {
  const writes = b.writes - a.writes;
  print(`  ${kind.padEnd(9)} sent ${sent}, classified ${b.classified - a.classified}; SQLite ${writes} write transactions `
    + `(${(writes / FLOOD_SECONDS).toFixed(2)}/s); db ${a.dbBytes} -> ${b.dbBytes} B, WAL ${a.walBytes} -> ${b.walBytes} B; `
    + `written to storage ${b.ioBytes - a.ioBytes} bytes (${Math.round((b.ioBytes - a.ioBytes) / FLOOD_SECONDS)} B/s); audit rows +${b.auditRows - a.auditRows}`
    + (b.mqtt === 0 && a.mqtt === 0 ? '' : `; MQTT ${b.mqtt - a.mqtt} messages (${((b.mqtt - a.mqtt) / (FLOOD_SECONDS + SETTLE_S)).toFixed(2)}/s over flood + settle), alert counts sum ${b.alertCounts - a.alertCounts}`));
}

async function floodBackend(print: Print, backend: Backend): Promise<void> {
  const w = await createWorld({ backend, tag: 'flood' });
  try {
    const broker = existsSync(MOSQUITTO) ? await startBroker(w.lab, w.lab.router, w.dir) : undefined;
    w.writeConfig({ state: { database: join(w.dir, 'state.db'), flush_interval_s: FLUSH_S }, ...(broker && { mqtt: { url: broker.url } }) });
    await w.startDaemon();
    const tap = broker && await startTap(w.lab, w.lab.router, broker.url, ['postern/+/alert', 'postern/+/grant']);
    const accepted = w.packet({ durationS: 120 });
    await w.sendRaw(w.lab.client, accepted);
    await w.daemon.waitForOutput(/msg="grant opened"/, 3000);
    await sleep((FLUSH_S + 1) * 1000);
    print(`postern/${backend}: ${FLOOD_SECONDS} s floods at the SPA port from one attacker address, flush interval ${FLUSH_S} s, `
      + `alerts ${broker ? 'on (mosquitto on loopback)' : 'off (no mosquitto)'}`);
    for (const kind of ['junk', 'replayed'] as const) {
      const before = await snapshot(w, tap);
      const { sent } = await flood(w, kind, accepted.toString('hex'));
      await sleep(SETTLE_S * 1000); // the intervals that hold the flood's last attempts are flushed and sent
      report(print, kind, sent, before, await snapshot(w, tap));
    }
  } finally {
    await w.close();
  }
}

export async function runFloodBench(print: Print, backends: readonly Backend[]): Promise<void> {
  const skip = labSkipReason() ?? bundleSkipReason();
  if (skip) {
    print(`flood: skipped (${skip})`);
    return;
  }
  for (const b of backends) await floodBackend(print, b);
}
