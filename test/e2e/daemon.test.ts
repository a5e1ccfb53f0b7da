// SPDX-License-Identifier: MIT
// The daemon end to end: the real bundle, real raw sockets and real iptables in a lab of
// network namespaces (router, client, attacker). Needs root; CI runs as root.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { labSkipReason } from '../lab/lab.ts';
import { probeArgv, runProbe, tcpConnect, udpProbe, type TcpHoldResult } from '../lab/net-probe.ts';
import { Credential, generateCredential } from '../../src/spa/credential.ts';
import {
  BACKENDS, BUNDLE, SERVICE_PORT, SPA_PORT, bundleSkipReason, type Backend, createWorld, eventually, keyFileArgs, NO_PREFILTER, prefilterDropped, sleep, type World, type WorldOptions,
} from './harness.ts';

const skip = labSkipReason() ?? bundleSkipReason();

async function withWorld(t: TestContext, backend: Backend, opts: WorldOptions, fn: (w: World) => Promise<void>): Promise<void> {
  const w = await createWorld({ backend, ...opts });
  t.after(() => w.close());
  await w.startDaemon();
  await fn(w);
}

function suite(backend: Backend): void {
  test(`[${backend}] before SPA the host is silent: guarded port filtered, SPA port no ICMP`, { skip }, async (t) => {
    await withWorld(t, backend, {}, async (w) => {
      const { lab } = w;
      assert.equal((await tcpConnect(lab, lab.client, lab.router.ip4, SERVICE_PORT, 700)).result, 'timeout');
      assert.equal((await udpProbe(lab, lab.client, lab.router.ip4, SPA_PORT, 700)).result, 'silent');
      assert.equal((await tcpConnect(lab, lab.client, lab.router.ip6, SERVICE_PORT, 700)).result, 'timeout');
      assert.equal((await udpProbe(lab, lab.client, lab.router.ip6, SPA_PORT, 700)).result, 'silent');
      // Compare: an unguarded closed port answers, so silence is postern's doing.
      assert.equal((await tcpConnect(lab, lab.client, lab.router.ip4, 8081, 700)).result, 'refused');
    });
  });

  test(`[${backend}] postern open: client gets in, attacker stays out; expiry closes; established survives`, { skip }, async (t) => {
    await withWorld(t, backend, {}, async (w) => {
      const { lab } = w;
      const r = await w.postern(lab.client, ['open', lab.router.ip4, `tcp/${SERVICE_PORT}`, ...keyFileArgs(w), '--duration', '3', '--wait']);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.match(r.stdout, /tcp\/22 is open/);
      assert.equal((await tcpConnect(lab, lab.attacker, lab.router.ip4, SERVICE_PORT, 500)).result, 'timeout');
      assert.equal((await w.grantRules()).length, 1);
      await w.daemon.waitForOutput(/msg="grant opened" key=tech/, 2000);
      // Hold a connection across the expiry (3 s): established traffic keeps flowing.
      const hold = runProbe<TcpHoldResult>(lab, lab.client, ['tcp-hold', lab.router.ip4, SERVICE_PORT, 5]);
      await eventually(async () => (await w.grantRules()).length === 0, 6000, 'grant rule removed at expiry');
      // With nft the kernel may expire the element a moment before the daemon's timer fires.
      await w.daemon.waitForOutput(/msg="grant closed".*why=expired/, 2000);
      assert.equal((await tcpConnect(lab, lab.client, lab.router.ip4, SERVICE_PORT, 500)).result, 'timeout');
      const held = await hold;
      assert.equal(held.result, 'ok', JSON.stringify(held));
    });
  });

  test(`[${backend}] replays are refused from the attacker and from the client, also after kill -9 and restart`, { skip }, async (t) => {
    await withWorld(t, backend, {}, async (w) => {
      const { lab } = w;
      const pkt = w.packet({ durationS: 30 });
      await w.sendRaw(lab.client, pkt);
      await eventually(async () => (await w.grantRules()).length === 1, 3000, 'grant');
      await w.sendRaw(lab.attacker, pkt);
      await w.sendRaw(lab.client, pkt);
      await w.daemon.waitForOutput(/msg=refused reason=replay source=198\.18\.0\.3/, 3000);
      await w.daemon.waitForOutput(/msg=refused reason=replay source=198\.18\.0\.2/, 3000);
      assert.equal((await w.grantRules()).length, 1, 'no second rule');
      assert.equal((await tcpConnect(lab, lab.attacker, lab.router.ip4, SERVICE_PORT, 500)).result, 'timeout');
      w.daemon.kill('SIGKILL');
      await w.daemon.exited();
      await w.startDaemon();
      await w.sendRaw(lab.attacker, pkt);
      await w.daemon.waitForOutput(/msg=refused reason=(replay|stale) source=198\.18\.0\.3/, 3000);
      assert.equal((await tcpConnect(lab, lab.attacker, lab.router.ip4, SERVICE_PORT, 500)).result, 'timeout');
    });
  });

  test(`[${backend}] each refusal has its own reason`, { skip }, async (t) => {
    const tech = generateCredential();
    const loose = generateCredential();
    await withWorld(t, backend, {
      keys: [
        { name: 'tech', credential: tech },
        { name: 'loose', credential: loose, extra: { require_source_address: false, allowed_addresses: ['198.18.0.0/24'] } },
      ],
    }, async (w) => {
      const { lab } = w;
      const send = (over: Parameters<World['packet']>[0]) => w.sendRaw(lab.client, w.packet({ credential: tech, ...over }));
      await send({ credential: new Credential(tech.keyId, Buffer.alloc(32, 9)) });
      await w.daemon.waitForOutput(/reason=bad_auth/, 3000);
      // An unknown key id never reaches the daemon: the kernel prefilter drops and counts it.
      const dropped = await prefilterDropped(w);
      await send({ credential: generateCredential() });
      await eventually(async () => (await prefilterDropped(w)) === dropped + 1, 3000, 'unknown key id dropped in the kernel');
      await send({ nowMs: Date.now() - 10 * 60_000 });
      await w.daemon.waitForOutput(/reason=stale/, 3000);
      await send({ services: [{ proto: 'tcp', port: 443 }] });
      await w.daemon.waitForOutput(/reason=denied_service/, 3000);
      await send({ durationS: 121 });
      await w.daemon.waitForOutput(/reason=denied_duration/, 3000);
      await send({ allowAddress: '198.18.0.3' });
      await w.daemon.waitForOutput(/reason=denied_address source=198\.18\.0\.2 key=tech/, 3000);
      await w.sendRaw(lab.client, w.packet({ credential: loose, allowAddress: '203.0.113.5' }));
      await w.daemon.waitForOutput(/reason=denied_address source=198\.18\.0\.2 key=loose/, 3000);
      assert.equal((await w.grantRules()).length, 0, 'nothing was opened');
      // The loose key may name another address inside its allowed range.
      await w.sendRaw(lab.client, w.packet({ credential: loose, allowAddress: '198.18.0.3' }));
      await eventually(async () => (await tcpConnect(lab, lab.attacker, lab.router.ip4, SERVICE_PORT, 300)).result === 'connected', 3000, 'explicit-address grant');
    });
  });

  test(`[${backend}] kill -9 with an open grant: the next start restores it from the database (test/e2e/state.test.ts: expired ones go)`, { skip }, async (t) => {
    await withWorld(t, backend, {}, async (w) => {
      const { lab } = w;
      await w.sendRaw(lab.client, w.packet({ durationS: 60 }));
      await eventually(async () => (await w.grantRules()).length === 1, 3000, 'grant');
      w.daemon.kill('SIGKILL');
      await w.daemon.exited();
      assert.equal((await w.grantRules()).length, 1, 'the dead daemon left its rule');
      await w.startDaemon();
      assert.equal((await w.grantRules()).length, 1, 'start restored the open grant, without a duplicate rule');
    });
  });

  test(`[${backend}] IPv6: open and expire over the lab's IPv6 addresses`, { skip }, async (t) => {
    await withWorld(t, backend, {}, async (w) => {
      const { lab } = w;
      const r = await w.postern(lab.client, ['open', lab.router.ip6, 'tcp/22', ...keyFileArgs(w), '--duration', '2', '--wait']);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.equal((await w.grantRules(6)).length, 1);
      assert.match((await w.grantRules(6))[0]!, /fd50:7374::2\b/);
      assert.equal((await tcpConnect(lab, lab.attacker, lab.router.ip6, SERVICE_PORT, 500)).result, 'timeout');
      await eventually(async () => (await w.grantRules(6)).length === 0, 5000, 'IPv6 grant expiry');
      assert.equal((await tcpConnect(lab, lab.client, lab.router.ip6, SERVICE_PORT, 500)).result, 'timeout');
    });
  });

  test(`[${backend}] garbage flood: daemon survives, RSS stays flat, a valid open during the flood works`, { skip }, async (t) => {
    // Without the kernel prefilter: the daemon itself must survive what the prefilter would
    // keep away (a board whose iptables lacks xt_u32 runs this way).
    await withWorld(t, backend, { config: NO_PREFILTER }, async (w) => {
      const { lab } = w;
      const rss = async () => Number((await lab.exec(lab.router, ['ps', '-o', 'rss=', '-p', String(w.daemon.pid)])).stdout.trim());
      // A first flood grows the heap and the allocator's pools once (about 4 MB here);
      // what must stay flat is RSS across the next one: nothing is kept per packet.
      await lab.exec(lab.attacker, probeArgv(['udp-flood', lab.router.ip4, SPA_PORT, 100_000, 20, 6]), { timeoutMs: 30_000 });
      await sleep(500);
      const before = await rss();
      const flood = lab.exec(lab.attacker, probeArgv(['udp-flood', lab.router.ip4, SPA_PORT, 100_000, 20, 7]), { timeoutMs: 30_000 });
      await sleep(200);
      const r = await w.postern(lab.client, ['open', lab.router.ip4, 'tcp/22', ...keyFileArgs(w), '--wait', '--timeout', '10']);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      const sent = JSON.parse((await flood).stdout.trim().split('\n').pop() ?? '{}') as { sent: number };
      assert.equal(sent.sent, 100_000);
      await sleep(500);
      const after = await rss();
      assert.ok(after - before < 4 * 1024, `RSS grew ${after - before} KiB across the second flood (before ${before}, after ${after})`);
      assert.ok(w.daemon.child.exitCode === null, 'daemon still running');
      const lines = w.daemon.output().split('\n').filter((l) => l.includes('msg=refused'));
      assert.ok(lines.length < 100, `refusals are aggregated, not logged per packet (${lines.length} lines)`);
    });
  });

  test(`[${backend}] SIGHUP reload: a bad file is refused and the old config stays; a good one applies`, { skip }, async (t) => {
    await withWorld(t, backend, {}, async (w) => {
      const { lab } = w;
      writeFileSync(w.configPath, '{"device": "x", "guarded": []}');
      w.daemon.kill('SIGHUP');
      await w.daemon.waitForOutput(/reload refused/, 3000);
      const r = await w.postern(lab.client, ['open', lab.router.ip4, 'tcp/22', ...keyFileArgs(w), '--wait', '--timeout', '5']);
      assert.equal(r.code, 0, 'old config still works: ' + r.stderr);
      w.writeConfig({ guarded: ['tcp/22', 'tcp/8443'] });
      w.daemon.kill('SIGHUP');
      await w.daemon.waitForOutput(/msg="config reloaded"/, 3000);
      if (backend === 'iptables') assert.match(await w.iptables(['-S', 'POSTERN-IN']), /--dport 8443 -j DROP/);
      else assert.match((await lab.exec(lab.router, ['nft', 'list', 'set', 'inet', 'postern', 'guarded'])).stdout, /8443/);
      assert.equal((await tcpConnect(lab, lab.client, lab.router.ip4, 8443, 500)).result, 'timeout', 'the new guarded port is silent');
    });
  });

  test(`[${backend}] SIGTERM removes every postern rule and chain`, { skip }, async (t) => {
    await withWorld(t, backend, {}, async (w) => {
      const { lab } = w;
      await w.sendRaw(lab.client, w.packet({ durationS: 60 }));
      await eventually(async () => (await w.grantRules()).length === 1, 3000, 'grant');
      w.daemon.kill('SIGTERM');
      assert.equal(await w.daemon.exited(), 0);
      for (const fam of [4, 6] as const) {
        const all = await w.iptables(['-S'], fam);
        assert.ok(!/POSTERN/.test(all), `no postern rules left (IPv${fam}):\n${all}`);
      }
      const nft = await lab.exec(lab.router, ['nft', 'list', 'ruleset']);
      assert.ok(!/postern/.test(nft.stdout), `no postern table left:\n${nft.stdout}`);
    });
  });

  test(`[${backend}] re-authorising extends the grant: one rule, later expiry, removed on time (±1 s)`, { skip }, async (t) => {
    await withWorld(t, backend, {}, async (w) => {
      const { lab } = w;
      const sentAt = Date.now();
      await w.sendRaw(lab.client, w.packet({ durationS: 2 }));
      await eventually(async () => (await w.grantRules()).length === 1, 3000, 'grant');
      const first = (await w.grantRules())[0]!;
      await sleep(1000);
      const extendedAt = Date.now();
      await w.sendRaw(lab.client, w.packet({ durationS: 4 }));
      await w.daemon.waitForOutput(/msg="grant extended"/, 3000);
      const rules = await w.grantRules();
      assert.equal(rules.length, 1, 'extension never duplicates rules');
      assert.notEqual(rules[0], first, 'the tag carries the new expiry');
      await eventually(async () => (await w.grantRules()).length === 0, 8000, 'expiry');
      const closedAfter = Date.now() - extendedAt;
      assert.ok(closedAfter >= 4000 - 300 && closedAfter <= 4000 + 1000, `closed ${closedAfter} ms after the extension (want 4 s ±1 s)`);
      assert.ok(Date.now() - sentAt > 4000, "the first grant's shorter expiry did not cut it short");
    });
  });

  test(`[${backend}] keep_guarding_on_exit: SIGTERM removes grants but the service stays hidden`, { skip }, async (t) => {
    await withWorld(t, backend, { config: { firewall: { keep_guarding_on_exit: true } } }, async (w) => {
      const { lab } = w;
      await w.sendRaw(lab.client, w.packet({ durationS: 60 }));
      await eventually(async () => (await w.grantRules()).length === 1, 3000, 'grant');
      w.daemon.kill('SIGTERM');
      assert.equal(await w.daemon.exited(), 0);
      assert.equal((await w.grantRules()).length, 0, 'grants removed');
      assert.equal((await tcpConnect(lab, lab.client, lab.router.ip4, SERVICE_PORT, 500)).result, 'timeout', 'still guarded');
    });
  });

  test(`[${backend}] postern ssh opens tcp/22, waits, then runs ssh with the right arguments`, { skip }, async (t) => {
    await withWorld(t, backend, {}, async (w) => {
      const { lab } = w;
      // A stand-in ssh that reports its argv, first in PATH inside the client namespace.
      const bin = join(w.dir, 'bin');
      mkdirSync(bin);
      writeFileSync(join(bin, 'ssh'), '#!/bin/sh\necho "fake-ssh $*"\nexit 7\n', { mode: 0o755 });
      const r = await lab.exec(lab.client, [process.execPath, BUNDLE, 'ssh', ...keyFileArgs(w), `root@${lab.router.ip4}`, 'uptime'],
        { env: { ...process.env, PATH: `${bin}:${process.env['PATH'] ?? ''}` }, timeoutMs: 20_000 });
      assert.equal(r.code, 7, "ssh's exit code is postern ssh's exit code");
      assert.equal(r.stdout.trim(), `fake-ssh -l root ${lab.router.ip4} uptime`);
      assert.equal((await w.grantRules()).length, 1);
    });
  });

  test(`[${backend}] kill -9: the port still closes at expiry with no daemon running`,
    { skip: skip || (backend === 'iptables' ? 'iptables has no kernel-side expiry: rules wait for the next start (docs/firewall.md)' : false) },
    async (t) => {
      await withWorld(t, backend, {}, async (w) => {
        const { lab } = w;
        await w.sendRaw(lab.client, w.packet({ durationS: 2 }));
        await eventually(async () => (await tcpConnect(lab, lab.client, lab.router.ip4, SERVICE_PORT, 300)).result === 'connected', 3000, 'grant');
        w.daemon.kill('SIGKILL');
        await w.daemon.exited();
        await eventually(async () => (await w.grantRules()).length === 0, 4000, 'kernel expiry of the grant element');
        assert.equal((await tcpConnect(lab, lab.client, lab.router.ip4, SERVICE_PORT, 500)).result, 'timeout', 'closed with no daemon');
      });
    });

  test(`[${backend}] postern doctor reports the backend, its ruleset and the database`, { skip }, async (t) => {
    await withWorld(t, backend, {}, async (w) => {
      const { lab } = w;
      await w.sendRaw(lab.client, w.packet({ durationS: 30 }));
      await eventually(async () => (await w.grantRules()).length === 1, 3000, 'grant');
      const r = await w.postern(lab.router, ['doctor', '--config', w.configPath, '--json']);
      assert.ok(r.stdout.trim(), `doctor printed nothing: ${r.stderr}`);
      const { checks } = JSON.parse(r.stdout) as { checks: { name: string; status: string; detail: string }[] };
      const by = (n: string) => checks.find((c) => c.name === n);
      assert.equal(by('config')?.status, 'ok');
      assert.equal(by('raw socket')?.status, 'ok');
      assert.match(by('backend')?.detail ?? '', new RegExp(`^${backend} `));
      assert.equal(by('ruleset')?.status, 'ok', JSON.stringify(checks));
      assert.match(by('ruleset')?.detail ?? '', backend === 'nft' ? /grants4=1\b/ : /1 grant rule/);
      assert.equal(by('database')?.status, 'ok');
      assert.equal(r.code, 0, r.stdout);
      w.daemon.kill('SIGTERM');
      await w.daemon.exited();
      const after = await w.postern(lab.router, ['doctor', '--config', w.configPath]);
      assert.match(after.stdout, /warn {2}ruleset: .*(not installed|not loaded)/);
    });
  });

  test(`[${backend}] a ruleset flushed behind postern's back is restored within a reconcile interval`, { skip }, async (t) => {
    await withWorld(t, backend, {}, async (w) => {
      const { lab } = w;
      await w.sendRaw(lab.client, w.packet({ durationS: 60 }));
      await eventually(async () => (await w.grantRules()).length === 1, 3000, 'grant');
      // What an fw3 reload or `systemctl restart nftables` (flush ruleset) does to us.
      const wipe = backend === 'nft'
        ? ['nft', 'delete', 'table', 'inet', 'postern']
        : ['iptables', '-w', '-D', 'INPUT', '-j', 'POSTERN-IN'];
      assert.equal((await lab.exec(lab.router, wipe)).code, 0);
      if (backend === 'iptables') await lab.exec(lab.router, ['iptables', '-w', '-F', 'POSTERN-GRANTS']);
      await eventually(async () => (await w.grantRules()).length === 1, 4000, 'grant restored');
      await eventually(async () => (await tcpConnect(lab, lab.attacker, lab.router.ip4, SERVICE_PORT, 300)).result === 'timeout', 4000, 'guard restored');
      assert.equal((await tcpConnect(lab, lab.client, lab.router.ip4, SERVICE_PORT, 500)).result, 'connected', 'the grant works again');
    });
  });

  test(`[${backend}] the daemon never logs a secret`, { skip }, async (t) => {
    await withWorld(t, backend, { config: { log_level: 'debug' } }, async (w) => {
      const { lab } = w;
      const r = await w.postern(lab.client, ['open', lab.router.ip4, 'tcp/22', ...keyFileArgs(w), '--wait']);
      assert.equal(r.code, 0, r.stderr);
      await w.sendRaw(lab.client, w.packet({ credential: new Credential(w.key.keyId, Buffer.alloc(32, 3)) }));
      await w.daemon.waitForOutput(/reason=bad_auth/, 3000);
      const secret = w.key.encode().slice('postern1:'.length + 6);
      const log = w.daemon.output();
      assert.ok(!log.includes(secret) && !log.includes(w.key.revealSecret().toString('hex')), 'no credential text or secret bytes in the log');
    });
  });
}

for (const backend of BACKENDS) suite(backend);
