// SPDX-License-Identifier: MIT
// Knock state and knock alerts end to end (issues 4 + 6): the real bundle as the daemon in
// the lab router. (1) A time-derived door's used step is in the state database before the
// grant, so after kill -9 or SIGTERM and a restart (or a SIGHUP reload) the same sequence, replayed from the
// attacker within its step, is refused as knock_replay. (2) Knock refusals take the
// daemon's one refusal path: a real mosquitto receives knock_wrong / knock_timeout alerts
// that validate against the alert schema, a door's grant publishes opened then closed,
// and `postern log --reason knock_wrong` shows the audit row.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { Value } from '@sinclair/typebox/value';
import type { TSchema } from '@sinclair/typebox';
import { labSkipReason, type LabHost } from '../lab/lab.ts';
import { tcpConnect } from '../lab/net-probe.ts';
import { AlertSchema, GrantSchema } from '../../src/alert/payloads.ts';
import { TotpKey, currentStep, deriveSequence, formatDoorKey } from '../../src/knock/totp.ts';
import { SERVICE_PORT, bundleSkipReason, createWorld, eventually, type World, type WorldOptions } from './harness.ts';
import { payloadsOn, startBroker, startTap } from './mqtt-lab.ts';

const skip = labSkipReason() ?? bundleSkipReason();
const KNOCK_PROBE = fileURLToPath(new URL('../lab/knock-probe.ts', import.meta.url));
/** 60 s steps: a sequence of step N is accepted until step N+1 ends, >= 60 s after it was derived. */
const STEP_S = 60;

async function world(t: TestContext, opts: WorldOptions): Promise<World> {
  const w = await createWorld(opts);
  t.after(() => w.close());
  return w;
}

async function knock(w: World, from: LabHost, host: string, ports: readonly (string | number)[]): Promise<void> {
  const r = await w.lab.exec(from, [process.execPath, KNOCK_PROBE, host, '0', '1', ...ports.map(String)], { timeoutMs: 20_000 });
  assert.equal(r.code, 0, r.stderr);
}

const service = (w: World, from: LabHost) => tcpConnect(w.lab, from, w.lab.router.ip4, SERVICE_PORT, 700).then((r) => r.result);

function assertValid(schema: TSchema, payloads: readonly Record<string, unknown>[]): void {
  for (const p of payloads) assert.ok(Value.Check(schema, p), `${JSON.stringify(p)}: ${JSON.stringify([...Value.Errors(schema, p)].map((e) => `${e.path} ${e.message}`))}`);
}

test('[nft] a used time-derived step survives kill -9, SIGTERM and SIGHUP: the replay after each is refused', { skip }, async (t) => {
  // Two doors on disjoint ranges (different keys), one used before each kind of stop.
  const doors = [['otp', 0x5a, 20000, 29999], ['otp2', 0x6b, 30000, 39999]] as const;
  const config = {
    doors: doors.map(([name, fill, portMin, portMax]) => ({
      name, totp: { key: formatDoorKey(Buffer.alloc(32, fill)), step_s: STEP_S, length: 4, port_min: portMin, port_max: portMax },
      services: [`tcp/${SERVICE_PORT}`], duration_s: 60,
    })),
  };
  const w = await world(t, { backend: 'nft', config });
  const { lab } = w;
  const seqOf = (i: 0 | 1) => {
    const [, fill, portMin, portMax] = doors[i];
    return deriveSequence(new TotpKey(Buffer.alloc(32, fill)), currentStep(Date.now(), STEP_S), { length: 4, portMin, portMax, avoid: new Set() });
  };
  const restart = async (signal: NodeJS.Signals): Promise<void> => {
    w.daemon.kill(signal);
    await w.daemon.exited();
    await w.startDaemon();
  };

  await w.startDaemon();
  const first = seqOf(0);
  await knock(w, lab.client, lab.router.ip4, first);
  await w.daemon.waitForOutput(/msg="knock opened" door=otp source=198\.18\.0\.2 step=\d+/, 3000);
  await restart('SIGKILL');
  await knock(w, lab.attacker, lab.router.ip4, first);
  await w.daemon.waitForOutput(/msg=refused reason=knock_replay source=198\.18\.0\.3 key=otp\b/, 3000);

  const second = seqOf(1);
  await knock(w, lab.client, lab.router.ip4, second);
  await w.daemon.waitForOutput(/msg="knock opened" door=otp2 source=198\.18\.0\.2 step=\d+/, 3000);
  await restart('SIGTERM');
  await knock(w, lab.attacker, lab.router.ip4, second);
  await w.daemon.waitForOutput(/msg=refused reason=knock_replay source=198\.18\.0\.3 key=otp2\b/, 3000);
  await knock(w, lab.attacker, lab.router.ip4, first);
  await w.daemon.waitForOutput(/msg=refused reason=knock_replay source=198\.18\.0\.3 key=otp\b/, 3000);
  // A reload makes a new knock service: the used steps carry over to it.
  w.daemon.kill('SIGHUP');
  await w.daemon.waitForOutput(/msg="config reloaded"/, 5000);
  await knock(w, lab.client, lab.router.ip6, second);
  await w.daemon.waitForOutput(/msg=refused reason=knock_replay source=fd50:7374::2 key=otp2\b/, 3000);
  assert.doesNotMatch(w.daemon.output(), /knock opened/, 'nothing opened after the last restart');
  assert.equal(await service(w, lab.attacker), 'timeout');
});

