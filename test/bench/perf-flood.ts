// SPDX-License-Identifier: MIT
// Daemon performance under floods (issue 9 targets), a measurement script for the daemon's
// own development; the formal head-to-head bench is test/bench/run.ts. Root; prints, never
// asserts. Figures are noisy: the machine (2 cores) is shared with the flooder, the probe and
// other work.
//
//   node test/bench/perf-flood.ts [SCENARIO...] [--backend nft|iptables]
//     paced   junk at 20,000 pps for 10 s, 50 valid opens interleaved
//     full    junk at the sender's full rate for 10 s, 50 valid opens interleaved
//     keyid   valid key id + random tag at full rate for 10 s, 50 valid opens interleaved
//     replay  one accepted packet replayed 100,000 times, 50 valid opens interleaved
//     junk1m  1,000,000 junk packets at full rate (memory)
//     grants  10,000 grants of 1 s, each for its own address, opened and expired (memory; not
//             in the default set: it takes a few minutes)
//   (default: all of them but grants, each on a fresh daemon in a fresh lab)
//   Environment: PERF_REPEAT=N floods N times per daemon (RSS after each); PERF_SMAPS=1 prints
//   the mappings whose Rss grew; PERF_NODE_FLAGS adds Node flags (e.g. --trace-gc, --cpu-prof);
//   PERF_DAEMON_OUTPUT=N prints the daemon's last N output lines.
//
// Per scenario: flood rate reached; daemon CPU seconds (/proc/PID/stat); VmRSS before, after
// the flood, and after a 5 s settle; packets the daemon classified (status counters) and the
// kernel dropped on its raw socket (/proc/PID/net/raw "drops": the receive queue overflowed);
// goodput (share of the 50 opens that opened) with median/p95 time-to-open; drain (time from
// the flood's end until the raw socket's receive queue is empty) and the time-to-open of one
// open sent right after the flood (recovery). The flooder is test/lab/udp-blast.c, compiled
// here, bounded by count and time, sending only to the lab router.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IP_BIN, labSkipReason, type Lab } from '../lab/lab.ts';
import { SERVICE_PORT, SPA_PORT, bundleSkipReason, createWorld, sleep, type Backend, type World } from '../e2e/harness.ts';
import { OPEN_PROBE_PATH, type OpenPlan, type TrialResult } from './open-probe.ts';
import { fmt, summarize } from './stats.ts';
import { cpuSeconds } from './cpu.ts';
import { memStatus, smaps } from './proc-mem.ts';

const BLAST_SRC = fileURLToPath(new URL('../lab/udp-blast.c', import.meta.url));
/** udp-blast threads for the full-rate floods (one per core, as h2h.ts). */
const FULL_THREADS = 2;
const FLOOD_S = 10;
const TRIALS = 50;
const PACED_PPS = 20_000;
const SETTLE_MS = 5_000;
/** Trials start this long after the flood, so the kernel queue is already under pressure. */
const TRIAL_DELAY_MS = 1_000;
const FIRST_SOURCE = 100;
const TARGET = { pacedP95Ms: 50, fullGoodput: 0.9, recoveryMs: 1_000, rssGrowthMb: 5 } as const;

interface Scenario {
  readonly about: string;
  readonly count: number;
  readonly pps: number;
  /** udp-blast's payload options */
  mode(w: World): Promise<readonly string[]>;
  readonly trials: boolean;
}

/** junk: 0..300 random bytes each */
const JUNK = ['--len', '0-300'] as const;

const SCENARIOS: Record<string, Scenario> = {
  paced: { about: `junk, paced ${PACED_PPS} pps`, count: PACED_PPS * FLOOD_S, pps: PACED_PPS, mode: async () => JUNK, trials: true },
  full: { about: 'junk, full rate', count: 50_000_000, pps: 0, mode: async () => JUNK, trials: true },
  keyid: { about: 'valid key id + bad tag, full rate', count: 50_000_000, pps: 0, mode: async (w) => ['--prefix', w.key.keyIdHex, '--len', '24-204'], trials: true },
  replay: { about: 'one accepted packet replayed 100,000 times', count: 100_000, pps: 0, mode: replayMode, trials: true },
  junk1m: { about: '1,000,000 junk packets, full rate', count: 1_000_000, pps: 0, mode: async () => JUNK, trials: false },
};

async function replayMode(w: World): Promise<readonly string[]> {
  const p = w.packet({ durationS: 120 });
  await w.sendRaw(w.lab.client, p);
  await w.daemon.waitForOutput(/msg="grant opened"/, 3_000);
  return ['--payload', p.toString('hex')];
}

const rssMb = (pid: number): number => memStatus(pid).rss;

