// SPDX-License-Identifier: MIT
// `knock` benchmark (root): the real daemon in the lab, and Debian's knockd in the same lab
// shape when installed. Prints a table; never asserts.
//
// 1. Time to open: from the last knock of a static 3-port TCP door to the first completed
//    TCP handshake on the guarded port, timed inside the client namespace by one probe
//    process (knock-probe.ts), TRIALS trials each from its own client source address.
//    postern opens through its grant path (nft set element / iptables rule); knockd's door
//    runs `iptables -I INPUT -s %IP% -p tcp --dport 22 -j ACCEPT` (fork, /bin/sh, iptables)
//    against a `--dport 22 -j DROP` rule.
// 2. Flood: FLOOD spoofed first knocks (TCP SYNs to the first knock port, each from its own
//    10.x source) sent by the raw sender test/lab/syn-blast.c from the attacker namespace,
//    bounded by count and FLOOD_MAX_S. Daemon CPU time (utime + stime from /proc/PID/stat)
//    and RSS are read before and FLOOD_SETTLE_MS after it; a legitimate knock from a fresh
//    client address is timed while the flood runs.
// The machine is shared: figures are noisy, compare within one run.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IP_BIN, createLab, labSkipReason, type Lab, type LabProcess } from '../lab/lab.ts';
import { probeArgv } from '../lab/net-probe.ts';
import { SERVICE_PORT, bundleSkipReason, createWorld, sleep, type Backend } from '../e2e/harness.ts';
import { FirewallSchema } from '../../src/config/schema.ts';
import { KNOCK_PROBE_PATH, type KnockPlan } from './knock-probe.ts';
import type { TrialResult } from './open-probe.ts';
import { fmt, summarize, type Summary } from './stats.ts';
import { findBin } from './fwknop-bench.ts';
import { cpuSeconds } from './cpu.ts';
import { readRss as readRssOf } from './open.ts';

const readRss = (pid: number): number | undefined => readRssOf(pid)?.mb;

const TRIALS = 30;
export const KNOCKS = [7000, 8000, 9000] as const;
const FIRST_SOURCE = 100;
const FLOOD = 100_000;
const FLOOD_MAX_S = 20;
const FLOOD_SETTLE_MS = 1_500;
const IDLE_MS = 1_000;
const BLAST_SRC = fileURLToPath(new URL('../lab/syn-blast.c', import.meta.url));
const RECONCILE_INTERVAL_S = FirewallSchema.properties.reconcile_interval_s.default as number;

type Print = (line: string) => void;

interface DaemonUnderTest {
  readonly lab: Lab;
  readonly pid: number;
  close(): Promise<void>;
}

interface Figures {
  readonly name: string;
  readonly open: Summary | undefined;
  readonly failures: readonly string[];
  readonly idleRssMb: number | undefined;
  readonly flood: FloodFigures | undefined;
}

interface FloodFigures {
  readonly sent: number;
  readonly ms: number;
  readonly cpuS: number;
  readonly rssBeforeMb: number | undefined;
  readonly rssAfterMb: number | undefined;
  readonly legit: TrialResult | undefined;
}

/** Client source addresses for the trials (+1 for the knock during the flood). */
function sources(n: number, from = FIRST_SOURCE): string[] {
  return Array.from({ length: n }, (_, i) => `198.18.0.${from + i}`);
}

async function addSources(lab: Lab, addrs: readonly string[]): Promise<void> {
  const link = await lab.exec(lab.client, [IP_BIN, '-j', 'link', 'show', lab.client.ifname]);
  const mac = (JSON.parse(link.stdout) as { address?: string }[])[0]?.address;
  if (mac === undefined) throw new Error('knock bench: no MAC for the client');
  const batch = async (host: Lab['client'], cmds: string[]): Promise<void> => {
    const r = await lab.exec(host, [IP_BIN, '-batch', '-'], { input: cmds.map((c) => `${c}\n`).join('') });
    if (r.code !== 0) throw new Error(`knock bench: ip -batch in ${host.name}: ${r.stderr}`);
  };
  await batch(lab.client, addrs.map((a) => `addr add ${a}/24 dev ${lab.client.ifname}`));
  await batch(lab.router, addrs.map((a) => `neigh replace ${a} lladdr ${mac} dev ${lab.router.ifname} nud permanent`));
}

