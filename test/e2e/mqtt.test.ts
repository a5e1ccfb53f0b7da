// SPDX-License-Identifier: MIT
// MQTT alerts end to end (issue 6 tests 1-3): the real bundle as the daemon in the lab's
// router namespace, a real mosquitto on the router's loopback (random port, config written
// here), and a subscriber beside it. Every payload received is validated against the
// schemas docs/mqtt.md prints (test/unit/alert/docs.test.ts keeps the two equal).

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Value } from '@sinclair/typebox/value';
import type { TSchema } from '@sinclair/typebox';
import { join } from 'node:path';
import { labSkipReason } from '../lab/lab.ts';
import { probeArgv } from '../lab/net-probe.ts';
import { Credential, generateCredential } from '../../src/spa/credential.ts';
import { AlertSchema, GrantSchema, StatsSchema } from '../../src/alert/payloads.ts';
import { SPA_PORT, bundleSkipReason, createWorld, eventually, sleep, type World, NO_PREFILTER } from './harness.ts';
import { payloadsOn, startBroker, startTap, tapMessages, type Broker } from './mqtt-lab.ts';
import { checkDiscovery } from '../unit/alert/ha-format.ts';
import type { LabProcess } from '../lab/lab.ts';

const skip = labSkipReason() ?? bundleSkipReason();
const PREFIX = 'postern/lab-router';

async function mqttWorld(t: TestContext, mqtt: Record<string, unknown> = {}): Promise<{ w: World; broker: Broker; tap: LabProcess }> {
  const w = await createWorld({ tag: 'mqtt', config: NO_PREFILTER });
  t.after(() => w.close());
  const broker = await startBroker(w.lab, w.lab.router, w.dir);
  w.writeConfig({ mqtt: { url: broker.url, aggregate: { interval_s: 1, max_messages_per_s: 20 }, stats_interval_s: 5, ...mqtt } });
  const tap = await startTap(w.lab, w.lab.router, broker.url, [`${PREFIX}/#`, 'homeassistant/#']);
  await w.startDaemon();
  await eventually(() => tapMessages(tap).some((m) => m.topic === `${PREFIX}/status` && m.payload === 'online'), 10_000, 'status online');
  return { w, broker, tap };
}

function assertValid(schema: TSchema, payloads: readonly Record<string, unknown>[]): void {
  for (const p of payloads) assert.ok(Value.Check(schema, p), `${JSON.stringify(p)}: ${JSON.stringify([...Value.Errors(schema, p)].map((e) => `${e.path} ${e.message}`))}`);
}

const countOf = (alerts: readonly Record<string, unknown>[], kind: string) =>
  alerts.filter((a) => a['event_type'] === kind).reduce((n, a) => n + (a['count'] as number), 0);

