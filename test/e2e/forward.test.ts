// SPDX-License-Identifier: MIT
// Forwarding grants end to end (DESIGN.md "Firewall model": DNAT from a WAN port to a LAN
// host:port for one source address, with the matching FORWARD accept; docs/config.md
// keys[].forwards, forwarding.enable_ip_forward). The real bundle runs as the daemon in
// the router namespace; the lab's lan host (198.19.0.10 / fd50:7375::10) sits behind it
// with an echo service on tcp/22; the client asks for router:2222 -> lan:22 with
// `postern open --forward`. Every scenario runs against each real backend. Needs root.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { labSkipReason, type LabHost } from '../lab/lab.ts';
import { runProbe, tcpConnect, type TcpHoldResult } from '../lab/net-probe.ts';
import {
  BACKENDS, bundleSkipReason, type Backend, createWorld, keyFileArgs, lanOf, routerRun, type World, type WorldOptions,
} from './harness.ts';

const skip = labSkipReason() ?? bundleSkipReason();

/** The external port on the router, shared by both targets: config validation accepts
 *  that, and they never meet in one grant (a grant is for one source address, so one
 *  family, and its DNAT names its target). */
const EXT_PORT = 2222;
const LAN_PORT = 22;
const FORWARDS = [
  { to: `198.19.0.10:${LAN_PORT}`, port: EXT_PORT },
  { to: `[fd50:7375::10]:${LAN_PORT}`, port: EXT_PORT },
];
const SYSCTL4 = '/proc/sys/net/ipv4/ip_forward';
const SYSCTL6 = '/proc/sys/net/ipv6/conf/all/forwarding';
/** How long a probe waits before calling a port filtered (silence, not a refusal). */
const SILENT_MS = 500;

function forwardWorld(backend: Backend, enableIpForward = true): WorldOptions {
  return {
    backend, lan: true, keyExtra: { forwards: FORWARDS },
    config: { forwarding: { enable_ip_forward: enableIpForward } },
  };
}

async function withWorld(t: TestContext, opts: WorldOptions, fn: (w: World) => Promise<void>): Promise<void> {
  const w = await createWorld(opts);
  t.after(() => w.close());
  await w.startDaemon();
  await fn(w);
}

async function sysctls(w: World): Promise<string> {
  return routerRun(w, ['cat', SYSCTL4, SYSCTL6]);
}

/** The ext port as seen from `from`: 'timeout' means filtered (DROP), never a refusal. */
async function extPort(w: World, from: LabHost, family: 4 | 6 = 4): Promise<string> {
  const to = family === 4 ? w.lab.router.ip4 : w.lab.router.ip6;
  return (await tcpConnect(w.lab, from, to, EXT_PORT, SILENT_MS)).result;
}

function openForward(w: World, target: string, opts: { family?: 4 | 6; duration?: number; wait?: boolean } = {}) {
  const router = opts.family === 6 ? w.lab.router.ip6 : w.lab.router.ip4;
  return w.postern(w.lab.client, [
    'open', router, `tcp/${EXT_PORT}`, '--forward', target, ...keyFileArgs(w), '--duration', String(opts.duration ?? 3),
    ...(opts.wait === false ? [] : ['--wait', '--timeout', '5']),
  ]);
}

/** Asserts a `postern open` exited 0; on failure shows the daemon's side as well. */
function assertOpened(w: World, r: { code: number; stdout: string; stderr: string }): void {
  assert.equal(r.code, 0, `${r.stderr}${r.stdout}\ndaemon log:\n${w.daemon.output().slice(-3000)}`);
}

