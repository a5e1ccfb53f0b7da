// SPDX-License-Identifier: MIT
// Knock clients against the real daemon in the lab (issue 4, "Interop and tests"):
// - Debian's `knock` client (knockd package) opens a static door over IPv4 and IPv6;
// - `postern knock` opens a static door and a time-derived (totp) door, as an unprivileged
//   client would run it (plain sockets), with a profile in a throw-away HOME;
// - the attacker replays the time-derived sequence it saw: refused (knock_replay), and so is
//   the client's own second use of it.
// Traffic stays inside the lab's namespaces; every process dies with the lab.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labSkipReason, type LabHost } from '../lab/lab.ts';
import { tcpConnect } from '../lab/net-probe.ts';
import { BUNDLE, SERVICE_PORT, bundleSkipReason, createWorld, eventually, sleep, type World } from './harness.ts';
import { currentStep, deriveSequence, formatDoorKey, parseDoorKey } from '../../src/knock/totp.ts';

const KNOCK_BIN = '/usr/bin/knock';
const skip = labSkipReason() ?? bundleSkipReason();
const skipDebian = skip ?? (existsSync(KNOCK_BIN) ? undefined : 'needs Debian\'s knock client (package knockd)');
const STATIC = { name: 'ssh', sequence: ['7000', '8000:udp', '9000'], seq_timeout_s: 5, services: [`tcp/${SERVICE_PORT}`], duration_s: 30 };
const STEP_S = 30;
const TOTP = { key: formatDoorKey(Buffer.alloc(32, 7)), step_s: STEP_S, length: 4, port_min: 20000, port_max: 40000, proto: 'tcp' };
const OTP_DOOR = { name: 'otp', totp: TOTP, seq_timeout_s: 5, services: [`tcp/${SERVICE_PORT}`], duration_s: 30 };

async function withWorld(t: TestContext, doors: readonly object[], fn: (w: World) => Promise<void>): Promise<void> {
  const w = await createWorld({ backend: 'nft', config: { doors } });
  t.after(() => w.close());
  await w.startDaemon();
  await fn(w);
}

const service = (w: World, from: LabHost, to = w.lab.router.ip4) => tcpConnect(w.lab, from, to, SERVICE_PORT, 700).then((r) => r.result);
const opened = (w: World, door: string, source: string) =>
  w.daemon.waitForOutput(new RegExp(`msg="knock opened" door=${door} source=${source.replace(/\./g, '\\.')}`), 4000);

async function run(w: World, host: LabHost, argv: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const r = await w.lab.exec(host, argv, { timeoutMs: 20_000, env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...env } });
  assert.equal(r.code, 0, `${argv.join(' ')}: exit ${r.code}\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

test('Debian\'s knock client opens a static door over IPv4 and IPv6', { skip: skipDebian }, async (t) => {
  await withWorld(t, [STATIC], async (w) => {
    const { lab } = w;
    assert.equal(await service(w, lab.client), 'timeout');
    // -d: the daemon reads TCP and UDP knocks from separate sockets (docs/cli.md "postern knock").
    await run(w, lab.client, [KNOCK_BIN, '-v', '-d', '50', lab.router.ip4, ...STATIC.sequence]);
    await opened(w, 'ssh', lab.client.ip4);
    await eventually(async () => (await service(w, lab.client)) === 'connected', 3000, 'tcp/22 open for the client over IPv4');
    assert.equal(await service(w, lab.attacker), 'timeout', 'only for the knocker');
    await run(w, lab.client, [KNOCK_BIN, '-6', '-d', '50', lab.router.ip6, ...STATIC.sequence]);
    await opened(w, 'ssh', lab.client.ip6);
    await eventually(async () => (await service(w, lab.client, lab.router.ip6)) === 'connected', 3000, 'tcp/22 open over IPv6');
    assert.equal(await service(w, lab.attacker, lab.router.ip6), 'timeout');
  });
});

/** Wait until at least `marginS` seconds remain in the current step, so one knock stays in it. */
async function awayFromStepEdge(marginS: number): Promise<number> {
  const leftMs = STEP_S * 1000 - (Date.now() % (STEP_S * 1000));
  if (leftMs < marginS * 1000) await sleep(leftMs + 50);
  return currentStep(Date.now(), STEP_S);
}

test('postern knock opens a static door and a time-derived door; a replayed derived sequence is refused', { skip }, async (t) => {
  const home = mkdtempSync(join(tmpdir(), 'postern-knock-home-'));
  t.after(() => rmSync(home, { recursive: true, force: true }));
  const env = { HOME: home, XDG_CONFIG_HOME: join(home, 'cfg') };
  await withWorld(t, [STATIC, OTP_DOOR], async (w) => {
    const { lab } = w;
    const postern = (host: LabHost, args: readonly string[]) => run(w, host, [process.execPath, BUNDLE, ...args], env);
    // Static door, knockd client syntax, over IPv6 (the Debian test above covers IPv4).
    await postern(lab.client, ['knock', '-6', lab.router.ip6, ...STATIC.sequence]);
    await opened(w, 'ssh', lab.client.ip6);
    await eventually(async () => (await service(w, lab.client, lab.router.ip6)) === 'connected', 3000, 'static door over IPv6');

    await postern(lab.client, ['profile', 'door', 'lab', 'otp', '--host', lab.router.ip4, '--door-key', TOTP.key,
      '--port-min', String(TOTP.port_min), '--port-max', String(TOTP.port_max), '--step', String(STEP_S), '--length', String(TOTP.length)]);
    const step = await awayFromStepEdge(8);
    await postern(lab.client, ['knock', '--door', 'otp', '--profile', 'lab']);
    await opened(w, 'otp', lab.client.ip4);
    await eventually(async () => (await service(w, lab.client)) === 'connected', 3000, 'time-derived door open for the client');

    // The attacker saw the four SYNs and replays them within the same step: refused.
    const key = parseDoorKey(TOTP.key);
    assert.ok(key.ok);
    const seen = deriveSequence(key.value, step, { length: TOTP.length, portMin: TOTP.port_min, portMax: TOTP.port_max, avoid: new Set() });
    assert.equal(currentStep(Date.now(), STEP_S), step, 'still the same step');
    await postern(lab.attacker, ['knock', lab.router.ip4, ...seen.map(String)]);
    await w.daemon.waitForOutput(/reason=knock_replay source=198\.18\.0\.3/, 4000);
    await sleep(500);
    assert.equal(await service(w, lab.attacker), 'timeout', 'the replay opened nothing');
    assert.doesNotMatch(w.daemon.output(), /msg="knock opened" door=otp source=198\.18\.0\.3/);
  });
});