test('each failure kind alerts with its fields; a grant publishes opened and closed; all valid; discovery retained', { skip }, async (t) => {
  const { w, broker, tap } = await mqttWorld(t, { ha_discovery: { enabled: true } });
  const { lab } = w;
  const send = (over: Parameters<World['packet']>[0]) => w.sendRaw(lab.client, w.packet(over));
  await send({ credential: new Credential(w.key.keyId, Buffer.alloc(32, 9)) });
  await send({ credential: generateCredential() });
  await send({ nowMs: Date.now() - 10 * 60_000 });
  await send({ services: [{ proto: 'tcp', port: 443 }] });
  await send({ durationS: 121 });
  const valid = w.packet({ durationS: 2 });
  await w.sendRaw(lab.client, valid);
  await w.sendRaw(lab.attacker, valid);
  await w.sendRaw(lab.client, Buffer.alloc(3, 1));
  const kinds = ['bad_auth', 'unknown_key', 'stale', 'denied_service', 'denied_duration', 'replay', 'too_short'];
  await eventually(() => kinds.every((k) => payloadsOn(tap, 'alert').some((a) => a['event_type'] === k)), 10_000, `alerts for ${kinds.join(', ')}`);
  await eventually(() => payloadsOn(tap, 'grant').some((g) => g['event_type'] === 'closed'), 10_000, 'grant closed at expiry');
  const alerts = payloadsOn(tap, 'alert');
  assertValid(AlertSchema, alerts);
  const by = (k: string) => alerts.find((a) => a['event_type'] === k)!;
  assert.deepEqual({ source: by('bad_auth')['source'], key: by('bad_auth')['key'], kind: by('bad_auth')['kind'] }, { source: lab.client.ip4, key: 'tech', kind: 'bad_auth' });
  assert.equal(by('unknown_key')['key'], undefined);
  assert.equal(by('denied_service')['key'], 'tech');
  assert.equal(by('replay')['source'], lab.attacker.ip4);
  for (const a of alerts) assert.equal(a['device'], 'lab-router');
  const grants = payloadsOn(tap, 'grant');
  assertValid(GrantSchema, grants);
  assert.deepEqual(grants.map((g) => g['event_type']), ['opened', 'closed']);
  assert.equal(grants[0]!['grant_id'], grants[1]!['grant_id']);
  assert.deepEqual(grants[0]!['services'], ['tcp/22']);
  assert.equal(grants[0]!['address'], lab.client.ip4);
  assert.ok((grants[0]!['expires_ms'] as number) > (grants[0]!['at_ms'] as number));
  // Retained state: stats and HA discovery; events never retained.
  await eventually(() => payloadsOn(tap, 'stats').length > 0, 10_000, 'stats');
  const stats = payloadsOn(tap, 'stats');
  assertValid(StatsSchema, stats);
  const msgs = tapMessages(tap);
  assert.ok(msgs.filter((m) => m.topic.startsWith('homeassistant/')).length >= 5);
  assert.ok(msgs.filter((m) => /\/(alert|grant)$/.test(m.topic)).every((m) => !m.retain));
  const late = await startTap(lab, lab.router, broker.url, [`${PREFIX}/#`, 'homeassistant/#']);
  await eventually(() => tapMessages(late).some((m) => m.topic.endsWith('/stats') && m.retain), 5000, 'retained stats for a late subscriber');
  const sent = msgs.filter((m) => m.topic.startsWith('homeassistant/')).length;
  await eventually(() => tapMessages(late).filter((m) => m.topic.startsWith('homeassistant/')).length === sent, 5000, 'every discovery message retained');
  const lateMsgs = tapMessages(late);
  // What the broker kept, as Home Assistant will read it after its own restart.
  for (const m of lateMsgs.filter((x) => x.topic.startsWith('homeassistant/'))) checkDiscovery(m.topic, m.payload, m.retain, `${PREFIX}/status`);
  assert.ok(lateMsgs.some((m) => m.topic === `${PREFIX}/status` && m.payload === 'online' && m.retain));
  assert.ok(lateMsgs.some((m) => m.topic === 'homeassistant/event/postern_lab-router/attempt/config' && m.retain));
  assert.ok(!lateMsgs.some((m) => /\/(alert|grant)$/.test(m.topic)), 'events are not retained');
});

test('last will: kill -9 makes status offline; a restart makes it online again', { skip }, async (t) => {
  const { w, tap } = await mqttWorld(t);
  const statuses = () => tapMessages(tap).filter((m) => m.topic === `${PREFIX}/status`).map((m) => m.payload);
  w.daemon.kill('SIGKILL');
  await w.daemon.exited();
  // mosquitto notices the dead TCP connection at once (RST) and publishes the will.
  await eventually(() => statuses().at(-1) === 'offline', 10_000, 'status offline after kill -9');
  await w.startDaemon();
  await eventually(() => statuses().at(-1) === 'online', 10_000, 'status online after restart');
  // A clean stop says offline too (no will on a clean disconnect).
  w.daemon.kill('SIGTERM');
  await w.daemon.exited();
  await eventually(() => statuses().at(-1) === 'offline', 10_000, 'status offline after SIGTERM');
});

