// SPDX-License-Identifier: MIT
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateConfig } from '../../../src/config/load.ts';
import { topicPrefix } from '../../../src/config/mqtt.ts';
import { connectOptions } from '../../../src/alert/options.ts';

const base = { device: 'rtr01', guarded: ['tcp/22'], keys: [] };

test('mqtt: defaults, and alerts off without the section', () => {
  const off = validateConfig(base);
  assert.ok(off.ok && off.config.raw.mqtt === undefined);
  const on = validateConfig({ ...base, mqtt: { url: 'mqtt://127.0.0.1' } });
  assert.ok(on.ok, JSON.stringify(!on.ok && on.errors));
  const m = on.config.raw.mqtt!;
  assert.equal(topicPrefix(m, 'rtr01'), 'postern/rtr01');
  assert.deepEqual([m.qos, m.ha_discovery.enabled, m.ha_discovery.prefix, m.aggregate.interval_s, m.aggregate.max_messages_per_s, m.aggregate.max_sources, m.stats_interval_s], [1, false, 'homeassistant', 10, 5, 64, 60]);
});

test('mqtt: every error listed; the password is never quoted', () => {
  const r = validateConfig({ ...base, mqtt: { url: 'http://x', password: 'hunter2-secret', password_file: '/p', topic_prefix: 'a/#', qos: 2, tls: { cert: '/c' } } });
  assert.ok(!r.ok);
  const text = r.errors.join('\n');
  for (const path of ['/mqtt/url', '/mqtt/topic_prefix', '/mqtt/qos']) assert.match(text, new RegExp(path), text);
  assert.doesNotMatch(text, /hunter2/);
  const cross = validateConfig({ ...base, mqtt: { url: 'mqtt://h', password: 'x', password_file: '/p', tls: { cert: '/c', ca: '/a' } } });
  assert.ok(!cross.ok);
  assert.deepEqual(cross.errors, [
    '/mqtt: set password or password_file, not both',
    '/mqtt: a password needs a username',
    '/mqtt/tls: cert and key go together',
    '/mqtt/tls: TLS files need an mqtts:// or wss:// url',
  ]);
  for (const url of ['mqtt://h:1883', 'mqtts://h', 'ws://h/mqtt', 'wss://h:443/mqtt']) assert.ok(validateConfig({ ...base, mqtt: { url } }).ok, url);
});

test('connect options: files read at start, missing ones listed; the will is a retained offline', () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-mqtt-'));
  writeFileSync(join(dir, 'pass'), 's3cret\n');
  writeFileSync(join(dir, 'ca.pem'), 'CA');
  const r = validateConfig({ ...base, mqtt: { url: 'mqtts://h', username: 'u', password_file: join(dir, 'pass'), tls: { ca: join(dir, 'ca.pem') } } });
  assert.ok(r.ok);
  const o = connectOptions(r.config.raw.mqtt!, 'postern/rtr01/status', 'rtr01');
  assert.ok(o.ok);
  assert.equal(o.options.password, 's3cret');
  assert.equal(String(o.options.ca), 'CA');
  assert.equal(o.options.clientId, 'postern-rtr01');
  assert.equal(o.options.queueQoSZero, false);
  assert.equal(o.options.writeCache, false, 'no 65,536-buffer number cache (about 8 MB RSS)');
  assert.deepEqual({ ...o.options.will, payload: String(o.options.will?.payload) }, { topic: 'postern/rtr01/status', payload: 'offline', qos: 1, retain: true });
  const bad = validateConfig({ ...base, mqtt: { url: 'mqtts://h', username: 'u', password_file: join(dir, 'nope'), tls: { cert: join(dir, 'c'), key: join(dir, 'k') } } });
  assert.ok(bad.ok);
  const failed = connectOptions(bad.config.raw.mqtt!, 't', 'rtr01');
  assert.ok(!failed.ok);
  assert.equal(failed.errors.length, 3);
});

test('broker URLs are parsed with the WHATWG parser: host, port, ws path, IPv6, credentials', async () => {
  const { brokerOptions } = await import('../../../src/alert/options.ts');
  assert.deepEqual(brokerOptions('mqtt://127.0.0.1:1883'), { protocol: 'mqtt', host: '127.0.0.1', port: 1883 });
  assert.deepEqual(brokerOptions('mqtts://[fd00::1]'), { protocol: 'mqtts', host: 'fd00::1' });
  assert.deepEqual(brokerOptions('wss://u%40x:p%3Aw@broker.example:443/mqtt?x=1'), {
    protocol: 'wss', host: 'broker.example', path: '/mqtt?x=1', username: 'u@x', password: 'p:w', // default port: mqtt.js's
  });
  const bad = validateConfig({ ...base, mqtt: { url: 'mqtt://[zz' } });
  assert.ok(!bad.ok && bad.errors.includes('/mqtt/url: not a valid URL'), JSON.stringify(bad));
});
