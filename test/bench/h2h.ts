// SPDX-License-Identifier: MIT
// `h2h` benchmark (root; issue 9 "npm run bench -- all"): postern (nft, iptables) against
// fwknopd (pcap defaults, and UDP-server mode) and, for knocks, knockd, in the same run on the
// same machine. Per scenario (h2h-report.ts SCENARIOS), per daemon, in a fresh lab each:
//   - the client namespace runs ONE probe process (h2h-probe.ts) with every valid open of the
//     scenario, each from its own source address at a fixed time (interleaved in the flood),
//     then recovery opens every RECOVERY_STEP_MS after the flood's end;
//   - the attacker namespace runs the flood: test/lab/udp-blast.c (UDP) or syn-blast.c
//     (random-source SYNs), compiled here with gcc, bounded by count and time;
//   - before and after: the daemon's CPU seconds (/proc/PID/stat), VmRSS, its own counters
//     (postern status) and the kernel's receive-queue drops in the router namespace.
// Recovery = from the flood's end to the first valid open that is sent then and opens within
// PROMPT_MS, plus that open's time. Prints a Markdown table and the targets (met or
// missed), and writes bench/results/<date>.md and .json with the machine. Never asserts.
// Shared machine: the figures are noisy, compare within one run.

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labSkipReason } from '../lab/lab.ts';
import { SERVICE_PORT, bundleSkipReason, sleep, type Backend } from '../e2e/harness.ts';
import { findBin } from './fwknop-bench.ts';
import { readRss } from './open.ts';
import { summarize } from './stats.ts';
import {
  KNOCKS, addSources, startFwknopd, startKnockd, startPostern, startPosternKnock, type Daemon, type DaemonName,
} from './h2h-daemons.ts';
import { cpuSeconds } from './cpu.ts';
import { H2H_PROBE_PATH, type H2hPlan, type H2hTrial } from './h2h-probe.ts';
import { SCENARIOS, SCENARIO_ABOUT, type Row, type Scenario } from './h2h-report.ts';
import { deltas, runMemory } from './h2h-memory.ts';
import { writeResults } from './h2h-results.ts';

type Print = (line: string) => void;

const TRIALS = 50;
const PACED_PPS = 20_000;
const FLOOD_S = 10;
const FULL_COUNT = 100_000_000;
/** udp-blast threads at full rate: one per core (on veth each also runs the receive path). */
const FULL_THREADS = 2;
const REPLAY_COUNT = 100_000;
const RECOVERY_TRIALS = 28;
const RECOVERY_STEP_MS = 250;
const PROMPT_MS = 100;
const DEADLINE_MS = 2_000;
const OPEN_SPACING_MS = 60;
const SETTLE_MS = 1_000;
const FIRST_SOURCE = 20;
const UDP_BLAST = fileURLToPath(new URL('../lab/udp-blast.c', import.meta.url));
const SYN_BLAST = fileURLToPath(new URL('../lab/syn-blast.c', import.meta.url));

export interface Bins { readonly udp: string; readonly syn: string }

export function compileSenders(dir: string): Bins {
  const bins = { udp: join(dir, 'udp-blast'), syn: join(dir, 'syn-blast') };
  execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-pthread', '-o', bins.udp, UDP_BLAST]);
  execFileSync('gcc', ['-O2', '-o', bins.syn, SYN_BLAST]);
  return bins;
}


export function sources(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `198.18.0.${FIRST_SOURCE + i}`);
}

/** What the attacker sends: argv after the binary, and how long it lasts at most. */
interface Flood { readonly argv: readonly string[]; readonly ms: number }

/** udp-blast's payload options for the authlike flood: postern, a real packet's 4-byte key id
 *  and random bytes after it, same length; fwknopd, random base64 of a real packet's length. */
function authlike(fwknop: boolean, captured: string): string[] {
  const len = String(captured.length / 2);
  return fwknop ? ['--b64', '--len', `${len}-${len}`] : ['--prefix', captured.slice(0, 8), '--len', `${len}-${len}`];
}

