// SPDX-License-Identifier: MIT
// Where the daemon's memory goes under the floods of the h2h bench (issue 9: RSS growth
// <= 5 MB in every scenario), a measurement script for development; root; prints, never
// asserts. Figures are noisy: the machine (2 cores) is shared with the flooder and other work.
//
//   node test/bench/mem-flood.ts [SCENARIO...] [--backend nft|iptables] [--repeat N]
//     idle      no flood: RSS over the same time (the baseline drift)
//     knock     SYNs from random sources to the first knock port, 20,000 pps for 10 s
//     authlike  a real packet's key id + random bytes, full rate for 10 s (every one a full
//               AES-SIV check, refused as bad_auth)
//     junk      random UDP to the SPA port, 20,000 pps for 10 s
//     replay    one accepted packet replayed 100,000 times at 20,000 pps
//     grants    10,000 grants for 10,000 addresses, 1 s each, at 1,000/s
//   Environment: MEM_NODE_FLAGS adds Node flags to the daemon (e.g. --trace-gc);
//   MEM_DAEMON_OUTPUT=N prints the daemon's last N output lines; MEM_HEAPTRACK=DIR runs the
//   daemon (as root, tuned by hand: no re-exec) under heaptrack, writing DIR/ht.*.zst.
//
// Per scenario, on a fresh daemon in a fresh lab: VmRSS (RssAnon / RssFile) 2 s after start,
// after each flood + 3 s settle, and the smaps mappings whose Rss grew most.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labSkipReason } from '../lab/lab.ts';
import { NO_PREFILTER, SERVICE_PORT, SPA_PORT, bundleSkipReason, createWorld, sleep, type Backend, type World } from '../e2e/harness.ts';
import { KNOCKS } from './knock.ts';
import { posternStatus } from './h2h-daemons.ts';
import { fmt } from './stats.ts';
import { cpuSeconds } from './cpu.ts';
import { address } from './h2h-memory.ts';
import { memStatus, smaps, type MemStatus } from './proc-mem.ts';

const UDP_BLAST = fileURLToPath(new URL('../lab/udp-blast.c', import.meta.url));
const SYN_BLAST = fileURLToPath(new URL('../lab/syn-blast.c', import.meta.url));
const FLOOD_S = 10;
const PPS = 20_000;
const SETTLE_MS = 3_000;

interface Bins { readonly udp: string; readonly syn: string }
type Flood = (w: World, bins: Bins) => Promise<string[] | undefined>;

/** udp-blast's common options: to the router's SPA port, bounded by count and time. */
const udp = (w: World, b: Bins, count: number): string[] =>
  [b.udp, '--to', w.lab.router.ip4, '--port', String(SPA_PORT), '--count', String(count), '--seconds', String(FLOOD_S)];

const SCENARIOS: Record<string, Flood> = {
  idle: async () => undefined,
  knock: async (w, b) => [b.syn, w.lab.router.ip4, 'spoof', String(KNOCKS[0]), String(PPS * FLOOD_S), String(FLOOD_S), String(PPS)],
  authlike: async (w, b) => {
    const p = w.packet();
    return [...udp(w, b, 50_000_000), '--seed', '3', '--prefix', p.subarray(0, 4).toString('hex'), '--len', `${p.length}-${p.length}`];
  },
  // With the kernel prefilter on (the default) junk never reaches the daemon: this is the
  // daemon's own cost, so these worlds run with spa.prefilter off (see createWorld below).
  junk: async (w, b) => [...udp(w, b, PPS * FLOOD_S), '--pps', String(PPS), '--seed', '1'],
  // 10,000 grants for 10,000 explicit addresses, 1 s each, at 1,000/s (the h2h memory scenario).
  grants: async (w, b) => {
    const file = join(w.dir, 'grants.hex');
    writeFileSync(file, Array.from({ length: 10_000 }, (_, i) => w.packet({ allowAddress: address(i), durationS: 1 }).toString('hex')).join('\n') + '\n');
    return [b.udp, '--to', w.lab.router.ip4, '--port', String(SPA_PORT), '--count', '10000', '--seconds', '15', '--pps', '1000', '--payload-file', file];
  },
  replay: async (w, b) => {
    const p = w.packet({ durationS: 120 });
    await w.sendRaw(w.lab.client, p);
    await w.daemon.waitForOutput(/msg="grant opened"/, 3_000);
    return [...udp(w, b, 100_000), '--pps', String(PPS), '--payload', p.toString('hex')];
  },
};

async function processed(w: World): Promise<number> {
  const c = (await posternStatus(w)).counters;
  return Object.entries(c).filter(([k]) => k !== 'closed').reduce((n, [, v]) => n + v, 0);
}

const show = (m: MemStatus): string => `${fmt(m.rss)} MB (anon ${fmt(m.anon)}, file ${fmt(m.file)})`;

function growth(a: Map<string, number>, b: Map<string, number>): string {
  const rows = [...b].map(([k, v]) => [k, v - (a.get(k) ?? 0)] as const).filter(([, d]) => Math.abs(d) >= 64).sort((x, y) => y[1] - x[1]);
  const sums = new Map<string, number>();
  for (const k of new Set([...a.keys(), ...b.keys()])) {
    const v = b.get(k) ?? 0;
    const kind = k.endsWith('[heap]') ? 'malloc heap' : / 256kB \[anon\]$/.test(k) ? 'V8 pages (256 kB)' : k.endsWith('[anon]') ? 'other anon' : 'file';
    sums.set(kind, (sums.get(kind) ?? 0) + v - (a.get(k) ?? 0));
  }
  const byKind = [...sums].map(([k, d]) => `${k} ${d} kB`).join(', ');
  return `    by kind: ${byKind}\n` + rows.slice(0, 6).map(([k, d]) => `    ${String(d).padStart(7)} kB  ${k}`).join('\n');
}

