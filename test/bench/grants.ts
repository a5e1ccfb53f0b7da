// SPDX-License-Identifier: MIT
// `grants` benchmark (root): what 1,000 concurrent grants cost each firewall backend. Prints;
// never asserts.
//
// Per backend, in a throwaway network namespace of its own (no traffic: only the ruleset is
// measured), the backend class itself is driven through
// `prefixRunner([ip, netns, exec, NS], spawnRunner)` after start():
//   1. GRANT_COUNT grants, each from its own source address, half IPv4 (198.18.0.0/16,
//      RFC 2544) and half IPv6 (2001:db8::/32, RFC 3849), alternating; 1 or 2 guarded
//      services each; expiry an hour away, so none expires during the run;
//   2. added one after another, each awaited, as the daemon does (its backends serialize
//      every operation anyway): the total and each add are timed;
//   3. one reconcile with all of them live (the daemon's periodic check; it should find
//      nothing to change);
//   4. the ruleset's size: grant rules or set elements, all rules, and the bytes of
//      `iptables-save` + `ip6tables-save` or of `nft list table inet postern`;
//   4b. (after the memory reading) the same grants again through applyChanges, the way
//      GrantManager sends what queued behind a call in flight: one batch that closes them
//      all, then BATCH_SIZE opens per call; the totals give grants/s batched vs one by one;
//   5. the RSS (and V8 heap) of the Node process that runs the backend, after start() and
//      after the reconcile, with the number of commands it ran in between: the heap is the
//      backend's own state; most of the RSS growth is the allocator's from spawning that
//      many children (1,000 spawns of a no-op `nft -f -` alone grow it by about as much).
// Each backend runs in a fresh Node process (this file, `worker` mode, --expose-gc, a gc()
// before each memory reading), so the memory figures are the backend's and not those of
// benchmarks that ran before it in the parent. Every command goes through `ip netns exec`,
// which the daemon (running inside its namespace) does not pay: its cost is measured on its
// own and printed beside the figures. The parent creates the namespace and deletes it in a
// finally (and in an exit hook); it is named `pst-<pid>-...` like the lab's, so the lab's
// stale sweep removes it after a SIGKILL. Bounded: GRANT_COUNT adds within ADD_BUDGET_MS,
// and the worker is killed after WORKER_TIMEOUT_MS.