/** RssAnon / RssFile (MB): heap and stacks vs. mapped files (the node binary's code pages
 *  the JIT or a first-time path touches count as RssFile). */
function rssParts(pid: number): string {
  const m = memStatus(pid);
  return `anon ${fmt(m.anon)} file ${fmt(m.file)}`;
}

/** The daemon's IPv4 raw UDP socket in its namespace: receive queue bytes and drops. */
function rawUdp(pid: number): { queue: number; drops: number } {
  const lines = readFileSync(`/proc/${pid}/net/raw`, 'utf8').split('\n').slice(1);
  for (const l of lines) {
    const f = l.trim().split(/\s+/);
    if (f[1] === '00000000:0011') return { queue: parseInt(f[4]?.split(':')[1] ?? '0', 16), drops: Number(f.at(-1)) };
  }
  return { queue: 0, drops: 0 };
}

function smapsGrowth(a: Map<string, number>, b: Map<string, number>): string {
  const rows = [...b].map(([k, v]) => [k, v - (a.get(k) ?? 0)] as const).filter(([, d]) => d !== 0).sort((x, y) => y[1] - x[1]);
  return rows.slice(0, 8).map(([k, d]) => `    ${String(d).padStart(7)} kB  ${k}`).join('\n');
}

async function counters(w: World): Promise<Record<string, number>> {
  const r = await w.postern(w.lab.router, ['status', '--config', w.configPath, '--json']);
  // Only the counters object: with thousands of grants the whole status is large.
  const m = /"counters":(\{[^}]*\})/.exec(r.stdout);
  if (!m) throw new Error(`status --json without counters: ${r.stdout.slice(0, 200)} ${r.stderr}`);
  return JSON.parse(m[1]!) as Record<string, number>;
}

async function classified(w: World): Promise<number> {
  return Object.entries(await counters(w)).filter(([k]) => k !== 'closed').reduce((n, [, v]) => n + v, 0);
}

function refusedDelta(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const skip = new Set(['accepted', 'extended', 'closed', 'knocks', 'public_key_ops']);
  return Object.fromEntries(Object.entries(b).filter(([k, v]) => !skip.has(k) && v !== (a[k] ?? 0)).map(([k, v]) => [k, v - (a[k] ?? 0)]));
}

async function addSources(lab: Lab, addrs: readonly string[]): Promise<void> {
  const link = await lab.exec(lab.client, [IP_BIN, '-j', 'link', 'show', lab.client.ifname]);
  const mac = (JSON.parse(link.stdout) as { address?: string }[])[0]?.address ?? '';
  const batch = async (host: Lab['client'], cmds: string[]): Promise<void> => {
    const r = await lab.exec(host, [IP_BIN, '-batch', '-'], { input: cmds.map((c) => `${c}\n`).join('') });
    if (r.code !== 0) throw new Error(`ip -batch in ${host.name}: ${r.stderr}`);
  };
  await batch(lab.client, addrs.map((a) => `addr add ${a}/24 dev ${lab.client.ifname}`));
  await batch(lab.router, addrs.map((a) => `neigh replace ${a} lladdr ${mac} dev ${lab.router.ifname} nud permanent`));
}

async function runTrials(w: World, sources: readonly string[]): Promise<TrialResult[]> {
  const plan: OpenPlan = {
    host: w.lab.router.ip4, spaPort: SPA_PORT, tcpPort: SERVICE_PORT,
    trials: sources.map((source) => ({ source, packetHex: w.packet().toString('hex') })),
  };
  const r = await w.lab.exec(w.lab.client, [process.execPath, OPEN_PROBE_PATH], { input: JSON.stringify(plan), timeoutMs: 300_000 });
  return r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as TrialResult);
}

function trialLine(label: string, results: readonly TrialResult[]): string {
  const ms = results.flatMap((t) => (t.result === 'open' ? [t.ms] : []));
  const s = ms.length > 0 ? summarize(ms) : undefined;
  return `${label} ${ms.length}/${results.length} opened` + (s ? `, time-to-open median ${fmt(s.median)} ms p95 ${fmt(s.p95)} ms max ${fmt(s.max)} ms` : '');
}

/** Milliseconds from now until the raw socket's receive queue is empty (the backlog drained). */
async function drainMs(pid: number): Promise<number> {
  const t0 = performance.now();
  while (rawUdp(pid).queue > 0 && performance.now() - t0 < 30_000) await sleep(5);
  return performance.now() - t0;
}

