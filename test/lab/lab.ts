// SPDX-License-Identifier: MIT
/**
 * The network-namespace test lab used by the end-to-end tests, the demo and the benchmarks
 * (STYLE.md principle 12c; DESIGN.md threat model: the attacker shares the client's segment).
 *
 * Topology, all in namespaces this process creates and nothing linked to the root namespace:
 *
 *     router ──eth0══╗                      sw: bridge br0 (STP off, multicast snooping off)
 *     client ──eth0══╬══ br0 (namespace sw)     ports named router / client / attacker
 *   attacker ──eth0══╝
 *
 * 198.18.0.0/24 (RFC 2544 benchmark range) and fd50:7374::/64 (RFC 4193 ULA); no default
 * route and no route out of the segment (but the router's optional LAN link, below). IPv6
 * addresses are added `nodad`, so usable at once.
 * Interface names live inside each namespace, so `eth0` and the port names never collide
 * between labs; only namespace names are global: `pst-<pid>-<counter>[-<tag>]-<host>`.
 *
 * With `createLab({ lan: true })` a fourth host sits behind the router, for forwarding grants
 * (DESIGN.md "Firewall model": DNAT from a WAN port to a LAN host):
 *
 *     router ──eth1═══════eth0── lan        one veth pair, no bridge
 *
 * 198.19.0.0/24 (the other half of RFC 2544's 198.18.0.0/15) and fd50:7375::/64: router
 * 198.19.0.1 / fd50:7375::1, lan 198.19.0.10 / fd50:7375::10. The lan host's default routes
 * (IPv4 and IPv6) point at the router, so replies to DNATed traffic go back through it and
 * nothing beyond the router exists. The router does NOT forward (ip_forward=0, IPv6
 * forwarding=0 in a fresh namespace): turning that on is postern's job
 * (forwarding.enable_ip_forward) or the test's. Client and attacker get no route to the LAN.
 *
 * Sysctls: in every host namespace, each written to 0 before eth0 (and the router's eth1)
 * comes up —
 *   net.ipv4.icmp_ratelimit, net.ipv6.icmp.ratelimit: a closed or REJECTed port must answer
 *     every probe, otherwise the kernel's per-destination ICMP bucket (burst 6, 1/s) would make
 *     it look filtered (silent) to the tests that tell the two apart;
 *   net.ipv6.conf.<each interface>.dad_transmits, .router_solicitations: no DAD or RS
 *     chatter on the links, so captures and packet counts see only test traffic.
 * Nothing else is changed: a fresh namespace has ip_forward=0 and rp_filter=0 (kernel defaults,
 * devconf_inherit_init_net=0), which is what a host-only router namespace needs.
 *
 * Cleanup, in three layers: close(); a process 'exit' (and SIGINT/SIGTERM/SIGHUP) hook that
 * tears down every lab still open synchronously; and, at createLab, a sweep of `pst-<pid>-*`
 * namespaces whose pid is dead (a run killed with SIGKILL). Deleting a namespace does not kill
 * the processes in it, so each layer kills first (tracked process groups, then `ip netns pids`).
 */
import { execFile, execFileSync, spawn as spawnChild } from 'node:child_process';
import type { ChildProcess, ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants as osConstants } from 'node:os';

export type LabHostName = 'router' | 'client' | 'attacker' | 'lan';

export interface LabHost {
  readonly name: LabHostName;
  readonly ns: string;
  readonly ip4: string;
  readonly ip6: string;
  /** the host's interface on its segment, inside its namespace (the router's LAN side is
   *  Lab.routerLan) */
  readonly ifname: string;
}

/** The router's side of the LAN link (`lan: true` only). */
export interface LanGateway {
  readonly ip4: string;
  readonly ip6: string;
  readonly ifname: string;
}

export interface LabOptions {
  /** [a-z0-9]{1,12}, appended to the namespace names */
  readonly tag?: string;
  /** add the `lan` host behind the router (see the header) */
  readonly lan?: boolean;
}

export interface ExecOptions { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv }
export interface ExecResult { code: number; stdout: string; stderr: string }

