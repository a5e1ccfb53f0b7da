// SPDX-License-Identifier: MIT
// fwknop packets in the benchmarks (DESIGN.md "fwknop compatibility"; ref/fwknop.md):
//   - `core` rows: postern's per-packet cost on its fwknop port (src/pipeline/fwknop.ts) for
//     junk, a wrong HMAC, a valid packet decoded, and a fresh valid packet taken through the
//     whole decision. Packets come from our encoder (src/fwknop/encode.ts), built before the
//     clock starts; the timing loop is core.ts's, so every row reads the same way.
//   - for `open`: the one policy both daemons get (fwknopd's access.conf and postern's stanza
//     say the same thing), the real `fwknop` client's argv, and the packet set shared by every
//     daemon in a run, so postern and fwknopd are timed on the same bytes.
//   - the lab side of that: fwknopd started in a lab's router, the client run for each source.
// Only the last section does I/O (files, child processes); its imports are Node built-ins and
// types, so `core` loading this file starts nothing.

import { execFile } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FwknopStanzaConfig } from '../../src/config/fwknop.ts';
import { FwknopSchema, SpaSchema } from '../../src/config/schema.ts';
import { decodeFwknop, precheckFwknop, type FwknopKey } from '../../src/fwknop/codec.ts';
import { encodeFwknop } from '../../src/fwknop/encode.ts';
import { prepareFwknopKey } from '../../src/fwknop/keys.ts';
import { decideFwknop, stanzaReplayId, type FwknopContext, type FwknopStanza } from '../../src/pipeline/fwknop.ts';
import { ReplayGuard } from '../../src/spa/replay.ts';
import type { Lab, LabProcess } from '../lab/lab.ts';
import type { CoreRow } from './core.ts';
import type { OpenPlan } from './open-probe.ts';

// ---- core rows ----

/** The daemon's defaults: fwknop's ring has spa.replay_ring entries and a fwknop.max_age_s window. */
const RING_CAPACITY = SpaSchema.properties.replay_ring.default as number;
const WINDOW_MS = (FwknopSchema.properties.max_age_s.default as number) * 1000;
const SOURCE = '198.18.0.2';
const BENCH_PORT = 22;
/** fwknop's Rijndael passphrase (≤ 32 bytes) and HMAC key sizes, as `fwknop --key-gen` makes them. */
const KEY_BYTES = 32;
const HMAC_KEY_BYTES = 64;
const HALF_RANDOM = 100_000_000;
const JUNK_CHAR = 0x2a; // '*': outside base64, so the precheck refuses it (bad_chars)

interface Plan { readonly warmup: number; readonly batch: number }

/** core.ts's timing loop and plan size, passed in so both files time rows the same way. */
export interface Timer {
  measure(name: string, plan: Plan, op: (i: number) => boolean): CoreRow;
  calls(plan: Plan): number;
}

/** One stanza with fresh keys: SOURCE ANY, tcp/22, HMAC-SHA256 (fwknop's defaults). */
export function benchStanza(): FwknopStanza {
  const key = randomBytes(KEY_BYTES);
  const hmacKey = randomBytes(HMAC_KEY_BYTES);
  const config: FwknopStanzaConfig = {
    name: 'bench', sources: undefined, key, hmacKey, hmacType: 'sha256',
    openPorts: [{ proto: 'tcp', port: BENCH_PORT }], restrictPorts: [], fwAccessTimeoutS: 30, maxFwTimeoutS: 300,
    requireSourceAddress: false, requireUsername: undefined, forwards: [], localNat: false,
  };
  return { config, key: prepareFwknopKey({ key, hmacKey, hmacType: 'sha256' }), replayId: stanzaReplayId(config.name) };
}

/** 16 random decimal digits (randomInt stops below 2^48, so two halves). */
function random16(): string {
  const half = (): string => String(randomInt(HALF_RANDOM)).padStart(8, '0');
  return half() + half();
}

