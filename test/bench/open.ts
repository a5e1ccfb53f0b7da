// SPDX-License-Identifier: MIT
// `open` benchmark (root): time-to-open and idle memory of the real daemon in the lab, and
// the same trials against fwknopd when it is installed. Prints; never asserts.
//
// postern runs once per firewall backend asked for (nft, iptables: the same trials, one
// fresh lab each, one after the other), fwknopd once; ratios compare the backends with each
// other and fwknopd with each.
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

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { IP_BIN, createLab, labSkipReason, type Lab, type LabProcess } from '../lab/lab.ts';
import { probeArgv } from '../lab/net-probe.ts';
import { BACKENDS, SERVICE_PORT, SPA_PORT, bundleSkipReason, createWorld, sleep, type Backend } from '../e2e/harness.ts';
import { FirewallSchema } from '../../src/config/schema.ts';
import { OPEN_PROBE_PATH, type OpenPlan, type TrialResult } from './open-probe.ts';
import { fmt, summarize, verdict, type Summary } from './stats.ts';

const TRIALS = 40;
/** Client source addresses 198.18.0.100 .. 198.18.0.(100+TRIALS-1): inside the lab's /24. */
const FIRST_SOURCE = 100;
const IDLE_MS = 1_000;
const TARGET = { medianMs: 10, p95Ms: 20, rssMb: 55 } as const;
/** Column width of the daemon names in the report (postern/iptables is the longest). */
const NAME_WIDTH = 'postern/iptables'.length + 1;
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

// ---- fwknopd (Debian fwknop-server / fwknop-client; /work/shared/ref/fwknop.md) ----

const FWKNOP_SPA_PORT = 62201;
const FWKNOPD_READY = /Starting fwknopd main event loop/;
const BIN_DIRS = ['/usr/sbin', '/usr/bin', '/sbin', '/bin'];

interface FwknopKeys { readonly key: string; readonly hmac: string }

function findBin(name: string): string | undefined {
  return BIN_DIRS.map((d) => join(d, name)).find((p) => existsSync(p));
}

/** fwknopd.conf: packaged defaults (pcap on eth0) with every file under `dir`. access.conf:
 *  one stanza, HMAC on, tcp/22 only, rules live 60 s (longer than the whole run). */
