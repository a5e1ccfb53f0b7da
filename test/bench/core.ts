// SPDX-License-Identifier: MIT
// `core` benchmark: the per-packet costs of the SPA hot path (DESIGN.md "The pipeline",
// fact 5; STYLE.md principle 3), and of the fwknop port's path (fwknop-bench.ts). Prints ns/op
// with median and spread, the target for this machine next to each SPA row, and
// "ok"/"MISSED". The fwknop rows carry no target: the issue set none for them. It prints; it
// never asserts.
//
// Method: every row runs a warm-up, then SAMPLES timed batches; a batch's time divided by
// its size is one sample, and we print the median and the p10/p90 of those samples. Rows
// that must see a fresh input per call (the whole decision for a valid packet, a replay
// ring insert) index into inputs built before the clock starts, so building them is never
// timed. Bounded: fixed iteration counts, a few seconds per row at most.
//
// Run: node test/bench/run.ts core   (or ./build.sh bench core)

import { randomBytes } from 'node:crypto';
import { decideSpa, type SpaContext } from '../../src/pipeline/spa.ts';
import { buildPacket } from '../../src/cli/spa-client.ts';
import type { KeyConfig } from '../../src/config/load.ts';
import { generateCredential, type Credential } from '../../src/spa/credential.ts';
import { buildKeyTable, openPacket, prepareKey, splitPacket, type KeyTable } from '../../src/spa/packet.ts';
import { ReplayGuard } from '../../src/spa/replay.ts';
import { TAG_SIZE } from '../../src/spa/constants.ts';
import { parseCidr, type Cidr } from '../../src/wire/address.ts';
import { runCryptoBench, type CryptoBenchRow } from './crypto-bench.ts';
import { fwknopCoreRows } from './fwknop-bench.ts';
import { summarize, verdict, type Summary } from './stats.ts';

const SAMPLES = 41;
const TABLE_KEYS = 100;
const RING_CAPACITY = 4096;
const RING_KEYS = 16;
const WINDOW_MS = 90_000;
const SOURCE = '198.18.0.2';

/** Targets from the issue, for this machine (ns). */
export const TARGET_NS = { reject: 1_000, verify: 15_000, ring: 1_000 } as const;

export interface CoreRow {
  readonly name: string;
  /** ns per operation over SAMPLES batches */
  readonly ns: Pick<Summary, 'median' | 'p10' | 'p90'>;
  readonly targetNs?: number;
}

interface Plan {
  readonly warmup: number;
  readonly batch: number;
}

/** Time `op(i)` for i = 0, 1, 2, ... (warm-up calls included in the count), per batch.
 *  `op` returns whether the call gave the expected outcome: a bench whose fixture is wrong
 *  would time the wrong path, so any unexpected outcome fails the row. Using the result also
 *  keeps the optimiser from discarding the call. */
function measure(name: string, plan: Plan, op: (i: number) => boolean, targetNs?: number): CoreRow {
  let i = 0;
  let expected = 0;
  for (; i < plan.warmup; i++) if (op(i)) expected++;
  const perOp: number[] = [];
  for (let s = 0; s < SAMPLES; s++) {
    const start = process.hrtime.bigint();
    for (const end = i + plan.batch; i < end; i++) if (op(i)) expected++;
    perOp.push(Number(process.hrtime.bigint() - start) / plan.batch);
  }
  if (expected !== i) throw new Error(`bench fixture: ${name}: ${i - expected} of ${i} calls took another path`);
  const { median, p10, p90 } = summarize(perOp);
  return { name, ns: { median, p10, p90 }, ...(targetNs !== undefined && { targetNs }) };
}

/** How many inputs a plan consumes. */
function calls(plan: Plan): number {
  return plan.warmup + SAMPLES * plan.batch;
}

function cidr(text: string): Cidr {
  const c = parseCidr(text);
  if (!c.ok) throw new Error(`bench fixture: bad cidr ${text}`);
  return c.value;
}

