// SPDX-License-Identifier: MIT
/**
 * Network probes run INSIDE a lab namespace, as a standalone script on the pinned Node:
 *
 *   lab.exec(host, probeArgv(['tcp-connect', '198.18.0.1', '22', '1000']))
 *
 * Each command prints one JSON line per result (tcp-hold prints two) and exits by itself
 * within its own time bound; usage errors go to stderr with exit status 2.
 *
 *   tcp-connect HOST PORT TIMEOUT_MS    {"result":"connected"|"refused"|"timeout"|"error","ms":N}
 *       refused = RST, or ICMP port unreachable (RFC 1122 4.2.3.9 makes it a hard error);
 *       timeout = silence, i.e. filtered by a DROP rule.
 *   tcp-hold HOST PORT SECONDS          {"result":"connected"} then {"result":"ok","echoes":N}
 *       or {"result":"broken","reason":...,"echoes":N}: a line every 200 ms, each echo awaited
 *       up to 1 s, so an established flow cut by the firewall shows as broken.
 *   udp-probe HOST PORT TIMEOUT_MS [HEX] {"result":"silent"|"icmp-unreachable"|"reply"|"error","ms":N}
 *       one datagram on a connected socket; the kernel reports ICMP errors for connected UDP
 *       sockets (RFC 1122 4.1.3.3) and Node surfaces them as ECONNREFUSED from recvmsg.
 *   echo-server PORT [HOST] [MAX_SECONDS] TCP echo on HOST (default :: dual-stack, i.e. 0.0.0.0
 *       and ::); prints "listening PORT", then "accepted ADDR" per connection. Exits after
 *       MAX_SECONDS (default 300), on SIGTERM, or when its stdin pipe closes (test gone).
 *   udp-send HOST PORT HEX              {"result":"sent","bytes":N}
 *   udp-list HOST PORT PPS             {"sent":N,"errors":E,"ms":M}
 *       one datagram per hex line of stdin (at most LIST_MAX), paced at PPS, each awaited:
 *       many distinct valid packets in a bounded burst (e.g. grants for many addresses).
 *   udp-flood HOST PORT COUNT MAX_SECONDS [SEED]  {"sent":N,"errors":E,"ms":M,"seed":S}
 *       COUNT datagrams of 0..300 random bytes (seeded, reproducible) as fast as the socket
 *       takes them, stopping at COUNT or MAX_SECONDS, whichever comes first.
 */
import dgram from 'node:dgram';
import { fstatSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Lab, LabHost } from './lab.ts';

export type TcpConnectResult = { result: 'connected' | 'refused' | 'timeout' | 'error'; ms: number; code?: string };
export type TcpHoldResult = { result: 'ok'; echoes: number } | { result: 'broken'; reason: string; echoes: number };
export type UdpProbeResult = { result: 'silent' | 'icmp-unreachable' | 'reply' | 'error'; ms: number; code?: string };
export type UdpFloodResult = { sent: number; errors: number; ms: number; seed: number };

export const PROBE_PATH = fileURLToPath(import.meta.url);

const HOLD_INTERVAL_MS = 200;
const HOLD_ECHO_TIMEOUT_MS = 1_000;
const HOLD_CONNECT_TIMEOUT_MS = 3_000;
const ECHO_DEFAULT_MAX_SECONDS = 300;
const FLOOD_MAX_LEN = 300;
const FLOOD_WINDOW = 64;
const PROBE_PAYLOAD = Buffer.from('postern-probe');
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH']);

/** argv that runs this script with the current (pinned) Node */
export function probeArgv(args: readonly (string | number)[]): string[] {
  return [process.execPath, PROBE_PATH, ...args.map(String)];
}

/** Runs a one-shot probe in a lab host and parses its last JSON line. */
export async function runProbe<T>(lab: Pick<Lab, 'exec'>, host: LabHost, args: readonly (string | number)[]): Promise<T> {
  const { code, stdout, stderr } = await lab.exec(host, probeArgv(args), { timeoutMs: 60_000 });
  const last = stdout.trim().split('\n').at(-1) ?? '';
  if (code !== 0 || !last.startsWith('{')) throw new Error(`probe ${args.join(' ')} in ${host.name}: exit ${code}\n${stdout}${stderr}`);
  return JSON.parse(last) as T;
}

