// SPDX-License-Identifier: MIT
// The client side of the head-to-head benchmark (h2h.ts), run INSIDE the lab's client
// namespace as ONE process for a whole scenario, so Node's start-up is never measured:
//
//   node test/bench/h2h-probe.ts      stdin: one line of plan JSON, then a line "go"
//
// It prints "ready" once the plan is read; t = 0 is the moment "go" arrives, which h2h.ts
// writes as it starts the flood. Each trial starts at its own atMs (trials overlap: opens are
// interleaved in a flood at a fixed pace, whatever happens to the earlier ones), from its own
// client source address (so every trial starts from a closed door), and:
//   - SPA: sends its datagram (hex) to spaPort; knock: one SYN to each knock port in turn;
//   - t0 right after; then a TCP connect to tcpPort at once and every ATTEMPT_INTERVAL_MS
//     (overlapping, each abandoned after ATTEMPT_TIMEOUT_MS) until one handshake completes
//     (open, ms = now - t0) or deadlineMs passes (no-open).
// One JSON line per trial (H2hTrial), then {"done":true}. Bounded by count and time.

import dgram from 'node:dgram';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export interface H2hPlan {
  readonly host: string;
  readonly tcpPort: number;
  readonly spaPort: number;
  /** knock ports: when set, trials knock instead of sending a datagram */
  readonly knocks?: readonly number[];
  readonly deadlineMs: number;
  readonly trials: readonly { readonly source: string; readonly packetHex: string; readonly atMs: number }[];
}

export type H2hTrial =
  | { readonly trial: number; readonly atMs: number; readonly result: 'open'; readonly ms: number }
  | { readonly trial: number; readonly atMs: number; readonly result: 'no-open' };

export const H2H_PROBE_PATH = fileURLToPath(import.meta.url);

const ATTEMPT_INTERVAL_MS = 2;
const ATTEMPT_TIMEOUT_MS = 20;
const MAX_TRIALS = 200;
const MAX_DEADLINE_MS = 10_000;
const MAX_AT_MS = 60_000;

function connectOnce(host: string, port: number, source: string): { done: Promise<boolean>; abort(): void } {
  const sock = net.connect({ host, port, localAddress: source });
  let finish: (ok: boolean) => void = () => undefined;
  const done = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => finish(false), ATTEMPT_TIMEOUT_MS);
    finish = (ok) => { clearTimeout(timer); sock.destroy(); resolve(ok); };
  });
  sock.once('connect', () => finish(true));
  sock.once('error', () => finish(false));
  return { done, abort: () => finish(false) };
}

async function knock(host: string, port: number, source: string): Promise<void> {
  const s = net.connect({ host, port, localAddress: source });
  s.on('error', () => undefined);
  await new Promise<void>((resolve) => setImmediate(resolve));
  s.destroy();
}

function sendDatagram(host: string, port: number, source: string, packet: Buffer): Promise<void> {
  const sock = dgram.createSocket('udp4');
  sock.on('error', () => undefined);
  return new Promise((resolve) => {
    sock.bind({ address: source, port: 0 }, () => sock.send(packet, port, host, () => { sock.close(); resolve(); }));
  });
}

/** Connect attempts from t0 until one completes or the deadline: ms, or undefined. */
function firstConnect(plan: H2hPlan, source: string, t0: number): Promise<number | undefined> {
  const live = new Set<{ abort(): void }>();
  return new Promise((resolve) => {
    let settled = false;
    const settle = (ms: number | undefined): void => {
      if (settled) return;
      settled = true;
      clearInterval(ticker);
      clearTimeout(deadline);
      for (const a of live) a.abort();
      resolve(ms);
    };
    const attempt = (): void => {
      const a = connectOnce(plan.host, plan.tcpPort, source);
      live.add(a);
      void a.done.then((ok) => { live.delete(a); if (ok) settle(performance.now() - t0); });
    };
    attempt();
    const ticker = setInterval(attempt, ATTEMPT_INTERVAL_MS);
    const deadline = setTimeout(() => settle(undefined), plan.deadlineMs);
  });
}

async function runTrial(plan: H2hPlan, n: number): Promise<H2hTrial> {
  const t = plan.trials[n]!;
  if (plan.knocks) for (const port of plan.knocks) await knock(plan.host, port, t.source);
  else await sendDatagram(plan.host, plan.spaPort, t.source, Buffer.from(t.packetHex, 'hex'));
  const ms = await firstConnect(plan, t.source, performance.now());
  return ms === undefined ? { trial: n, atMs: t.atMs, result: 'no-open' } : { trial: n, atMs: t.atMs, result: 'open', ms: Math.round(ms * 100) / 100 };
}

function parsePlan(text: string): H2hPlan {
  const p = JSON.parse(text) as H2hPlan;
  const port = (v: unknown): boolean => Number.isInteger(v) && (v as number) > 0 && (v as number) < 65_536;
  const ok = net.isIP(p.host) === 4 && port(p.spaPort) && port(p.tcpPort) && Array.isArray(p.trials)
    && p.trials.length <= MAX_TRIALS && p.deadlineMs > 0 && p.deadlineMs <= MAX_DEADLINE_MS
    && (p.knocks === undefined || (Array.isArray(p.knocks) && p.knocks.length <= 16 && p.knocks.every(port)))
    && p.trials.every((t) => net.isIP(t.source) === 4 && /^(?:[0-9a-f]{2})*$/i.test(t.packetHex) && t.atMs >= 0 && t.atMs <= MAX_AT_MS);
  if (!ok) throw new Error('h2h-probe: bad plan on stdin');
  return p;
}

async function main(): Promise<void> {
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  const plan = parsePlan(String((await lines.next()).value ?? ''));
  process.stdout.write('ready\n');
  await lines.next();
  const start = performance.now();
  const runs = plan.trials.map(async (t, n) => {
    await new Promise((r) => setTimeout(r, Math.max(0, t.atMs - (performance.now() - start))));
    process.stdout.write(`${JSON.stringify(await runTrial(plan, n))}\n`);
  });
  await Promise.all(runs);
  process.stdout.write('{"done":true}\n');
}

if (import.meta.main) {
  await main();
  process.exit(0);
}
