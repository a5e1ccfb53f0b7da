// SPDX-License-Identifier: MIT
// The emulated arm64 board (issue 8): out/rpi-arm64 (its shipped arm64 Node, the arm64
// better-sqlite3 prebuild and the cross-built raw-socket) laid into a debootstrapped arm64
// Debian rootfs, run with qemu-user through binfmt_misc, chrooted inside the lab's router
// namespace. It proves that the cross-built addons load and work on arm64: the daemon
// captures a real SPA packet from the client namespace and a TCP connect succeeds only after.
//
// qemu-user does not translate NETLINK_NETFILTER nor the iptables get/setsockopt calls
// (arm64 `nft` says "Protocol not supported", arm64 iptables-legacy "Table does not
// exist"), so the firewall binaries the arm64 daemon spawns are the host's x86_64 ones,
// run natively from /usr/local/sbin/host with the host's libraries bound in read-only
// (docs/boards.md, "Emulated board test"). Everything else runs as arm64.
//
// The board is installed from its .deb with the arm64 dpkg (postinst creates the postern
// user), and the daemon runs as that user with only CAP_NET_RAW + CAP_NET_ADMIN, as the
// systemd unit runs it (the unit's StateDirectory/RuntimeDirectory made by hand).
//
// Prerequisites come from `./build.sh emulated-prep` (run here): as root, a missing
// prerequisite fails the test; only non-root runs skip (like every lab test), with a reason.
// Steps are a table, run in order for each backend.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLab, labSkipReason, type Lab, type LabProcess } from '../lab/lab.ts';
import { probeArgv, runProbe, tcpConnect, type UdpFloodResult } from '../lab/net-probe.ts';
import { generateCredential, type Credential } from '../../src/spa/credential.ts';
import { buildPacket } from '../../src/cli/spa-client.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SPA_PORT = 62442;
const SERVICE_PORT = 22;
const FIREWALL_TOOLS = ['nft', 'iptables', 'ip6tables', 'iptables-restore', 'ip6tables-restore'];
const HOST_BIN = '/usr/local/sbin/host';
const HOST_LIBS = ['/usr/lib/x86_64-linux-gnu', '/usr/lib64'];
/** qemu-user start-up of a 120 MB Node is slow on a shared 2-core machine. */
const EMU_TIMEOUT_MS = 90_000;
const FLOOD_PACKETS = 3000;

interface Board { readonly mnt: string; readonly lab: Lab; readonly key: Credential; readonly backend: string; daemon?: LabProcess }
type Step = readonly [name: string, run: (b: Board) => Promise<void>];

function sh(argv: readonly string[]): void {
  execFileSync(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'ignore', 'inherit'], timeout: 60_000 });
}

/** The cached rootfs under a throwaway overlay, with /dev, /proc and the host's firewall tools. */
function mountBoard(rootfs: string): { mnt: string; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'postern-arm64-'));
  const mnt = join(dir, 'root');
  for (const d of ['upper', 'work', 'root']) mkdirSync(join(dir, d));
  sh(['mount', '-t', 'overlay', 'overlay', '-o', `lowerdir=${rootfs},upperdir=${dir}/upper,workdir=${dir}/work`, mnt]);
  sh(['mount', '--rbind', '/dev', join(mnt, 'dev')]);
  sh(['mount', '-t', 'proc', 'proc', join(mnt, 'proc')]);
  // x86_64 nft / xtables-nft-multi run natively; their loader and libraries come from the
  // host, read-only, at the multiarch paths an arm64 rootfs leaves empty.
  for (const lib of HOST_LIBS) {
    mkdirSync(join(mnt, lib), { recursive: true });
    sh(['mount', '--bind', '-o', 'ro', lib, join(mnt, lib)]);
  }
  symlinkSync('usr/lib64', join(mnt, 'lib64'));
  mkdirSync(join(mnt, HOST_BIN), { recursive: true });
  copyFileSync('/usr/sbin/nft', join(mnt, HOST_BIN, 'nft'));
  copyFileSync('/usr/sbin/xtables-nft-multi', join(mnt, HOST_BIN, 'xtables-nft-multi'));
  for (const tool of FIREWALL_TOOLS.slice(1)) symlinkSync('xtables-nft-multi', join(mnt, HOST_BIN, tool));
  for (const f of ['nft', 'xtables-nft-multi']) chmodSync(join(mnt, HOST_BIN, f), 0o755);
  return { mnt, dir };
}

function unmountBoard(dir: string): void {
  spawnSync('umount', ['-R', join(dir, 'root')], { stdio: 'ignore' });
  rmSync(dir, { recursive: true, force: true });
}

