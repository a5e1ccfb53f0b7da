// SPDX-License-Identifier: MIT
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Value } from '@sinclair/typebox/value';
import { ManualClock } from '../../../src/platform/clock.ts';
import { memoryLogger } from '../../../src/log/logger.ts';
import { MemoryOutbox, type Outbox, type OutboxMessage } from '../../../src/alert/outbox.ts';
import { AlertService, type AlertTransport } from '../../../src/alert/service.ts';
import { AlertSchema, GrantSchema, StatsSchema } from '../../../src/alert/payloads.ts';
import { MqttSchema } from '../../../src/config/mqtt.ts';

const MQTT = Value.Default(MqttSchema, { url: 'mqtt://127.0.0.1:1883', aggregate: { interval_s: 10, max_messages_per_s: 5, max_sources: 16 } }) as never;

/** A broker that acknowledges everything at once: drain() empties the outbox in order. */
class AckingTransport implements AlertTransport {
  readonly sent: OutboxMessage[] = [];
  readonly now: OutboxMessage[] = [];
  connected = true;
  readonly box: () => Outbox;
  constructor(box: () => Outbox) { this.box = box; }
  publishNow(m: readonly OutboxMessage[]): void { this.now.push(...m); }
  drain(): void {
    if (!this.connected) return;
    for (let b = this.box().peek(20); b.length > 0; b = this.box().peek(20)) {
      this.sent.push(...b);
      this.box().ack(b.at(-1)!.id);
    }
  }
  async stop(): Promise<void> {}
}

function world(cap = 10_000) {
  const clock = new ManualClock();
  const counters = { accepted: 1, bad_auth: 0, replay: 0 };
  const service = new AlertService({
    mqtt: MQTT, device: 'rtr01', topicPrefix: 'postern/rtr01', version: '0.1.0', outbox: new MemoryOutbox(cap), clock,
    logger: memoryLogger(), rssBytes: () => 42_000_000,
    stats: () => ({ counters, failureKinds: ['bad_auth', 'replay'], grantsOpen: 2, database: 'ok', clockTrusted: true }),
  });
  const transport = new AckingTransport(() => service.outbox);
  return { clock, service, transport, counters };
}

const payloads = (ms: readonly OutboxMessage[], suffix: string) => ms.filter((m) => m.topic === `postern/rtr01/${suffix}`).map((m) => JSON.parse(m.payload) as Record<string, unknown>);

test('100,000 failures over 10 s: a bounded handful of valid alerts whose counts add up', () => {
  const { clock, service, transport, counters } = world();
  service.start(transport);
  for (let i = 0; i < 100_000; i++) {
    if (i % 1000 === 0) clock.advance(100);
    const reason = i % 2 === 0 ? 'bad_auth' : 'replay';
    counters[reason]++;
    service.emit({ type: 'failure', reason, source: `198.18.${(i >> 8) & 255}.${i & 255}`, atMs: clock.wallMs() });
  }
  clock.advance(60_000);
  const alerts = payloads(transport.sent, 'alert');
  // Per interval: 16 tracked sources + one (kind, "*") pair per kind, each at most a first
  // message and a sum; the flood spans two intervals.
  assert.ok(alerts.length > 0 && alerts.length <= 2 * 2 * (16 + 2), `${alerts.length} alerts`);
  for (const a of alerts) assert.ok(Value.Check(AlertSchema, a), JSON.stringify([...Value.Errors(AlertSchema, a)]));
  assert.equal(alerts.reduce((n, a) => n + (a['count'] as number), 0), counters.bad_auth + counters.replay);
  assert.equal(new Set(alerts.map((a) => a['id'])).size, alerts.length);
  assert.equal(service.outbox.size(), 0);
  // Stats every 60 s, retained, valid.
  const stats = payloads(transport.now, 'stats');
  assert.ok(stats.length >= 1);
  assert.ok(Value.Check(StatsSchema, stats[0]));
  assert.equal(stats[0]!['failed_total'], 100_000);
});

