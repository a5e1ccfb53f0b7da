// SPDX-License-Identifier: MIT
// The client side of the `open` benchmark, run INSIDE the lab's client namespace as ONE
// process for all trials, so Node's start-up is never inside a measurement:
//
//   node test/bench/open-probe.ts < plan.json
//
// The plan (stdin, JSON, see OpenPlan) lists one trial per client source address, each with
// the SPA datagram to send (hex; postern's packet or the real `fwknop` client's). Per trial:
//   1. check the door is closed for this source: one TCP connect must time out (filtered);
//   2. t0; send the datagram from the source address to the SPA port;
//   3. start a TCP connect attempt (bound to the same source) at once and another every
//      ATTEMPT_INTERVAL_MS, each abandoned after ATTEMPT_TIMEOUT_MS; stop at the first
//      handshake that completes and record (now - t0).
// Overlapping attempts, not one after another: a SYN dropped just before the rule appears
// would otherwise hold the next try back for a whole attempt timeout (20 ms), which is coarser
// than what we measure. With a new SYN every ~1 ms the figure is the opening delay + ~1 ms.
// Prints one JSON line per trial (TrialResult). Every loop is bounded by count and time.

import dgram from 'node:dgram';
import net from 'node:net';
import { fileURLToPath } from 'node:url';

export interface OpenPlan {
  readonly host: string;
  readonly spaPort: number;
  readonly tcpPort: number;
  readonly trials: readonly { readonly source: string; readonly packetHex: string }[];
}

export type TrialResult =
  | { readonly trial: number; readonly source: string; readonly result: 'open'; readonly ms: number; readonly attempts: number }
  | { readonly trial: number; readonly source: string; readonly result: 'not-closed' | 'no-open'; readonly detail: string };

export const OPEN_PROBE_PATH = fileURLToPath(import.meta.url);

const CLOSED_CHECK_TIMEOUT_MS = 30;
const ATTEMPT_INTERVAL_MS = 1;
const ATTEMPT_TIMEOUT_MS = 20;
/** A trial that has not opened after this long is reported as no-open. */
const TRIAL_DEADLINE_MS = 3_000;
const GAP_BETWEEN_TRIALS_MS = 20;
const MAX_TRIALS = 1_000;

type ConnectOutcome = 'connected' | 'refused' | 'timeout' | 'error';

function connectOnce(host: string, port: number, source: string, timeoutMs: number): { done: Promise<ConnectOutcome>; abort(): void } {
  const sock = net.connect({ host, port, localAddress: source });
  let finish: (o: ConnectOutcome) => void = () => undefined;
  const done = new Promise<ConnectOutcome>((resolve) => {
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    finish = (o) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(o);
    };
  });
  sock.once('connect', () => finish('connected'));
  sock.once('error', (err: NodeJS.ErrnoException) => finish(err.code === 'ECONNREFUSED' ? 'refused' : 'error'));
  return { done, abort: () => finish('timeout') };
}

function boundUdp(host: string, source: string): Promise<dgram.Socket> {
  const sock = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  return new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.bind({ address: source, port: 0 }, () => resolve(sock));
  });
}

/** Steps 2 and 3: send, then overlapping connect attempts until one completes. */
async function timeOpen(plan: OpenPlan, source: string, packet: Buffer): Promise<{ ms: number; attempts: number } | string> {
  const udp = await boundUdp(plan.host, source);
  udp.on('error', () => undefined);
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
      const t0 = performance.now();
      udp.send(packet, plan.spaPort, plan.host, (err) => { if (err) settle(`send failed: ${err.message}`); });
      attempt();
      const ticker = setInterval(attempt, ATTEMPT_INTERVAL_MS);
      const deadline = setTimeout(() => settle(`not open after ${TRIAL_DEADLINE_MS} ms (${attempts} attempts)`), TRIAL_DEADLINE_MS);
    });
  } finally {
    for (const a of live) a.abort();
    udp.close();
  }
}

async function runTrial(plan: OpenPlan, n: number): Promise<TrialResult> {
  const t = plan.trials[n]!;
  const before = await connectOnce(plan.host, plan.tcpPort, t.source, CLOSED_CHECK_TIMEOUT_MS).done;
  if (before !== 'timeout') return { trial: n, source: t.source, result: 'not-closed', detail: `connect before SPA: ${before}` };
  const r = await timeOpen(plan, t.source, Buffer.from(t.packetHex, 'hex'));
  if (typeof r === 'string') return { trial: n, source: t.source, result: 'no-open', detail: r };
  return { trial: n, source: t.source, result: 'open', ms: Math.round(r.ms * 100) / 100, attempts: r.attempts };
}

function parsePlan(text: string): OpenPlan {
  const p = JSON.parse(text) as OpenPlan;
  const port = (v: unknown): boolean => Number.isInteger(v) && (v as number) > 0 && (v as number) < 65_536;
  const ok = net.isIP(p.host) !== 0 && port(p.spaPort) && port(p.tcpPort) && Array.isArray(p.trials)
    && p.trials.length <= MAX_TRIALS
    && p.trials.every((t) => net.isIP(t.source) !== 0 && /^(?:[0-9a-f]{2})+$/i.test(t.packetHex));
  if (!ok) throw new Error('open-probe: bad plan on stdin');
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
