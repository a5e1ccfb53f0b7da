// SPDX-License-Identifier: MIT
// The daemons of the head-to-head benchmark (h2h.ts), each started in a fresh lab of its own,
// behind the same guarded port (SERVICE_PORT, an echo server on the router):
//   postern/nft, postern/iptables  the bundle with its defaults (but the backend), native SPA;
//   fwknopd (pcap)                 Debian's fwknop-server, packaged defaults: pcap on eth0;
//   fwknopd (udp)                  the same with ENABLE_UDP_SERVER (a plain UDP socket);
//   knockd                         Debian's knockd 0.8, one 3-port door (knock scenario only).
// Each gives the benchmark its pid, the valid opens for a list of client sources (hex
// datagrams; knocks need none), and what it can tell about the packets it handled.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLab, IP_BIN, type Lab, type LabProcess } from '../lab/lab.ts';
import { probeArgv } from '../lab/net-probe.ts';
import { SERVICE_PORT, SPA_PORT, createWorld, sleep, type Backend, type World } from '../e2e/harness.ts';
import { startBroker, startTap, tapMessages } from '../e2e/mqtt-lab.ts';
import { FirewallSchema } from '../../src/config/schema.ts';
import { KNOCKS, readText, startKnockdIn } from './knock.ts';
import { accessConf, findBin, fwknopTrials, newFwknopRun, FWKNOP_SPA_PORT } from './fwknop-bench.ts';

export type DaemonName = 'postern/nft' | 'postern/iptables' | 'fwknopd (pcap)' | 'fwknopd (udp)' | 'knockd';
export const SPA_DAEMONS: readonly DaemonName[] = ['postern/nft', 'postern/iptables', 'fwknopd (pcap)', 'fwknopd (udp)'];
export { KNOCKS } from './knock.ts';

/** What a daemon says about a flood; undefined where it keeps no such count. */
export interface DaemonCounts {
  /** packets it classified (postern: the sum of its status counters but `closed`) */
  readonly processed: number | undefined;
  readonly accepted: number | undefined;
  /** SQLite write transactions (postern status database.writes) */
  readonly dbWrites: number | undefined;
  /** MQTT messages seen on postern/# (a tap on the router's broker) */
  readonly mqtt: number | undefined;
  /** kernel receive-queue drops of the sockets the daemon reads (the router namespace's
   *  /proc/net/raw for postern, /proc/net/udp for fwknopd's UDP server); undefined for pcap,
   *  whose packet socket has no such column */
  readonly kernelDrops: number | undefined;
  /** postern: datagrams its kernel prefilter dropped before the daemon could read them
   *  (status prefilter.dropped; docs/firewall.md "Prefilter"); undefined for the peers */
  readonly prefiltered?: number | undefined;
  /** postern's status counters, by name */
  readonly counters?: Readonly<Record<string, number>>;
}

export interface Daemon {
  readonly name: DaemonName;
  readonly lab: Lab;
  readonly pid: number;
  readonly spaPort: number;
  /** postern's test world (its packets, status, config); undefined for the peers */
  readonly world?: World;
  /** one valid open per source, hex; for postern, the packet could also be replayed */
  valid(sources: readonly string[]): Promise<string[]>;
  counts(): Promise<DaemonCounts>;
  close(): Promise<void>;
}

export interface StartOptions { readonly mqtt?: boolean; readonly explicitAddresses?: boolean }

const RECONCILE_INTERVAL_S = FirewallSchema.properties.reconcile_interval_s.default as number;

/** Sum of the `drops` column (the last) of the router namespace's sockets in `files`. postern
 *  also holds a UDP socket on its SPA port that it never reads (so the kernel sends no port
 *  unreachable: DESIGN.md "silent server"); its drops are by design and not counted here. */
async function kernelDrops(lab: Lab, files: readonly string[]): Promise<number> {
  const r = await lab.exec(lab.router, ['cat', ...files]);
  return r.stdout.split('\n').filter((l) => /^\s*\d+:/.test(l))
    .reduce((sum, l) => sum + Number(l.trim().split(/\s+/).pop() ?? 0), 0);
}

interface Status { counters: Record<string, number>; database: { writes: number }; prefiltered: number | undefined }

/** The counters and database of `postern status --json`, read with patterns: with ~1,000
 *  grants open the CLI's output through a pipe comes back cut short (~146 KB; a bug reported
 *  in docs/bench.md), and both come before the grant list. */