export interface Lab {
  readonly router: LabHost;
  readonly client: LabHost;
  readonly attacker: LabHost;
  /** the host behind the router; undefined unless created with `lan: true` */
  readonly lan: LabHost | undefined;
  /** the router's address on the LAN link; undefined unless created with `lan: true` */
  readonly routerLan: LanGateway | undefined;
  /** the namespace holding the bridge (for captures on the segment itself) */
  readonly switchNs: string;
  /**
   * Run to completion inside a host; argv array, no shell. `code` is the exit status, or
   * 128 + signal number when killed. Rejects when it outlives timeoutMs (default 30 s; the
   * whole process group is then killed) or cannot be started.
   */
  exec(host: LabHost, argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /**
   * Start a long-running process inside a host; tracked and killed (whole process group) at
   * close. Its stdin stays open as a pipe: EOF there means the test process is gone.
   */
  spawn(host: LabHost, argv: readonly string[], opts?: { env?: NodeJS.ProcessEnv }): LabProcess;
  /** Idempotent: SIGTERM, then SIGKILL after a short grace, then deletes the namespaces. */
  close(): Promise<void>;
}

/** A lab made with `lan: true`: the LAN host and the router's LAN side are always there. */
export interface LanLab extends Lab {
  readonly lan: LabHost;
  readonly routerLan: LanGateway;
}

export interface LabProcess {
  readonly pid: number;
  readonly child: ChildProcess;
  /** stdout and stderr interleaved as received (the last OUTPUT_CAP characters) */
  output(): string;
  /** resolves with the matched text; rejects on timeout or when the process ends first */
  waitForOutput(re: RegExp, timeoutMs: number): Promise<string>;
  /** signal the process group (default SIGTERM); a no-op once the process has exited */
  kill(signal?: NodeJS.Signals): void;
  /** exit code, or null when it ended by a signal */
  exited(): Promise<number | null>;
}

const HOSTS = [
  { name: 'router', ip4: '198.18.0.1', ip6: 'fd50:7374::1' },
  { name: 'client', ip4: '198.18.0.2', ip6: 'fd50:7374::2' },
  { name: 'attacker', ip4: '198.18.0.3', ip6: 'fd50:7374::3' },
] as const;
const LAN_HOST = { name: 'lan', ip4: '198.19.0.10', ip6: 'fd50:7375::10' } as const;
const LAN_GATEWAY: LanGateway = { ip4: '198.19.0.1', ip6: 'fd50:7375::1', ifname: 'eth1' };
const PREFIX4 = 24;
const PREFIX6 = 64;
const IFNAME = 'eth0';
const BRIDGE = 'br0';
const NS_RE = /^pst-(\d+)-/;
const TAG_RE = /^[a-z0-9]{1,12}$/;
/** Sysctls written to 0 in a host namespace whose interfaces are `ifnames` (header). */
function hostSysctls(ifnames: readonly string[]): string[] {
  return ['net/ipv4/icmp_ratelimit', 'net/ipv6/icmp/ratelimit',
    ...ifnames.flatMap((i) => [`net/ipv6/conf/${i}/dad_transmits`, `net/ipv6/conf/${i}/router_solicitations`]),
  ].map((key) => `/proc/sys/${key}`);
}
/** iproute2's `ip`, found even when PATH lacks the sbin directories (a non-login root shell). */
export const IP_BIN = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].find((p) => existsSync(p)) ?? 'ip';
const IP_TIMEOUT_MS = 10_000;
const EXEC_TIMEOUT_MS = 30_000;
const KILL_GRACE_MS = 1_000;
const OUTPUT_CAP = 1 << 20;

interface LabState {
  readonly namespaces: readonly string[];
  readonly procs: Set<ChildProcessWithoutNullStreams>;
  closing: Promise<void> | undefined;
}

/** Labs whose namespaces may exist; registered before the first namespace is created. */
const openLabs = new Set<LabState>();
let labCounter = 0;
let hooksInstalled = false;

export function labSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)';
  try {
    execFileSync(IP_BIN, ['-V'], { stdio: 'ignore', timeout: IP_TIMEOUT_MS });
  } catch {
    return 'needs iproute2';
  }
  return undefined;
}

