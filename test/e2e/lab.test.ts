// SPDX-License-Identifier: MIT
/**
 * The namespace lab itself: the segment carries IPv4 and IPv6 between the hosts, the probes
 * tell connected / refused / filtered apart, the optional lan host is reachable only through
 * a router that does not forward by default, and every exit path leaves no namespace and no
 * process behind (close, a throwing test, process.exit, an uncaught error, SIGKILL + sweep).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { createLab, IP_BIN, labSkipReason } from '../lab/lab.ts';
import type { Lab, LabHost } from '../lab/lab.ts';
import { probeArgv, runProbe, tcpConnect, udpProbe } from '../lab/net-probe.ts';
import type { TcpHoldResult, UdpFloodResult } from '../lab/net-probe.ts';

/** Skipped test by test (not the suite) so a run without root reports them as skipped. */
const onlyInLab = { skip: labSkipReason() ?? false };
const LAB_URL = new URL('../lab/lab.ts', import.meta.url).href;
const CLOSED_PORT = 23;
const SERVICE_PORT = 22;

function namespacesOf(pid: number): string[] {
  const text = execFileSync(IP_BIN, ['netns', 'list'], { encoding: 'utf8' });
  return text.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith(`pst-${pid}-`));
}

/** Gone = no /proc entry, or a zombie awaiting its reaper (it runs nothing any more). */
function processGone(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').startsWith('Z');
  } catch {
    return true;
  }
}

async function waitGone(pid: number): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    if (processGone(pid)) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return false;
}

async function rxPackets(lab: Lab, host: LabHost): Promise<number> {
  const { stdout } = await lab.exec(host, [IP_BIN, '-j', '-s', 'link', 'show', host.ifname]);
  const [link] = JSON.parse(stdout) as [{ stats64: { rx: { packets: number } } }];
  return link.stats64.rx.packets;
}

/**
 * Runs a child Node that opens a lab, starts `sleep` in the router (in the lan host with
 * `lan`; a process that ignores its stdin, so only the lab's cleanup can end it), prints
 * what it made, then `ending`.
 */
async function childLab(ending: string, lan = false): Promise<{ code: number | null; signal: string | null; ns: string[]; pid: number }> {
  const script = `
    const { createLab } = await import(${JSON.stringify(LAB_URL)});
    const lab = await createLab({ tag: 'child', lan: ${String(lan)} });
    const p = lab.spawn(lab.lan ?? lab.router, ['sleep', '30']);
    const ns = [lab.router.ns, lab.client.ns, lab.attacker.ns, lab.switchNs, ...(lab.lan ? [lab.lan.ns] : [])];
    process.stdout.write(JSON.stringify({ ns, pid: p.pid }) + '\\n');
    ${ending}`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => child.on('close', (c, s) => resolve([c, s])));
  const line = out.split('\n').find((l) => l.startsWith('{'));
  assert.ok(line, `child printed no lab (code ${code}): ${out}${err}`);
  const made = JSON.parse(line) as { ns: string[]; pid: number };
  return { code, signal, ...made };
}