import { execFile, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { prefixRunner, spawnRunner, type Runner } from '../../src/firewall/exec.ts';
import type { Family, FirewallBackend, Grant, GuardSpec, Service } from '../../src/firewall/types.ts';
import { memoryLogger, type Logger } from '../../src/log/logger.ts';
import { systemClock } from '../../src/platform/clock.ts';
import type { Backend } from '../e2e/harness.ts';
import { IP_BIN, labSkipReason } from '../lab/lab.ts';
import { fmt, summarize, type Summary } from './stats.ts';

export const GRANT_COUNT = 1_000;
const EXPIRY_MS = 3_600_000;
const ADD_BUDGET_MS = 120_000;
/** Opens per applyChanges call in the batched pass (about what queues at 1,000 requests/s
 *  behind one nft call with this many grants). */
const BATCH_SIZE = 100;
const WORKER_TIMEOUT_MS = 240_000;
/** `ip netns exec NS true`, run this many times to price the prefix every command pays. */
const PREFIX_SAMPLES = 20;
const SSH: Service = { proto: 'tcp', port: 22 };
const HTTPS: Service = { proto: 'tcp', port: 443 };
const GUARD: GuardSpec = { guarded: [SSH, HTTPS], capture: [{ proto: 'udp', port: 62442 }] };
/** 198.18.0.1 .. 198.18.255.254 and 2001:db8::1 .. 2001:db8::fffe: no network or broadcast
 *  address, and every IPv6 address is already in RFC 5952 form (the backends require it). */
export const MAX_PER_FAMILY = 0xfffe;
const WORKER_PATH = fileURLToPath(import.meta.url);

type Print = (line: string) => void;

export interface RulesetSize {
  /** grant rules (iptables) or grant set elements (nft), per family */
  readonly grant4: number;
  readonly grant6: number;
  /** every rule in the listing (iptables: `-A` lines; nft: rules of table inet postern) */
  readonly rules: number;
  readonly bytes: number;
  /** what `bytes` measured */
  readonly what: string;
}

export interface Memory { readonly rssMb: number; readonly heapMb: number }

export interface GrantsFigures {
  readonly backend: Backend;
  readonly version: string;
  readonly planned: number;
  /** grants added (fewer than planned only when ADD_BUDGET_MS ran out) */
  readonly added: number;
  readonly addTotalMs: number;
  readonly perAdd: Summary;
  readonly reconcileMs: number;
  readonly reconcile: { readonly removed: number; readonly restored: number };
  readonly size: RulesetSize;
  readonly before: Memory;
  readonly after: Memory;
  readonly prefix: Summary;
  /** child processes the backend ran between the two memory readings (adds, reconcile) */
  readonly commands: number;
  /** the batched pass: closing all in one call, then re-adding BATCH_SIZE per call */
  readonly batched: { readonly revokeAllMs: number; readonly addTotalMs: number; readonly calls: number };
  readonly warnings: readonly string[];
}

// ---- pure helpers (test/unit/bench/grants.test.ts) ----

/** The i-th (0-based) benchmark source address of a family. */
export function benchAddress(i: number, family: Family): string {
  if (!Number.isInteger(i) || i < 0 || i >= MAX_PER_FAMILY) throw new RangeError(`bench address index ${i} is outside [0, ${MAX_PER_FAMILY})`);
  const n = i + 1;
  return family === 4 ? `198.18.${n >> 8}.${n & 0xff}` : `2001:db8::${n.toString(16)}`;
}

/** `count` grants with distinct sources, alternating IPv4 and IPv6, each family alternating
 *  one service (tcp/22) and two (tcp/22, tcp/443); all expire at nowMs + expiryMs. */
export function benchGrants(count: number, nowMs: number, expiryMs = EXPIRY_MS): Grant[] {
  return Array.from({ length: count }, (_, k) => {
    const family: Family = k % 2 === 0 ? 4 : 6;
    const i = k >> 1;
    return {
      id: `bench${k}`, key: 'bench', family, address: benchAddress(i, family),
      services: i % 2 === 0 ? [SSH] : [SSH, HTTPS], expiresAtMs: nowMs + expiryMs,
    };
  });
}

/** Rules of one `iptables-save` listing: all `-A` lines, and those appending to `chain`. */
export function saveCounts(save: string, chain: string): { rules: number; grants: number } {
  const lines = save.split('\n');
  return {
    rules: lines.filter((l) => l.startsWith('-A ')).length,
    grants: lines.filter((l) => l.startsWith(`-A ${chain} `)).length,
  };
}

interface NftItem { rule?: unknown; set?: { name?: unknown; elem?: unknown } }

/** Rules and grant-set elements in `nft -j list table inet postern`; undefined when the
 *  text is not such a listing. */
export function nftTableCounts(json: string): { rules: number; grant4: number; grant6: number } | undefined {
  let items: unknown;
  try {
    items = (JSON.parse(json) as { nftables?: unknown }).nftables;
  } catch {
    return undefined;
  }
  if (!Array.isArray(items)) return undefined;
  const list = items as NftItem[];
  const elems = (name: string): number => {
    const e = list.find((i) => i.set?.name === name)?.set?.elem;
    return Array.isArray(e) ? e.length : 0;
  };
  return { rules: list.filter((i) => i.rule !== undefined).length, grant4: elems('grants4'), grant6: elems('grants6') };
}

/** "2.3x" for a / b (the first figure relative to the second). */
export function ratio(a: number, b: number): string {
  return b > 0 ? `${(a / b).toFixed(1)}x` : 'n/a';
}

/** 1234567 -> "1,234,567": byte counts read better grouped. */
export function grouped(n: number): string {
  return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

// ---- the worker: runs one backend in the namespace given on its command line ----

/** Loaded in the worker only: the parent (and the unit tests of the helpers above) never
 *  needs the backend classes. */
async function makeBackend(backend: Backend, runner: Runner, logger: Logger): Promise<FirewallBackend> {
  if (backend === 'nft') {
    const { NftBackend } = await import('../../src/firewall/nft.ts');
    return new NftBackend({ runner, logger, clock: systemClock });
  }
  const { IptablesBackend } = await import('../../src/firewall/iptables.ts');
  return new IptablesBackend({ runner, logger });
}

function memory(): Memory {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  return { rssMb: m.rss / 1_048_576, heapMb: m.heapUsed / 1_048_576 };
}

async function text(run: Runner, argv: readonly string[]): Promise<string> {
  const r = await run(argv);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}

async function rulesetSize(backend: Backend, run: Runner): Promise<RulesetSize> {
  if (backend === 'nft') {
    const listing = await text(run, ['nft', 'list', 'table', 'inet', 'postern']);
    const counts = nftTableCounts(await text(run, ['nft', '-j', 'list', 'table', 'inet', 'postern']));
    if (counts === undefined) throw new Error('grants bench: unreadable `nft -j list table inet postern`');
    return { ...counts, bytes: Buffer.byteLength(listing), what: '`nft list table inet postern`' };
  }
  const [v4, v6] = [await text(run, ['iptables-save']), await text(run, ['ip6tables-save'])];
  const [c4, c6] = [saveCounts(v4, 'POSTERN-GRANTS'), saveCounts(v6, 'POSTERN-GRANTS')];
  return {
    grant4: c4.grants, grant6: c6.grants, rules: c4.rules + c6.rules,
    bytes: Buffer.byteLength(v4) + Buffer.byteLength(v6), what: '`iptables-save` + `ip6tables-save`',
  };
}

async function prefixCost(run: Runner): Promise<Summary> {
  const ms: number[] = [];
  for (let i = 0; i < PREFIX_SAMPLES; i++) {
    const t0 = performance.now();
    await text(run, ['true']);
    ms.push(performance.now() - t0);
  }
  return summarize(ms);
}

/** Sequential adds, each awaited, until all are in or the budget is spent. */
async function addAll(fw: FirewallBackend, grants: readonly Grant[]): Promise<{ perAdd: number[]; totalMs: number }> {
  const perAdd: number[] = [];
  const t0 = performance.now();
  for (const g of grants) {
    if (performance.now() - t0 > ADD_BUDGET_MS) break;
    const t = performance.now();
    await fw.applyGrant(g);
    perAdd.push(performance.now() - t);
  }
  return { perAdd, totalMs: performance.now() - t0 };
}

/** One applyChanges that closes them all, then the grants again BATCH_SIZE per call. */
async function batchedPass(fw: FirewallBackend, grants: readonly Grant[]): Promise<GrantsFigures['batched']> {
  const t0 = performance.now();
  await fw.applyChanges(grants.map((grant) => ({ op: 'revoke', grant })));
  const revokeAllMs = performance.now() - t0;
  const t1 = performance.now();
  let calls = 0;
  for (let i = 0; i < grants.length; i += BATCH_SIZE, calls++) {
    await fw.applyChanges(grants.slice(i, i + BATCH_SIZE).map((grant) => ({ op: 'apply', grant: { ...grant, id: `${grant.id}b` } })));
  }
  return { revokeAllMs, addTotalMs: performance.now() - t1, calls };
}

async function worker(backend: Backend, ns: string): Promise<GrantsFigures> {
  const run = prefixRunner([IP_BIN, 'netns', 'exec', ns], spawnRunner);
  let commands = 0;
  const counted: Runner = (argv, opts) => {
    commands++;
    return run(argv, opts);
  };
  const logger = memoryLogger('warn');
  const fw = await makeBackend(backend, counted, logger);
  const version = (await text(run, backend === 'nft' ? ['nft', '--version'] : ['iptables', '--version'])).trim();
  const prefix = await prefixCost(run);
  await fw.start(GUARD);
  commands = 0;
  const grants = benchGrants(GRANT_COUNT, systemClock.wallMs());
  const before = memory();
  const { perAdd, totalMs } = await addAll(fw, grants);
  if (perAdd.length === 0) throw new Error('grants bench: no grant was added');
  const live = grants.slice(0, perAdd.length);
  const t = performance.now();
  const report = await fw.reconcile(live, systemClock.wallMs());
  const reconcileMs = performance.now() - t;
  const after = memory();
  const size = await rulesetSize(backend, run);
  const cmds = commands;
  const batched = await batchedPass(fw, live);
  return {
    backend, version, planned: grants.length, added: live.length, addTotalMs: totalMs, perAdd: summarize(perAdd),
    reconcileMs, reconcile: { removed: report.removed.length, restored: report.restored.length },
    size, before, after, prefix, commands: cmds, batched, warnings: logger.lines,
  };
}

// ---- the parent: one namespace and one worker per backend ----

function ip(args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(IP_BIN, args, { timeout: 10_000 }, (err, _out, stderr) => {
      if (err) reject(new Error(`\`ip ${args.join(' ')}\` failed: ${String(stderr).trim() || err.message}`));
      else resolve();
    });
  });
}