export function createLab(opts: LabOptions & { readonly lan: true }): Promise<LanLab>;
export function createLab(opts?: LabOptions): Promise<Lab>;
export async function createLab(opts: LabOptions = {}): Promise<Lab> {
  if (opts.tag !== undefined && !TAG_RE.test(opts.tag)) throw new Error(`bad lab tag ${JSON.stringify(opts.tag)}`);
  installExitHooks();
  labCounter += 1;
  const base = `pst-${process.pid}-${labCounter}${opts.tag === undefined ? '' : `-${opts.tag}`}`;
  const hosts = HOSTS.map((h): LabHost => ({ ...h, ns: `${base}-${h.name}`, ifname: IFNAME }));
  const lan: LabHost | undefined = opts.lan === true ? { ...LAN_HOST, ns: `${base}-${LAN_HOST.name}`, ifname: IFNAME } : undefined;
  const switchNs = `${base}-sw`;
  const namespaces = [switchNs, ...hosts.map((h) => h.ns), ...(lan === undefined ? [] : [lan.ns])];
  const state: LabState = { namespaces, procs: new Set(), closing: undefined };
  openLabs.add(state);
  try {
    // A leftover we cannot remove is worth a warning, not a failed test.
    await sweepStaleNamespaces().catch((err: unknown) => process.emitWarning(`lab: stale sweep: ${String(err)}`));
    await buildTopology(switchNs, hosts, lan);
  } catch (err) {
    await teardown(state).catch(() => undefined);
    throw err;
  }
  const [router, client, attacker] = hosts as [LabHost, LabHost, LabHost];
  return {
    router, client, attacker, switchNs, lan, routerLan: lan === undefined ? undefined : LAN_GATEWAY,
    exec: (host, argv, execOpts = {}) => execIn(state, host, argv, execOpts),
    spawn: (host, argv, spawnOpts = {}) => spawnIn(state, host, argv, spawnOpts.env),
    close: () => teardown(state),
  };
}

/** Runs `ip` with optional batch input; rejects with the command, its input and stderr. */
function runIp(args: readonly string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(IP_BIN, args, { timeout: IP_TIMEOUT_MS, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err === null) return resolve(stdout);
      const batch = input === undefined ? '' : `\n  batch input:\n${input.replace(/^/gm, '    ')}`;
      const how = err.killed ? `killed after ${IP_TIMEOUT_MS} ms` : `exit ${String(err.code)}`;
      reject(new Error(`lab: \`ip ${args.join(' ')}\` failed (${how}): ${stderr.trim()}${batch}`));
    });
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input ?? '');
  });
}

async function buildTopology(switchNs: string, hosts: readonly LabHost[], lan: LabHost | undefined): Promise<void> {
  const router = hosts.find((h) => h.name === 'router');
  if (router === undefined) throw new Error('lab: no router host');
  // One `ip` run from the root namespace creates every namespace and link; each end of every
  // veth is created directly inside its target namespace (IFLA_NET_NS_FD), never in the root.
  const create = [
    ...[switchNs, ...hosts.map((h) => h.ns), ...(lan === undefined ? [] : [lan.ns])].map((ns) => `netns add ${ns}`),
    `link add ${BRIDGE} netns ${switchNs} type bridge stp_state 0 mcast_snooping 0`,
    ...hosts.map((h) => `link add ${h.name} netns ${switchNs} type veth peer name ${IFNAME} netns ${h.ns}`),
    ...(lan === undefined ? [] : [`link add ${LAN_GATEWAY.ifname} netns ${router.ns} type veth peer name ${IFNAME} netns ${lan.ns}`]),
  ];
  await runIp(['-batch', '-'], lines(create));
  // The switch stays silent (no IPv6 link-local on its links); ports up before the bridge.
  const sw = [
    'link set lo up',
    ...[BRIDGE, ...hosts.map((h) => h.name)].map((dev) => `link set ${dev} addrgenmode none`),
    ...hosts.flatMap((h) => [`link set ${h.name} master ${BRIDGE}`, `link set ${h.name} up`]),
    `link set ${BRIDGE} up`,
  ];
  const configure = (h: LabHost): Promise<void> => configureHost(h, lan !== undefined && h === router ? [LAN_GATEWAY] : []);
  await Promise.all([
    runIp(['-n', switchNs, '-batch', '-'], lines(sw)),
    quietBridge(switchNs),
    ...hosts.map(configure),
    ...(lan === undefined ? [] : [configureHost(lan, [], LAN_GATEWAY)]),
  ]);
}

/** The switch is a wire: with br_netfilter loaded (Docker loads it), bridged frames would
 *  also run the switch namespace's iptables hooks, which cost floods 11-24 % of their rate
 *  (perf: br_nf_* in the sender's softirq). The sysctls are per namespace; the host's stay. */
const BRIDGE_NF = ['iptables', 'ip6tables', 'arptables'].map((t) => `/proc/sys/net/bridge/bridge-nf-call-${t}`);

async function quietBridge(switchNs: string): Promise<void> {
  if (!BRIDGE_NF.every((f) => existsSync(f))) return; // br_netfilter not loaded: nothing to do
  await runIp(['netns', 'exec', switchNs, 'tee', ...BRIDGE_NF], '0\n');
}

