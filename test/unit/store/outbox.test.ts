// SPDX-License-Identifier: MIT
// SqliteOutbox against its contract (src/alert/outbox.ts), differentially: random
// append/peek/ack sequences give exactly what MemoryOutbox gives, and the rows survive a
// reopen (an outage of the daemon loses nothing under the cap).

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { MemoryOutbox, type OutboxEntry } from '../../../src/alert/outbox.ts';
import { memoryLogger } from '../../../src/log/logger.ts';
import { Store } from '../../../src/store/store.ts';

const dir = mkdtempSync(join(tmpdir(), 'postern-outbox-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

function openStore(path: string, cap: number): Store {
  return Store.open({ path, log: memoryLogger(), nowMs: 0, caps: { auditRows: 100, outboxRows: cap, grantRows: 16, auditSources: 8 } });
}

const strip = (e: OutboxEntry) => ({ topic: e.topic, payload: e.payload, qos: e.qos, retain: e.retain, createdMs: e.createdMs });

type Op = { t: 'append'; count: number } | { t: 'peek'; limit: number } | { t: 'ack'; nth: number };

test('SqliteOutbox behaves exactly like MemoryOutbox (order, cap, dropped, ack)', () => {
  const op = fc.oneof(
    fc.record({ t: fc.constant('append' as const), count: fc.integer({ min: 0, max: 7 }) }),
    fc.record({ t: fc.constant('peek' as const), limit: fc.integer({ min: 0, max: 12 }) }),
    fc.record({ t: fc.constant('ack' as const), nth: fc.integer({ min: 0, max: 12 }) }),
  );
  fc.assert(fc.property(fc.integer({ min: 1, max: 10 }), fc.array(op, { maxLength: 40 }), (cap, ops: Op[]) => {
    const store = openStore(join(dir, `o${n++}.db`), cap);
    const sql = store.outbox();
    const mem = new MemoryOutbox(cap);
    let seq = 0;
    try {
      for (const o of ops) {
        if (o.t === 'append') {
          const msgs = Array.from({ length: o.count }, () => ({ topic: `t/${seq}`, payload: `{"n":${seq++}}`, qos: 1 as const, retain: seq % 2 === 0 }));
          assert.deepEqual(sql.append(msgs, seq), mem.append(msgs, seq));
        } else if (o.t === 'peek') {
          assert.deepEqual(sql.peek(o.limit).map(strip), mem.peek(o.limit).map(strip));
        } else {
          // Ack the nth entry of each (ids differ between the two; positions do not).
          const s = sql.peek(o.nth + 1)[o.nth];
          const m = mem.peek(o.nth + 1)[o.nth];
          assert.equal(s === undefined, m === undefined);
          if (s && m) { sql.ack(s.id); mem.ack(m.id); }
        }
        assert.equal(sql.size(), mem.size());
      }
    } finally {
      store.close();
    }
  }), { numRuns: 60 });
});

test('outbox rows survive a restart, oldest first', () => {
  const path = join(dir, 'restart.db');
  const a = openStore(path, 5);
  assert.deepEqual(a.outbox().append([1, 2, 3, 4, 5, 6, 7].map((i) => ({ topic: 'x', payload: String(i), qos: 1, retain: false })), 1), { dropped: 2 });
  a.close();
  const b = openStore(path, 5);
  assert.deepEqual(b.outbox().peek(10).map((e) => e.payload), ['3', '4', '5', '6', '7']);
  b.close();
});