/**
 * `count` access packets for SOURCE in send order, as the daemon receives them (Buffers), each
 * with its own salt and random field. fwknop timestamps are whole seconds, and once the ring is
 * full each commit evicts the entry `capacity` packets back and raises the stanza's floor to
 * its timestamp, so a later packet of that same second would be refused as stale. Packet i
 * therefore carries second first + floor(i / capacity): strictly after the packet it evicts.
 * The set spans ceil(count / capacity) seconds ending at nowMs, inside any window ≥ that.
 */
export function fwknopBenchPackets(key: FwknopKey, count: number, opts: { readonly nowMs: number; readonly capacity: number }): Buffer[] {
  const lastS = Math.floor(opts.nowMs / 1000);
  const firstS = lastS - Math.floor((count - 1) / opts.capacity);
  return Array.from({ length: count }, (_, i) => Buffer.from(encodeFwknop({
    username: 'bench', timestampS: firstS + Math.floor(i / opts.capacity), type: 1, allowIp: SOURCE,
    access: [{ proto: 'tcp', port: BENCH_PORT }],
  }, key, { salt: randomBytes(8), random16: random16() }), 'latin1'));
}

function context(stanza: FwknopStanza, nowMs: number): FwknopContext {
  return { stanzas: [stanza], replay: new ReplayGuard({ capacity: RING_CAPACITY, windowMs: WINDOW_MS }), nowMs, clockTrusted: true };
}

function dropped(reason: string): (d: ReturnType<typeof decideFwknop>) => boolean {
  return (d) => d.kind === 'drop' && d.reason === reason;
}

/** Junk as cheap to refuse as junk gets hard: a real packet's length and first character,
 *  the non-base64 byte last, so the precheck scans every byte before refusing. */
function junkOf(valid: Buffer): Buffer {
  const junk = Buffer.from(valid);
  junk[junk.length - 1] = JUNK_CHAR;
  const pre = precheckFwknop(junk);
  if (pre.ok || pre.reason !== 'bad_chars') throw new Error('bench fixture: fwknop junk passed the precheck');
  return junk;
}

/** Rejections: junk, and a packet of the right length whose HMAC is another key's. */
function rejectRows(t: Timer, stanza: FwknopStanza, nowMs: number): CoreRow[] {
  const [valid] = fwknopBenchPackets(stanza.key, 1, { nowMs, capacity: RING_CAPACITY });
  const junk = junkOf(valid!);
  const other = prepareFwknopKey({ key: stanza.config.key, hmacKey: randomBytes(HMAC_KEY_BYTES), hmacType: 'sha256' });
  const [forged] = fwknopBenchPackets(other, 1, { nowMs, capacity: RING_CAPACITY });
  if (forged!.length !== valid!.length) throw new Error('bench fixture: forged fwknop packet has another length');
  const ctx = context(stanza, nowMs);
  const malformed = dropped('fwknop_malformed');
  const badAuth = dropped('bad_auth');
  return [
    t.measure('fwknop junk (bad char last): decideFwknop', { warmup: 20_000, batch: 10_000 },
      () => malformed(decideFwknop(junk, SOURCE, ctx))),
    t.measure('fwknop bad HMAC: decideFwknop (1 stanza)', { warmup: 5_000, batch: 1_000 },
      () => badAuth(decideFwknop(forged!, SOURCE, ctx))),
  ];
}

/** A valid packet decoded (the same one each call: decoding is pure), then the whole decision
 *  with a fresh packet per call; the warm-up fills the ring, so timed calls all evict. */
