// SPDX-License-Identifier: MIT
// End-to-end harness: a lab, the real bundle (dist/postern.js) running as the daemon in the
// router namespace against real iptables, as a non-root user holding only CAP_NET_RAW and
// CAP_NET_ADMIN (DAEMON_USER, issue 9), a TCP echo service on the guarded port, and
// helpers for the technician's side. With `lan`, the lab has a host behind the router
// running the same echo service (the target of forwarding grants). Everything is torn down
// by close(), also on failure.

import assert from 'node:assert/strict';
import { chownSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLab, type Lab, type LabHost, type LabProcess, type LanGateway } from '../lab/lab.ts';
import { probeArgv } from '../lab/net-probe.ts';
import { Credential, generateCredential } from '../../src/spa/credential.ts';
import { buildPacket, type OpenRequest } from '../../src/cli/spa-client.ts';

export const BUNDLE = fileURLToPath(new URL('../../dist/postern.js', import.meta.url));
export const SPA_PORT = 62442;
export const SERVICE_PORT = 22;

export function bundleSkipReason(): string | undefined {
  return existsSync(BUNDLE) ? undefined : 'needs dist/postern.js (run ./build.sh bundle)';
}

export interface KeySpec {
  readonly name: string;
  readonly credential: Credential;
  readonly extra?: Record<string, unknown>;
}

export interface World {
  readonly lab: Lab;
  readonly dir: string;
  readonly configPath: string;
  readonly key: Credential;
  /** the echo service on the lan host's SERVICE_PORT; undefined without `lan` */
  readonly lanService: LabProcess | undefined;
  /** who the daemon runs as: DAEMON_USER unless the world was made with runAs: 'root' */
  readonly runAs: DaemonUser | undefined;
  daemon: LabProcess;
  /** argv + env that start `postern daemon <args>` as world.runAs (setpriv), for tests that
   *  spawn a daemon themselves (a second daemon, a start expected to fail) */
  daemonCommand(args: readonly string[]): { argv: string[]; env: NodeJS.ProcessEnv };
  /** hand a file or directory the test wrote to the daemon's user (it reads it, or writes in it) */
  own(path: string): void;
  startDaemon(): Promise<LabProcess>;
  writeConfig(patch?: Record<string, unknown>): void;
  postern(host: LabHost, args: readonly string[], timeoutMs?: number): Promise<{ code: number; stdout: string; stderr: string }>;
  sendRaw(host: LabHost, packet: Buffer, to?: string): Promise<void>;
  packet(over?: Partial<OpenRequest>): Buffer;
  iptables(args: readonly string[], family?: 4 | 6): Promise<string>;
  grantRules(family?: 4 | 6): Promise<string[]>;
  close(): Promise<void>;
}

export type Backend = 'iptables' | 'nft';
/** Every end-to-end scenario runs against each real backend (issue: parameterized, not copied). */
export const BACKENDS: readonly Backend[] = ['nft', 'iptables'];

export interface WorldOptions {
  readonly backend?: Backend;
  readonly keys?: readonly KeySpec[];
  /** extra fields for the default 'tech' key stanza (ignored with `keys`), e.g. forwards */
  readonly keyExtra?: Record<string, unknown>;
  readonly config?: Record<string, unknown>;
  readonly tag?: string;
  /** add the lab's lan host behind the router, with an echo service on SERVICE_PORT */
  readonly lan?: boolean;
  /** who runs the daemon. Default DAEMON_USER: a non-root uid/gid holding only CAP_NET_RAW
   *  and CAP_NET_ADMIN, as the systemd unit does (rootfs-overlay/systemd; setpriv from
   *  util-linux), so the whole suite proves postern needs no more (issue 9). 'root' only
   *  for a test that must say, in a comment, why it needs root. */
  readonly runAs?: DaemonUser | 'root';
  /** Node flags before the bundle, e.g. a board's heap caps (board/<name>/board.json node.flags) */
  readonly nodeFlags?: readonly string[];
}

export interface DaemonUser {
  readonly uid: number;
  readonly gid: number;
  /** capability names without CAP_, lower case: e.g. ['net_raw', 'net_admin'] */
  readonly caps: readonly string[];
}