describe('network-namespace lab', () => {
  test('carries IPv4 and IPv6 between hosts, probes tell states apart, close cleans up', onlyInLab, async (t) => {
    const t0 = performance.now();
    const lab = await createLab();
    const setupMs = performance.now() - t0;
    t.diagnostic(`createLab took ${setupMs.toFixed(1)} ms`);
    assert.ok(setupMs < 5_000, `setup took ${setupMs} ms`);
    try {
      assert.deepEqual([lab.router.ip4, lab.client.ip4, lab.attacker.ip4], ['198.18.0.1', '198.18.0.2', '198.18.0.3']);
      assert.equal(lab.lan, undefined, 'no LAN host unless asked for');
      assert.equal(lab.routerLan, undefined);
      assert.equal(namespacesOf(process.pid).length, 4, 'router, client, attacker, switch');
      assert.equal((await lab.exec(lab.router, [IP_BIN, '-br', 'link', 'show', 'eth1'])).code, 1, 'no LAN link on the router');
      const server = lab.spawn(lab.router, probeArgv(['echo-server', SERVICE_PORT]));
      await server.waitForOutput(/listening 22/, 5_000);
      for (const to of [lab.router.ip4, lab.router.ip6]) {
        assert.equal((await tcpConnect(lab, lab.client, to, SERVICE_PORT, 2_000)).result, 'connected', to);
        assert.equal((await tcpConnect(lab, lab.attacker, to, SERVICE_PORT, 2_000)).result, 'connected', to);
        assert.equal((await tcpConnect(lab, lab.client, to, CLOSED_PORT, 2_000)).result, 'refused', to);
        assert.equal((await udpProbe(lab, lab.client, to, CLOSED_PORT, 2_000)).result, 'icmp-unreachable', to);
      }
      await server.waitForOutput(/accepted fd50:7374::3/, 2_000);
      assert.match(server.output(), /accepted 198\.18\.0\.2\n/);

      const hold = await runProbe<TcpHoldResult>(lab, lab.client, ['tcp-hold', lab.router.ip6, SERVICE_PORT, 1]);
      assert.equal(hold.result, 'ok');
      assert.ok(hold.echoes >= 4, `echoes ${hold.echoes}`);

      const before = await rxPackets(lab, lab.router);
      const flood = await runProbe<UdpFloodResult>(lab, lab.attacker, ['udp-flood', lab.router.ip4, CLOSED_PORT, 300, 5, 7]);
      assert.deepEqual([flood.sent, flood.errors, flood.seed], [300, 0, 7]);
      assert.ok((await rxPackets(lab, lab.router)) - before >= 300, 'router saw the flood');

      // The segment is closed: only the on-link routes, nothing out of 198.18.0.0/24.
      const routes = await lab.exec(lab.client, [IP_BIN, '-4', 'route', 'show']);
      assert.equal(routes.stdout.trim(), '198.18.0.0/24 dev eth0 proto kernel scope link src 198.18.0.2');

      await lab.close();
      assert.deepEqual(namespacesOf(process.pid), []);
      assert.notEqual(await server.exited(), 0);
      assert.ok(processGone(server.pid), 'echo server gone');
      await lab.close(); // idempotent
      assert.throws(() => lab.spawn(lab.router, ['true']), /closed/);
    } finally {
      await lab.close();
    }
  });

  test('lan: a host behind the router, reached only by it; the router forwards only when told to', onlyInLab, async () => {
    const lab = await createLab({ lan: true, tag: 'lan' });
    try {
      const { lan, routerLan, router, client } = lab;
      assert.deepEqual([lan.name, lan.ip4, lan.ip6, lan.ifname], ['lan', '198.19.0.10', 'fd50:7375::10', 'eth0']);
      assert.deepEqual(routerLan, { ip4: '198.19.0.1', ip6: 'fd50:7375::1', ifname: 'eth1' });
      assert.equal(namespacesOf(process.pid).length, 5);
      // The lan host's only way out is the router; client and attacker keep their closed segment.
      assert.equal((await lab.exec(lan, [IP_BIN, '-4', 'route', 'show', 'default'])).stdout.trim(), 'default via 198.19.0.1 dev eth0');
      assert.match((await lab.exec(lan, [IP_BIN, '-6', 'route', 'show', 'default'])).stdout, /^default via fd50:7375::1 dev eth0 /);
      assert.equal((await lab.exec(client, [IP_BIN, '-4', 'route', 'show'])).stdout.trim(), '198.18.0.0/24 dev eth0 proto kernel scope link src 198.18.0.2');
      const forwarding = await lab.exec(router, ['cat', '/proc/sys/net/ipv4/ip_forward', '/proc/sys/net/ipv6/conf/all/forwarding']);
      assert.equal(forwarding.stdout, '0\n0\n', 'a fresh router namespace does not forward');

      const server = lab.spawn(lan, probeArgv(['echo-server', SERVICE_PORT]));
      const routerServer = lab.spawn(router, probeArgv(['echo-server', SERVICE_PORT]));
      await Promise.all([server.waitForOutput(/listening 22/, 5_000), routerServer.waitForOutput(/listening 22/, 5_000)]);
      for (const [to, back] of [[lan.ip4, routerLan.ip4], [lan.ip6, routerLan.ip6]] as const) {
        assert.equal((await tcpConnect(lab, router, to, SERVICE_PORT, 2_000)).result, 'connected', `router -> ${to}`);
        assert.equal((await tcpConnect(lab, lan, back, SERVICE_PORT, 2_000)).result, 'connected', `lan -> ${back}`);
        assert.equal((await tcpConnect(lab, lan, back, CLOSED_PORT, 2_000)).result, 'refused', `lan -> ${back}:${CLOSED_PORT}`);
        assert.equal((await tcpConnect(lab, client, to, SERVICE_PORT, 2_000)).code, 'ENETUNREACH', `client has no route to ${to}`);
      }
      // Routed through the router, the client is silently dropped until the router forwards.
      await lab.exec(client, [IP_BIN, 'route', 'add', '198.19.0.0/24', 'via', router.ip4]);
      await lab.exec(client, [IP_BIN, 'route', 'add', 'fd50:7375::/64', 'via', router.ip6]);
      for (const to of [lan.ip4, lan.ip6]) assert.equal((await tcpConnect(lab, client, to, SERVICE_PORT, 500)).result, 'timeout', to);
      assert.doesNotMatch(server.output(), /accepted 198\.18|accepted fd50:7374/);
      await lab.exec(router, ['tee', '/proc/sys/net/ipv4/ip_forward', '/proc/sys/net/ipv6/conf/all/forwarding'], { input: '1\n' });
      for (const to of [lan.ip4, lan.ip6]) assert.equal((await tcpConnect(lab, client, to, SERVICE_PORT, 2_000)).result, 'connected', to);
      // Plain routing keeps the client's address (no NAT in the lab itself).
      await server.waitForOutput(/accepted fd50:7374::2\n/, 2_000);
      assert.match(server.output(), /accepted 198\.18\.0\.2\n/);

      await lab.close();
      assert.deepEqual(namespacesOf(process.pid), [], 'all five namespaces gone');
      assert.ok(await waitGone(server.pid), 'lan echo server gone');
    } finally {
      await lab.close();
    }
  });

  test('a test that throws midway still leaves nothing behind', onlyInLab, async () => {
    let lab: Lab | undefined;
    let pid = 0;
    await assert.rejects(async () => {
      try {
        lab = await createLab({ tag: 'throws' });
        pid = lab.spawn(lab.client, ['sleep', '30']).pid;
        throw new Error('test failed midway');
      } finally {
        await lab?.close();
      }
    }, /midway/);
    assert.deepEqual(namespacesOf(process.pid), []);
    assert.ok(await waitGone(pid), 'sleep gone');
  });

  for (const [name, ending, lan] of [['process.exit(1)', 'process.exit(1);', false], ['an uncaught error (lab with lan)', "throw new Error('crash');", true]] as const) {
    test(`the exit hook cleans up after ${name}`, onlyInLab, async () => {
      const child = await childLab(ending, lan);
      assert.equal(child.code, 1);
      assert.equal(child.ns.length, lan ? 5 : 4);
      assert.deepEqual(namespacesOf(Number(/^pst-(\d+)-/.exec(child.ns[0] ?? '')?.[1])), []);
      assert.ok(await waitGone(child.pid), 'sleep gone');
    });
  }

  test('createLab sweeps namespaces and processes left by a SIGKILLed run', onlyInLab, async () => {
    const child = await childLab("process.kill(process.pid, 'SIGKILL');", true);
    assert.equal(child.signal, 'SIGKILL');
    const childPid = Number(/^pst-(\d+)-/.exec(child.ns[0] ?? '')?.[1]);
    assert.deepEqual(namespacesOf(childPid).sort(), [...child.ns].sort(), 'left behind before the sweep');
    assert.ok(!processGone(child.pid), 'orphaned sleep still runs before the sweep');
    const lab = await createLab({ tag: 'sweeper' });
    try {
      assert.deepEqual(namespacesOf(childPid), []);
      assert.ok(await waitGone(child.pid), 'sweep killed the orphan');
    } finally {
      await lab.close();
    }
  });
});