function keyConfig(name: string, credential: Credential): KeyConfig {
  return {
    name, credential, services: [{ proto: 'tcp', port: 22 }], defaultDurationS: 60, maxDurationS: 600,
    requireSourceAddress: true, allowedAddresses: [cidr('0.0.0.0/0'), cidr('::/0')], ipv6Prefix: 128, forwards: [], revoked: false,
  };
}

interface Fixture {
  readonly keys: KeyTable;
  readonly tech: KeyConfig;
  readonly outsider: Credential;
}

/** A table of TABLE_KEYS keys; `tech` is one of them, `outsider` is not. */
function fixture(): Fixture {
  const creds = Array.from({ length: TABLE_KEYS }, () => generateCredential());
  const keys = buildKeyTable(creds.map((c, n) => prepareKey(`k${n}`, c)));
  let outsider = generateCredential();
  while (keys.has(outsider.keyId)) outsider = generateCredential();
  return { keys, tech: keyConfig('k0', creds[0]!), outsider };
}

/** `count` open packets with distinct timestamps, oldest first, all inside the window at `nowMs`.
 *  Distinct: once the ring is full, each eviction raises the key's floor to the evicted ts, and
 *  a later packet with the same ms would be refused as stale instead of taking the full path. */
function freshPackets(cred: Credential, count: number, nowMs: number): Buffer[] {
  return Array.from({ length: count }, (_, i) => buildPacket({
    credential: cred, type: 'open', services: [{ proto: 'tcp', port: 22 }], durationS: 0,
    allowAddress: undefined, nowMs: nowMs - count + i,
  }));
}

function spaContext(f: Fixture, nowMs: number): SpaContext {
  return {
    keys: f.keys, keyConfigs: new Map([[f.tech.credential.keyId, f.tech]]),
    replay: new ReplayGuard({ capacity: RING_CAPACITY, windowMs: WINDOW_MS }),
    windowMs: WINDOW_MS, nowMs, clockTrusted: true,
  };
}

function isUnknownKey(r: { readonly ok: boolean } | { readonly kind: string }): boolean {
  return 'reason' in r && r.reason === 'unknown_key';
}

function rejectRows(f: Fixture, nowMs: number): CoreRow[] {
  const [pkt] = freshPackets(f.outsider, 1, nowMs);
  const ctx = spaContext(f, nowMs);
  const plan = { warmup: 20_000, batch: 10_000 };
  return [
    measure(`unknown key id: splitPacket (${TABLE_KEYS} keys)`, plan,
      () => isUnknownKey(splitPacket(pkt!, f.keys)), TARGET_NS.reject),
    measure(`unknown key id: decideSpa (${TABLE_KEYS} keys)`, plan,
      () => isUnknownKey(decideSpa(pkt!, SOURCE, ctx)), TARGET_NS.reject),
  ];
}

function verifyRows(f: Fixture, nowMs: number): CoreRow[] {
  const [one] = freshPackets(f.tech.credential, 1, nowMs);
  const openRow = measure('valid packet: openPacket (split+SIV+decode)', { warmup: 2_000, batch: 400 },
    () => openPacket(one!, f.keys).ok, TARGET_NS.verify);
  // The whole decision, fresh packet each call: the warm-up alone fills the ring, so the
  // timed calls run at steady state (every commit evicts the oldest entry).
  const plan = { warmup: RING_CAPACITY + 1_000, batch: 400 };
  const pkts = freshPackets(f.tech.credential, calls(plan), nowMs);
  const ctx = spaContext(f, nowMs);
  const decideRow = measure('valid packet: decideSpa (+replay, policy)', plan,
    (i) => decideSpa(pkts[i]!, SOURCE, ctx).kind === 'open', TARGET_NS.verify);
  return [openRow, decideRow];
}