/** An id with no passwd entry: the daemon needs none (no home, no login). */
export const DAEMON_USER: DaemonUser = { uid: 64242, gid: 64242, caps: ['net_raw', 'net_admin'] };

/** setpriv argv: drop to uid/gid with `caps` inherited, ambient and bounding, nothing else. */
export function setprivArgv(u: DaemonUser): string[] {
  const caps = u.caps.map((c) => `+${c}`).join(',');
  return ['setpriv', `--reuid=${u.uid}`, `--regid=${u.gid}`, '--clear-groups', `--inh-caps=-all,${caps}`,
    `--ambient-caps=${caps}`, `--bounding-set=-all,${caps}`, '--no-new-privs', '--'];
}

/** The worlds' `spa` section: a patch with its own `spa` replaces it whole, so it starts here. */
const BASE_SPA = { port: SPA_PORT, clock: 'trusted', window_s: 60 } as const;

function baseConfig(dir: string, backend: Backend, keys: readonly KeySpec[], patch: Record<string, unknown>): Record<string, unknown> {
  return {
    state: { database: join(dir, 'state.db') },
    control: { socket: join(dir, 'control.sock') },
    device: 'lab-router',
    log_level: 'info',
    guarded: [`tcp/${SERVICE_PORT}`, 'tcp/443'],
    spa: BASE_SPA,
    keys: keys.map((k) => ({ name: k.name, credential: k.credential.encode(), services: [`tcp/${SERVICE_PORT}`], max_duration_s: 120, ...k.extra })),
    ...patch,
    firewall: { backend, reconcile_interval_s: 1, ...(patch['firewall'] as object | undefined) },
  };
}

