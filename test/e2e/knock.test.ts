// SPDX-License-Identifier: MIT
// Port knocking end to end (issue 4; docs/config.md "Knock doors"): the real bundle as the
// daemon in the lab router, real raw sockets, real nft/iptables. Knocks come from plain
// sockets in the client (test/lab/knock-probe.ts); sweeps and the spoofed flood come from
// a raw SYN sender compiled at test time (test/lab/syn-blast.c), in the attacker namespace.
// Every flood is bounded in count and time.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labSkipReason, type LabHost } from '../lab/lab.ts';
import { tcpConnect, udpProbe } from '../lab/net-probe.ts';
import { TotpKey, currentStep, deriveSequence, formatDoorKey } from '../../src/knock/totp.ts';
import {
  BACKENDS, DAEMON_USER, SERVICE_PORT, bundleSkipReason, createWorld, eventually, routerRun, sleep, type Backend, type World, type WorldOptions,
} from './harness.ts';

const skip = labSkipReason() ?? bundleSkipReason() ?? (existsSync('/usr/bin/gcc') ? undefined : 'needs gcc (syn-blast helper)');
const KNOCK_PROBE = fileURLToPath(new URL('../lab/knock-probe.ts', import.meta.url));
const BLAST_SRC = fileURLToPath(new URL('../lab/syn-blast.c', import.meta.url));
const FLOOD_PPS = 20_000;
const SSH_DOOR = { name: 'ssh', sequence: ['7000', '8000:udp', '9000'], seq_timeout_s: 3, services: [`tcp/${SERVICE_PORT}`], duration_s: 30 };