export function tcpConnect(lab: Pick<Lab, 'exec'>, from: LabHost, to: string, port: number, timeoutMs: number): Promise<TcpConnectResult> {
  return runProbe<TcpConnectResult>(lab, from, ['tcp-connect', to, port, timeoutMs]);
}

export function udpProbe(lab: Pick<Lab, 'exec'>, from: LabHost, to: string, port: number, timeoutMs: number): Promise<UdpProbeResult> {
  return runProbe<UdpProbeResult>(lab, from, ['udp-probe', to, port, timeoutMs]);
}

function elapsed(t0: number): number {
  return Math.round((performance.now() - t0) * 10) / 10;
}

function print(obj: object): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

function probeTcpConnect(host: string, port: number, timeoutMs: number): Promise<{ result: TcpConnectResult; sock: net.Socket }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const done = (result: TcpConnectResult): void => {
      clearTimeout(timer);
      sock.removeAllListeners('connect');
      resolve({ result, sock });
    };
    const timer = setTimeout(() => done({ result: 'timeout', ms: elapsed(t0) }), timeoutMs);
    sock.once('connect', () => done({ result: 'connected', ms: elapsed(t0) }));
    sock.once('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? 'unknown';
      done({ result: code === 'ECONNREFUSED' ? 'refused' : 'error', ms: elapsed(t0), code });
    });
  });
}

async function cmdTcpConnect(host: string, port: number, timeoutMs: number): Promise<void> {
  const { result, sock } = await probeTcpConnect(host, port, timeoutMs);
  sock.destroy();
  print(result);
}

/** Reads '\n'-terminated lines; next() yields a line, or why none came. */
function lineReader(sock: net.Socket): { next(timeoutMs: number): Promise<{ line: string } | { fail: string }> } {
  const lines: string[] = [];
  let buf = '';
  let ended: string | undefined;
  let wake = (): void => undefined;
  sock.setEncoding('utf8');
  sock.on('data', (d: string) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      lines.push(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
    wake();
  });
  sock.on('error', (err: NodeJS.ErrnoException) => { ended ??= err.code ?? 'error'; wake(); });
  sock.on('close', () => { ended ??= 'closed'; wake(); });
  const take = (): { line: string } | { fail: string } | undefined => {
    const line = lines.shift();
    if (line !== undefined) return { line };
    return ended === undefined ? undefined : { fail: ended };
  };
  return {
    next: (timeoutMs) => new Promise((resolve) => {
      const timer = setTimeout(() => resolve(take() ?? { fail: 'no-echo' }), timeoutMs);
      wake = () => {
        const got = take();
        if (got !== undefined) { clearTimeout(timer); resolve(got); }
      };
      wake();
    }),
  };
}