export async function createWorld(opts: WorldOptions = {}): Promise<World> {
  const lab = await createLab({ ...(opts.tag !== undefined && { tag: opts.tag }), lan: opts.lan === true });
  const backend = opts.backend ?? 'iptables';
  const dir = mkdtempSync(join(tmpdir(), 'postern-e2e-'));
  const runAs = opts.runAs === 'root' ? undefined : (opts.runAs ?? DAEMON_USER);
  const owner = (path: string) => { if (runAs) chownSync(path, runAs.uid, runAs.gid); };
  owner(dir);
  const key = generateCredential();
  const keys = opts.keys ?? [{ name: 'tech', credential: key, ...(opts.keyExtra && { extra: opts.keyExtra }) }];
  const configPath = join(dir, 'config.json');
  const keyFile = join(dir, 'tech.key');
  writeFileSync(keyFile, key.encode() + '\n', { mode: 0o600 });
  const lanService = lab.lan && lab.spawn(lab.lan, probeArgv(['echo-server', SERVICE_PORT]));
  const world: World = {
    lab, dir, configPath, key, lanService, runAs,
    daemon: undefined as unknown as LabProcess,
    own: owner,
    daemonCommand(args) {
      const argv = [process.execPath, ...(opts.nodeFlags ?? []), BUNDLE, 'daemon', ...args];
      // Like the unit's Environment=XTABLES_LOCKFILE: a non-root user cannot create /run/xtables.lock.
      return runAs
        ? { argv: [...setprivArgv(runAs), ...argv], env: { ...process.env, XTABLES_LOCKFILE: join(dir, 'xtables.lock') } }
        : { argv, env: process.env };
    },
    writeConfig(patch = {}) {
      writeFileSync(configPath, JSON.stringify(baseConfig(dir, backend, keys, { ...opts.config, ...patch }), null, 2), { mode: 0o600 });
      owner(configPath);
    },
    async startDaemon() {
      const { argv, env } = world.daemonCommand(['--config', configPath]);
      const p = lab.spawn(lab.router, argv, { env });
      await p.waitForOutput(/msg="postern started"/, 10_000);
      world.daemon = p;
      return p;
    },
    postern: (host, args, timeoutMs = 20_000) => lab.exec(host, [process.execPath, BUNDLE, ...args], { timeoutMs }),
    async sendRaw(host, packet, to = lab.router.ip4) {
      const r = await lab.exec(host, probeArgv(['udp-send', to, SPA_PORT, packet.toString('hex')]));
      assert.equal(r.code, 0, r.stderr);
    },
    packet: (over = {}) => buildPacket({
      credential: key, type: 'open', services: [{ proto: 'tcp', port: SERVICE_PORT }], durationS: 0,
      allowAddress: undefined, nowMs: Date.now(), ...over,
    }),
    async iptables(args, family = 4) {
      const r = await lab.exec(lab.router, [family === 4 ? 'iptables' : 'ip6tables', '-w', ...args]);
      return r.stdout;
    },
    async grantRules(family = 4) {
      if (backend === 'nft') return nftElements(lab, family);
      const out = await world.iptables(['-S', 'POSTERN-GRANTS'], family).catch(() => '');
      return out.split('\n').filter((l) => l.startsWith('-A POSTERN-GRANTS'));
    },
    async close() {
      await lab.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  world.writeConfig();
  lab.spawn(lab.router, probeArgv(['echo-server', SERVICE_PORT]));
  try {
    await lanService?.waitForOutput(/listening/, 5_000);
  } catch (err) {
    await world.close();
    throw err;
  }
  return world;
}

/** The lan host, its echo service and the router's LAN side of a world made with `lan`. */
export function lanOf(world: World): { lan: LabHost; gateway: LanGateway; service: LabProcess } {
  const { lan, routerLan } = world.lab;
  assert.ok(lan && routerLan && world.lanService, 'world was created without lan: true');
  return { lan, gateway: routerLan, service: world.lanService };
}

/** Run a command in the router namespace; rejects (with its output) unless it exits 0. */
export async function routerRun(world: World, argv: readonly string[], input?: string): Promise<string> {
  const r = await world.lab.exec(world.lab.router, argv, input === undefined ? {} : { input });
  assert.equal(r.code, 0, `${argv.join(' ')} in the router: exit ${r.code}\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

export function keyFileArgs(world: World): string[] {
  return ['--key-file', join(world.dir, 'tech.key')];
}

interface NftElem { elem?: { val?: { concat?: unknown[] }; timeout?: number; comment?: string } }

/** One line per grant element: "addr proto port timeout=N comment" (timeout changes on extension). */
async function nftElements(lab: Lab, family: 4 | 6): Promise<string[]> {
  const r = await lab.exec(lab.router, ['nft', '-j', 'list', 'set', 'inet', 'postern', `grants${family}`]);
  if (r.code !== 0) return [];
  const items = (JSON.parse(r.stdout) as { nftables: { set?: { elem?: (NftElem | unknown[])[] } }[] }).nftables;
  const elems = items.flatMap((i) => i.set?.elem ?? []);
  return elems.map((e) => {
    const el = (e as NftElem).elem;
    const concat = el?.val?.concat ?? (Array.isArray(e) ? e : []);
    return `${concat.map((c) => (typeof c === 'object' ? JSON.stringify(c) : String(c))).join(' ')} timeout=${el?.timeout ?? '?'} ${el?.comment ?? ''}`;
  });
}

/** World config for tests of the daemon's own refusals of junk and unknown key ids (their
 *  log lines, alerts and audit rows): with `spa.prefilter` (the default) the kernel drops
 *  those datagrams before the daemon reads them (test/e2e/prefilter.test.ts), so these
 *  tests switch it off to reach the layer behind it. */
export const NO_PREFILTER = { spa: { ...BASE_SPA, prefilter: false } } as const;

/** Datagrams the kernel prefilter has dropped so far (`postern status --json`). */
export async function prefilterDropped(world: World): Promise<number> {
  const r = await world.postern(world.lab.router, ['status', '--json', '--config', world.configPath]);
  assert.equal(r.code, 0, r.stderr);
  const dropped = (JSON.parse(r.stdout) as { prefilter?: { dropped?: number } }).prefilter?.dropped;
  assert.equal(typeof dropped, 'number', r.stdout.slice(0, 300));
  return dropped ?? 0;
}

/** Poll `fn` until it returns true or `ms` passes. */
export async function eventually(fn: () => Promise<boolean> | boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`timed out after ${ms} ms waiting for ${what}`);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