function validRows(t: Timer, stanza: FwknopStanza, nowMs: number): CoreRow[] {
  const [one] = fwknopBenchPackets(stanza.key, 1, { nowMs, capacity: RING_CAPACITY });
  const decodeRow = t.measure('fwknop valid: decodeFwknop (HMAC+AES+digest)', { warmup: 2_000, batch: 400 },
    () => decodeFwknop(one!, stanza.key).ok);
  const plan = { warmup: RING_CAPACITY + 1_000, batch: 200 };
  const pkts = fwknopBenchPackets(stanza.key, t.calls(plan), { nowMs, capacity: RING_CAPACITY });
  const ctx = context(stanza, nowMs);
  const decideRow = t.measure('fwknop valid: decideFwknop (+replay, policy)', plan,
    (i) => decideFwknop(pkts[i]!, SOURCE, ctx).kind === 'fwknop');
  return [decodeRow, decideRow];
}

export function fwknopCoreRows(t: Timer, nowMs: number): CoreRow[] {
  const stanza = benchStanza();
  return [...rejectRows(t, stanza, nowMs), ...validRows(t, stanza, nowMs)];
}

// ---- for `open`: one policy, the real client's packets, shared by every daemon ----

export interface FwknopKeys { readonly key: string; readonly hmac: string }

export function newFwknopKeys(): FwknopKeys {
  return { key: randomBytes(KEY_BYTES).toString('base64'), hmac: randomBytes(HMAC_KEY_BYTES).toString('base64') };
}

/** Both daemons leave a rule for this long: longer than a whole run, so none expires mid-run. */
export const FW_ACCESS_TIMEOUT_S = 60;

/** fwknopd's access.conf: one stanza, HMAC on (SHA-256, the default), `port` only. */
export function accessConf(keys: FwknopKeys, port: number): string {
  return [
    'SOURCE ANY', `KEY_BASE64 ${keys.key}`, `HMAC_KEY_BASE64 ${keys.hmac}`,
    `OPEN_PORTS tcp/${port}`, `FW_ACCESS_TIMEOUT ${FW_ACCESS_TIMEOUT_S}`, '',
  ].join('\n');
}

/** The same stanza in postern's config (docs/config.md "fwknop"; defaults as fwknopd's). */
export function posternStanza(keys: FwknopKeys, port: number): Record<string, unknown> {
  return {
    name: 'bench', source: ['ANY'], key_base64: keys.key, hmac_key_base64: keys.hmac,
    open_ports: [`tcp/${port}`], fw_access_timeout_s: FW_ACCESS_TIMEOUT_S,
  };
}

/** The real client, building one access packet for `source` without sending it: -T builds and
 *  self-checks, -B saves the wire string (ref/fwknop.md sections 9, 15); no rc file is read. */
export function fwknopClientArgs(keys: FwknopKeys, o: { readonly source: string; readonly dest: string; readonly port: number; readonly file: string }): string[] {
  return [
    '--no-rc-file', '--no-save-args', '-T', '-A', `tcp/${o.port}`, '-a', o.source, '-D', o.dest,
    '--key-base64-rijndael', keys.key, '--key-base64-hmac', keys.hmac, '--use-hmac', '-B', o.file,
  ];
}

export interface SharedPackets {
  readonly packets: readonly string[];
  /** this call built the set again because the previous one had grown too old */
  readonly rebuilt: boolean;
}

/**
 * One packet set for every daemon in a run, so each is timed on the same bytes: the first call
 * builds it with `build`, later calls hand out the same set. Both daemons refuse a packet
 * older than MAX_SPA_PACKET_AGE (120 s by default on both sides), so a set older than
 * `maxAgeMs` when a daemon's trials start is built again, and `rebuilt` says so.
 */
export function sharedPackets(maxAgeMs: number, now: () => number): (build: () => Promise<string[]>) => Promise<SharedPackets> {
  let held: { packets: string[]; madeMs: number } | undefined;
  return async (build) => {
    const stale = held !== undefined && now() - held.madeMs > maxAgeMs;
    if (held === undefined || stale) held = { packets: await build(), madeMs: now() };
    return { packets: held.packets, rebuilt: stale };
  };
}

