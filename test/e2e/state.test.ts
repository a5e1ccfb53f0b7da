// SPDX-License-Identifier: MIT
// Durable state end to end (issue 6 "Persistence wiring", tests 5 and 6): the real bundle
// in the lab against the real firewall. kill -9 in the middle of a junk flood, then a
// restart that refuses a replay of an accepted packet, restores the open grant and
// removes the expired one; a corrupt database moved aside; a read-only database
// directory: the daemon keeps guarding from memory and says so in status.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { labSkipReason } from '../lab/lab.ts';
import { probeArgv, tcpConnect } from '../lab/net-probe.ts';
import { generateCredential } from '../../src/spa/credential.ts';
import { BACKENDS, SERVICE_PORT, SPA_PORT, bundleSkipReason, createWorld, eventually, sleep, type World, type WorldOptions } from './harness.ts';
import { payloadsOn, startBroker, startTap } from './mqtt-lab.ts';
import type { LabProcess } from '../lab/lab.ts';

const skip = labSkipReason() ?? bundleSkipReason();

async function world(t: TestContext, opts: WorldOptions): Promise<World> {
  const w = await createWorld(opts);
  t.after(() => w.close());
  return w;
}

function grantId(w: World, key: string): string {
  const m = new RegExp(`msg="grant opened" key=${key} .*grant=([0-9a-f]+)`).exec(w.daemon.output());
  assert.ok(m?.[1], `no grant opened for ${key}`);
  return m[1];
}

async function status(w: World): Promise<{ database: { state: string; reason?: string }; grants: { id: string }[] }> {
  const r = await w.postern(w.lab.router, ['status', '--config', w.configPath, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as { database: { state: string; reason?: string }; grants: { id: string }[] };
}

/** A mosquitto on the router's loopback, the daemon's config pointing at it, and a subscriber. */
async function withAlerts(w: World): Promise<LabProcess> {
  const broker = await startBroker(w.lab, w.lab.router, w.dir);
  w.writeConfig({ mqtt: { url: broker.url } });
  return startTap(w.lab, w.lab.router, broker.url, ['postern/+/alert']);
}

async function databaseAlert(tap: LabProcess, eventType: string): Promise<Record<string, unknown>> {
  await eventually(() => payloadsOn(tap, 'alert').some((a) => a['event_type'] === eventType), 10_000, `a ${eventType} alert`);
  return payloadsOn(tap, 'alert').find((a) => a['event_type'] === eventType) ?? {};
}

for (const backend of BACKENDS) {
  test(`[${backend}] kill -9 mid-flood: restart refuses the replay, restores the open grant, removes the expired one`, { skip }, async (t) => {
    const tech = generateCredential();
    const short = generateCredential();
    const w = await world(t, { backend, keys: [
      { name: 'tech', credential: tech },
      { name: 'short', credential: short, extra: { services: ['tcp/443'] } },
    ] });
    const { lab } = w;
    w.writeConfig({ state: { database: join(w.dir, 'state.db'), flush_interval_s: 1 } });
    await w.startDaemon();
    const accepted = w.packet({ credential: tech, durationS: 60 });
    await w.sendRaw(lab.client, accepted);
    await w.sendRaw(lab.client, w.packet({ credential: short, services: [{ proto: 'tcp', port: 443 }], durationS: 2 }));
    await w.daemon.waitForOutput(/msg="grant opened" key=short/, 3000);
    await w.daemon.waitForOutput(/msg="grant opened" key=tech/, 3000);
    assert.equal((await w.grantRules()).length, 2);
    const openId = grantId(w, 'tech');
    const expiringId = grantId(w, 'short');
    // Bounded: at most 1,000,000 packets or 3 s.
    const flood = lab.exec(lab.attacker, probeArgv(['udp-flood', lab.router.ip4, SPA_PORT, 1_000_000, 3, 11]), { timeoutMs: 20_000 });
    await sleep(700);
    w.daemon.kill('SIGKILL');
    await w.daemon.exited();
    await flood;
    await sleep(2500); // the short grant's 2 s are over
    await w.startDaemon();
    await w.daemon.waitForOutput(new RegExp(`grants restored from the database.*restored=${openId} expired=${expiringId}`), 3000);
    await eventually(async () => (await w.grantRules()).length === 1, 3000, 'only the open grant left');
    assert.equal((await tcpConnect(lab, lab.client, lab.router.ip4, SERVICE_PORT, 700)).result, 'connected', 'restored grant works');
    assert.equal((await tcpConnect(lab, lab.client, lab.router.ip4, 443, 700)).result, 'timeout', 'expired grant gone');
    await w.sendRaw(lab.attacker, accepted);
    await w.daemon.waitForOutput(/msg=refused reason=replay source=198\.18\.0\.3/, 3000);
    assert.deepEqual((await status(w)).grants.map((g) => g.id), [openId]);
  });
}

test('[nft] a corrupt database is moved aside; the daemon guards with a fresh one', { skip }, async (t) => {
  const w = await world(t, { backend: 'nft' });
  const junk = Buffer.alloc(16384, 0xa5);
  writeFileSync(join(w.dir, 'state.db'), junk);
  const tap = await withAlerts(w);
  await w.startDaemon();
  assert.match(w.daemon.output(), /state database was corrupt: moved aside/);
  const aside = readdirSync(w.dir).filter((f) => f.startsWith('state.db.corrupt-'));
  assert.equal(aside.length, 1);
  assert.deepEqual(readFileSync(join(w.dir, aside[0] ?? '')), junk, 'moved, never deleted or changed');
  const r = await w.postern(w.lab.client, ['open', w.lab.router.ip4, 'tcp/22', '--key-file', join(w.dir, 'tech.key'), '--wait', '--timeout', '5']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((await status(w)).database.state, 'ok');
  assert.match(String((await databaseAlert(tap, 'database_ok'))['reason']), /^corrupt database moved to .*state\.db\.corrupt-/);
});

test('[nft] a read-only database directory: the daemon guards from memory and reports it', { skip }, async (t) => {
  const dir = join('/tmp', `postern-ro-${process.pid}`);
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['--bind', dir, dir]);
  t.after(() => {
    execFileSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  execFileSync('mount', ['-o', 'remount,bind,ro', dir]);
  const w = await world(t, { backend: 'nft', config: { state: { database: join(dir, 'state.db') } } });
  const tap = await withAlerts(w);
  await w.startDaemon();
  assert.match(w.daemon.output(), /state database unusable: guarding from memory/);
  const packet = w.packet({ durationS: 5 });
  await w.sendRaw(w.lab.client, packet);
  await eventually(async () => (await w.grantRules()).length === 1, 3000, 'grant while memory-only');
  await w.sendRaw(w.lab.attacker, packet);
  await w.daemon.waitForOutput(/msg=refused reason=replay source=198\.18\.0\.3/, 3000);
  const s = await status(w);
  assert.equal(s.database.state, 'memory');
  assert.match(s.database.reason ?? '', /^open: /);
  assert.equal((await tcpConnect(w.lab, w.lab.attacker, w.lab.router.ip4, SERVICE_PORT, 500)).result, 'timeout', 'still guarding');
  const alert = await databaseAlert(tap, 'database_memory');
  assert.equal(alert['database'], 'memory');
  assert.match(String(alert['reason']), /^open: /);
});