function ringRow(): CoreRow {
  const plan = { warmup: 5_000, batch: 2_000 };
  const total = RING_CAPACITY + calls(plan);
  const tags = randomBytes(total * TAG_SIZE);
  const tag = Array.from({ length: total }, (_, i) => tags.subarray(i * TAG_SIZE, (i + 1) * TAG_SIZE));
  // Timestamps base+0 .. base+total-1 straddle nowMs, all within the window; increasing, so
  // none falls to a floor raised by an eviction.
  const base = 1_700_000_000_000;
  const nowMs = base + Math.floor(total / 2);
  if (total / 2 >= WINDOW_MS) throw new Error('bench fixture: ring timestamps would leave the window');
  const guard = new ReplayGuard({ capacity: RING_CAPACITY, windowMs: WINDOW_MS });
  const step = (i: number): boolean => {
    const keyId = i % RING_KEYS;
    if (guard.check(keyId, tag[i]!, base + i, nowMs, true) !== 'fresh') return false;
    return guard.commit(keyId, tag[i]!, base + i, nowMs, true) === 'fresh';
  };
  for (let i = 0; i < RING_CAPACITY; i++) step(i);
  if (guard.size !== RING_CAPACITY) throw new Error('bench fixture: ring not full');
  return measure(`replay ring: check+commit (full, ${RING_CAPACITY})`, plan,
    (i) => step(RING_CAPACITY + i), TARGET_NS.ring);
}

function fromCrypto(r: CryptoBenchRow): CoreRow {
  return { name: r.name, ns: { median: r.medianNs, p10: r.p10Ns, p90: r.p90Ns } };
}

/** CMAC of 64 bytes, ours and node-aes-cmac's (DESIGN.md fact 5), from crypto-bench.ts. */
function cmacRows(): CoreRow[] {
  const wanted = new Set(['Cmac.mac (64 B)', 'node-aes-cmac (64 B)', 'PreparedSiv.open (80 B)']);
  return runCryptoBench().filter((r) => wanted.has(r.name)).map(fromCrypto);
}

export function runCoreBench(): CoreRow[] {
  const f = fixture();
  const nowMs = Date.now();
  return [...rejectRows(f, nowMs), ...verifyRows(f, nowMs), ringRow(), ...cmacRows(), ...fwknopCoreRows({ measure, calls }, nowMs)];
}

function ns(v: number): string {
  return Math.round(v).toLocaleString('en-US');
}

function target(r: CoreRow): string {
  if (r.targetNs === undefined) return '';
  return `<= ${ns(r.targetNs)}  ${verdict(r.ns.median, r.targetNs)}`;
}

export function formatCoreBench(rows: readonly CoreRow[]): string {
  const head = `${'row'.padEnd(46)} ${'median'.padStart(9)} ${'p10'.padStart(9)} ${'p90'.padStart(9)}   target (ns)`;
  const lines = rows.map((r) =>
    `${r.name.padEnd(46)} ${ns(r.ns.median).padStart(9)} ${ns(r.ns.p10).padStart(9)} ${ns(r.ns.p90).padStart(9)}   ${target(r)}`);
  const byName = new Map(rows.map((r) => [r.name, r.ns.median]));
  const ratio = (label: string, top: string, bottom: string): string[] => {
    const [a, b] = [byName.get(top), byName.get(bottom)];
    return a !== undefined && b !== undefined ? [`${label}: ${(a / b).toFixed(1)}x`] : [];
  };
  return [
    `core: ns per operation (${process.version}, ${process.arch}), median and p10/p90 of ${SAMPLES} timed batches after warm-up`,
    head, ...lines,
    ...ratio('node-aes-cmac / Cmac (64 B, medians)', 'node-aes-cmac (64 B)', 'Cmac.mac (64 B)'),
    ...ratio('fwknop / SPA, valid packet, whole decision (medians)', 'fwknop valid: decideFwknop (+replay, policy)', 'valid packet: decideSpa (+replay, policy)'),
    'targets are the issue\'s figures for this machine; "MISSED" is reported, not asserted',
  ].join('\n');
}