function floodFor(d: Daemon, s: Scenario, bins: Bins, captured: string): Flood | undefined {
  const to = ['--to', d.lab.router.ip4, '--port', String(d.spaPort), '--seconds', String(FLOOD_S)];
  const fwknop = d.name.startsWith('fwknopd');
  switch (s) {
    case 'open': return undefined;
    case 'junk-paced': return { argv: [bins.udp, ...to, '--count', String(PACED_PPS * FLOOD_S), '--pps', String(PACED_PPS), '--seed', '1'], ms: FLOOD_S * 1000 };
    case 'junk-full': return { argv: [bins.udp, ...to, '--count', String(FULL_COUNT), '--threads', String(FULL_THREADS), '--seed', '2'], ms: FLOOD_S * 1000 };
    case 'authlike': return {
      argv: [bins.udp, ...to, '--count', String(FULL_COUNT), '--threads', String(FULL_THREADS), '--seed', '3', ...authlike(fwknop, captured)],
      ms: FLOOD_S * 1000,
    };
    case 'replay': return { argv: [bins.udp, ...to, '--count', String(REPLAY_COUNT), '--pps', String(PACED_PPS), '--payload', captured], ms: (REPLAY_COUNT / PACED_PPS) * 1000 };
    case 'knock': return { argv: [bins.syn, d.lab.router.ip4, 'spoof', String(KNOCKS[0]), String(PACED_PPS * FLOOD_S), String(FLOOD_S), String(PACED_PPS)], ms: FLOOD_S * 1000 };
    case 'memory': return undefined;
  }
}

/** Interleaved opens spread over the flood; recovery opens after it (none without a flood). */
function plan(d: Daemon, s: Scenario, addrs: readonly string[], packets: readonly string[], flood: Flood | undefined): H2hPlan {
  const at = (i: number): number => {
    if (flood === undefined) return i * OPEN_SPACING_MS;
    if (i < TRIALS) return 200 + Math.round((i * (flood.ms - 400)) / TRIALS);
    return flood.ms + (i - TRIALS) * RECOVERY_STEP_MS;
  };
  return {
    host: d.lab.router.ip4, tcpPort: SERVICE_PORT, spaPort: d.spaPort, deadlineMs: DEADLINE_MS,
    ...(s === 'knock' && { knocks: KNOCKS }),
    trials: addrs.map((source, i) => ({ source, packetHex: packets[i] ?? '', atMs: at(i) })),
  };
}

interface Before { readonly cpu: number; readonly rss: number | undefined; readonly counts: Awaited<ReturnType<Daemon['counts']>> }

async function before(d: Daemon): Promise<Before> {
  return { cpu: cpuSeconds(d.pid), rss: readRss(d.pid)?.mb, counts: await d.counts() };
}

/** The first recovery trial that opened within PROMPT_MS: its start after the flood plus its time. */
function recovery(results: readonly H2hTrial[], floodMs: number): number | undefined {
  const prompt = results.filter((t) => t.trial >= TRIALS && t.result === 'open' && t.ms <= PROMPT_MS)
    .sort((a, b) => a.atMs - b.atMs)[0];
  return prompt?.result === 'open' ? Math.max(0, prompt.atMs - floodMs) + prompt.ms : undefined;
}

function diff(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined ? undefined : b - a;
}

async function runProbe(d: Daemon, p: H2hPlan, flood: Flood | undefined): Promise<{ trials: H2hTrial[]; sent: { sent: number; ms: number } | undefined }> {
  const probe = d.lab.spawn(d.lab.client, [process.execPath, H2H_PROBE_PATH]);
  probe.child.stdin?.write(`${JSON.stringify(p)}\n`);
  await probe.waitForOutput(/^ready$/m, 10_000);
  probe.child.stdin?.write('go\n');
  const blast = flood && d.lab.exec(d.lab.attacker, [...flood.argv], { timeoutMs: (FLOOD_S + 20) * 1000 });
  const last = Math.max(...p.trials.map((t) => t.atMs));
  await probe.waitForOutput(/"done":true/, last + DEADLINE_MS + 15_000);
  const b = await blast;
  if (b && b.code !== 0) throw new Error(`flood sender exited ${b.code}: ${b.stderr}`);
  const trials = probe.output().split('\n').filter((l) => l.startsWith('{"trial"')).map((l) => JSON.parse(l) as H2hTrial);
  return { trials, sent: b && (JSON.parse(b.stdout.trim().split('\n').pop() ?? '{}') as { sent: number; ms: number }) };
}

/** The captured packet for the replay (accepted once from the client) or the authlike template. */
async function captured(d: Daemon, s: Scenario): Promise<string> {
  if (s !== 'replay' && s !== 'authlike') return '';
  const [hex] = await d.valid([d.lab.client.ip4]);
  if (s === 'replay') {
    await d.lab.exec(d.lab.client, [process.execPath, fileURLToPath(new URL('../lab/net-probe.ts', import.meta.url)), 'udp-send', d.lab.router.ip4, String(d.spaPort), hex!]);
    await sleep(500);
  }
  return hex!;
}