function runWorker(backend: Backend, ns: string): Promise<GrantsFigures> {
  const argv = ['--expose-gc', WORKER_PATH, 'worker', backend, ns];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, argv, { timeout: WORKER_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      const line = stdout.split('\n').find((l) => l.startsWith('{'));
      if (err === null && line !== undefined) return resolve(JSON.parse(line) as GrantsFigures);
      const how = err === null ? 'printed no figures' : err.killed ? `killed after ${WORKER_TIMEOUT_MS / 1000} s` : `exited ${String(err.code)}`;
      reject(new Error(`worker ${how}: ${stderr.trim()}`));
    });
  });
}

/** Namespace named like the lab's (`pst-<pid>-`), so a killed run is swept by the next lab. */
async function inNamespace<T>(backend: Backend, fn: (ns: string) => Promise<T>): Promise<T> {
  const ns = `pst-${process.pid}-grants-${backend}`;
  const onExit = (): void => {
    try {
      execFileSync(IP_BIN, ['netns', 'del', ns], { stdio: 'ignore', timeout: 10_000 });
    } catch { /* already gone */ }
  };
  await ip(['netns', 'add', ns]);
  process.once('exit', onExit);
  try {
    return await fn(ns);
  } finally {
    process.removeListener('exit', onExit);
    await ip(['netns', 'del', ns]);
  }
}

