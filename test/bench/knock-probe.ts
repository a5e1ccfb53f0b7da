// SPDX-License-Identifier: MIT
// The client side of the `knock` benchmark, run INSIDE the lab's client namespace as ONE
// process for all trials (Node's start-up is never inside a measurement):
//
//   node test/bench/knock-probe.ts < plan.json
//
// Per trial (one client source address each, so every trial starts from a closed door):
//   1. check the door is closed for this source: one TCP connect must time out;
//   2. knock: a TCP connect attempt from the source to each port in turn, abandoned at once
//      (postern's knock ports are silent; knockd's answer RST, which changes nothing);
//   3. t0 right after the last knock's connect(); then a TCP connect attempt to the service
//      at once and another every ATTEMPT_INTERVAL_MS (overlapping, like open-probe.ts), and
//      record (now - t0) at the first handshake that completes.
// Prints one JSON line per trial (TrialResult from open-probe.ts). Bounded by count and time.

import net from 'node:net';
import { fileURLToPath } from 'node:url';
import type { TrialResult } from './open-probe.ts';

export interface KnockPlan {
  readonly host: string;
  readonly tcpPort: number;
  readonly knocks: readonly number[];
  readonly trials: readonly { readonly source: string }[];
}

export const KNOCK_PROBE_PATH = fileURLToPath(import.meta.url);

const CLOSED_CHECK_TIMEOUT_MS = 30;
const ATTEMPT_INTERVAL_MS = 1;
const ATTEMPT_TIMEOUT_MS = 20;
const TRIAL_DEADLINE_MS = 3_000;
const GAP_BETWEEN_TRIALS_MS = 20;
const MAX_TRIALS = 1_000;

function connectOnce(host: string, port: number, source: string, timeoutMs: number): { done: Promise<string>; abort(): void } {
  const sock = net.connect({ host, port, localAddress: source });
  let finish: (o: string) => void = () => undefined;
  const done = new Promise<string>((resolve) => {
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    finish = (o) => { clearTimeout(timer); sock.destroy(); resolve(o); };
  });
  sock.once('connect', () => finish('connected'));
  sock.once('error', (err: NodeJS.ErrnoException) => finish(err.code === 'ECONNREFUSED' ? 'refused' : 'error'));
  return { done, abort: () => finish('timeout') };
}

/** One knock: connect() sends the SYN on the next tick; by setImmediate it has gone. */
async function knock(host: string, port: number, source: string): Promise<void> {
  const s = net.connect({ host, port, localAddress: source });
  s.on('error', () => undefined);
  await new Promise<void>((resolve) => setImmediate(resolve));
  s.destroy();
}

async function timeOpen(plan: KnockPlan, source: string): Promise<{ ms: number; attempts: number } | string> {
  for (const port of plan.knocks) await knock(plan.host, port, source);
  const t0 = performance.now();
  const live = new Set<{ abort(): void }>();
  let attempts = 0;
  try {
    return await new Promise((resolve) => {
      let settled = false;
      const settle = (r: { ms: number; attempts: number } | string): void => {
        if (settled) return;
        settled = true;
        clearInterval(ticker);
        clearTimeout(deadline);
        resolve(r);
      };
      const attempt = (): void => {
        attempts++;
        const a = connectOnce(plan.host, plan.tcpPort, source, ATTEMPT_TIMEOUT_MS);
        live.add(a);
        void a.done.then((o) => {
          live.delete(a);
          if (o === 'connected') settle({ ms: performance.now() - t0, attempts });
        });
      };
      attempt();
      const ticker = setInterval(attempt, ATTEMPT_INTERVAL_MS);
      const deadline = setTimeout(() => settle(`not open after ${TRIAL_DEADLINE_MS} ms (${attempts} attempts)`), TRIAL_DEADLINE_MS);
    });
  } finally {
    for (const a of live) a.abort();
  }
}

async function runTrial(plan: KnockPlan, n: number): Promise<TrialResult> {
  const t = plan.trials[n]!;
  const before = await connectOnce(plan.host, plan.tcpPort, t.source, CLOSED_CHECK_TIMEOUT_MS).done;
  if (before !== 'timeout') return { trial: n, source: t.source, result: 'not-closed', detail: `connect before knocking: ${before}` };
  const r = await timeOpen(plan, t.source);
  if (typeof r === 'string') return { trial: n, source: t.source, result: 'no-open', detail: r };
  return { trial: n, source: t.source, result: 'open', ms: Math.round(r.ms * 100) / 100, attempts: r.attempts };
}

function parsePlan(text: string): KnockPlan {
  const p = JSON.parse(text) as KnockPlan;
  const port = (v: unknown): boolean => Number.isInteger(v) && (v as number) > 0 && (v as number) < 65_536;
  const ok = net.isIP(p.host) !== 0 && port(p.tcpPort) && Array.isArray(p.knocks) && p.knocks.length <= 32 && p.knocks.every(port)
    && Array.isArray(p.trials) && p.trials.length <= MAX_TRIALS && p.trials.every((t) => net.isIP(t.source) !== 0);
  if (!ok) throw new Error('knock-probe: bad plan on stdin');
  return p;
}

async function readStdin(): Promise<string> {
  let text = '';
  process.stdin.setEncoding('utf8');
  for await (const chunk of process.stdin) text += String(chunk);
  return text;
}

async function main(): Promise<void> {
  const plan = parsePlan(await readStdin());
  for (let n = 0; n < plan.trials.length; n++) {
    process.stdout.write(`${JSON.stringify(await runTrial(plan, n))}\n`);
    await new Promise((r) => setTimeout(r, GAP_BETWEEN_TRIALS_MS));
  }
}

if (import.meta.main) {
  await main();
  process.exit(0);
}