export function parseStatus(text: string): Status & { grantsOpen: number } {
  const counters = /"counters":\s*(\{[^}]*\})/.exec(text)?.[1];
  const writes = /"database":\s*\{[^}]*"writes":\s*(\d+)/.exec(text)?.[1];
  const open = /"grantsOpen":\s*(\d+)/.exec(text)?.[1];
  const prefiltered = /"prefilter":\s*\{[^}]*"dropped":\s*(\d+)/.exec(text)?.[1];
  if (counters === undefined || writes === undefined || open === undefined) throw new Error(`postern status: unreadable: ${text.slice(0, 200)}`);
  return { counters: JSON.parse(counters) as Record<string, number>, database: { writes: Number(writes) }, grantsOpen: Number(open),
    prefiltered: prefiltered === undefined ? undefined : Number(prefiltered) };
}

export async function posternStatus(w: World): Promise<ReturnType<typeof parseStatus>> {
  return parseStatus((await w.postern(w.lab.router, ['status', '--config', w.configPath, '--json'])).stdout);
}

async function posternCounts(w: World, tap: LabProcess | undefined): Promise<DaemonCounts> {
  const s = await posternStatus(w);
  const processed = Object.entries(s.counters).filter(([k]) => k !== 'closed' && k !== 'ignored')
    .reduce((n, [, v]) => n + v, 0);
  return {
    processed, accepted: (s.counters['accepted'] ?? 0) + (s.counters['extended'] ?? 0), dbWrites: s.database.writes,
    counters: s.counters, mqtt: tap === undefined ? undefined : tapMessages(tap).length, kernelDrops: await kernelDrops(w.lab, ['/proc/net/raw', '/proc/net/raw6']),
    prefiltered: s.prefiltered,
  };
}

export async function startPostern(backend: Backend, opts: StartOptions = {}): Promise<Daemon> {
  const world = await createWorld({
    backend, tag: `h2h${backend === 'nft' ? 'nft' : 'ipt'}`,
    ...(opts.explicitAddresses && { keyExtra: { require_source_address: false, max_duration_s: 600 } }),
    config: { firewall: { backend, reconcile_interval_s: RECONCILE_INTERVAL_S } },
  });
  try {
    const broker = opts.mqtt && findBin('mosquitto') !== undefined ? await startBroker(world.lab, world.lab.router, world.dir) : undefined;
    if (broker) world.writeConfig({ mqtt: { url: broker.url } });
    const daemon = await world.startDaemon();
    const tap = broker && await startTap(world.lab, world.lab.router, broker.url, ['postern/#']);
    return {
      name: `postern/${backend}`, lab: world.lab, pid: daemon.pid, spaPort: SPA_PORT, world,
      valid: async (sources) => sources.map(() => world.packet().toString('hex')),
      counts: () => posternCounts(world, tap),
      close: () => world.close(),
    };
  } catch (err) {
    await world.close();
    throw err;
  }
}