async function backendSkipReason(backend: Backend): Promise<string | undefined> {
  const bin = backend === 'nft' ? 'nft' : 'iptables';
  const r = await spawnRunner([bin, '--version']).catch(() => undefined);
  return r?.code === 0 ? undefined : `${bin} is not installed`;
}

function printFigures(print: Print, f: GrantsFigures): void {
  const pad = ' '.repeat(10);
  const s = f.perAdd;
  const partial = f.added < f.planned ? ` (STOPPED after ${f.added} of ${f.planned}: ${ADD_BUDGET_MS / 1000} s budget spent)` : '';
  print(`${f.backend.padEnd(9)} add ${f.added} grants: total ${fmt(f.addTotalMs / 1000, 2)} s; per add median ${fmt(s.median)} ms, p95 ${fmt(s.p95)} ms (min ${fmt(s.min)}, max ${fmt(s.max)})${partial}`);
  print(`${pad}reconcile with ${f.added} live grants: ${fmt(f.reconcileMs)} ms (removed ${f.reconcile.removed}, restored ${f.reconcile.restored})`);
  const unit = f.backend === 'nft' ? 'set elements' : 'grant rules';
  const z = f.size;
  print(`${pad}ruleset: ${z.grant4 + z.grant6} ${unit} (${z.grant4} IPv4 + ${z.grant6} IPv6), ${z.rules} rules in all; ${z.what}: ${grouped(z.bytes)} bytes`);
  print(`${pad}Node process running the backend: RSS ${fmt(f.before.rssMb)} -> ${fmt(f.after.rssMb)} MB (+${fmt(f.after.rssMb - f.before.rssMb)}), `
    + `V8 heap used ${fmt(f.before.heapMb)} -> ${fmt(f.after.heapMb)} MB (+${fmt(f.after.heapMb - f.before.heapMb)}); ${f.commands} commands run`);
  const b = f.batched;
  print(`${pad}batched (applyChanges, as GrantManager coalesces): close all ${f.added} in one call ${fmt(b.revokeAllMs)} ms; `
    + `re-add ${BATCH_SIZE} per call: total ${fmt(b.addTotalMs / 1000, 2)} s in ${b.calls} calls, ${grouped(f.added / (b.addTotalMs / 1000))} grants/s `
    + `(one by one: ${grouped(f.added / (f.addTotalMs / 1000))} grants/s)`);
  print(`${pad}(${f.version}; \`ip netns exec\` alone: median ${fmt(f.prefix.median)} ms, included in every command above)`);
  for (const w of f.warnings.slice(0, 3)) print(`${pad}backend warning: ${w}`);
}

