// SPDX-License-Identifier: MIT
// The daemon as the systemd unit runs it (rootfs-overlay/systemd): a dedicated non-root
// user holding only CAP_NET_RAW and CAP_NET_ADMIN, inherited by the nft / iptables
// children as ambient capabilities, no_new_privs set. With both backends an SPA open works;
// without CAP_NET_ADMIN the daemon refuses to start rather than guard nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { BACKENDS, BUNDLE, DAEMON_USER, SERVICE_PORT, bundleSkipReason, createWorld, setprivArgv, type DaemonUser } from '../e2e/harness.ts';
import { labSkipReason } from '../lab/lab.ts';
import { tcpConnect } from '../lab/net-probe.ts';

const skip = labSkipReason() ?? bundleSkipReason();
/** The harness's default daemon user (every e2e world runs its daemon so): an id with no
 *  passwd entry, since the daemon needs none (no home, no login). */
const USER: DaemonUser = DAEMON_USER;
const CAP_NET_ADMIN = 12;
const CAP_NET_RAW = 13;

function status(pid: number): Map<string, string> {
  return new Map(readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').map((l) => {
    const [k, ...v] = l.split(':');
    return [k ?? '', v.join(':').trim()];
  }));
}

for (const backend of BACKENDS) {
  test(`non-root daemon with only CAP_NET_RAW+CAP_NET_ADMIN (${backend}): an SPA open works`, { skip }, async (t) => {
    const world = await createWorld({ backend, runAs: USER, tag: 'nr' });
    t.after(() => world.close());
    const daemon = await world.startDaemon();
    const st = status(daemon.pid);
    assert.match(st.get('Uid') ?? '', /^64242\s+64242\s+64242\s+64242$/);
    const want = ((1n << BigInt(CAP_NET_ADMIN)) | (1n << BigInt(CAP_NET_RAW))).toString(16).padStart(16, '0');
    for (const set of ['CapEff', 'CapPrm', 'CapAmb', 'CapBnd']) assert.equal(st.get(set), want, set);
    assert.equal(st.get('NoNewPrivs'), '1');
    const { lab } = world;
    assert.equal((await tcpConnect(lab, lab.client, lab.router.ip4, SERVICE_PORT, 700)).result, 'timeout');
    await world.sendRaw(lab.client, world.packet());
    await daemon.waitForOutput(/msg="grant opened"/, 5_000);
    assert.equal((await tcpConnect(lab, lab.client, lab.router.ip4, SERVICE_PORT, 3_000)).result, 'connected');
    assert.ok((await world.grantRules()).length > 0);
    daemon.kill('SIGTERM');
    assert.equal(await daemon.exited(), 0, daemon.output());
  });
}

test('non-root daemon without CAP_NET_ADMIN refuses to start', { skip }, async (t) => {
  const noAdmin = { ...USER, caps: ['net_raw'] };
  const world = await createWorld({ backend: 'nft', runAs: noAdmin, tag: 'nr' });
  t.after(() => world.close());
  const p = world.lab.spawn(world.lab.router, [...setprivArgv(noAdmin), process.execPath, BUNDLE, 'daemon', '--config', world.configPath]);
  assert.equal(await p.exited(), 1, p.output());
  assert.doesNotMatch(p.output(), /postern started/);
  assert.match(p.output(), /start failed|Operation not permitted/);
});

test('legacy iptables as that user needs XTABLES_LOCKFILE (the unit sets it to /run/postern)', { skip }, async (t) => {
  const world = await createWorld({ backend: 'iptables', runAs: USER, tag: 'nr' });
  t.after(() => world.close());
  const argv = [...setprivArgv(USER), 'iptables-legacy', '-w', '-S', 'INPUT'];
  const bare = await world.lab.exec(world.lab.router, argv);
  assert.notEqual(bare.code, 0);
  assert.match(bare.stderr, /can't open lock file \/run\/xtables\.lock/);
  const withLock = await world.lab.exec(world.lab.router, argv, { env: { ...process.env, XTABLES_LOCKFILE: `${world.dir}/xtables.lock` } });
  assert.equal(withLock.code, 0, withLock.stderr);
});