function boardConfig(mnt: string, key: Credential, backend: string): void {
  const shipped = JSON.parse(readFileSync(join(mnt, 'etc/postern/config.json'), 'utf8')) as Record<string, Record<string, unknown>>;
  const tools = Object.fromEntries(FIREWALL_TOOLS.map((t) => [t.replace('-', '_'), `${HOST_BIN}/${t}`]));
  const config = {
    ...shipped,
    spa: { ...shipped['spa'], clock: 'trusted' },
    keys: [{ name: 'tech', credential: key.encode(), services: [`tcp/${SERVICE_PORT}`], max_duration_s: 120 }],
    firewall: { ...shipped['firewall'], ...tools, backend, reconcile_interval_s: 5 },
  };
  const conf = join(mnt, 'etc/postern/test.json');
  writeFileSync(conf, JSON.stringify(config, null, 2), { mode: 0o640 });
  const { uid, gid } = posternIds(mnt);
  chownSync(conf, 0, gid);
  // What the unit's StateDirectory= and RuntimeDirectory= would create.
  for (const d of ['var/lib/postern', 'run/postern']) {
    mkdirSync(join(mnt, d), { recursive: true, mode: 0o750 });
    chownSync(join(mnt, d), uid, gid);
  }
}

/** The postern user the package's postinst created in the rootfs. */
function posternIds(mnt: string): { uid: number; gid: number } {
  const line = readFileSync(join(mnt, 'etc/passwd'), 'utf8').split('\n').find((l) => l.startsWith('postern:'));
  const [, , uid, gid] = line?.split(':') ?? [];
  assert.ok(uid !== undefined && gid !== undefined && Number(uid) > 0, 'the .deb did not create the postern user');
  return { uid: Number(uid), gid: Number(gid) };
}

/** The unit's User=, AmbientCapabilities=, CapabilityBoundingSet=, NoNewPrivileges=, via the rootfs's own arm64 setpriv. */
const AS_UNIT = ['setpriv', '--reuid=postern', '--regid=postern', '--init-groups', '--inh-caps=-all,+net_raw,+net_admin',
  '--ambient-caps=+net_raw,+net_admin', '--bounding-set=-all,+net_raw,+net_admin', '--no-new-privs', '--',
  'env', 'XTABLES_LOCKFILE=/run/postern/xtables.lock'];

const inBoard = (b: Board, args: readonly string[]) => b.lab.exec(b.lab.router, ['chroot', b.mnt, '/usr/bin/postern', ...args], { timeoutMs: EMU_TIMEOUT_MS });

function rssMb(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Math.round(Number(m?.[1]) / 102.4) / 10;
}