async function runTrials(lab: Lab, addrs: readonly string[]): Promise<TrialResult[]> {
  const plan: KnockPlan = { host: lab.router.ip4, tcpPort: SERVICE_PORT, knocks: KNOCKS, trials: addrs.map((source) => ({ source })) };
  const r = await lab.exec(lab.client, [process.execPath, KNOCK_PROBE_PATH], { input: JSON.stringify(plan), timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`knock probe exited ${r.code}: ${r.stderr}`);
  return r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as TrialResult);
}

let blastBin: string | undefined;
function blast(dir: string): string {
  blastBin ??= join(dir, 'syn-blast');
  execFileSync('gcc', ['-O2', '-o', blastBin, BLAST_SRC]);
  return blastBin;
}

async function flood(d: DaemonUnderTest, bin: string, legitSource: string): Promise<FloodFigures> {
  const { lab } = d;
  const cpu0 = cpuSeconds(d.pid);
  const rssBeforeMb = readRss(d.pid);
  const blastRun = lab.exec(lab.attacker, [bin, lab.router.ip4, 'spoof', String(KNOCKS[0]), String(FLOOD), String(FLOOD_MAX_S)], { timeoutMs: (FLOOD_MAX_S + 10) * 1000 });
  await sleep(300);
  const legit = (await runTrials(lab, [legitSource]))[0];
  const b = await blastRun;
  if (b.code !== 0) throw new Error(`syn-blast: ${b.stderr}`);
  const sent = JSON.parse(b.stdout) as { sent: number; ms: number };
  await sleep(FLOOD_SETTLE_MS);
  return { ...sent, cpuS: cpuSeconds(d.pid) - cpu0, rssBeforeMb, rssAfterMb: readRss(d.pid), legit };
}

async function measure(name: string, d: DaemonUnderTest, bin: string): Promise<Figures> {
  await sleep(IDLE_MS);
  const idleRssMb = readRss(d.pid);
  const addrs = sources(TRIALS + 1);
  await addSources(d.lab, addrs);
  const results = await runTrials(d.lab, addrs.slice(0, TRIALS));
  const ms = results.flatMap((t) => (t.result === 'open' ? [t.ms] : []));
  const failures = results.flatMap((t) => (t.result === 'open' ? [] : [`trial ${t.trial} (${t.source}): ${t.result}: ${t.detail}`]));
  const f = await flood(d, bin, addrs[TRIALS] ?? '198.18.0.200');
  return { name, open: ms.length > 0 ? summarize(ms) : undefined, failures, idleRssMb, flood: f };
}

async function postern(backend: Backend): Promise<DaemonUnderTest> {
  const door = { name: 'ssh', sequence: KNOCKS.map(String), services: [`tcp/${SERVICE_PORT}`], duration_s: 300 };
  const world = await createWorld({
    backend, tag: `kb${backend === 'nft' ? 'nft' : 'ipt'}`,
    config: { doors: [door], firewall: { backend, reconcile_interval_s: RECONCILE_INTERVAL_S } },
  });
  try {
    const daemon = await world.startDaemon();
    return { lab: world.lab, pid: daemon.pid, close: () => world.close() };
  } catch (err) {
    await world.close();
    throw err;
  }
}

/** knockd 0.8 as Debian ships it in `lab`'s router, one door (KNOCKS) whose command inserts
 *  the accept rule for the echo service; the h2h bench starts it the same way. */
export async function startKnockdIn(lab: Lab, dir: string): Promise<{ readonly proc: LabProcess; readonly log: string }> {
  const echo = lab.spawn(lab.router, probeArgv(['echo-server', SERVICE_PORT]));
  await echo.waitForOutput(/listening/, 10_000);
  const drop = await lab.exec(lab.router, ['iptables', '-w', '-A', 'INPUT', '-p', 'tcp', '--dport', String(SERVICE_PORT), '-j', 'DROP']);
  if (drop.code !== 0) throw new Error(`iptables: ${drop.stderr}`);
  const conf = join(dir, 'knockd.conf');
  const log = join(dir, 'knockd.log');
  writeFileSync(conf, `[options]\n  LogFile = ${log}\n[ssh]\n  sequence = ${KNOCKS.join(',')}\n  seq_timeout = 25\n  tcpflags = syn\n`
    + `  start_command = ${findBin('iptables') ?? '/usr/sbin/iptables'} -w -I INPUT -s %IP% -p tcp --dport ${SERVICE_PORT} -j ACCEPT\n`);
  const proc = lab.spawn(lab.router, [findBin('knockd') ?? 'knockd', '-i', lab.router.ifname, '-c', conf]);
  for (let i = 0; i < 50 && !/listening/.test(readText(log)); i++) await sleep(100);
  if (!/listening/.test(readText(log))) throw new Error(`knockd did not start: ${proc.output()}`);
  return { proc, log };
}

