// SPDX-License-Identifier: MIT
// `open` benchmark (root): time-to-open and idle memory of the real daemon in the lab, and
// the same trials against fwknopd when it is installed. Prints; never asserts.
//
// postern runs once per firewall backend asked for (nft, iptables: the same trials, one
// fresh lab each, one after the other) with its own SPA packets, then once more per backend
// with fwknop packets on its fwknop port, then fwknopd once. The fwknop packets come from the
// real `fwknop` client (-T builds without sending) and the SAME bytes go to postern and to
// fwknopd (fwknop-bench.ts sharedPackets), so that comparison differs only in the daemon.
// Ratios compare the backends with each other, fwknop packets with postern's own, and
// fwknopd with each.
//
// Time-to-open = from "SPA datagram sent" to "TCP connect to the guarded port succeeds",
// both taken inside the client namespace by one probe process (open-probe.ts), so neither
// daemon's nor the probe's start-up is counted.
//
// Every trial starts from a closed door because every trial comes from its OWN client source
// address (198.18.0.100, .101, ...; secondary addresses on the client's eth0): a grant or
// fwknop rule is for one source address, so earlier trials' grants cannot open the door for
// a later one, and nothing has to expire or be closed in between. The probe still checks the
// door is closed (a connect times out) before each trial. Both daemons get identical
// treatment: same addresses, same probe, same guarded port; the router holds static
// neighbour entries for these addresses so no trial pays for an ARP exchange the first
// address would not. fwknopd runs with its packaged defaults (pcap capture on eth0), which is
// how it ships; its packets come from the real `fwknop` client (-T builds without sending).

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { IP_BIN, createLab, labSkipReason, type Lab } from '../lab/lab.ts';
import { probeArgv } from '../lab/net-probe.ts';
import { BACKENDS, SERVICE_PORT, SPA_PORT, bundleSkipReason, createWorld, sleep, type Backend, type World } from '../e2e/harness.ts';
import { FirewallSchema } from '../../src/config/schema.ts';
import {
  FWKNOP_SPA_PORT, findBin, fwknopTrials, newFwknopRun, posternStanza, startFwknopd, type FwknopRun,
} from './fwknop-bench.ts';
import { OPEN_PROBE_PATH, type OpenPlan, type TrialResult } from './open-probe.ts';
import { fmt, summarize, verdict, type Summary } from './stats.ts';

const TRIALS = 40;
/** Client source addresses 198.18.0.100 .. 198.18.0.(100+TRIALS-1): inside the lab's /24. */
const FIRST_SOURCE = 100;
const IDLE_MS = 1_000;
const TARGET = { medianMs: 10, p95Ms: 20, rssMb: 55 } as const;
const FWKNOP_SUFFIX = ' (fwknop packets)';
/** Column width of the daemon names in the report (the longest name, plus one). */
const NAME_WIDTH = `postern/iptables${FWKNOP_SUFFIX}`.length + 1;
const BACKEND_BIN: Readonly<Record<Backend, string>> = { nft: 'nft', iptables: 'iptables' };

type Print = (line: string) => void;

export interface OpenFigures {
  readonly summary: Summary | undefined;
  readonly failures: readonly string[];
  readonly rss: Rss | undefined;
  /** an idle `node -e` on the same Node, started with the daemon (postern only) */
  readonly bareRss?: Rss;
}

export interface Rss { readonly mb: number; readonly what: string }

/** One daemon's figures under the name they are printed with (postern/nft, fwknopd, ...). */
export interface Named { readonly name: string; readonly f: OpenFigures }

function sources(): string[] {
  return Array.from({ length: TRIALS }, (_, i) => `198.18.0.${FIRST_SOURCE + i}`);
}