function suite(backend: Backend): void {
  test(`[${backend}] IP forwarding: enabled and logged only when the config says so`, { skip }, async (t) => {
    const w = await createWorld(forwardWorld(backend, false));
    t.after(() => w.close());
    assert.equal(await sysctls(w), '0\n0\n', 'the lab router starts without forwarding');
    const off = await w.startDaemon();
    await off.waitForOutput(/msg="keys have forwarding targets but the kernel does not forward;[^\n]*sysctl=\/proc\/sys\/net\/ipv6\/conf\/all\/forwarding/, 3000);
    assert.match(off.output(), /msg="keys have forwarding targets but the kernel does not forward;[^\n]*sysctl=\/proc\/sys\/net\/ipv4\/ip_forward/);
    assert.equal(await sysctls(w), '0\n0\n', 'without enable_ip_forward postern only warns');
    off.kill('SIGTERM');
    assert.equal(await off.exited(), 0);

    w.writeConfig({ forwarding: { enable_ip_forward: true } });
    const on = await w.startDaemon();
    assert.match(on.output(), /msg="enabled IP forwarding[^"\n]*" sysctl=\/proc\/sys\/net\/ipv4\/ip_forward/);
    assert.match(on.output(), /msg="enabled IP forwarding[^"\n]*" sysctl=\/proc\/sys\/net\/ipv6\/conf\/all\/forwarding/);
    assert.equal(await sysctls(w), '1\n1\n');
  });

  test(`[${backend}] forward grant: silent before, client reaches the LAN host with its own address, attacker out, expiry closes, held flow survives`, { skip }, async (t) => {
    await withWorld(t, forwardWorld(backend), async (w) => {
      const { lab } = w;
      const { service } = lanOf(w);
      assert.equal(await extPort(w, lab.client), 'timeout', 'client before SPA');
      assert.equal(await extPort(w, lab.attacker), 'timeout', 'attacker before SPA');
      assert.equal(await extPort(w, lab.client, 6), 'timeout', 'client over IPv6 before SPA');
      assert.doesNotMatch(service.output(), /accepted/, 'nothing reached the LAN host');

      const r = await openForward(w, FORWARDS[0]!.to);
      assertOpened(w, r);
      assert.match(r.stdout, new RegExp(`tcp/${EXT_PORT} is open`));
      // The port can open (kernel) a moment before the daemon writes its log line.
      await w.daemon.waitForOutput(/msg="grant opened" key=tech/, 2000);
      // DNAT rewrites the destination only: the LAN host sees the client's own address.
      await service.waitForOutput(/accepted 198\.18\.0\.2\n/, 2000);
      assert.equal(await extPort(w, lab.attacker), 'timeout', 'attacker during the grant');
      assert.doesNotMatch(service.output(), /accepted 198\.18\.0\.3/);

      // Hold a connection across the expiry (3 s): conntrack keeps its NAT binding.
      const hold = runProbe<TcpHoldResult>(lab, lab.client, ['tcp-hold', lab.router.ip4, EXT_PORT, 5]);
      await w.daemon.waitForOutput(/msg="grant closed"[^\n]*why=expired/, 6000);
      assert.equal(await extPort(w, lab.client), 'timeout', 'new connections after expiry');
      const held = await hold;
      assert.equal(held.result, 'ok', JSON.stringify(held));
      assert.ok(held.echoes >= 15, `echoes ${held.echoes}`);
    });
  });

  test(`[${backend}] forward targets the key does not list are refused (denied_forward), a cross-family one fails: nothing opens`, { skip }, async (t) => {
    await withWorld(t, forwardWorld(backend), async (w) => {
      const { lab } = w;
      const { service } = lanOf(w);
      // A port the key does not list, then an address it does not list.
      const r = await openForward(w, `198.19.0.10:${LAN_PORT + 1}`, { wait: false });
      assert.equal(r.code, 0, r.stderr);
      await w.daemon.waitForOutput(/msg=refused reason=denied_forward source=198\.18\.0\.2 key=tech/, 3000);
      const r2 = await openForward(w, `198.19.0.11:${LAN_PORT}`, { wait: false });
      assert.equal(r2.code, 0, r2.stderr);
      // A listed target on an external port other than its own: also not what the key says.
      const r3 = await w.postern(lab.client, ['open', lab.router.ip4, `tcp/${EXT_PORT + 1}`, '--forward', FORWARDS[0]!.to, ...keyFileArgs(w)]);
      assert.equal(r3.code, 0, r3.stderr);
      // A listed target of the other family: no DNAT can join an IPv4 client to an IPv6 host.
      const r4 = await openForward(w, FORWARDS[1]!.to, { wait: false });
      assert.equal(r4.code, 0, r4.stderr);
      assert.equal(await extPort(w, lab.client), 'timeout', 'still filtered after every refused request');
      assert.equal((await tcpConnect(lab, lab.client, lab.router.ip4, EXT_PORT + 1, SILENT_MS)).result, 'refused', 'tcp/2223 is not even guarded');
      assert.doesNotMatch(w.daemon.output(), /grant opened/);
      assert.doesNotMatch(service.output(), /accepted/);
      assert.equal((await w.grantRules()).length, 0);
    });
  });

  test(`[${backend}] IPv6 forward grant: [fd50:7375::10]:22 through the router's IPv6 address`, { skip }, async (t) => {
    await withWorld(t, forwardWorld(backend), async (w) => {
      const { lab } = w;
      const { service } = lanOf(w);
      assert.equal(await extPort(w, lab.client, 6), 'timeout', 'before SPA');
      const r = await openForward(w, FORWARDS[1]!.to, { family: 6, duration: 2 });
      assertOpened(w, r);
      await service.waitForOutput(/accepted fd50:7374::2\n/, 2000);
      assert.equal(await extPort(w, lab.attacker, 6), 'timeout', 'attacker over IPv6');
      assert.equal(await extPort(w, lab.client, 4), 'timeout', 'the IPv6 grant does not open IPv4');
      await w.daemon.waitForOutput(/msg="grant closed"[^\n]*why=expired/, 5000);
      assert.equal(await extPort(w, lab.client, 6), 'timeout', 'after expiry');
      assert.doesNotMatch(service.output(), /accepted (fd50:7374::3|198\.18\.0\.)/);
    });
  });
}

for (const backend of BACKENDS) suite(backend);