// ---- the lab side, for open.ts: fwknopd and the real client (Debian fwknop-server / fwknop-client) ----

export const FWKNOP_SPA_PORT = 62201;
const FWKNOPD_READY = /Starting fwknopd main event loop/;
const BIN_DIRS = ['/usr/sbin', '/usr/bin', '/sbin', '/bin'];

export function findBin(name: string): string | undefined {
  return BIN_DIRS.map((d) => join(d, name)).find((p) => existsSync(p));
}

/** fwknopd.conf: packaged defaults (pcap on eth0) with every file under `dir`. access.conf:
 *  the one stanza postern gets too (accessConf / posternStanza). */
function writeFwknopConfig(dir: string, ifname: string, run: FwknopRun): void {
  writeFileSync(join(dir, 'fwknopd.conf'), `PCAP_INTF ${ifname};\nFWKNOP_RUN_DIR ${dir};\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'access.conf'), accessConf(run.keys, run.port), { mode: 0o600 });
}

/** fwknopd in the router, behind the guard it expects (it inserts its own jump at INPUT
 *  position 1); its files live in `dir`. */
export async function startFwknopd(lab: Lab, dir: string, run: FwknopRun): Promise<LabProcess> {
  writeFwknopConfig(dir, lab.router.ifname, run);
  const drop = await lab.exec(lab.router, [findBin('iptables') ?? 'iptables', '-w', '-A', 'INPUT', '-p', 'tcp', '--dport', String(run.port), '-j', 'DROP']);
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

/** One packet per source from the real client (fwknopClientArgs). HOME points at the run's
 *  directory so no rc file lands in a real home. `dest` (-D) is not part of the packet. */
async function fwknopPackets(run: FwknopRun, addrs: readonly string[], dest: string): Promise<string[]> {
  const env = { ...process.env, HOME: run.dir };
  const packets: string[] = [];
  for (const [i, source] of addrs.entries()) {
    const file = join(run.dir, `spa-${i}.txt`);
    await execText(findBin('fwknop') ?? 'fwknop', fwknopClientArgs(run.keys, { source, dest, port: run.port, file }), env);
    packets.push(readFileSync(file, 'ascii').trim());
  }
  return packets;
}

/** Packets older than this when a daemon's trials start are built again: half of the 120 s
 *  MAX_SPA_PACKET_AGE both daemons keep by default, leaving room for the trials themselves. */
const PACKET_MAX_AGE_MS = 60_000;

/** The fwknop side of one `open` run: keys and policy for both daemons, the guarded port, a
 *  scratch directory for the client, and the packet set every daemon shares. */
export interface FwknopRun {
  readonly keys: FwknopKeys;
  readonly port: number;
  readonly dir: string;
  readonly get: (build: () => Promise<string[]>) => Promise<SharedPackets>;
}

export function newFwknopRun(dir: string, port: number): FwknopRun {
  return { keys: newFwknopKeys(), port, dir, get: sharedPackets(PACKET_MAX_AGE_MS, () => Date.now()) };
}

/** The probe's trials for `addrs` on the shared packets (built on first use). Every daemon
 *  passes the same `addrs` (open.ts sources()): each packet names its source as allow IP. */
export async function fwknopTrials(print: (line: string) => void, run: FwknopRun, lab: Lab, addrs: readonly string[]): Promise<OpenPlan['trials']> {
  const s = await run.get(() => fwknopPackets(run, addrs, lab.router.ip4));
  if (s.packets.length !== addrs.length) throw new Error(`open bench: ${s.packets.length} shared fwknop packets for ${addrs.length} sources`);
  if (s.rebuilt) print(`  (fwknop packets rebuilt: the shared set was over ${PACKET_MAX_AGE_MS / 1000} s old, so these bytes are new)`);
  return addrs.map((source, i) => ({ source, packetHex: Buffer.from(s.packets[i]!, 'ascii').toString('hex') }));
}