async function runScenario(print: (l: string) => void, name: string, sc: Scenario, backend: Backend, blast: string): Promise<void> {
  const nodeFlags = process.env['PERF_NODE_FLAGS']?.split(' ').filter(Boolean) ?? [];
  const w = await createWorld({ backend, tag: `perf${name}`.slice(0, 12), nodeFlags });
  try {
    await w.startDaemon();
    const pid = w.daemon.pid;
    const sources = Array.from({ length: TRIALS + 1 }, (_, i) => `198.18.0.${FIRST_SOURCE + i}`);
    await addSources(w.lab, sources);
    const mode = await sc.mode(w);
    await sleep(1_000);
    const before = { maps: smaps(pid), parts: rssParts(pid), rss: rssMb(pid), cpu: cpuSeconds(pid), raw: rawUdp(pid), n: await classified(w) };
    const full = sc.count > 10_000_000;
    const floodArgv = [blast, '--to', w.lab.router.ip4, '--port', String(SPA_PORT), '--count', String(sc.count), '--seconds', String(FLOOD_S * (full ? 1 : 6)),
      '--pps', String(sc.pps), '--threads', String(full ? FULL_THREADS : 1), '--seed', '42', ...mode];
    const flood = w.lab.exec(w.lab.attacker, floodArgv, { timeoutMs: 120_000 });
    const trials = sc.trials ? sleep(TRIAL_DELAY_MS).then(() => runTrials(w, sources.slice(0, TRIALS))) : Promise.resolve([]);
    const f = await flood;
    const sent = JSON.parse(f.stdout.trim() || '{}') as { sent?: number; pps?: number };
    const drain = await drainMs(pid);
    const after = { rss: rssMb(pid), cpu: cpuSeconds(pid), raw: rawUdp(pid) };
    const recovery = sc.trials ? await runTrials(w, sources.slice(TRIALS)) : [];
    const results = await trials;
    await sleep(SETTLE_MS);
    const settled = rssMb(pid);
    const settledParts = rssParts(pid);
    const n = (await classified(w)) - before.n;
    print(`${name} (${sc.about}) on postern/${backend}: sent ${sent.sent} at ${sent.pps} pps; daemon CPU ${fmt(after.cpu - before.cpu)} s; `
      + `classified ${n}, kernel raw-queue drops ${after.raw.drops - before.raw.drops}; drain ${fmt(drain)} ms`);
    if (sc.trials) print(`  ${trialLine('goodput', results)}; ${trialLine('recovery open', recovery)}`);
    print(`  RSS ${fmt(before.rss)} -> ${fmt(after.rss)} MB after flood -> ${fmt(settled)} MB after ${SETTLE_MS / 1000} s (growth ${fmt(settled - before.rss)} MB; target <= ${TARGET.rssGrowthMb}); ${before.parts} -> ${settledParts}`);
    const fails = results.filter((t) => t.result !== 'open').slice(0, 3);
    for (const t of fails) print(`  failed: ${JSON.stringify(t)}`);
    // PERF_DAEMON_OUTPUT=N: the daemon's last N output lines (with --trace-gc in PERF_NODE_FLAGS, its heap sizes).
    // A second, identical flood on the same daemon: growth that is a high-water mark (arenas,
    // code pages, the young generation) does not come back; a leak would.
    for (let r = 2; r <= Number(process.env['PERF_REPEAT'] ?? 1); r++) {
      const again = await w.lab.exec(w.lab.attacker, floodArgv, { timeoutMs: 120_000 });
      await drainMs(pid);
      await sleep(SETTLE_MS);
      print(`  flood ${r} (${(JSON.parse(again.stdout.trim() || '{}') as { sent?: number }).sent} sent): RSS ${fmt(rssMb(pid))} MB (growth since before flood 1: ${fmt(rssMb(pid) - before.rss)} MB); ${rssParts(pid)}`);
    }
    if (process.env['PERF_SMAPS'] === '1') print(`  smaps Rss growth by mapping:\n${smapsGrowth(before.maps, smaps(pid))}`);
    const tail = Number(process.env['PERF_DAEMON_OUTPUT'] ?? 0);
    if (tail > 0) print(w.daemon.output().trim().split('\n').slice(-tail).join('\n'));
  } finally {
    await w.close();
  }
}

const GRANTS = Number(process.env['PERF_GRANTS'] ?? 10_000);
/** What the firewall path sustains here (one nft transaction per grant and per expiry: ~50/s measured). */
const GRANTS_PPS = Number(process.env['PERF_GRANTS_PPS'] ?? 40);
/** Sends the hex datagrams on stdin (one per line) to HOST PORT at PPS, inside a lab host. */
const SEND_LINES = `const d=require('node:dgram').createSocket('udp4');const [h,p,r]=process.argv.slice(1);
let t='';process.stdin.on('data',(c)=>t+=c).on('end',async()=>{const l=t.trim().split('\\n');const t0=Date.now();
for(let i=0;i<l.length;i++){while(i>(Date.now()-t0)*Number(r)/1000)await new Promise((z)=>setTimeout(z,2));
await new Promise((z)=>d.send(Buffer.from(l[i],'hex'),Number(p),h,z));}d.close();console.log(JSON.stringify({sent:l.length,ms:Date.now()-t0}));});`;