/** Secondary addresses on the client, and static neighbour entries for them on the router. */
async function addSources(lab: Lab, addrs: readonly string[]): Promise<void> {
  const link = await lab.exec(lab.client, [IP_BIN, '-j', 'link', 'show', lab.client.ifname]);
  const mac = (JSON.parse(link.stdout) as { address?: string }[])[0]?.address;
  if (mac === undefined) throw new Error(`open bench: no MAC for the client's ${lab.client.ifname}`);
  const batch = async (host: Lab['client'], cmds: string[]): Promise<void> => {
    const r = await lab.exec(host, [IP_BIN, '-batch', '-'], { input: cmds.map((c) => `${c}\n`).join('') });
    if (r.code !== 0) throw new Error(`open bench: ip -batch in ${host.name}: ${r.stderr}`);
  };
  await batch(lab.client, addrs.map((a) => `addr add ${a}/24 dev ${lab.client.ifname}`));
  await batch(lab.router, addrs.map((a) => `neigh replace ${a} lladdr ${mac} dev ${lab.router.ifname} nud permanent`));
}

/** VmRSS of a process in MB (1 MB = 1024 kB, as ps and top count), with its name so the
 *  report shows which process was read (the lab's `ip netns exec` execs the daemon in place). */
export function readRss(pid: number): Rss | undefined {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, 2).map((a) => basename(a));
    return m ? { mb: Number(m[1]) / 1024, what: `pid ${pid}: ${argv.join(' ')}` } : undefined;
  } catch {
    return undefined;
  }
}

/** Run every trial in the client namespace with one probe process. */
async function runTrials(lab: Lab, trials: OpenPlan['trials'], spaPort: number): Promise<Pick<OpenFigures, 'summary' | 'failures'>> {
  const plan: OpenPlan = { host: lab.router.ip4, spaPort, tcpPort: SERVICE_PORT, trials };
  const r = await lab.exec(lab.client, [process.execPath, OPEN_PROBE_PATH], { input: JSON.stringify(plan), timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`open probe exited ${r.code}: ${r.stderr}`);
  const results = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as TrialResult);
  const ms = results.flatMap((t) => (t.result === 'open' ? [t.ms] : []));
  const failures = results.flatMap((t) => (t.result === 'open' ? [] : [`trial ${t.trial} (${t.source}): ${t.result}: ${t.detail}`]));
  if (results.length !== trials.length) failures.push(`probe reported ${results.length} of ${trials.length} trials`);
  return { summary: ms.length === 0 ? undefined : summarize(ms), failures };
}

/** The daemon's own reconcile interval: the harness's 1 s is a test setting, and a reconcile
 *  (a listing and a plan) landing inside a trial would be counted in that trial. */
const RECONCILE_INTERVAL_S = FirewallSchema.properties.reconcile_interval_s.default as number;

/** What a postern run sends: its own SPA packets (native), or fwknop packets to its fwknop port. */
interface PacketFormat {
  readonly native: boolean;
  /** config beside the firewall section (the fwknop stanza) */
  readonly config: Record<string, unknown>;
  readonly spaPort: number;
  trials(world: World, addrs: readonly string[]): Promise<OpenPlan['trials']>;
}

const NATIVE: PacketFormat = {
  native: true, config: {}, spaPort: SPA_PORT,
  trials: async (world, addrs) => addrs.map((source) => ({ source, packetHex: world.packet().toString('hex') })),
};

function fwknopFormat(print: Print, run: FwknopRun): PacketFormat {
  return {
    native: false, spaPort: FWKNOP_SPA_PORT,
    config: { fwknop: { port: FWKNOP_SPA_PORT, stanzas: [posternStanza(run.keys, run.port)] } },
    trials: (world, addrs) => fwknopTrials(print, run, world.lab, addrs),
  };
}