export async function runScenario(d: Daemon, s: Scenario, bins: Bins): Promise<Row> {
  const f = floodFor(d, s, bins, await captured(d, s));
  const addrs = sources(TRIALS + (f === undefined ? 0 : RECOVERY_TRIALS));
  await addSources(d.lab, addrs);
  const packets = s === 'knock' ? [] : await d.valid(addrs);
  const b = await before(d);
  const { trials, sent } = await runProbe(d, plan(d, s, addrs, packets, f), f);
  await sleep(SETTLE_MS);
  const a = await before(d);
  const interleaved = trials.filter((t) => t.trial < TRIALS);
  const ms = interleaved.flatMap((t) => (t.result === 'open' ? [t.ms] : []));
  return {
    daemon: d.name, scenario: s, ...(sent && { sent: sent.sent, floodMs: sent.ms }),
    cpuS: a.cpu - b.cpu, ...(b.rss !== undefined && { rssBeforeMb: b.rss }), ...(a.rss !== undefined && { rssAfterMb: a.rss }),
    ...opt('processed', diff(b.counts.processed, a.counts.processed)), ...opt('kernelDrops', diff(b.counts.kernelDrops, a.counts.kernelDrops)),
    ...opt('prefiltered', diff(b.counts.prefiltered, a.counts.prefiltered)),
    opened: ms.length, trials: TRIALS, ...(ms.length > 0 && { open: summarize(ms) }),
    ...(f && { recoveryWindowMs: RECOVERY_TRIALS * RECOVERY_STEP_MS, ...opt('recoveryMs', recovery(trials, sent?.ms ?? f.ms)) }),
    ...opt('dbWrites', diff(b.counts.dbWrites, a.counts.dbWrites)), ...opt('mqtt', diff(b.counts.mqtt, a.counts.mqtt)),
    ...(b.counts.counters && a.counts.counters && s !== 'open' && { note: `${d.name} counters: ${deltas(b.counts.counters, a.counts.counters)}` }),
  };
}

function opt<K extends string>(key: K, value: number | undefined): Partial<Record<K, number>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, number>);
}

/** Which daemons a scenario compares, as starters (each makes a fresh lab). */
function daemonsFor(s: Scenario, backends: readonly Backend[]): { name: DaemonName; start: () => Promise<Daemon>; bin: string }[] {
  const posterns = backends.map((b) => ({
    name: `postern/${b}` as DaemonName, bin: b === 'nft' ? 'nft' : 'iptables',
    start: () => (s === 'knock' ? startPosternKnock(b) : startPostern(b, { mqtt: s === 'replay', explicitAddresses: s === 'memory' })),
  }));
  if (s === 'knock') return [...posterns, { name: 'knockd', bin: 'knockd', start: startKnockd }];
  return [...posterns,
    { name: 'fwknopd (pcap)', bin: 'fwknopd', start: () => startFwknopd('pcap') },
    { name: 'fwknopd (udp)', bin: 'fwknopd', start: () => startFwknopd('udp') }];
}

async function one(print: Print, s: Scenario, t: ReturnType<typeof daemonsFor>[number], bins: Bins): Promise<Row> {
  if (findBin(t.bin) === undefined) return { daemon: t.name, scenario: s, error: `${t.bin} is not installed` };
  let d: Daemon | undefined;
  try {
    d = await t.start();
    const row = s === 'memory' ? await runMemory(d, bins) : await runScenario(d, s, bins);
    print(`  ${s} ${t.name}: done`);
    return row;
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    print(`  ${s} ${t.name}: FAILED: ${msg.split('\n')[0]}`);
    return { daemon: t.name, scenario: s, error: msg };
  } finally {
    await d?.close();
  }
}

export async function runH2hBench(print: Print, backends: readonly Backend[], scenarios: readonly Scenario[] = SCENARIOS): Promise<void> {
  const skip = labSkipReason() ?? bundleSkipReason() ?? (findBin('gcc') ? undefined : 'needs gcc (the flood senders)');
  if (skip !== undefined) {
    print(`h2h: skipped: ${skip}`);
    return;
  }
  print('h2h: postern against fwknopd and knockd, same run, same machine; one fresh lab per daemon and scenario');
  for (const s of scenarios) print(`  ${s.padEnd(10)} ${SCENARIO_ABOUT[s]}`);
  const dir = mkdtempSync(join(tmpdir(), 'postern-h2h-'));
  const rows: Row[] = [];
  try {
    const bins = compileSenders(dir);
    for (const s of scenarios) for (const t of daemonsFor(s, backends)) rows.push(await one(print, s, t, bins));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const out = fileURLToPath(new URL('../../bench/results/', import.meta.url));
  mkdirSync(out, { recursive: true });
  for (const line of writeResults(out, rows, scenarios).split('\n')) print(line);
}