function writeFwknopConfig(dir: string, ifname: string, keys: FwknopKeys): void {
  writeFileSync(join(dir, 'fwknopd.conf'), `PCAP_INTF ${ifname};\nFWKNOP_RUN_DIR ${dir};\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'access.conf'), [
    'SOURCE ANY', `KEY_BASE64 ${keys.key}`, `HMAC_KEY_BASE64 ${keys.hmac}`,
    `OPEN_PORTS tcp/${SERVICE_PORT}`, 'FW_ACCESS_TIMEOUT 60', '',
  ].join('\n'), { mode: 0o600 });
}

/** The guard fwknopd expects to sit behind (it inserts its own jump at INPUT position 1). */
async function startFwknopd(lab: Lab, dir: string, keys: FwknopKeys): Promise<LabProcess> {
  writeFwknopConfig(dir, lab.router.ifname, keys);
  const drop = await lab.exec(lab.router, [findBin('iptables') ?? 'iptables', '-w', '-A', 'INPUT', '-p', 'tcp', '--dport', String(SERVICE_PORT), '-j', 'DROP']);
  if (drop.code !== 0) throw new Error(`open bench: iptables DROP rule: ${drop.stderr}`);
  const p = lab.spawn(lab.router, [
    findBin('fwknopd') ?? 'fwknopd', '-f', '-c', join(dir, 'fwknopd.conf'), '-a', join(dir, 'access.conf'),
    '-i', lab.router.ifname, '-p', join(dir, 'fwknopd.pid'), '-d', join(dir, 'digest.cache'), '-r', dir,
  ]);
  await p.waitForOutput(FWKNOPD_READY, 10_000);
  return p;
}

function execText(file: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env, timeout: 10_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} failed: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** One packet per source from the real client: -T builds without sending, -B saves the wire
 *  string (ref/fwknop.md section 9). HOME points at `dir` so no rc file lands in a real home. */
async function fwknopPackets(lab: Lab, dir: string, keys: FwknopKeys, addrs: readonly string[]): Promise<string[]> {
  const env = { ...process.env, HOME: dir };
  const packets: string[] = [];
  for (const [i, source] of addrs.entries()) {
    const file = join(dir, `spa-${i}.txt`);
    await execText(findBin('fwknop') ?? 'fwknop', [
      '--no-rc-file', '--no-save-args', '-T', '-A', `tcp/${SERVICE_PORT}`, '-a', source, '-D', lab.router.ip4,
      '--key-base64-rijndael', keys.key, '--key-base64-hmac', keys.hmac, '--use-hmac', '-B', file,
    ], env);
    packets.push(readFileSync(file, 'ascii').trim());
  }
  return packets;
}

/** The daemon's own reconcile interval: the harness's 1 s is a test setting, and a reconcile
 *  (a listing and a plan) landing inside a trial would be counted in that trial. */
const RECONCILE_INTERVAL_S = FirewallSchema.properties.reconcile_interval_s.default as number;

async function benchPostern(backend: Backend): Promise<OpenFigures> {
  // The daemon's defaults except the backend.
  const world = await createWorld({
    backend, tag: `bench${backend === 'nft' ? 'nft' : 'ipt'}`,
    config: { firewall: { backend, reconcile_interval_s: RECONCILE_INTERVAL_S } },
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
    const trials = addrs.map((source) => ({ source, packetHex: world.packet().toString('hex') }));
    return { ...(await runTrials(world.lab, trials, SPA_PORT)), rss, ...(bareRss && { bareRss }) };
  } finally {
    await world.close();
  }
}

async function benchFwknopd(): Promise<OpenFigures> {
  const lab = await createLab({ tag: 'fwk' });
  const dir = mkdtempSync(join(tmpdir(), 'postern-bench-fwknop-'));
  try {
    const echo = lab.spawn(lab.router, probeArgv(['echo-server', SERVICE_PORT]));
    await echo.waitForOutput(/listening/, 10_000);
    const keys: FwknopKeys = { key: randomBytes(32).toString('base64'), hmac: randomBytes(64).toString('base64') };
    const fwknopd = await startFwknopd(lab, dir, keys);
    await sleep(IDLE_MS);
    const rss = readRss(fwknopd.pid);
    const addrs = sources();
    await addSources(lab, addrs);
    const packets = await fwknopPackets(lab, dir, keys, addrs);
    const trials = addrs.map((source, i) => ({ source, packetHex: Buffer.from(packets[i]!, 'ascii').toString('hex') }));
    const figures = await runTrials(lab, trials, FWKNOP_SPA_PORT);
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
async function benchBackends(print: Print, backends: readonly Backend[]): Promise<{ done: Named[]; failed: string[] }> {
  const done: Named[] = [];
  const failed: string[] = [];
  for (const backend of backends) {
    const name = `postern/${backend}`;
    if (findBin(BACKEND_BIN[backend]) === undefined) {
      print(`${name}: skipped: ${BACKEND_BIN[backend]} is not installed`);
      continue;
    }
    let f: OpenFigures;
    try {
      f = await benchPostern(backend);
    } catch (err) {
      print(`${name}: FAILED: ${err instanceof Error ? err.message : String(err)}`);
      failed.push(name);
      continue;
    }
    print(timeLine(name, f, true));
    printFailures(print, name, f);
    print(rssLine(name, f, true));
    if (f.bareRss) print(`  for scale, a bare idle \`node -e\` on the same Node: ${fmt(f.bareRss.mb)} MB`);
    done.push({ name, f });
  }
  return { done, failed };
}

/** fwknopd once, whatever the backends: it runs its own iptables rules either way. */
async function fwknopdPrinted(print: Print): Promise<OpenFigures | undefined> {
  if (findBin('fwknopd') === undefined || findBin('fwknop') === undefined) {
    print('fwknopd not installed: skipped comparison');
    return undefined;
  }
  const fwk = await benchFwknopd();
  print(timeLine('fwknopd', fwk, false));
  printFailures(print, 'fwknopd', fwk);
  print(rssLine('fwknopd', fwk, false));
  return fwk;
}

export async function runOpenBench(print: Print, backends: readonly Backend[] = BACKENDS): Promise<void> {
  const skip = labSkipReason() ?? bundleSkipReason();
  if (skip !== undefined) {
    print(`open: skipped: ${skip}`);
    return;
  }
  print(`open: time from SPA send to TCP connect on tcp/${SERVICE_PORT}, ${TRIALS} trials per daemon and backend, each from`);
  print('      its own client address, timed inside the client namespace by one probe process (Node start-up not counted)');
  const { done: posterns, failed } = await benchBackends(print, backends);
  const [nft, ipt] = ['nft', 'iptables'].map((b) => posterns.find((p) => p.name === `postern/${b}`));
  const fwk = await fwknopdPrinted(print);
  const ratios = [
    ...(ipt && nft ? [ratioLine(ipt, nft)] : []),
    ...(fwk ? posterns.map((p) => ratioLine({ name: 'fwknopd', f: fwk }, p)) : []),
  ];
  for (const line of ratios) if (line !== undefined) print(line);
  if (failed.length > 0) throw new Error(`open bench failed for ${failed.join(', ')}`);
}