async function cmdTcpHold(host: string, port: number, seconds: number): Promise<void> {
  const { result, sock } = await probeTcpConnect(host, port, HOLD_CONNECT_TIMEOUT_MS);
  if (result.result !== 'connected') {
    sock.destroy();
    return print({ result: 'broken', reason: `connect-${result.code ?? result.result}`, echoes: 0 });
  }
  print({ result: 'connected' });
  const reader = lineReader(sock);
  const end = performance.now() + seconds * 1000;
  let outcome: TcpHoldResult = { result: 'ok', echoes: 0 };
  for (let i = 0; performance.now() < end; i++) {
    const tick = performance.now();
    const line = `hold ${i}`;
    sock.write(`${line}\n`);
    const got = await reader.next(HOLD_ECHO_TIMEOUT_MS);
    if (!('line' in got) || got.line !== line) {
      outcome = { result: 'broken', reason: 'fail' in got ? got.fail : 'wrong-echo', echoes: i };
      break;
    }
    outcome = { result: 'ok', echoes: i + 1 };
    await sleep(Math.max(0, Math.min(tick + HOLD_INTERVAL_MS, end) - performance.now()));
  }
  sock.destroy();
  print(outcome);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function udpSocket(host: string): dgram.Socket {
  return dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
}

function cmdUdpProbe(host: string, port: number, timeoutMs: number, payload: Buffer): Promise<void> {
  const t0 = performance.now();
  const sock = udpSocket(host);
  return new Promise((resolve) => {
    const done = (result: UdpProbeResult): void => {
      clearTimeout(timer);
      sock.removeAllListeners();
      sock.on('error', () => undefined);
      sock.close();
      print(result);
      resolve();
    };
    const onError = (err: NodeJS.ErrnoException): void => {
      const code = err.code ?? 'unknown';
      done({ result: UNREACHABLE_CODES.has(code) ? 'icmp-unreachable' : 'error', ms: elapsed(t0), code });
    };
    const timer = setTimeout(() => done({ result: 'silent', ms: elapsed(t0) }), timeoutMs);
    sock.on('error', onError);
    sock.on('message', () => done({ result: 'reply', ms: elapsed(t0) }));
    sock.connect(port, host, () => sock.send(payload, (err) => { if (err) onError(err); }));
  });
}

function cmdEchoServer(port: number, host: string, maxSeconds: number): void {
  const server = net.createServer((sock) => {
    print0(`accepted ${(sock.remoteAddress ?? '?').replace(/^::ffff:/, '')}`);
    sock.on('error', () => undefined);
    sock.pipe(sock);
  });
  server.on('error', (err) => {
    process.stderr.write(`echo-server: ${err.message}\n`);
    process.exit(1);
  });
  // '::' with ipv6Only false is one dual-stack socket: IPv4 peers arrive as ::ffff:a.b.c.d.
  server.listen({ port, host, ipv6Only: false }, () => {
    const addr = server.address();
    print0(`listening ${typeof addr === 'object' && addr !== null ? addr.port : port}`);
  });
  setTimeout(() => process.exit(0), maxSeconds * 1000);
  // A pipe or socket on stdin comes from a parent (the lab); its EOF means that parent is gone.
  const stdin = fstatSync(0);
  if (stdin.isFIFO() || stdin.isSocket()) {
    process.stdin.on('end', () => process.exit(0));
    process.stdin.resume();
  }
}

function print0(line: string): void {
  process.stdout.write(`${line}\n`);
}

function cmdUdpSend(host: string, port: number, payload: Buffer): Promise<void> {
  const sock = udpSocket(host);
  return new Promise((resolve) => {
    sock.send(payload, port, host, (err) => {
      sock.close();
      print(err ? { result: 'error', code: (err as NodeJS.ErrnoException).code } : { result: 'sent', bytes: payload.length });
      resolve();
    });
  });
}

const LIST_MAX = 10_000;

async function cmdUdpList(host: string, port: number, pps: number): Promise<void> {
  const payloads = readFileSync(0, 'utf8').split('\n').filter((l) => l !== '').slice(0, LIST_MAX).map((l) => Buffer.from(l, 'hex'));
  const sock = udpSocket(host);
  const t0 = performance.now();
  let sent = 0;
  let errors = 0;
  for (const [i, p] of payloads.entries()) {
    const due = t0 + (i * 1000) / pps - performance.now();
    if (due > 0) await new Promise((r) => setTimeout(r, due));
    await new Promise<void>((r) => sock.send(p, port, host, (err) => { if (err) errors++; else sent++; r(); }));
  }
  sock.close();
  print({ sent, errors, ms: elapsed(t0) });
}

/** mulberry32: a tiny seeded PRNG, so a flood can be replayed byte for byte. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomDatagram(rand: () => number): Buffer {
  const buf = Buffer.alloc(Math.floor(rand() * (FLOOD_MAX_LEN + 1)));
  for (let i = 0; i < buf.length; i++) buf[i] = Math.floor(rand() * 256);
  return buf;
}

function cmdUdpFlood(host: string, port: number, count: number, maxSeconds: number, seed: number): Promise<void> {
  const rand = mulberry32(seed);
  // Unconnected on purpose: ICMP errors from the target must not abort the flood.
  const sock = udpSocket(host);
  const t0 = performance.now();
  const deadline = t0 + maxSeconds * 1000;
  let issued = 0;
  let inflight = 0;
  let sent = 0;
  let errors = 0;
  return new Promise((resolve) => {
    const finished = (): boolean => issued >= count || performance.now() >= deadline;
    const pump = (): void => {
      while (inflight < FLOOD_WINDOW && !finished()) {
        issued++;
        inflight++;
        sock.send(randomDatagram(rand), port, host, (err) => {
          inflight--;
          if (err) errors++;
          else sent++;
          if (!finished()) pump();
          else if (inflight === 0) {
            sock.close();
            print({ sent, errors, ms: elapsed(t0), seed } satisfies UdpFloodResult);
            resolve();
          }
        });
      }
    };
    if (count <= 0) {
      sock.close();
      print({ sent, errors, ms: elapsed(t0), seed } satisfies UdpFloodResult);
      return resolve();
    }
    pump();
  });
}

type Command = { usage: string; min: number; run: (a: ArgReader) => Promise<void> | void };

const COMMANDS: Record<string, Command> = {
  'tcp-connect': { usage: 'HOST PORT TIMEOUT_MS', min: 3, run: (a) => cmdTcpConnect(a.host(0), a.port(1), a.int(2, 1, 600_000)) },
  'tcp-hold': { usage: 'HOST PORT SECONDS', min: 3, run: (a) => cmdTcpHold(a.host(0), a.port(1), a.int(2, 0, 600)) },
  'udp-probe': { usage: 'HOST PORT TIMEOUT_MS [HEX]', min: 3, run: (a) => cmdUdpProbe(a.host(0), a.port(1), a.int(2, 1, 600_000), a.hexOr(3, PROBE_PAYLOAD)) },
  'echo-server': { usage: 'PORT [HOST] [MAX_SECONDS]', min: 1, run: (a) => cmdEchoServer(a.port(0), a.optHost(1) ?? '::', a.intOr(2, 1, 86_400, ECHO_DEFAULT_MAX_SECONDS)) },
  'udp-send': { usage: 'HOST PORT HEX', min: 3, run: (a) => cmdUdpSend(a.host(0), a.port(1), a.hexOr(2, Buffer.alloc(0))) },
  'udp-list': { usage: 'HOST PORT PPS', min: 3, run: (a) => cmdUdpList(a.host(0), a.port(1), a.int(2, 1, 1_000_000)) },
  'udp-flood': { usage: 'HOST PORT COUNT MAX_SECONDS [SEED]', min: 4, run: (a) => cmdUdpFlood(a.host(0), a.port(1), a.int(2, 0, 100_000_000), a.int(3, 0, 3_600), a.intOr(4, 0, 0xffffffff, Math.floor(Math.random() * 0x100000000))) },
};

class UsageError extends Error {}

interface ArgReader {
  host(i: number): string;
  optHost(i: number): string | undefined;
  port(i: number): number;
  int(i: number, min: number, max: number): number;
  intOr(i: number, min: number, max: number, dflt: number): number;
  hexOr(i: number, dflt: Buffer): Buffer;
}

function argReader(args: readonly string[]): ArgReader {
  const int = (i: number, min: number, max: number): number => {
    const s = args[i] ?? '';
    const n = Number(s);
    if (!/^\d+$/.test(s) || n < min || n > max) throw new UsageError(`argument ${i + 1}: want an integer in ${min}..${max}, got ${JSON.stringify(s)}`);
    return n;
  };
  const optHost = (i: number): string | undefined => {
    const s = args[i];
    if (s !== undefined && net.isIP(s) === 0) throw new UsageError(`argument ${i + 1}: want an IP address, got ${JSON.stringify(s)}`);
    return s;
  };
  return {
    host: (i) => optHost(i) ?? '',
    optHost,
    port: (i) => int(i, 0, 65_535),
    int,
    intOr: (i, min, max, dflt) => (args[i] === undefined ? dflt : int(i, min, max)),
    hexOr: (i, dflt) => {
      const s = args[i];
      if (s === undefined) return dflt;
      if (!/^(?:[0-9a-fA-F]{2})*$/.test(s)) throw new UsageError(`argument ${i + 1}: want hex bytes, got ${JSON.stringify(s)}`);
      return Buffer.from(s, 'hex');
    },
  };
}

async function main(argv: readonly string[]): Promise<void> {
  const [name = '', ...args] = argv;
  const cmd = COMMANDS[name];
  try {
    if (cmd === undefined) throw new UsageError(`unknown command ${JSON.stringify(name)}`);
    if (args.length < cmd.min) throw new UsageError(`usage: net-probe ${name} ${cmd.usage}`);
    await cmd.run(argReader(args));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    const table = Object.entries(COMMANDS).map(([n, c]) => `  ${n} ${c.usage}`).join('\n');
    process.stderr.write(`net-probe: ${err.message}\ncommands:\n${table}\n`);
    process.exit(2);
  }
  if (name !== 'echo-server') process.exit(0);
}

if (import.meta.main) await main(process.argv.slice(2));