async function knockd(dir: string): Promise<DaemonUnderTest> {
  const lab = await createLab({ tag: 'kbknockd' });
  try {
    const { proc } = await startKnockdIn(lab, dir);
    return { lab, pid: proc.pid, close: () => lab.close() };
  } catch (err) {
    await lab.close();
    throw err;
  }
}

export function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

async function one(print: Print, name: string, start: () => Promise<DaemonUnderTest>, bin: string): Promise<Figures | undefined> {
  let d: DaemonUnderTest | undefined;
  try {
    d = await start();
    const f = await measure(name, d, bin);
    for (const line of f.failures.slice(0, 5)) print(`  ${name} failed ${line}`);
    return f;
  } catch (err) {
    print(`${name}: FAILED: ${err instanceof Error ? err.message : String(err)}`);
    return undefined;
  } finally {
    await d?.close();
  }
}

const mb = (v: number | undefined): string => (v === undefined ? '?' : fmt(v));

function legitText(t: TrialResult | undefined): string {
  if (t === undefined) return 'not run';
  return t.result === 'open' ? `opened in ${fmt(t.ms)} ms` : `NOT opened within 3 s (${t.result})`;
}

function table(print: Print, rows: readonly Figures[]): void {
  const w = Math.max(...rows.map((r) => r.name.length), 8) + 2;
  print('');
  print(`${'daemon'.padEnd(w)}open: median     p95     p10     max  trials | idle RSS | flood: sent  in ms   CPU s  RSS before -> after MB  legit knock during flood`);
  for (const r of rows) {
    const o = r.open;
    const open = o ? `${fmt(o.median).padStart(12)} ${fmt(o.p95).padStart(7)} ${fmt(o.p10).padStart(7)} ${fmt(o.max).padStart(7)} ${String(o.n).padStart(7)}` : '   no trial opened'.padEnd(44);
    const f = r.flood;
    const fl = f ? `${String(f.sent).padStart(12)} ${String(f.ms).padStart(6)} ${fmt(f.cpuS).padStart(7)}  ${mb(f.rssBeforeMb).padStart(8)} -> ${mb(f.rssAfterMb).padEnd(8)}       ${legitText(f.legit)}` : '';
    print(`${r.name.padEnd(w)}${open} | ${mb(r.idleRssMb).padStart(5)} MB | ${fl}`);
  }
}

export async function runKnockBench(print: Print, backends: readonly Backend[]): Promise<void> {
  const skip = labSkipReason() ?? bundleSkipReason() ?? (findBin('gcc') ? undefined : 'needs gcc (syn-blast)');
  if (skip !== undefined) {
    print(`knock: skipped: ${skip}`);
    return;
  }
  print(`knock: time from the last knock (3 TCP knocks) to a TCP connect on tcp/${SERVICE_PORT}, ${TRIALS} trials per daemon, each from its own`);
  print(`       client address; then ${FLOOD.toLocaleString('en')} spoofed first knocks (SYN to tcp/${KNOCKS[0]}, distinct 10.x sources) from the attacker`);
  print('       namespace, bounded by count and time. Times in ms; shared machine: figures are noisy.');
  const dir = mkdtempSync(join(tmpdir(), 'postern-bench-knock-'));
  try {
    const bin = blast(dir);
    const rows: Figures[] = [];
    for (const backend of backends) {
      const f = await one(print, `postern/${backend}`, () => postern(backend), bin);
      if (f) rows.push(f);
    }
    if (findBin('knockd') === undefined) print('knockd not installed: skipped comparison');
    else {
      const f = await one(print, 'knockd 0.8', () => knockd(dir), bin);
      if (f) rows.push(f);
    }
    table(print, rows);
    if (rows.length < backends.length + (findBin('knockd') ? 1 : 0)) throw new Error('knock bench: a daemon failed (see above)');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