test('broker down during 1,000 failures: after restart every aggregated alert arrives, in order; the outbox empties', { skip }, async (t) => {
  const { w, broker, tap } = await mqttWorld(t);
  const { lab } = w;
  broker.proc.kill('SIGTERM');
  await broker.proc.exited();
  await sleep(300);
  const before = payloadsOn(tap, 'alert').length;
  const flood = await lab.exec(lab.attacker, probeArgv(['udp-flood', lab.router.ip4, SPA_PORT, 1000, 20, 11]), { timeoutMs: 30_000 });
  assert.equal(JSON.parse(flood.stdout.trim().split('\n').pop() ?? '{}').sent, 1000);
  for (let i = 0; i < 5; i++) await w.sendRaw(lab.client, w.packet({ credential: generateCredential() }));
  await sleep(2500); // two aggregation intervals pass while the broker is away
  assert.equal(payloadsOn(tap, 'alert').length, before, 'nothing arrives while the broker is down');
  await broker.restart();
  // The alerts waited in the (SQLite) outbox: the reconnect found them there.
  const waiting = Number(/msg="broker connected" url=\S+ outbox=(\d+)/.exec((await w.daemon.waitForOutput(/msg="broker connected" url=\S+ outbox=[1-9]\d*/, 15_000)))?.[1]);
  assert.ok(waiting >= 3, `outbox held ${waiting} messages at reconnect`);
  // Outbox drained: a stats message (sent on connect, then every 5 s) reports it empty.
  await eventually(() => payloadsOn(tap, 'stats').some((s) => s['outbox'] === 0 && (s['failed_total'] as number) >= 1005), 20_000, 'stats with an empty outbox');
  await sleep(1500);
  const alerts = payloadsOn(tap, 'alert').slice(before);
  assertValid(AlertSchema, alerts);
  const stats = payloadsOn(tap, 'stats').at(-1)!;
  const counted = stats['failed_total'] as number;
  // Duplicates (QoS 1 redelivery) share an id: count each id once.
  const unique = new Map(alerts.map((a) => [a['id'] as string, a]));
  const total = [...unique.values()].reduce((n, a) => n + (a['count'] as number), 0);
  assert.equal(total, counted, `alert counts ${total} vs daemon counters ${counted}`);
  assert.ok(unique.size < 100, `${unique.size} messages for ${counted} failures`);
  // In order: ids carry a per-run sequence number that only grows.
  const seqs = alerts.map((a) => Number(String(a['id']).split('-')[1]));
  const firstSeen = seqs.filter((s, i) => seqs.indexOf(s) === i);
  assert.deepEqual(firstSeen, [...firstSeen].sort((a, b) => a - b));
  assert.equal(countOf(alerts, 'unknown_key') >= 5, true);
});

test('a 100,000-packet junk flood: a bounded handful of alerts whose counts add up to the daemon\'s counters', { skip }, async (t) => {
  const { w, tap } = await mqttWorld(t, { aggregate: { interval_s: 2, max_messages_per_s: 5, max_sources: 16 } });
  const { lab } = w;
  const flood = await lab.exec(lab.attacker, probeArgv(['udp-flood', lab.router.ip4, SPA_PORT, 100_000, 30, 5]), { timeoutMs: 45_000 });
  const sent = JSON.parse(flood.stdout.trim().split('\n').pop() ?? '{}') as { sent: number; ms: number };
  assert.equal(sent.sent, 100_000);
  // Stats come every 5 s; wait until no failure is pending (the last summed alerts are out).
  let counted = -1;
  await eventually(() => {
    const stats = payloadsOn(tap, 'stats').at(-1);
    const total = payloadsOn(tap, 'alert').reduce((n, a) => n + (a['count'] as number), 0);
    counted = (stats?.['failed_total'] as number | undefined) ?? -1;
    return counted > 0 && total === counted && stats?.['outbox'] === 0;
  }, 30_000, 'alert counts adding up to the stats counters');
  const alerts = payloadsOn(tap, 'alert');
  assertValid(AlertSchema, alerts);
  t.diagnostic(`${sent.sent} packets in ${sent.ms} ms: daemon counted ${counted} failures, ${alerts.length} alert messages`);
  assert.ok(counted >= 50_000, `the daemon saw most of the flood (${counted})`);
  assert.ok(alerts.length <= 40, `${alerts.length} alert messages`);
});