/** Addresses the host's interfaces (eth0, plus `extra` links such as the router's eth1) and,
 *  with `gateway`, points its default routes there (the lan host). */
async function configureHost(host: LabHost, extra: readonly LanGateway[], gateway?: LanGateway): Promise<void> {
  const links = [{ ip4: host.ip4, ip6: host.ip6, ifname: IFNAME }, ...extra];
  // tee writes the same "0" to every sysctl file; /proc/sys is the namespace of the opener.
  await runIp(['netns', 'exec', host.ns, 'tee', ...hostSysctls(links.map((l) => l.ifname))], '0\n');
  await runIp(['-n', host.ns, '-batch', '-'], lines([
    'link set lo up',
    ...links.flatMap((l) => [
      `addr add ${l.ip4}/${PREFIX4} dev ${l.ifname}`,
      `addr add ${l.ip6}/${PREFIX6} dev ${l.ifname} nodad`,
      `link set ${l.ifname} up`,
    ]),
    ...(gateway === undefined ? [] : [`route add default via ${gateway.ip4}`, `route add ::/0 via ${gateway.ip6}`]),
  ]));
}

function lines(cmds: readonly string[]): string {
  return cmds.map((c) => `${c}\n`).join('');
}

interface Started { child: ChildProcessWithoutNullStreams; pid: number }

function startIn(state: LabState, ns: string, argv: readonly string[], env: NodeJS.ProcessEnv | undefined): Started {
  if (state.closing !== undefined) throw new Error('lab: already closed');
  if (argv.length === 0) throw new Error('lab: empty argv');
  // detached: the child leads its own process group (ip netns exec execs in place, so the
  // group id is child.pid) and the group can be killed as a whole.
  const child = spawnChild(IP_BIN, ['netns', 'exec', ns, ...argv], { detached: true, stdio: 'pipe', env: env ?? process.env });
  if (child.pid === undefined) throw new Error(`lab: could not start ${argv.join(' ')} in ${ns}`);
  state.procs.add(child);
  child.once('exit', () => state.procs.delete(child));
  child.stdin.on('error', () => undefined);
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  return { child, pid: child.pid };
}