/** The daemon's node process (not a wrapper such as heaptrack's script): by its config path. */
function daemonPid(configPath: string, fallback: number): number {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const argv = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      if (argv.includes(configPath) && argv.includes('daemon') && argv[0]?.endsWith('node')) return Number(d);
    } catch {
      // gone meanwhile
    }
  }
  return fallback;
}

/** Run the daemon under heaptrack: root, and tuned by hand (heaptrack follows no execve). */
function underHeaptrack(w: World, dir: string): void {
  const orig = w.daemonCommand.bind(w);
  w.daemonCommand = (args) => {
    const c = orig(args);
    return { argv: ['heaptrack', '-o', join(dir, 'ht'), c.argv[0]!, '--max-semi-space-size=1', '--max-opt=2', ...c.argv.slice(1)], env: { ...c.env, POSTERN_DAEMON_TUNED: '1', MALLOC_ARENA_MAX: '1' } };
  };
}

async function run(name: string, backend: Backend, bins: Bins, repeat: number): Promise<void> {
  const knock = name === 'knock';
  const door = { name: 'ssh', sequence: KNOCKS.map(String), services: [`tcp/${SERVICE_PORT}`], duration_s: 300 };
  const nodeFlags = process.env['MEM_NODE_FLAGS']?.split(' ').filter(Boolean) ?? [];
  const ht = process.env['MEM_HEAPTRACK'];
  const w = await createWorld({
    backend, tag: `mem${name}`.slice(0, 10), nodeFlags, config: { ...NO_PREFILTER, ...(knock && { doors: [door] }) },
    ...(name === 'grants' && { keyExtra: { require_source_address: false, max_duration_s: 600 } }),
    ...(ht !== undefined && { runAs: 'root' as const }),
  });
  try {
    if (ht !== undefined) underHeaptrack(w, ht);
    await w.startDaemon();
    const pid = daemonPid(w.configPath, w.daemon.pid);
    await sleep(2_000);
    const argv = await SCENARIOS[name]!(w, bins);
    const m0 = smaps(pid);
    const s0 = memStatus(pid);
    const lines = [`${name} on postern/${backend}: start ${show(s0)}`];
    for (let r = 1; r <= repeat; r++) {
      const [cpu0, n0] = [cpuSeconds(pid), await processed(w)];
      const f = argv ? (await w.lab.exec(w.lab.attacker, argv, { timeoutMs: 90_000 })).stdout.trim() : await sleep(FLOOD_S * 1000).then(() => '{}');
      await sleep(SETTLE_MS);
      const s = memStatus(pid);
      const [cpu, n] = [cpuSeconds(pid) - cpu0, (await processed(w)) - n0];
      lines.push(`  run ${r} ${f}: processed ${n}, CPU ${fmt(cpu)} s (${n > 0 ? fmt((cpu * 1e6) / n) : '-'} us/packet); ${show(s)}; growth ${fmt(s.rss - s0.rss)} MB (anon ${fmt(s.anon - s0.anon)})`);
    }
    lines.push(`  smaps Rss growth:\n${growth(m0, smaps(pid))}`);
    const tail = Number(process.env['MEM_DAEMON_OUTPUT'] ?? 0);
    if (tail > 0) lines.push(w.daemon.output().trim().split('\n').slice(-tail).join('\n'));
    console.log(lines.join('\n'));
  } finally {
    await w.close();
  }
}

async function main(argv: readonly string[]): Promise<number> {
  const skip = labSkipReason() ?? bundleSkipReason();
  if (skip) {
    console.log(`mem-flood: skipped (${skip})`);
    return 0;
  }
  const opt = (name: string): string | undefined => { const i = argv.indexOf(name); return i >= 0 ? argv[i + 1] : undefined; };
  const backend = (opt('--backend') ?? 'nft') as Backend;
  const repeat = Number(opt('--repeat') ?? 1);
  const names = argv.filter((a, i) => !a.startsWith('--') && !argv[i - 1]?.startsWith('--'));
  const chosen = names.length > 0 ? names : Object.keys(SCENARIOS);
  if (chosen.some((n) => !Object.hasOwn(SCENARIOS, n)) || (backend !== 'nft' && backend !== 'iptables') || !(repeat >= 1)) {
    console.error(`usage: mem-flood.ts [${Object.keys(SCENARIOS).join('|')}...] [--backend nft|iptables] [--repeat N]`);
    return 2;
  }
  const dir = mkdtempSync(join(tmpdir(), 'postern-mem-'));
  try {
    const bins = { udp: join(dir, 'udp-blast'), syn: join(dir, 'syn-blast') };
    execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-pthread', '-o', bins.udp, UDP_BLAST]);
    execFileSync('gcc', ['-O2', '-o', bins.syn, SYN_BLAST]);
    for (const n of chosen) await run(n, backend, bins, repeat);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return 0;
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