test('broker down across a daemon restart: the alerts wait in the database and arrive after both are back', { skip }, async (t) => {
  const { w, broker, tap } = await mqttWorld(t);
  const { lab } = w;
  broker.proc.kill('SIGTERM');
  await broker.proc.exited();
  for (let i = 0; i < 5; i++) await w.sendRaw(lab.client, w.packet({ credential: generateCredential() }));
  await w.sendRaw(lab.client, w.packet({ durationS: 1 }));
  await w.daemon.waitForOutput(/msg="grant closed"/, 5000);
  w.daemon.kill('SIGTERM'); // stop() flushes the summed alerts into the outbox, the store keeps them
  await w.daemon.exited();
  await w.startDaemon();
  await w.daemon.waitForOutput(/msg="broker not reachable; alerts wait in the outbox" retry_s=5\.\.60/, 5000);
  await broker.restart();
  await eventually(() => countOf(payloadsOn(tap, 'alert'), 'unknown_key') >= 5 && payloadsOn(tap, 'grant').length >= 2, 15_000,
    `alerts and grants of the first run:\n${tapMessages(tap).map((m) => m.payload).join('\n')}`);
  const alerts = payloadsOn(tap, 'alert');
  assertValid(AlertSchema, alerts);
  assert.equal(countOf([...new Map(alerts.map((a) => [a['id'], a])).values()], 'unknown_key'), 5);
  assert.deepEqual(payloadsOn(tap, 'grant').map((g) => g['event_type']), ['opened', 'closed']);
  assert.ok(!alerts.some((a) => String(a['event_type']).startsWith('database_')), 'a clean stop is not a database failure');
});

test('outbox over its cap while the broker is down: the oldest are dropped and an outbox_dropped alert counts them', { skip }, async (t) => {
  const w = await createWorld({ tag: 'mqcap', config: NO_PREFILTER });
  t.after(() => w.close());
  const broker = await startBroker(w.lab, w.lab.router, w.dir);
  w.writeConfig({ state: { database: join(w.dir, 'state.db'), outbox_rows: 10 }, mqtt: { url: broker.url } });
  const tap = await startTap(w.lab, w.lab.router, broker.url, [`${PREFIX}/alert`, `${PREFIX}/grant`]);
  await w.startDaemon();
  await w.daemon.waitForOutput(/msg="broker connected"/, 10_000);
  broker.proc.kill('SIGTERM');
  await broker.proc.exited();
  // 15 valid packets: one grant opened, 14 extensions (grant events are never aggregated).
  for (let i = 0; i < 15; i++) await w.sendRaw(w.lab.client, w.packet({ durationS: 30 }));
  await eventually(() => (w.daemon.output().match(/msg="grant (opened|extended)"/g) ?? []).length === 15, 10_000, '15 grant events');
  await broker.restart();
  await eventually(() => payloadsOn(tap, 'grant').length >= 10, 15_000, 'the 10 newest grant events');
  const dropped = payloadsOn(tap, 'alert').filter((a) => a['event_type'] === 'outbox_dropped');
  assertValid(AlertSchema, dropped);
  assert.equal(dropped.length, 1);
  assert.equal(dropped[0]!['count'], 5);
  const grants = payloadsOn(tap, 'grant');
  assert.deepEqual(grants.map((g) => g['event_type']), Array(10).fill('extended'), 'the oldest (opened, first extensions) were dropped');
  // The report comes before the surviving entries it precedes.
  const order = tapMessages(tap).filter((m) => /\/(alert|grant)$/.test(m.topic)).map((m) => m.topic.endsWith('/alert') ? 'dropped' : 'grant');
  assert.equal(order[0], 'dropped');
});