const STEPS: readonly Step[] = [
  ['the arm64 .deb installs with the rootfs\'s dpkg (postinst makes the user)', async (b) => {
    const deb = readdirSync(join(ROOT, 'out/rpi-arm64')).find((f) => f.endsWith('_arm64.deb'));
    assert.ok(deb, 'out/rpi-arm64 has no .deb');
    copyFileSync(join(ROOT, 'out/rpi-arm64', deb), join(b.mnt, 'tmp', deb));
    const r = await b.lab.exec(b.lab.router, ['chroot', b.mnt, 'dpkg', '-i', `/tmp/${deb}`], { timeoutMs: EMU_TIMEOUT_MS * 2 });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /Setting up postern/);
    boardConfig(b.mnt, b.key, b.backend);
  }],
  ['postern version runs on the shipped arm64 Node', async (b) => {
    const r = await inBoard(b, ['version']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^postern \S+ \(node 24\.\d+\.\d+\)$/m);
    assert.match(execFileSync('file', ['-L', join(b.mnt, 'usr/lib/postern/node/bin/node')], { encoding: 'utf8' }), /ARM aarch64/);
  }],
  ['postern config check accepts the shipped config', async (b) => {
    const r = await inBoard(b, ['config', 'check', '/etc/postern/config.json']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /valid \(device rpi-arm64, 0 keys/);
  }],
  ['the daemon starts (better-sqlite3 arm64, raw-socket arm64); the guarded port is closed', async (b) => {
    b.daemon = b.lab.spawn(b.lab.router, ['chroot', b.mnt, ...AS_UNIT, '/usr/bin/postern', 'daemon', '--config', '/etc/postern/test.json']);
    await b.daemon.waitForOutput(/msg="postern started"/, EMU_TIMEOUT_MS);
    const st = readFileSync(`/proc/${b.daemon.pid}/status`, 'utf8');
    assert.match(st, /^Uid:\s+(\d+)\s/m);
    assert.notEqual(/^Uid:\s+(\d+)/m.exec(st)?.[1], '0', 'the daemon must not run as root');
    assert.match(st, /^CapEff:\s+0000000000003000$/m);
    assert.doesNotMatch(b.daemon.output(), /memory-only|degrad/i, 'the arm64 SQLite addon must work');
    assert.equal((await tcpConnect(b.lab, b.lab.client, b.lab.router.ip4, SERVICE_PORT, 700)).result, 'timeout');
  }],
  ['an SPA packet from the client opens the port for the client', async (b) => {
    const packet = buildPacket({ credential: b.key, type: 'open', services: [{ proto: 'tcp', port: SERVICE_PORT }], durationS: 0, allowAddress: undefined, nowMs: Date.now() });
    const sent = await b.lab.exec(b.lab.client, probeArgv(['udp-send', b.lab.router.ip4, SPA_PORT, packet.toString('hex')]));
    assert.equal(sent.code, 0, sent.stderr);
    await b.daemon?.waitForOutput(/msg="grant opened"/, EMU_TIMEOUT_MS);
    assert.equal((await tcpConnect(b.lab, b.lab.client, b.lab.router.ip4, SERVICE_PORT, 3000)).result, 'connected');
    assert.equal((await tcpConnect(b.lab, b.lab.attacker, b.lab.router.ip4, SERVICE_PORT, 700)).result, 'timeout');
  }],
  ['postern status (arm64) reports the running daemon, its backend and the open grant', async (b) => {
    const r = await inBoard(b, ['status', '--config', '/etc/postern/test.json', '--json']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const st = JSON.parse(r.stdout) as { daemon: string; backend: string; grantsOpen: number; database: { state: string } };
    assert.equal(st.daemon, 'running');
    assert.equal(st.backend, b.backend);
    assert.equal(st.database.state, 'ok');
    assert.ok(st.grantsOpen >= 1, `expected the open grant, got ${r.stdout}`);
  }],
  ['memory: RSS idle and after a bounded flood (printed, not asserted)', async (b) => {
    const pid = b.daemon?.pid ?? 0;
    const idle = rssMb(pid);
    const flood = await runProbe<UdpFloodResult>(b.lab, b.lab.attacker, ['udp-flood', b.lab.router.ip4, SPA_PORT, FLOOD_PACKETS, 20, 8]);
    await new Promise((r) => setTimeout(r, 2000));
    // A bare arm64 Node under the same qemu: the daemon's own share is the difference.
    const bare = b.lab.spawn(b.lab.router, ['chroot', b.mnt, '/usr/lib/postern/node/bin/node', '--max-old-space-size=64', '-e', 'setTimeout(() => {}, 20000)']);
    await new Promise((r) => setTimeout(r, 4000));
    const bareMb = rssMb(bare.pid);
    bare.kill('SIGKILL');
    process.stdout.write(`# arm64 (qemu-user) daemon RSS: idle ${idle} MB, after ${flood.sent} junk packets in ${flood.ms} ms ${rssMb(pid)} MB; a bare arm64 Node under the same qemu: ${bareMb} MB (qemu's translation cache is in every figure)\n`);
  }],
];

const skip = labSkipReason();

test('emulated arm64 board: out/rpi-arm64 in a debootstrapped arm64 rootfs', { skip, timeout: 600_000 }, async (t) => {
  const prep = spawnSync('bash', [join(ROOT, 'build.sh'), 'emulated-prep'], { encoding: 'utf8', timeout: 540_000 });
  assert.equal(prep.status, 0, `./build.sh emulated-prep failed:\n${prep.stderr.slice(-3000)}`);
  const rootfs = /^rootfs=(.*)$/m.exec(prep.stdout)?.[1];
  assert.ok(rootfs, prep.stdout);
  for (const backend of ['nft', 'iptables']) {
    await t.test(`backend ${backend}`, async (tt) => {
      const { mnt, dir } = mountBoard(rootfs);
      const lab = await createLab({ tag: 'arm' }).catch((err: unknown) => { unmountBoard(dir); throw err; });
      tt.after(async () => { await lab.close(); unmountBoard(dir); });
      lab.spawn(lab.router, probeArgv(['echo-server', SERVICE_PORT]));
      const board: Board = { mnt, lab, key: generateCredential(), backend };
      for (const [name, run] of STEPS) {
        if (backend === 'iptables' && name.startsWith('memory')) continue;
        await tt.test(name, () => run(board));
      }
    });
  }
});
