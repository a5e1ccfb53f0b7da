// SPDX-License-Identifier: MIT
// The state store against real SQLite files: migrations, replay and grant round trips,
// caps, the aggregated audit under a junk flood (bytes on disk), and every degraded mode
// the issue names (corrupt, read-only directory, locked, full disk): no throw, state
// 'memory', and a corrupt file moved aside, never deleted.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { memoryLogger } from '../../../src/log/logger.ts';
import { SCHEMA_VERSION } from '../../../src/store/migrations.ts';
import { readAudit, readCounters } from '../../../src/store/read.ts';
import { openReadOnly, type Database } from '../../../src/store/sqlite.ts';
import { Store, type StoreCaps } from '../../../src/store/store.ts';

const dirs: string[] = [];
after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'postern-store-'));
  dirs.push(d);
  return d;
}

const CAPS: StoreCaps = { auditRows: 100, outboxRows: 10, grantRows: 16, auditSources: 8 };
const NOW = 1_700_000_000_000;

function open(path: string, caps: StoreCaps = CAPS) {
  const states: string[] = [];
  const log = memoryLogger();
  const store = Store.open({ path, caps, log, nowMs: NOW, onState: (s, r) => states.push(`${s}: ${r}`) });
  return { store, states, log };
}

function withReadOnly<T>(path: string, fn: (db: Database) => T): T {
  const db = openReadOnly(path);
  try { return fn(db); } finally { db.close(); }
}

const grant = (id: string, expiresAtMs: number) => ({
  grant: { id, key: 'tech', family: 4 as const, address: '198.18.0.2', services: [{ proto: 'tcp' as const, port: 22 }], expiresAtMs },
  source: '198.18.0.2', durationMs: 60_000, createdMs: NOW,
});

test('a fresh database is at the current schema version, WAL, and replay state survives close/open', () => {
  const path = join(tempDir(), 'state.db');
  const { store } = open(path);
  assert.equal(store.state, 'ok');
  store.recordAccept('replay', { keyId: 7, tag: '00112233aabbccdd', tsMs: NOW }, 16);
  store.recordAccept('fwknop_replay', { keyId: 9, tag: 'ffeeddccbbaa9988', tsMs: NOW + 1 }, 16);
  store.close();
  const again = open(path).store;
  const r = again.loadReplay('replay', 16, 60_000);
  assert.deepEqual(r?.entries, [{ keyId: 7, tag: '00112233aabbccdd', tsMs: NOW }]);
  assert.deepEqual(r?.highwaters, [{ keyId: 7, tsMs: NOW }]);
  assert.equal(again.loadReplay('fwknop_replay', 16, 60_000)?.entries.length, 1);
  again.close();
  withReadOnly(path, (db) => {
    assert.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
  });
});

test('a version-1 database (replay tables only) migrates and keeps its replay rows', () => {
  const path = join(tempDir(), 'state.db');
  const Sqlite = createRequire(import.meta.url)('better-sqlite3') as new (p: string) => Database;
  const old = new Sqlite(path);
  old.exec(`CREATE TABLE replay_entries (seq INTEGER PRIMARY KEY, key_id INTEGER NOT NULL, tag TEXT NOT NULL, ts INTEGER NOT NULL);
    CREATE TABLE replay_keys (key_id INTEGER PRIMARY KEY, floor INTEGER, highwater INTEGER);
    CREATE TABLE fwknop_replay_entries (seq INTEGER PRIMARY KEY, key_id INTEGER NOT NULL, tag TEXT NOT NULL, ts INTEGER NOT NULL);
    CREATE TABLE fwknop_replay_keys (key_id INTEGER PRIMARY KEY, floor INTEGER, highwater INTEGER);
    INSERT INTO replay_entries (key_id, tag, ts) VALUES (1, '0102030405060708', ${NOW});
    PRAGMA user_version = 1;`);
  old.close();
  const { store } = open(path);
  assert.equal(store.state, 'ok');
  assert.equal(store.loadReplay('replay', 16, 60_000)?.entries.length, 1);
  store.saveGrant(grant('abc', NOW + 60_000));
  assert.equal(store.loadGrants().length, 1);
  store.close();
});

