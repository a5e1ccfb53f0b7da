// SPDX-License-Identifier: MIT
// Used steps of time-derived knock doors in the state store (src/store/knock-steps.ts)
// and the daemon's ledger over it (src/daemon/knock-steps.ts): they survive close/open,
// are pruned per door and capped, a schema-2 database migrates, and a degraded store
// keeps the ledger working from memory.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { KnockStepLedger } from '../../../src/daemon/knock-steps.ts';
import { memoryLogger } from '../../../src/log/logger.ts';
import { KNOCK_STEP_ROWS } from '../../../src/store/knock-steps.ts';
import { SCHEMA_VERSION } from '../../../src/store/migrations.ts';
import type { Database } from '../../../src/store/sqlite.ts';
import { Store } from '../../../src/store/store.ts';

const dirs: string[] = [];
after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'postern-steps-'));
  dirs.push(d);
  return d;
}

const CAPS = { auditRows: 100, outboxRows: 10, grantRows: 16, auditSources: 8 };
const open = (path: string) => Store.open({ path, caps: CAPS, log: memoryLogger(), nowMs: 1_700_000_000_000 });

test('used steps survive close/open; each door keeps only steps >= its minimum', () => {
  const path = join(tempDir(), 'state.db');
  const s = open(path);
  s.recordKnockStep('otp', 100, 98);
  s.recordKnockStep('otp', 100, 98); // a repeat is one row
  s.recordKnockStep('other', 5, 3);
  s.recordKnockStep('otp', 103, 101); // prunes 100 for otp, not other's 5
  s.close();
  const again = open(path);
  assert.deepEqual(again.loadKnockSteps(), [{ door: 'other', step: 5 }, { door: 'otp', step: 103 }]);
  again.close();
});

test(`the table is capped at ${KNOCK_STEP_ROWS} rows, oldest dropped first`, () => {
  const s = open(join(tempDir(), 'state.db'));
  for (let i = 0; i < KNOCK_STEP_ROWS + 50; i++) s.recordKnockStep(`door${i}`, 1, 0);
  const rows = s.loadKnockSteps();
  assert.equal(rows.length, KNOCK_STEP_ROWS);
  assert.equal(rows[0]?.door, 'door50');
  s.close();
});

test('a schema-2 database (before knock steps) migrates and keeps its data', () => {
  const path = join(tempDir(), 'state.db');
  const Sqlite = createRequire(import.meta.url)('better-sqlite3') as new (p: string) => Database;
  const s = open(path);
  s.recordAccept('replay', { keyId: 1, tag: '0011223344556677', tsMs: 1 }, 16);
  s.close();
  const db = new Sqlite(path);
  db.exec('DROP TABLE knock_steps; PRAGMA user_version = 2;');
  db.close();
  const again = open(path);
  assert.equal(again.state, 'ok');
  assert.equal(again.loadReplay('replay', 16, 60_000)?.entries.length, 1);
  again.recordKnockStep('otp', 7, 5);
  assert.deepEqual(again.loadKnockSteps(), [{ door: 'otp', step: 7 }]);
  again.close();
  const check = new Sqlite(path);
  assert.equal(check.pragma('user_version', { simple: true }), SCHEMA_VERSION);
  check.close();
});

test('the ledger loads from the store, writes through, and works from memory when the store is gone', () => {
  const path = join(tempDir(), 'state.db');
  const s = open(path);
  s.recordKnockStep('otp', 50, 48);
  let store: Store | undefined = s;
  const ledger = new KnockStepLedger(() => store);
  assert.deepEqual(ledger.steps('otp', 48), [50]);
  assert.deepEqual(ledger.steps('otp', 51), [], 'below the minimum: no longer matters');
  ledger.record('otp', 51, 49);
  s.close();
  const reopened = open(path);
  assert.deepEqual(reopened.loadKnockSteps().map((r) => r.step), [50, 51], 'written through before record() returned');
  reopened.close();
  store = undefined; // memory-only: no database at all
  ledger.record('otp', 52, 50);
  assert.deepEqual([...ledger.steps('otp', 50)].sort(), [50, 51, 52]);
});

test('a write that fails degrades the store to memory without throwing; the ledger still remembers', () => {
  const path = join(tempDir(), 'state.db');
  const s = open(path);
  const ledger = new KnockStepLedger(() => s);
  assert.deepEqual(ledger.steps('otp', 0), []);
  // Another process breaks the database under the daemon (the table is gone).
  const Sqlite = createRequire(import.meta.url)('better-sqlite3') as new (p: string) => Database;
  const other = new Sqlite(path);
  other.exec('DROP TABLE knock_steps');
  other.close();
  ledger.record('otp', 9, 7);
  assert.equal(s.state, 'memory');
  assert.match(s.status().reason ?? '', /^knock step: /);
  ledger.record('otp', 10, 8);
  assert.deepEqual([...ledger.steps('otp', 7)].sort(), [10, 9].sort());
  assert.deepEqual(s.loadKnockSteps(), [], 'memory only: nothing to load');
  s.close();
});