test('knock refusals alert over MQTT (schema-valid), a door grant publishes opened then closed, postern log shows knock_wrong', { skip }, async (t) => {
  const door = { name: 'ssh', sequence: ['7000', '8000:udp', '9000'], seq_timeout_s: 2, services: [`tcp/${SERVICE_PORT}`], duration_s: 2 };
  const w = await world(t, { tag: 'kmqtt' });
  const { lab } = w;
  const broker = await startBroker(lab, lab.router, w.dir);
  w.writeConfig({
    state: { database: `${w.dir}/state.db`, flush_interval_s: 1 }, doors: [door],
    mqtt: { url: broker.url, aggregate: { interval_s: 1, max_messages_per_s: 20 } },
  });
  const tap = await startTap(lab, lab.router, broker.url, ['postern/+/alert', 'postern/+/grant']);
  await w.startDaemon();
  await knock(w, lab.attacker, lab.router.ip4, ['9000', '7000']); // wrong order
  await knock(w, lab.attacker, lab.router.ip6, ['7000']); // another source, never finished
  await knock(w, lab.client, lab.router.ip4, door.sequence);
  await w.daemon.waitForOutput(/msg="knock opened" door=ssh source=198\.18\.0\.2/, 3000);
  const has = (kind: string) => payloadsOn(tap, 'alert').some((a) => a['event_type'] === kind);
  await eventually(() => has('knock_wrong') && has('knock_timeout'), 10_000, 'knock_wrong and knock_timeout alerts');
  await eventually(() => payloadsOn(tap, 'grant').some((g) => g['event_type'] === 'closed'), 10_000, 'grant closed at expiry');
  const alerts = payloadsOn(tap, 'alert');
  assertValid(AlertSchema, alerts);
  const by = (kind: string) => alerts.find((a) => a['event_type'] === kind) ?? {};
  assert.equal(by('knock_wrong')['source'], lab.attacker.ip4);
  assert.equal(by('knock_timeout')['source'], lab.attacker.ip6);
  assert.equal(by('knock_timeout')['key'], 'ssh', 'the door is the alert key');
  const grants = payloadsOn(tap, 'grant');
  assertValid(GrantSchema, grants);
  assert.deepEqual(grants.map((g) => g['event_type']), ['opened', 'closed']);
  assert.equal(grants[0]?.['grant_id'], grants[1]?.['grant_id']);
  assert.equal(grants[0]?.['address'], lab.client.ip4);
  assert.deepEqual(grants[0]?.['services'], [`tcp/${SERVICE_PORT}`]);
  const log = async () => (await w.postern(lab.router, ['log', '--reason', 'knock_wrong', '--json', '--config', w.configPath])).stdout;
  await eventually(async () => (await log()).includes('"kind":"knock_wrong"'), 5000, 'knock_wrong audit row');
  const rows = (await log()).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.ok(rows.length > 0 && rows.every((r) => r['kind'] === 'knock_wrong'), JSON.stringify(rows));
  assert.equal(rows[0]?.['source'], lab.attacker.ip4);
});