test('a database from a newer postern is not touched: memory only', () => {
  const path = join(tempDir(), 'state.db');
  const Sqlite = createRequire(import.meta.url)('better-sqlite3') as new (p: string) => Database;
  const db = new Sqlite(path);
  db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
  db.close();
  const { store, states } = open(path);
  assert.equal(store.state, 'memory');
  assert.match(states[0] ?? '', /^memory: open: .*newer/);
});

test('grants: saved, extended in place, removed; the cap drops the earliest expiry', () => {
  const { store } = open(join(tempDir(), 'state.db'));
  store.saveGrant(grant('a', NOW + 10_000));
  store.saveGrant(grant('a', NOW + 20_000));
  assert.deepEqual(store.loadGrants().map((g) => [g.grant.id, g.grant.expiresAtMs]), [['a', NOW + 20_000]]);
  for (let i = 0; i < 20; i++) store.saveGrant(grant(`g${i}`, NOW + 30_000 + i));
  const ids = store.loadGrants().map((g) => g.grant.id);
  assert.equal(ids.length, CAPS.grantRows);
  assert.ok(!ids.includes('a') && !ids.includes('g0') && ids.includes('g19'));
  store.removeGrant('g19');
  assert.ok(!store.loadGrants().some((g) => g.grant.id === 'g19'));
  store.close();
});

test('grants: a batch (one GrantManager flush) is one transaction: all of it durable together, none of it before', () => {
  const path = join(tempDir(), 'state.db');
  const { store } = open(path);
  store.saveGrant(grant('old', NOW + 10_000));
  const seen: number[] = [];
  const count = () => withReadOnly(path, (db) => (db.prepare('SELECT count(*) AS n FROM grants').get() as { n: number }).n);
  store.batch(() => {
    for (let i = 0; i < 5; i++) store.saveGrant(grant(`b${i}`, NOW + 30_000));
    store.removeGrant('old');
    seen.push(count()); // another connection: the batch is not committed yet
  });
  seen.push(count());
  assert.deepEqual(seen, [1, 5]);
  assert.deepEqual(store.loadGrants().map((g) => g.grant.id).sort(), ['b0', 'b1', 'b2', 'b3', 'b4']);
  store.close();
});