test('grant events: opened and closed, valid, in order, not retained', () => {
  const { clock, service, transport } = world();
  service.start(transport);
  const base = { type: 'grant' as const, grantId: 'g1', key: 'alice', source: '198.51.100.7', address: '198.51.100.7', services: ['tcp/22'] };
  service.emit({ ...base, action: 'opened', expiresMs: clock.wallMs() + 30_000, atMs: clock.wallMs() });
  service.emit({ ...base, action: 'closed', atMs: clock.wallMs() + 1 });
  const grants = transport.sent.filter((m) => m.topic === 'postern/rtr01/grant');
  assert.deepEqual(grants.map((m) => [m.qos, m.retain]), [[1, false], [1, false]]);
  const p = grants.map((m) => JSON.parse(m.payload) as Record<string, unknown>);
  for (const g of p) assert.ok(Value.Check(GrantSchema, g), JSON.stringify([...Value.Errors(GrantSchema, g)]));
  assert.deepEqual(p.map((g) => g['event_type']), ['opened', 'closed']);
});

test('outbox over its cap while the broker is away: oldest dropped, an outbox_dropped alert says how many', () => {
  const { clock, service, transport } = world(5);
  transport.connected = false;
  service.start(transport);
  for (let i = 0; i < 12; i++) {
    service.emit({ type: 'grant', action: 'opened', grantId: `g${i}`, key: 'k', source: '10.0.0.1', address: '10.0.0.1', services: [], atMs: clock.wallMs() });
  }
  assert.equal(service.outbox.size(), 5);
  transport.connected = true;
  // What the publisher does on connect: status, discovery, stats, dropped report; then drain.
  transport.publishNow(service.onConnectMessages());
  transport.drain();
  const dropped = payloads(transport.now, 'alert');
  const grants = payloads(transport.sent, 'grant');
  assert.equal(dropped.length, 1);
  assert.ok(Value.Check(AlertSchema, dropped[0]));
  assert.equal(dropped[0]?.['event_type'], 'outbox_dropped');
  assert.equal(dropped[0]?.['count'], 7);
  assert.deepEqual(grants.map((g) => g['grant_id']), ['g7', 'g8', 'g9', 'g10', 'g11']);
  assert.equal(service.outbox.size(), 0);
});

test('useOutbox moves waiting messages, in order, into the store\'s outbox', () => {
  const { service, transport } = world();
  transport.connected = false;
  service.start(transport);
  service.emit({ type: 'failure', reason: 'stale', source: '10.0.0.1', atMs: 1 });
  service.emit({ type: 'failure', reason: 'stale', source: '10.0.0.2', atMs: 2 });
  const store = new MemoryOutbox(100);
  store.append([{ topic: 'postern/rtr01/alert', payload: '{"left":"from the last run"}', qos: 1, retain: false }], 0);
  service.useOutbox(store);
  assert.equal(service.outbox, store);
  assert.deepEqual(store.peek(10).map((e) => JSON.parse(e.payload)['source'] ?? 'old'), ['old', '10.0.0.1', '10.0.0.2']);
});

test('a database state change becomes an alert', () => {
  const { service, transport } = world();
  service.start(transport);
  service.emit({ type: 'state', database: 'memory', reason: 'open: SQLITE_CORRUPT', atMs: 5 });
  const [a] = payloads(transport.sent, 'alert');
  assert.ok(Value.Check(AlertSchema, a));
  assert.equal(a?.['event_type'], 'database_memory');
});

test('timers: a day of ticks keeps one pending run per timer; stop cancels them', async () => {
  const { clock, service, transport } = world();
  service.start(transport);
  clock.advance(24 * 3600 * 1000);
  const statsBefore = transport.now.length;
  assert.ok(statsBefore >= 1440, `${statsBefore} stats messages in a day`);
  await service.stop();
  clock.advance(3600 * 1000);
  assert.equal(transport.now.length, statsBefore, 'no stats after stop');
});

test('stats carry the kernel prefilter count when the daemon has one, and leave it out otherwise', () => {
  const base = { counters: { accepted: 0 }, failureKinds: [], grantsOpen: 0, database: 'ok', clockTrusted: true };
  const make = (extra: object) => new AlertService({
    mqtt: MQTT, device: 'rtr01', topicPrefix: 'postern/rtr01', version: '0.1.0', outbox: new MemoryOutbox(10), clock: new ManualClock(),
    logger: memoryLogger(), rssBytes: () => 1, stats: () => ({ ...base, ...extra }),
  });
  const on = JSON.parse(make({ prefilterDropped: 181_234 }).statsMessage().payload) as Record<string, unknown>;
  assert.ok(Value.Check(StatsSchema, on));
  assert.equal(on['prefilter_dropped'], 181_234);
  const off = JSON.parse(make({}).statsMessage().payload) as Record<string, unknown>;
  assert.ok(Value.Check(StatsSchema, off));
  assert.equal('prefilter_dropped' in off, false);
});