/** 10,000 grants, each for its own address (explicit allow address, 1 s), opened and expired. */
async function runGrants(print: (l: string) => void, backend: Backend): Promise<void> {
  const w = await createWorld({ backend, tag: 'perfgrants', keyExtra: { require_source_address: false } });
  try {
    await w.startDaemon();
    const pid = w.daemon.pid;
    await sleep(1_000);
    const before = { maps: smaps(pid), rss: rssMb(pid), parts: rssParts(pid), cpu: cpuSeconds(pid) };
    // Increasing timestamps: once the replay ring (4096) is full, each eviction raises the
    // key's floor to the evicted packet's ts, and equal timestamps would be stale.
    // Each one stamped about when it is sent (the sender is paced), so none goes stale.
    const t0 = Date.now();
    const lines = Array.from({ length: GRANTS }, (_, i) => w.packet({ durationS: 1, nowMs: t0 + Math.floor((i * 1000) / GRANTS_PPS), allowAddress: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` }).toString('hex'));
    const counters0 = await counters(w);
    const r = await w.lab.exec(w.lab.client, [process.execPath, '-e', SEND_LINES, w.lab.router.ip4, String(SPA_PORT), String(GRANTS_PPS)], { input: lines.join('\n'), timeoutMs: 2 * 1000 * GRANTS / GRANTS_PPS + 60_000 });
    const end = Date.now() + 120_000;
    // Wait for the daemon to apply the backlog (accepted stops changing) and the kernel to expire it.
    let last = -1;
    for (let now = (await counters(w))['accepted']!; (now !== last || (await w.grantRules()).length > 0) && Date.now() < end; now = (await counters(w))['accepted']!) {
      if (process.env['PERF_GRANTS_TRACE'] === '1') print(`  accepted so far ${now - counters0['accepted']!}, live rules ${(await w.grantRules()).length}`);
      last = now;
      await sleep(2_000);
    }
    await sleep(SETTLE_MS);
    print(`grants (${GRANTS} grants of 1 s, each for its own address, ${GRANTS_PPS}/s) on postern/${backend}: sender ${r.stdout.trim()}; `
      + `accepted ${(await counters(w))['accepted']! - counters0['accepted']!}, refused ${JSON.stringify(refusedDelta(counters0, await counters(w)))}; left open ${(await w.grantRules()).length}; daemon CPU ${fmt(cpuSeconds(pid) - before.cpu)} s`);
    print(`  RSS ${fmt(before.rss)} -> ${fmt(rssMb(pid))} MB after all expired + ${SETTLE_MS / 1000} s (growth ${fmt(rssMb(pid) - before.rss)} MB; target <= ${TARGET.rssGrowthMb}); ${before.parts} -> ${rssParts(pid)}`);
    if (process.env['PERF_SMAPS'] === '1') print(`  smaps Rss growth by mapping:\n${smapsGrowth(before.maps, smaps(pid))}`);
    const tail = Number(process.env['PERF_DAEMON_OUTPUT'] ?? 0);
    if (tail > 0) print(w.daemon.output().trim().split('\n').slice(-tail).join('\n'));
  } finally {
    await w.close();
  }
}

async function main(argv: readonly string[]): Promise<number> {
  const skip = labSkipReason() ?? bundleSkipReason();
  if (skip) {
    console.log(`perf-flood: skipped (${skip})`);
    return 0;
  }
  const bi = argv.indexOf('--backend');
  const backend = (bi >= 0 ? argv[bi + 1] : 'nft') as Backend;
  const names = argv.filter((a, i) => !a.startsWith('--') && (bi < 0 || i !== bi + 1));
  const chosen = names.length > 0 ? names : Object.keys(SCENARIOS);
  const unknown = chosen.filter((n) => !Object.hasOwn(SCENARIOS, n) && n !== 'grants');
  if (unknown.length > 0 || (backend !== 'nft' && backend !== 'iptables')) {
    console.error(`usage: perf-flood.ts [${Object.keys(SCENARIOS).join('|')}|grants...] [--backend nft|iptables]`);
    return 2;
  }
  const dir = mkdtempSync(join(tmpdir(), 'postern-perf-'));
  try {
    const blast = join(dir, 'udp-blast');
    execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-pthread', '-o', blast, BLAST_SRC]);
    for (const n of chosen) {
      if (n === 'grants') await runGrants((l) => console.log(l), backend);
      else await runScenario((l) => console.log(l), n, SCENARIOS[n]!, backend, blast);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return 0;
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