test('audit: a 100,000-packet junk flood is a bounded handful of rows whose counts add up; bytes stay small', () => {
  const path = join(tempDir(), 'state.db');
  const { store } = open(path, { ...CAPS, auditRows: 10_000 });
  store.flush();
  store.close();
  const before = statSync(path).size;
  const again = open(path, { ...CAPS, auditRows: 10_000 }).store;
  const writesBefore = again.status().writes;
  let total = 0;
  for (let interval = 0; interval < 2; interval++) {
    for (let i = 0; i < 50_000; i++) {
      // Half from one address, half spoofed from 25,000 others.
      const source = i % 2 === 0 ? '198.18.0.3' : `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
      again.audit(i % 3 === 0 ? 'unknown_key' : 'too_short', source, undefined, NOW + interval * 5000 + i);
      total++;
    }
    again.setCounters({ unknown_key: total });
    again.flush();
  }
  const writes = again.status().writes - writesBefore;
  again.close();
  assert.equal(writes, 2, 'one transaction per interval');
  const rows = withReadOnly(path, (db) => readAudit(db, { limit: 1000 }));
  assert.ok(rows.length <= 2 * (CAPS.auditSources + 2), `rows: ${rows.length}`);
  assert.equal(rows.reduce((n, r) => n + r.count, 0), total);
  assert.ok(rows.some((r) => r.source === '*'), 'an overflow row stands for the spoofed sources');
  const grown = statSync(path).size - before;
  assert.ok(grown <= 8192, `database grew by ${grown} bytes`);
  assert.deepEqual(withReadOnly(path, readCounters), { unknown_key: total });
});

test('audit table cap: oldest rows pruned first', () => {
  const path = join(tempDir(), 'state.db');
  const { store } = open(path);
  for (let i = 0; i < 30; i++) {
    for (let s = 0; s < 8; s++) store.audit('bad_auth', `198.18.0.${s}`, 'tech', NOW + i * 1000);
    store.flush();
  }
  store.close();
  const rows = withReadOnly(path, (db) => readAudit(db, { limit: 1000 }));
  assert.equal(rows.length, CAPS.auditRows);
  assert.equal(rows[0]?.firstMs, NOW + 17_000);
  assert.equal(withReadOnly(path, (db) => readAudit(db, { limit: 1000, sinceMs: NOW + 29_000 })).length, 8);
});

test('a corrupt file is moved aside (bytes intact) and a fresh database replaces it', () => {
  const dir = tempDir();
  const path = join(dir, 'state.db');
  const junk = Buffer.alloc(8192, 0x5a);
  writeFileSync(path, junk);
  const { store, states, log } = open(path);
  assert.equal(store.state, 'ok');
  const aside = readdirSync(dir).filter((f) => f.startsWith('state.db.corrupt-'));
  assert.deepEqual(aside, [`state.db.corrupt-${NOW}`]);
  assert.deepEqual(readFileSync(join(dir, aside[0] ?? '')), junk);
  assert.match(states[0] ?? '', /^ok: corrupt database moved to/);
  assert.ok(log.lines.some((l) => /corrupt: moved aside/.test(l)));
  store.saveGrant(grant('a', NOW + 1000));
  assert.equal(store.loadGrants().length, 1);
  store.close();
});

test('a read-only directory: memory only, nothing throws, the outbox works in memory', { skip: process.getuid?.() === 0 ? false : 'needs root for chattr-free checks' }, () => {
  const dir = tempDir();
  const ro = join(dir, 'ro');
  mkdirSync(ro);
  // root ignores mode bits, so make the directory really read-only with a read-only bind mount.
  execFileSync('mount', ['--bind', ro, ro]);
  try {
    execFileSync('mount', ['-o', 'remount,bind,ro', ro]);
    const { store, states } = open(join(ro, 'state.db'));
    assert.equal(store.state, 'memory');
    assert.match(states[0] ?? '', /^memory: open: /);
    store.recordAccept('replay', { keyId: 1, tag: '0011223344556677', tsMs: NOW }, 16);
    store.saveGrant(grant('a', NOW + 1));
    store.audit('replay', '198.18.0.3', undefined, NOW);
    store.flush();
    assert.deepEqual(store.loadGrants(), []);
    assert.equal(store.outbox().append([{ topic: 't', payload: 'p', qos: 1, retain: false }], NOW).dropped, 0);
    assert.equal(store.outbox().size(), 1);
    assert.equal(store.status().state, 'memory');
    store.close();
  } finally {
    execFileSync('umount', [ro]);
  }
});

test('a lock held by another connection: the write waits its busy timeout, then the store degrades', () => {
  const path = join(tempDir(), 'state.db');
  const { store, states } = open(path);
  const Sqlite = createRequire(import.meta.url)('better-sqlite3') as new (p: string) => Database;
  const other = new Sqlite(path);
  other.exec('BEGIN EXCLUSIVE');
  try {
    store.saveGrant(grant('a', NOW + 1000));
    assert.equal(store.state, 'memory');
    assert.match(states[0] ?? '', /^memory: grant: SQLITE_BUSY/);
  } finally {
    other.exec('ROLLBACK');
    other.close();
  }
});

test('a full disk: the failed write degrades the store, the file stays', { skip: process.getuid?.() === 0 ? false : 'needs root to mount a tiny tmpfs' }, () => {
  const dir = join(tempDir(), 'tiny');
  mkdirSync(dir);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', dir]);
  try {
    const path = join(dir, 'state.db');
    const { store, states } = open(path, { ...CAPS, outboxRows: 100_000 });
    assert.equal(store.state, 'ok');
    const big = 'x'.repeat(4000);
    for (let i = 0; i < 200 && store.state === 'ok'; i++) store.outbox().append([{ topic: 't', payload: big, qos: 1, retain: false }], NOW);
    assert.equal(store.state, 'memory');
    assert.match(states[0] ?? '', /^memory: outbox: SQLITE_FULL/);
    assert.ok(existsSync(path));
    store.close();
  } finally {
    execFileSync('umount', [dir]);
  }
});


test('after close(), a late outbox call is not a degradation (no state event)', () => {
  const { store, states } = open(join(tempDir(), 'state.db'));
  const outbox = store.outbox();
  store.close();
  outbox.append([{ topic: 't', payload: 'p', qos: 1, retain: false }], NOW);
  assert.deepEqual(states, []);
});
