// SPDX-License-Identifier: MIT
// `postern alerts` parses what a broker delivers: hostile input never throws, never reaches
// the terminal with control characters, and the device is the topic's, not the payload's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { clean, formatJson, formatLine, parseReceived } from '../../../src/alert/format.ts';

const alert = { v: 1, id: 'ab-1', device: 'liar', event_type: 'bad_auth', kind: 'bad_auth', source: '198.51.100.9', key: 'alice', count: 3, first_ms: 1_700_000_000_000, last_ms: 1_700_000_009_000 };
const grant = { v: 1, id: 'ab-2', device: 'rtr01', event_type: 'opened', grant_id: 'g1', key: 'tech', source: '203.0.113.4', address: '203.0.113.4', services: ['tcp/22'], expires_ms: 1_700_000_060_000, at_ms: 1_700_000_000_000 };

test('parseReceived: device from the topic, schema-checked payloads, one readable line', () => {
  const a = parseReceived('postern', 'postern/rtr01/alert', Buffer.from(JSON.stringify(alert)));
  assert.ok(a.ok);
  assert.equal(formatLine(a), '2023-11-14T22:13:29Z rtr01 alert bad_auth x3 source=198.51.100.9 key=alice (2023-11-14T22:13:20Z .. 2023-11-14T22:13:29Z)');
  assert.equal(JSON.parse(formatJson(a))['device'], 'rtr01');
  const g = parseReceived('fleet/eu', 'fleet/eu/rtr01/grant', Buffer.from(JSON.stringify(grant)));
  assert.ok(g.ok);
  assert.equal(formatLine(g), '2023-11-14T22:13:20Z rtr01 grant opened key=tech source=203.0.113.4 address=203.0.113.4 services=tcp/22 until 2023-11-14T22:14:20Z id=g1');
  for (const [topic, payload, error] of [
    ['postern/rtr01/alert', '{', 'payload is not JSON'],
    ['postern/rtr01/alert', JSON.stringify({ ...alert, v: 2 }), 'not a v1 alert payload'],
    ['postern/rtr01/grant', JSON.stringify(alert), 'not a v1 grant payload'],
    ['postern/rtr01/stats', '{}', 'unexpected topic'],
    ['postern/a/b/alert', '{}', 'unexpected topic'],
    ['postern//alert', '{}', 'unexpected topic'],
    ['other/rtr01/alert', '{}', 'unexpected topic'],
  ] as const) {
    const r = parseReceived('postern', topic, Buffer.from(payload));
    assert.deepEqual(r, { ok: false, topic, error });
  }
});

test('control characters never reach the terminal', () => {
  const evil = { ...alert, key: 'a\u001b[2Jb' };
  const r = parseReceived('postern', 'postern/x\u0007y/alert', Buffer.from(JSON.stringify(evil)));
  assert.ok(r.ok);
  assert.doesNotMatch(formatLine(r), /[\u0000-\u001f\u007f-\u009f]/);
  assert.equal(clean('ok\u009b31m'), 'ok?31m');
});

test('fuzz: parseReceived never throws on arbitrary topics and payloads', () => {
  const payload = fc.oneof(fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)),
    fc.jsonValue().map((j) => Buffer.from(JSON.stringify(j) ?? 'null')),
    fc.record({ ...Object.fromEntries(Object.entries(alert).map(([k, v]) => [k, fc.oneof(fc.constant(v), fc.jsonValue())])) }).map((o) => Buffer.from(JSON.stringify(o))));
  const topic = fc.oneof(fc.string({ maxLength: 60 }), fc.constantFrom('postern/a/alert', 'postern/a/grant', 'postern//alert', 'postern/+/alert'));
  fc.assert(fc.property(topic, payload, (t, p) => {
    const r = parseReceived('postern', t, p);
    if (r.ok) assert.doesNotMatch(formatLine(r), /[\u0000-\u001f]/);
  }), { numRuns: 2000 });
  assert.deepEqual(parseReceived('postern', 'postern/a/alert', Buffer.alloc(17_000, 0x20)), { ok: false, topic: 'postern/a/alert', error: 'payload too large' });
});

test('formatLine: outbox_dropped and database alerts', () => {
  const dropped = parseReceived('postern', 'postern/rtr01/alert', Buffer.from(JSON.stringify({ v: 1, id: 'x-3', device: 'rtr01', event_type: 'outbox_dropped', count: 7, at_ms: 1_700_000_000_000 })));
  assert.ok(dropped.ok);
  assert.equal(formatLine(dropped), '2023-11-14T22:13:20Z rtr01 alert outbox_dropped x7 (undelivered alerts lost to the outbox cap)');
  const db = parseReceived('postern', 'postern/rtr01/alert', Buffer.from(JSON.stringify({ v: 1, id: 'x-4', device: 'rtr01', event_type: 'database_memory', database: 'memory', reason: 'open: SQLITE_READONLY', at_ms: 1_700_000_000_000 })));
  assert.ok(db.ok);
  assert.equal(formatLine(db), '2023-11-14T22:13:20Z rtr01 alert database_memory database=memory reason="open: SQLITE_READONLY"');
});

test('times past the Date range (found by the fuzz test: last_ms 8640000000000001) print as such, never throw', () => {
  for (const ms of [8_640_000_000_000_001, Number.MAX_SAFE_INTEGER]) {
    const r = parseReceived('postern', 'postern/liar/alert', Buffer.from(JSON.stringify({ ...alert, last_ms: ms, first_ms: ms })));
    assert.ok(r.ok);
    assert.match(formatLine(r), new RegExp(`\\(time ${ms} out of range\\) liar alert bad_auth x3`));
  }
});