function printRatios(print: Print, figures: ReadonlyMap<Backend, GrantsFigures>): void {
  const a = figures.get('iptables');
  const b = figures.get('nft');
  if (a === undefined || b === undefined) return;
  print(`iptables / nft: add total ${ratio(a.addTotalMs, b.addTotalMs)}, per-add median ${ratio(a.perAdd.median, b.perAdd.median)}, `
    + `reconcile ${ratio(a.reconcileMs, b.reconcileMs)}, listing bytes ${ratio(a.size.bytes, b.size.bytes)}, `
    + `RSS growth ${fmt(a.after.rssMb - a.before.rssMb)} vs ${fmt(b.after.rssMb - b.before.rssMb)} MB`);
}

export async function runGrantsBench(print: Print, backends: readonly Backend[]): Promise<void> {
  const skip = labSkipReason();
  if (skip !== undefined) {
    print(`grants: skipped: ${skip}`);
    return;
  }
  print(`grants: ${GRANT_COUNT} concurrent grants per backend, each from its own address (half 198.18.0.0/16, half 2001:db8::/32),`);
  print(`        1-2 services each, expiry in ${EXPIRY_MS / 60_000} min; added one after another as the daemon does, in a throwaway`);
  print('        network namespace; the backend class driven directly, every command through `ip netns exec`');
  const figures = new Map<Backend, GrantsFigures>();
  const failed: string[] = [];
  for (const backend of backends) {
    const reason = await backendSkipReason(backend);
    if (reason !== undefined) {
      print(`${backend.padEnd(9)} skipped: ${reason}`);
      continue;
    }
    try {
      const f = await inNamespace(backend, (ns) => runWorker(backend, ns));
      figures.set(backend, f);
      printFigures(print, f);
    } catch (err) {
      print(`${backend.padEnd(9)} FAILED: ${err instanceof Error ? err.message : String(err)}`);
      failed.push(backend);
    }
  }
  printRatios(print, figures);
  if (failed.length > 0) throw new Error(`grants bench failed for ${failed.join(', ')}`);
}

if (import.meta.main) {
  const [mode, backend, ns] = process.argv.slice(2);
  if (mode !== 'worker' || (backend !== 'nft' && backend !== 'iptables') || ns === undefined || !/^pst-\d+-[a-z0-9-]+$/.test(ns)) {
    process.stderr.write('usage: node --expose-gc test/bench/grants.ts worker nft|iptables pst-<pid>-<name>\n');
    process.exit(2);
  }
  process.stdout.write(`${JSON.stringify(await worker(backend, ns))}\n`);
  process.exit(0);
}