function execIn(state: LabState, host: LabHost, argv: readonly string[], opts: ExecOptions): Promise<ExecResult> {
  const timeoutMs = opts.timeoutMs ?? EXEC_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const { child } = startIn(state, host.ns, argv, opts.env);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d: string) => { stdout += d; });
    child.stderr.on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => { timedOut = true; killGroup(child, 'SIGKILL'); }, timeoutMs);
    child.once('error', (err) => { clearTimeout(timer); reject(err); });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (!timedOut) return resolve({ code: code ?? signalStatus(signal), stdout, stderr });
      reject(new Error(`lab: ${argv.join(' ')} in ${host.name} timed out after ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    });
    child.stdin.end(opts.input ?? '');
  });
}

function signalStatus(signal: NodeJS.Signals | null): number {
  return 128 + (signal === null ? 0 : osConstants.signals[signal]);
}

function spawnIn(state: LabState, host: LabHost, argv: readonly string[], env: NodeJS.ProcessEnv | undefined): LabProcess {
  const { child, pid } = startIn(state, host.ns, argv, env);
  let out = '';
  const listeners = new Set<() => void>();
  const onData = (d: string): void => {
    out += d;
    if (out.length > OUTPUT_CAP) out = out.slice(-OUTPUT_CAP);
    for (const l of listeners) l();
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const closed = new Promise<void>((resolve) => { child.once('close', () => resolve()); });
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', () => resolve(null));
  });
  return {
    pid,
    child,
    output: () => out,
    waitForOutput: (re, timeoutMs) => waitForMatch({ re, timeoutMs, read: () => out, listeners, closed }),
    kill: (signal = 'SIGTERM') => { if (isRunning(child)) killGroup(child, signal); },
    exited: () => exited,
  };
}

interface MatchWait {
  re: RegExp;
  timeoutMs: number;
  read: () => string;
  listeners: Set<() => void>;
  closed: Promise<void>;
}

function waitForMatch(w: MatchWait): Promise<string> {
  const re = new RegExp(w.re.source, w.re.flags.replace(/[gy]/g, ''));
  return new Promise((resolve, reject) => {
    const finish = (result: string | Error): void => {
      clearTimeout(timer);
      w.listeners.delete(check);
      if (typeof result === 'string') resolve(result);
      else reject(result);
    };
    const check = (): void => {
      const m = re.exec(w.read());
      if (m !== null) finish(m[0]);
    };
    const fail = (why: string) => () => finish(new Error(`lab: ${why} before output matched ${re}; output so far:\n${w.read().slice(-2000)}`));
    const timer = setTimeout(fail(`${w.timeoutMs} ms passed`), w.timeoutMs);
    w.listeners.add(check);
    void w.closed.then(() => { check(); fail('process ended')(); });
    check();
  });
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // ESRCH: the group is already gone.
  }
}

function waitExit(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (!isRunning(child)) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    child.once('exit', () => { clearTimeout(timer); resolve(); });
  });
}

function teardown(state: LabState): Promise<void> {
  state.closing ??= (async () => {
    const live = [...state.procs];
    for (const c of live) killGroup(c, 'SIGTERM');
    await Promise.all(live.map((c) => waitExit(c, KILL_GRACE_MS)));
    for (const c of live) if (isRunning(c)) killGroup(c, 'SIGKILL');
    await Promise.all(live.map((c) => waitExit(c, KILL_GRACE_MS)));
    await deleteNamespaces(state.namespaces);
    openLabs.delete(state);
  })();
  return state.closing;
}

/** Kills whatever still runs in each namespace, deletes them, and checks that they are gone. */
async function deleteNamespaces(namespaces: readonly string[]): Promise<void> {
  const existing = new Set(await listNamespaces());
  const ours = namespaces.filter((ns) => existing.has(ns));
  if (ours.length === 0) return;
  const pidLists = await Promise.all(ours.map((ns) => runIp(['netns', 'pids', ns]).catch(() => '')));
  for (const pid of pidLists.flatMap(parsePids)) killPid(pid);
  await runIp(['-force', '-batch', '-'], lines(ours.map((ns) => `netns del ${ns}`))).catch(() => undefined);
  const left = (await listNamespaces()).filter((ns) => ours.includes(ns));
  if (left.length > 0) throw new Error(`lab: namespaces left after delete: ${left.join(' ')}`);
}

async function listNamespaces(): Promise<string[]> {
  return parseNamespaces(await runIp(['netns', 'list']));
}

/** `ip netns list` prints "name" or "name (id: N)" per line. */
function parseNamespaces(text: string): string[] {
  return text.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n !== '');
}

function parsePids(text: string): number[] {
  return text.split('\n').map((l) => Number.parseInt(l, 10)).filter((p) => Number.isInteger(p) && p > 1);
}

function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Namespaces of a dead `pst-<pid>` owner are stale; so are our own pid's that no open lab
 * claims (a previous process that had the same pid). Live owners' labs are never touched.
 */
async function sweepStaleNamespaces(): Promise<void> {
  const claimed = new Set([...openLabs].flatMap((s) => s.namespaces));
  const stale = (await listNamespaces()).filter((ns) => {
    const pid = Number(NS_RE.exec(ns)?.[1] ?? Number.NaN);
    if (!Number.isInteger(pid)) return false;
    return pid === process.pid ? !claimed.has(ns) : !pidAlive(pid);
  });
  await deleteNamespaces(stale);
}

/** Synchronous teardown of every open lab, for 'exit' and fatal signals. */
function cleanupSync(): void {
  for (const state of openLabs) {
    for (const c of state.procs) if (isRunning(c)) killGroup(c, 'SIGKILL');
    for (const ns of state.namespaces) {
      try {
        const text = execFileSync(IP_BIN, ['netns', 'pids', ns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: IP_TIMEOUT_MS });
        for (const pid of parsePids(text)) killPid(pid);
      } catch {
        // namespace already gone
      }
    }
    try {
      const input = lines(state.namespaces.map((ns) => `netns del ${ns}`));
      execFileSync(IP_BIN, ['-force', '-batch', '-'], { input, stdio: ['pipe', 'ignore', 'ignore'], timeout: IP_TIMEOUT_MS });
    } catch {
      // -force reports namespaces that were already deleted; nothing more to do at exit
    }
  }
  openLabs.clear();
}

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', cleanupSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      cleanupSync();
      // Alone on this signal we must not swallow it: restore the default action and re-raise.
      if (process.listenerCount(sig) === 1) {
        process.removeListener(sig, onSignal);
        process.kill(process.pid, sig);
      }
    };
    process.on(sig, onSignal);
  }
}
