// SPDX-License-Identifier: MIT
// Resource exhaustion in the SQLite state (src/store): every table a flood can write to has a
// row cap (DESIGN.md "State"), checked here against a real database file after a bounded
// hostile input: the MQTT outbox (broker away during 100,000 alerts), the audit table (many
// intervals of spoofed sources), the replay tables and the grants table. Those two are
// written once per authenticated packet, each a durable transaction (~3 ms here), so their
// floods are 2,000 and 1,000 rows: many times their caps. Counts are read back separately.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { memoryLogger } from '../../../src/log/logger.ts';
import { openReadOnly } from '../../../src/store/sqlite.ts';
import { Store, type StoreCaps } from '../../../src/store/store.ts';

const dir = mkdtempSync(join(tmpdir(), 'postern-exhaust-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const CAPS: StoreCaps = { auditRows: 500, outboxRows: 200, grantRows: 32, auditSources: 64 };
const NOW = 1_764_150_000_000;
let n = 0;

function fresh(): { store: Store; path: string } {
  const path = join(dir, `s${n++}.db`);
  return { store: Store.open({ path, caps: CAPS, log: memoryLogger(), nowMs: NOW }), path };
}

function rows(path: string, table: string): number {
  const db = openReadOnly(path);
  try {
    const r = db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number };
    return r.n;
  } finally {
    db.close();
  }
}

test('outbox: 100,000 alerts while the broker is away keep at most outbox_rows rows', () => {
  const { store, path } = fresh();
  const box = store.outbox();
  for (let i = 0; i < 100; i++) {
    box.append(Array.from({ length: 1000 }, (_, j) => ({ topic: 'postern/d/alert', payload: `{"n":${i * 1000 + j}}`, qos: 1 as const, retain: false })), NOW + i);
  }
  assert.equal(box.size(), CAPS.outboxRows);
  assert.equal(store.state, 'ok');
  store.close();
  assert.equal(rows(path, 'outbox'), CAPS.outboxRows);
});

test('audit table: 300 intervals of 1,000 spoofed sources keep at most audit_rows rows', () => {
  const { store, path } = fresh();
  for (let interval = 0; interval < 300; interval++) {
    for (let i = 0; i < 1000; i++) store.audit('unknown_key', `10.${interval & 255}.${i >> 8}.${i & 255}`, undefined, NOW + interval * 5000);
    store.flush();
  }
  store.close();
  assert.ok(rows(path, 'audit') <= CAPS.auditRows, `audit rows ${rows(path, 'audit')}`);
});

test('replay tables: 1,000 accepted packets each keep at most the ring capacity of rows', () => {
  const { store, path } = fresh();
  for (let i = 0; i < 1000; i++) {
    store.recordAccept('replay', { keyId: 1 + (i % 8), tag: i.toString(16).padStart(16, '0'), tsMs: NOW + i }, 32);
    store.recordAccept('fwknop_replay', { keyId: 1, tag: (i + 1).toString(16).padStart(16, '0'), tsMs: NOW + i }, 64);
  }
  store.close();
  assert.ok(rows(path, 'replay_entries') <= 32, `replay rows ${rows(path, 'replay_entries')}`);
  assert.ok(rows(path, 'fwknop_replay_entries') <= 64);
});

test('grants table: 1,000 distinct grants keep at most grant_rows rows', () => {
  const { store, path } = fresh();
  for (let i = 0; i < 1000; i++) {
    const address = `10.0.${i >> 8}.${i & 255}`;
    store.saveGrant({
      grant: { id: `g${i.toString(16)}`, key: 'alice', family: 4, address, services: [{ proto: 'tcp', port: 22 }], expiresAtMs: NOW + 60_000 + i },
      source: address, durationMs: 60_000, createdMs: NOW + i,
    });
  }
  store.close();
  assert.ok(rows(path, 'grants') <= CAPS.grantRows, `grant rows ${rows(path, 'grants')}`);
});