async function benchPostern(backend: Backend, format: PacketFormat): Promise<OpenFigures> {
  // The daemon's defaults except the backend (and the fwknop stanza, for fwknop packets).
  const world = await createWorld({
    backend, tag: `bench${backend === 'nft' ? 'nft' : 'ipt'}${format.native ? '' : 'f'}`,
    config: { ...format.config, firewall: { backend, reconcile_interval_s: RECONCILE_INTERVAL_S } },
  });
  try {
    // A bare Node beside it, for scale: how much of the RSS is the runtime itself.
    const bare = world.lab.spawn(world.lab.router, [process.execPath, '-e', 'setTimeout(() => {}, 60_000)']);
    const daemon = await world.startDaemon();
    await sleep(IDLE_MS);
    const rss = readRss(daemon.pid);
    const bareRss = readRss(bare.pid);
    bare.kill();
    const addrs = sources();
    await addSources(world.lab, addrs);
    const trials = await format.trials(world, addrs);
    return { ...(await runTrials(world.lab, trials, format.spaPort)), rss, ...(bareRss && { bareRss }) };
  } finally {
    await world.close();
  }
}

async function benchFwknopd(print: Print, run: FwknopRun): Promise<OpenFigures> {
  const lab = await createLab({ tag: 'fwk' });
  const dir = mkdtempSync(join(tmpdir(), 'postern-bench-fwknopd-'));
  try {
    const echo = lab.spawn(lab.router, probeArgv(['echo-server', SERVICE_PORT]));
    await echo.waitForOutput(/listening/, 10_000);
    const fwknopd = await startFwknopd(lab, dir, run);
    await sleep(IDLE_MS);
    const rss = readRss(fwknopd.pid);
    const addrs = sources();
    await addSources(lab, addrs);
    const figures = await runTrials(lab, await fwknopTrials(print, run, lab, addrs), FWKNOP_SPA_PORT);
    return { ...figures, rss };
  } finally {
    await lab.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function timeLine(name: string, f: OpenFigures, targets: boolean): string {
  if (f.summary === undefined) return `${name}: no trial opened`;
  const s = f.summary;
  const t = targets
    ? `   targets: median <= ${TARGET.medianMs} ms ${verdict(s.median, TARGET.medianMs)}, p95 <= ${TARGET.p95Ms} ms ${verdict(s.p95, TARGET.p95Ms)}`
    : '';
  return `${name.padEnd(NAME_WIDTH)} median ${fmt(s.median)} ms  p95 ${fmt(s.p95)} ms  (p10 ${fmt(s.p10)}, min ${fmt(s.min)}, max ${fmt(s.max)}; ${s.n} trials)${t}`;
}

function rssLine(name: string, f: OpenFigures, target: boolean): string {
  if (f.rss === undefined) return `${name} idle RSS: unreadable`;
  const t = target ? `   target <= ${TARGET.rssMb} MB ${verdict(f.rss.mb, TARGET.rssMb)}` : '';
  return `${name} idle RSS: ${fmt(f.rss.mb)} MB (VmRSS of ${f.rss.what}, ${IDLE_MS / 1000} s after start)${t}`;
}

function printFailures(print: Print, name: string, f: OpenFigures): void {
  for (const line of f.failures.slice(0, 5)) print(`  ${name} failed ${line}`);
  if (f.failures.length > 5) print(`  ... and ${f.failures.length - 5} more`);
}

/** "a / b: median 1.3x, p95 1.2x[, idle RSS 1.0x]"; undefined when either side has no figure. */
export function ratioLine(a: Named, b: Named): string | undefined {
  const [x, y] = [a.f.summary, b.f.summary];
  if (x === undefined || y === undefined) return undefined;
  const r = (p: number, q: number): string => `${(p / q).toFixed(1)}x`;
  const rss = a.f.rss !== undefined && b.f.rss !== undefined ? `, idle RSS ${r(a.f.rss.mb, b.f.rss.mb)}` : '';
  return `${a.name} / ${b.name}: median ${r(x.median, y.median)}, p95 ${r(x.p95, y.p95)}${rss}`;
}

/** Every backend asked for, in order; one that fails is reported and the others still run. */
async function benchBackends(print: Print, backends: readonly Backend[], format: PacketFormat): Promise<{ done: Named[]; failed: string[] }> {
  const done: Named[] = [];
  const failed: string[] = [];
  for (const backend of backends) {
    const name = `postern/${backend}${format.native ? '' : FWKNOP_SUFFIX}`;
    if (findBin(BACKEND_BIN[backend]) === undefined) {
      print(`${name}: skipped: ${BACKEND_BIN[backend]} is not installed`);
      continue;
    }
    let f: OpenFigures;
    try {
      f = await benchPostern(backend, format);
    } catch (err) {
      print(`${name}: FAILED: ${err instanceof Error ? err.message : String(err)}`);
      failed.push(name);
      continue;
    }
    print(timeLine(name, f, format.native));
    printFailures(print, name, f);
    print(rssLine(name, f, format.native));
    if (format.native && f.bareRss) print(`  for scale, a bare idle \`node -e\` on the same Node: ${fmt(f.bareRss.mb)} MB`);
    done.push({ name, f });
  }
  return { done, failed };
}

/** fwknopd once, whatever the backends: it runs its own iptables rules either way. */
async function fwknopdPrinted(print: Print, run: FwknopRun): Promise<OpenFigures | undefined> {
  if (findBin('fwknopd') === undefined) {
    print('fwknopd not installed: skipped comparison');
    return undefined;
  }
  const fwk = await benchFwknopd(print, run);
  print(timeLine('fwknopd', fwk, false));
  printFailures(print, 'fwknopd', fwk);
  print(rssLine('fwknopd', fwk, false));
  return fwk;
}

interface FwknopFigures { readonly posterns: readonly Named[]; readonly failed: readonly string[]; readonly fwknopd: OpenFigures | undefined }

/** postern per backend on its fwknop port, then fwknopd: the real client's packets, one set. */
async function benchFwknop(print: Print, backends: readonly Backend[]): Promise<FwknopFigures> {
  if (findBin('fwknop') === undefined) {
    print('fwknop client not installed: skipped fwknop packets and the fwknopd comparison');
    return { posterns: [], failed: [], fwknopd: undefined };
  }
  const dir = mkdtempSync(join(tmpdir(), 'postern-bench-fwknop-'));
  try {
    const run = newFwknopRun(dir, SERVICE_PORT);
    print(`fwknop packets (one per source, from the real fwknop client: -T -B, HMAC-SHA256): the same bytes for every daemon below`);
    const { done, failed } = await benchBackends(print, backends, fwknopFormat(print, run));
    return { posterns: done, failed, fwknopd: await fwknopdPrinted(print, run) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Backends with each other; per backend, fwknop packets against postern's own, and fwknopd
 *  against both (the fwknop-packet line is the like-for-like one: same bytes, same addresses). */
function ratioLines(native: readonly Named[], fw: FwknopFigures): (string | undefined)[] {
  const [nft, ipt] = ['nft', 'iptables'].map((b) => native.find((p) => p.name === `postern/${b}`));
  const fwknopd = fw.fwknopd && { name: 'fwknopd', f: fw.fwknopd };
  const perBackend = native.flatMap((p) => {
    const viaFwknop = fw.posterns.find((q) => q.name === `${p.name}${FWKNOP_SUFFIX}`);
    return [
      viaFwknop && ratioLine(viaFwknop, p),
      fwknopd && ratioLine(fwknopd, p),
      fwknopd && viaFwknop && ratioLine(fwknopd, viaFwknop),
    ];
  });
  return [ipt && nft && ratioLine(ipt, nft), ...perBackend];
}

export async function runOpenBench(print: Print, backends: readonly Backend[] = BACKENDS): Promise<void> {
  const skip = labSkipReason() ?? bundleSkipReason();
  if (skip !== undefined) {
    print(`open: skipped: ${skip}`);
    return;
  }
  print(`open: time from SPA send to TCP connect on tcp/${SERVICE_PORT}, ${TRIALS} trials per daemon and backend, each from`);
  print('      its own client address, timed inside the client namespace by one probe process (Node start-up not counted)');
  const native = await benchBackends(print, backends, NATIVE);
  const fw = await benchFwknop(print, backends);
  for (const line of ratioLines(native.done, fw)) if (line !== undefined) print(line);
  const failed = [...native.failed, ...fw.failed];
  if (failed.length > 0) throw new Error(`open bench failed for ${failed.join(', ')}`);
}