let blastBin: string | undefined;
function blast(): string {
  if (blastBin) return blastBin;
  const dir = mkdtempSync(join(tmpdir(), 'postern-blast-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  blastBin = join(dir, 'syn-blast');
  execFileSync('gcc', ['-O2', '-o', blastBin, BLAST_SRC]);
  return blastBin;
}

async function withWorld(t: TestContext, backend: Backend, opts: WorldOptions, fn: (w: World) => Promise<void>): Promise<void> {
  const w = await createWorld({ backend, ...opts });
  t.after(() => w.close());
  await w.startDaemon();
  await fn(w);
}

async function knock(w: World, from: LabHost, host: string, ports: readonly string[], repeat = 1, delayMs = 0): Promise<void> {
  const r = await w.lab.exec(from, [process.execPath, KNOCK_PROBE, host, String(delayMs), String(repeat), ...ports], { timeoutMs: 20_000 });
  assert.equal(r.code, 0, r.stderr);
}

async function synBlast(w: World, src: string, ports: string, count: number, maxS: number, pps = 0): Promise<{ sent: number; ms: number }> {
  const argv = [blast(), w.lab.router.ip4, src, ports, String(count), String(maxS), String(pps)];
  const r = await w.lab.exec(w.lab.attacker, argv, { timeoutMs: (maxS + 10) * 1000 });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as { sent: number; ms: number };
}

const rssMb = (pid: number): number => Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
const service = (w: World, from: LabHost, to = w.lab.router.ip4) => tcpConnect(w.lab, from, to, SERVICE_PORT, 700).then((r) => r.result);

function suite(backend: Backend): void {
  test(`[${backend}] a static door opens for the knocker only (IPv4 and IPv6); knock ports stay silent`, { skip }, async (t) => {
    await withWorld(t, backend, { config: { doors: [SSH_DOOR] } }, async (w) => {
      const { lab } = w;
      assert.equal(await service(w, lab.client), 'timeout');
      // Silent for everyone, knock and guard ports alike: no RST, no ICMP (DESIGN.md fact 1).
      for (const port of [7000, 6999, 9002]) assert.equal((await tcpConnect(lab, lab.attacker, lab.router.ip4, port, 500)).result, 'timeout', `tcp/${port}`);
      for (const port of [8000, 8001]) assert.equal((await udpProbe(lab, lab.attacker, lab.router.ip4, port, 500)).result, 'silent', `udp/${port}`);
      assert.equal((await tcpConnect(lab, lab.attacker, lab.router.ip6, 7000, 500)).result, 'timeout', 'tcp/7000 over IPv6');
      assert.equal((await tcpConnect(lab, lab.attacker, lab.router.ip4, 8081, 500)).result, 'refused', 'an unrelated closed port answers');
      await knock(w, lab.client, lab.router.ip4, SSH_DOOR.sequence);
      await w.daemon.waitForOutput(/msg="knock opened" door=ssh source=198\.18\.0\.2/, 3000);
      await eventually(async () => (await service(w, lab.client)) === 'connected', 3000, 'service open for the client');
      assert.equal(await service(w, lab.attacker), 'timeout');
      await knock(w, lab.client, lab.router.ip6, SSH_DOOR.sequence);
      await w.daemon.waitForOutput(/msg="knock opened" door=ssh source=fd50:7374::2/, 3000);
      await eventually(async () => (await service(w, lab.client, lab.router.ip6)) === 'connected', 3000, 'service open over IPv6');
    });
  });

  test(`[${backend}] a time-derived door opens once; the same sequence replayed from the attacker is refused`, { skip }, async (t) => {
    const raw = Buffer.alloc(32, 0x5a);
    const totp = { key: formatDoorKey(raw), step_s: 30, length: 4, port_min: 20000, port_max: 40000 };
    await withWorld(t, backend, { config: { doors: [{ name: 'otp', totp, services: [`tcp/${SERVICE_PORT}`], duration_s: 30 }] } }, async (w) => {
      const { lab } = w;
      // Range ports are captured and silent like any knock port (probed over IPv6: the probe
      // is a range hit, which would put the attacker's IPv4 address under penalty).
      assert.equal((await tcpConnect(lab, lab.attacker, lab.router.ip6, 31337, 500)).result, 'timeout');
      const seq = deriveSequence(new TotpKey(raw), currentStep(Date.now(), 30), { length: 4, portMin: 20000, portMax: 40000, avoid: new Set() });
      await knock(w, lab.client, lab.router.ip4, seq.map(String));
      await w.daemon.waitForOutput(/msg="knock opened" door=otp source=198\.18\.0\.2 step=\d+/, 3000);
      await eventually(async () => (await service(w, lab.client)) === 'connected', 3000, 'service open for the client');
      await knock(w, lab.attacker, lab.router.ip4, seq.map(String));
      await w.daemon.waitForOutput(/msg=refused reason=knock_replay source=198\.18\.0\.3 key=otp/, 3000);
      assert.equal(await service(w, lab.attacker), 'timeout');
    });
  });

  test(`[${backend}] sweeps from the attacker (ordered, reverse, random order, 1-65535) open nothing`, { skip }, async (t) => {
    await withWorld(t, backend, { config: { doors: [SSH_DOOR, { ...SSH_DOOR, name: 'close', sequence: ['9000', '8000:udp', '7000'] }] } }, async (w) => {
      const { lab } = w;
      // Both directions on each backend; the random orders split between them (suite time).
      // Each sweep from its own (spoofed) source, so no sweep runs under another's penalty.
      const orders = ['up', 'down', backend === 'nft' ? 'random:7' : 'random:99'];
      for (const [i, order] of orders.entries()) {
        const src = i === 0 ? lab.attacker.ip4 : `10.77.0.${i}`;
        const r = await synBlast(w, src, order, 65535, 20);
        assert.equal(r.sent, 65535, order);
        t.diagnostic(`${backend} sweep ${order} from ${src}: 65535 SYNs in ${r.ms} ms`);
        await w.daemon.waitForOutput(new RegExp(`msg=refused reason=knock_guard source=${src.replaceAll('.', '\\.')}`), 3000);
      }
      await sleep(1000);
      assert.doesNotMatch(w.daemon.output(), /knock opened/);
      assert.deepEqual(await w.grantRules(), []);
      assert.equal(await service(w, lab.attacker), 'timeout');
      w.daemon.kill('SIGTERM');
      const stopped = await w.daemon.waitForOutput(/msg="postern stopped"[^\n]*/, 5000);
      t.diagnostic(`${backend} sweeps: capture-port hits seen ${/knock_hits=(\d+)/.exec(stopped)?.[1]}, knock_guard ${/knock_guard=(\d+)/.exec(stopped)?.[1]}, knock_wrong ${/knock_wrong=(\d+)/.exec(stopped)?.[1]}`);
    });
  });

  test(`[${backend}] 100,000 spoofed first knocks: a legitimate knock still opens, state capped, RSS bounded`, { skip }, async (t) => {
    const cap = 4096;
    // All TCP: one raw socket, one kernel queue, so the flood cannot reorder the knocks
    // (a UDP knock takes another socket's queue; docs/config.md says so).
    const door = { ...SSH_DOOR, sequence: ['7000', '8000', '9000'] };
    await withWorld(t, backend, { config: { doors: [door], knock: { max_sources: cap } } }, async (w) => {
      const { lab } = w;
      await sleep(1000);
      const before = rssMb(w.daemon.pid);
      // Two halves of 50,000 spoofed first knocks at FLOOD_PPS (about what this daemon reads
      // from one raw socket on a shared core; faster floods overflow the kernel queue, which
      // drops packets, legitimate ones included, as pcap does for knockd).
      const f1 = await synBlast(w, 'spoof', '7000', 50_000, 20, FLOOD_PPS);
      const mid = rssMb(w.daemon.pid);
      const flood = synBlast(w, 'spoof', '7000', 50_000, 20, FLOOD_PPS);
      await sleep(500);
      await knock(w, lab.client, lab.router.ip4, door.sequence);
      const f2 = await flood;
      const opened = await w.daemon.waitForOutput(/msg="knock opened" door=ssh source=198\.18\.0\.2/, 5000).catch(() => undefined);
      const full = await w.daemon.waitForOutput(/msg="knock state full[^\n]*/, 5000).catch(() => '');
      const after = rssMb(w.daemon.pid);
      if (opened) await eventually(async () => (await service(w, lab.client)) === 'connected', 3000, 'service open during the flood');
      w.daemon.kill('SIGTERM');
      const stopped = await w.daemon.waitForOutput(/msg="postern stopped"[^\n]*/, 5000).catch(() => '');
      const hits = Number(/knock_hits=(\d+)/.exec(stopped)?.[1]);
      t.diagnostic(`${backend} flood: ${f1.sent} + ${f2.sent} spoofed SYNs in ${f1.ms} + ${f2.ms} ms, ${hits} seen by the daemon; `
        + `RSS ${before.toFixed(1)} -> ${mid.toFixed(1)} -> ${after.toFixed(1)} MB; ${full}`);
      const mine = w.daemon.output().split('\n').filter((l) => l.includes('198.18.0.2')).join('\n');
      assert.ok(opened, `legitimate knock did not open:\n${mine}`);
      const tracked = Number(/tracked=(\d+)/.exec(full)?.[1]);
      assert.ok(tracked <= cap, full);
      // Knock state is fixed-size (source-table.ts); what RSS still gains is V8's heap and
      // JIT settling under load (measured: +13 MB, then +6-9 MB, then levelling off in steps
      // over 300,000 packets). The bound catches gross growth (knockd-style per-source
      // lists); the figures are printed for the report.
      assert.ok(after - before < 40, `RSS grew ${before.toFixed(1)} -> ${mid.toFixed(1)} -> ${after.toFixed(1)} MB`);
    });
  });
}

for (const backend of BACKENDS) suite(backend);

test('duplicates (each knock sent twice) still open; a half knock times out and is logged', { skip }, async (t) => {
  await withWorld(t, 'nft', { config: { doors: [SSH_DOOR] } }, async (w) => {
    const { lab } = w;
    await knock(w, lab.client, lab.router.ip4, SSH_DOOR.sequence, 2);
    await w.daemon.waitForOutput(/msg="knock opened" door=ssh source=198\.18\.0\.2/, 3000);
    await knock(w, lab.attacker, lab.router.ip4, ['7000', '8000:udp']);
    // Timer-driven: reported without any further packet (seq_timeout_s 3).
    await w.daemon.waitForOutput(/msg=refused reason=knock_timeout source=198\.18\.0\.3 key=ssh/, 6000);
    assert.equal(await service(w, lab.attacker), 'timeout');
  });
});

test('one-time sequences: each line opens once, the file is rewritten, the next line takes over', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-knock-ots-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'ssh.ots');
  writeFileSync(file, ' 7300,7400:udp,7500\n 7600,7700\n');
  // The daemon's user rewrites the file (temp file + rename), so it owns file and directory,
  // as /var/lib/postern under the systemd unit (docs/security.md "Privilege").
  for (const p of [dir, file]) chownSync(p, DAEMON_USER.uid, DAEMON_USER.gid);
  await withWorld(t, 'nft', { config: { doors: [{ name: 'ots', one_time_sequences: file, services: [`tcp/${SERVICE_PORT}`], duration_s: 30 }] } }, async (w) => {
    const { lab } = w;
    await knock(w, lab.attacker, lab.router.ip4, ['7600', '7700']);
    await sleep(300);
    assert.doesNotMatch(w.daemon.output(), /knock opened/, 'only the first unused line is live');
    await knock(w, lab.client, lab.router.ip4, ['7300', '7400:udp', '7500']);
    await w.daemon.waitForOutput(/msg="knock opened" door=ots source=198\.18\.0\.2/, 3000);
    await eventually(() => readFileSync(file, 'utf8') === '#7300,7400:udp,7500\n 7600,7700\n', 3000, 'line marked used');
    await knock(w, lab.attacker, lab.router.ip4, ['7300', '7400:udp', '7500']);
    await sleep(300);
    assert.equal(w.daemon.output().match(/knock opened/g)?.length, 1, 'a used line never works again');
    // Ports of used lines are no knock ports any more: that replay cost the attacker no penalty.
    await knock(w, lab.attacker, lab.router.ip4, ['7600', '7700']);
    await w.daemon.waitForOutput(/msg="knock opened" door=ots source=198\.18\.0\.3/, 3000);
    await eventually(() => readFileSync(file, 'utf8') === '#7300,7400:udp,7500\n#7600,7700\n', 3000, 'second line marked used');
    await w.daemon.waitForOutput(/msg="one-time door used up" door=ots/, 3000);
  });
});

test('addresses are never frozen: an address added after start takes knocks, and a target door matches it', { skip }, async (t) => {
  const added = '198.18.0.50';
  const doors = [SSH_DOOR, { name: 'vip', sequence: ['7800', '7900'], target: added, services: [`tcp/${SERVICE_PORT}`], duration_s: 30 }];
  await withWorld(t, 'iptables', { config: { doors } }, async (w) => {
    const { lab } = w;
    await routerRun(w, ['ip', 'addr', 'add', `${added}/24`, 'dev', lab.router.ifname]);
    await knock(w, lab.client, lab.router.ip4, ['7800', '7900']);
    await sleep(300);
    assert.doesNotMatch(w.daemon.output(), /knock opened/, 'the target door ignores knocks to other addresses');
    await knock(w, lab.client, added, ['7800', '7900']);
    await w.daemon.waitForOutput(/msg="knock opened" door=vip source=198\.18\.0\.2/, 3000);
    await knock(w, lab.attacker, added, SSH_DOOR.sequence);
    await w.daemon.waitForOutput(/msg="knock opened" door=ssh source=198\.18\.0\.3/, 3000);
    await eventually(async () => (await service(w, lab.attacker, added)) === 'connected', 3000, 'service open on the new address');
  });
});

test('SIGHUP: new doors apply (new ports captured and silent); a door with an unreadable file is refused', { skip }, async (t) => {
  await withWorld(t, 'nft', { config: { doors: [SSH_DOOR] } }, async (w) => {
    const { lab } = w;
    const moved = { ...SSH_DOOR, sequence: ['7010', '8010:udp', '9010'] };
    w.writeConfig({ doors: [moved, { name: 'ots', one_time_sequences: '/nonexistent/ssh.ots', services: [`tcp/${SERVICE_PORT}`] }] });
    w.daemon.kill('SIGHUP');
    await w.daemon.waitForOutput(/msg="reload refused: config error" error="door ots: \/nonexistent\/ssh.ots: cannot read \(ENOENT\)"/, 3000);
    w.writeConfig({ doors: [moved] });
    w.daemon.kill('SIGHUP');
    await w.daemon.waitForOutput(/msg="config reloaded"/, 3000);
    assert.equal((await udpProbe(lab, lab.attacker, lab.router.ip6, 8010, 500)).result, 'silent', 'new UDP knock port silent');
    assert.equal((await tcpConnect(lab, lab.attacker, lab.router.ip6, 9010, 500)).result, 'timeout', 'new TCP knock port silent');
    await knock(w, lab.client, lab.router.ip4, SSH_DOOR.sequence);
    await sleep(300);
    assert.doesNotMatch(w.daemon.output(), /knock opened/, 'the old sequence is gone');
    // The old ports are no knock ports now, and nothing was in progress: no penalty.
    await knock(w, lab.client, lab.router.ip4, moved.sequence);
    await w.daemon.waitForOutput(/msg="knock opened" door=ssh source=198\.18\.0\.2/, 3000);
  });
});

test("knockd's knock client, no delay, mixed tcp/udp door: every knock opens despite two capture queues", { skip: skip ?? (existsSync('/usr/bin/knock') ? undefined : 'needs knock (Debian package knockd)') }, async (t) => {
  await withWorld(t, 'nft', { config: { doors: [SSH_DOOR] } }, async (w) => {
    for (let i = 0; i < 10; i++) {
      const r = await w.lab.exec(w.lab.client, ['/usr/bin/knock', w.lab.router.ip4, ...SSH_DOOR.sequence]);
      assert.equal(r.code, 0, r.stderr);
      await eventually(() => (w.daemon.output().match(/knock opened/g)?.length ?? 0) === i + 1, 2000, `knock ${i + 1} opened`);
    }
    assert.doesNotMatch(w.daemon.output(), /reason=knock_wrong/);
  });
});

test('start/stop commands run as argv with %IP% substituted, stop after cmd_timeout_s', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-knock-cmd-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  chownSync(dir, DAEMON_USER.uid, DAEMON_USER.gid); // the commands run as the daemon's user
  const door = {
    name: 'cmd', sequence: ['7100', '7200'],
    start: ['/usr/bin/touch', join(dir, 'start %IP%; rm -rf x')],
    stop: ['/usr/bin/touch', join(dir, 'stop-%IP%')], cmd_timeout_s: 1,
  };
  await withWorld(t, 'iptables', { config: { doors: [door] } }, async (w) => {
    await knock(w, w.lab.client, w.lab.router.ip4, door.sequence);
    // One argv element, never a shell: the `;` is part of the file name.
    await eventually(() => existsSync(join(dir, 'start 198.18.0.2; rm -rf x')), 3000, 'start command ran');
    assert.ok(!existsSync(join(dir, 'stop-198.18.0.2')), 'stop waits cmd_timeout_s');
    await eventually(() => existsSync(join(dir, 'stop-198.18.0.2')), 4000, 'stop command ran');
  });
});