/** Debian's fwknopd with its packaged defaults (pcap), or with ENABLE_UDP_SERVER. */
export async function startFwknopd(mode: 'pcap' | 'udp'): Promise<Daemon> {
  const lab = await createLab({ tag: `h2hfwk${mode}` });
  const dir = mkdtempSync(join(tmpdir(), 'postern-h2h-fwknopd-'));
  const close = async (): Promise<void> => { await lab.close(); rmSync(dir, { recursive: true, force: true }); };
  try {
    const run = newFwknopRun(dir, SERVICE_PORT);
    const echo = lab.spawn(lab.router, probeArgv(['echo-server', SERVICE_PORT]));
    await echo.waitForOutput(/listening/, 10_000);
    const udp = mode === 'udp' ? `ENABLE_UDP_SERVER Y;\nUDPSERV_PORT ${FWKNOP_SPA_PORT};\n` : '';
    writeFileSync(join(dir, 'fwknopd.conf'), `PCAP_INTF ${lab.router.ifname};\nFWKNOP_RUN_DIR ${dir};\n${udp}`, { mode: 0o600 });
    writeFileSync(join(dir, 'access.conf'), accessConf(run.keys, run.port), { mode: 0o600 });
    const drop = await lab.exec(lab.router, [findBin('iptables') ?? 'iptables', '-w', '-A', 'INPUT', '-p', 'tcp', '--dport', String(SERVICE_PORT), '-j', 'DROP']);
    if (drop.code !== 0) throw new Error(`h2h: iptables DROP rule: ${drop.stderr}`);
    const p = lab.spawn(lab.router, [
      findBin('fwknopd') ?? 'fwknopd', '-f', '-c', join(dir, 'fwknopd.conf'), '-a', join(dir, 'access.conf'),
      '-i', lab.router.ifname, '-p', join(dir, 'fwknopd.pid'), '-d', join(dir, 'digest.cache'), '-r', dir,
    ]);
    // pcap mode prints the first, UDP-server mode the second once its socket is set up.
    await p.waitForOutput(/Starting fwknopd main event loop|Kicking off UDP server/, 10_000);
    await sleep(300);
    return {
      name: `fwknopd (${mode})`, lab, pid: p.pid, spaPort: FWKNOP_SPA_PORT,
      valid: async (sources) => {
        // A fresh run per call: fwknopTrials hands out one shared set per run.
        const trials = await fwknopTrials(() => undefined, { ...newFwknopRun(dir, SERVICE_PORT), keys: run.keys }, lab, sources);
        return trials.map((t) => t.packetHex);
      },
      counts: async () => ({
        processed: undefined, accepted: (p.output().match(/Added \S+ rule to \S+ for/g) ?? []).length, dbWrites: undefined, mqtt: undefined,
        kernelDrops: mode === 'udp' ? await kernelDrops(lab, ['/proc/net/udp']) : undefined,
      }),
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}


/** Static neighbour entries on the router for the client's extra addresses: no ARP in a trial. */
export async function addSources(lab: Lab, addrs: readonly string[]): Promise<void> {
  const link = await lab.exec(lab.client, [IP_BIN, '-j', 'link', 'show', lab.client.ifname]);
  const mac = (JSON.parse(link.stdout) as { address?: string }[])[0]?.address;
  if (mac === undefined) throw new Error('h2h: no MAC for the client');
  const batch = async (host: Lab['client'], cmds: string[]): Promise<void> => {
    const r = await lab.exec(host, [IP_BIN, '-batch', '-'], { input: cmds.map((c) => `${c}\n`).join('') });
    if (r.code !== 0) throw new Error(`h2h: ip -batch in ${host.name}: ${r.stderr}`);
  };
  await batch(lab.client, addrs.map((a) => `addr add ${a}/24 dev ${lab.client.ifname}`));
  await batch(lab.router, addrs.map((a) => `neigh replace ${a} lladdr ${mac} dev ${lab.router.ifname} nud permanent`));
}

/** postern with one 3-port TCP door on the guarded port (the knock scenario). */
export async function startPosternKnock(backend: Backend): Promise<Daemon> {
  const door = { name: 'ssh', sequence: KNOCKS.map(String), services: [`tcp/${SERVICE_PORT}`], duration_s: 300 };
  const world = await createWorld({
    backend, tag: `h2hk${backend === 'nft' ? 'nft' : 'ipt'}`,
    config: { doors: [door], firewall: { backend, reconcile_interval_s: RECONCILE_INTERVAL_S } },
  });
  try {
    const daemon = await world.startDaemon();
    return {
      name: `postern/${backend}`, lab: world.lab, pid: daemon.pid, spaPort: SPA_PORT,
      valid: async (sources) => sources.map(() => ''), counts: () => posternCounts(world, undefined), close: () => world.close(),
    };
  } catch (err) {
    await world.close();
    throw err;
  }
}

/** knockd 0.8 as Debian ships it; its door inserts an ACCEPT before a DROP on the port. */
export async function startKnockd(): Promise<Daemon> {
  const lab = await createLab({ tag: 'h2hknockd' });
  const dir = mkdtempSync(join(tmpdir(), 'postern-h2h-knockd-'));
  const close = async (): Promise<void> => { await lab.close(); rmSync(dir, { recursive: true, force: true }); };
  try {
    const { proc, log } = await startKnockdIn(lab, dir);
    return {
      name: 'knockd', lab, pid: proc.pid, spaPort: SPA_PORT, valid: async (s) => s.map(() => ''),
      counts: async () => ({
        processed: undefined, accepted: (readText(log).match(/OPEN SESAME/g) ?? []).length, dbWrites: undefined, mqtt: undefined,
        kernelDrops: undefined,
      }),
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
