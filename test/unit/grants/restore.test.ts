// SPDX-License-Identifier: MIT
// Persisted grants in the grant manager: the journal sees every save before the firewall
// apply and every close; restore() brings back open grants for the time they have left
// (never more than their duration, whatever the wall clock did) and drops expired ones;
// revokeById closes one grant.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GrantManager, type GrantJournal, type JournalGrant } from '../../../src/grants/manager.ts';
import type { Grant } from '../../../src/firewall/types.ts';
import { memoryLogger } from '../../../src/log/logger.ts';
import { ManualClock } from '../../../src/platform/clock.ts';
import { RecordingBackend } from '../../fakes/firewall.ts';

const settle = () => new Promise((r) => setImmediate(r));

function setup() {
  const clock = new ManualClock();
  const backend = new RecordingBackend();
  const journal: string[] = [];
  const closed: string[] = [];
  const j: GrantJournal = {
    save: (g, source, durationMs) => journal.push(`save ${g.id} ${source} ${durationMs} ops=${backend.ops.length}`),
    remove: (id) => journal.push(`remove ${id}`),
  };
  const mgr = new GrantManager({ backend, clock, logger: memoryLogger(), maxGrants: 8, journal: j, onClose: (g, why) => closed.push(`${g.id} ${why}`) });
  return { clock, backend, mgr, journal, closed };
}

const plan = { family: 4 as const, address: '198.18.0.2', services: [{ proto: 'tcp' as const, port: 22 }], durationS: 30 };

test('saved before the firewall applies it; removed and reported when it expires', async () => {
  const { clock, mgr, journal, closed } = setup();
  const ev = await mgr.grant('tech', plan, '198.18.0.9');
  assert.ok(ev);
  assert.deepEqual(journal, [`save ${ev.grant.id} 198.18.0.9 30000 ops=0`]);
  clock.advance(30_000);
  await settle();
  assert.deepEqual(journal.slice(1), [`remove ${ev.grant.id}`]);
  assert.deepEqual(closed, [`${ev.grant.id} expired`]);
});

function stored(id: string, expiresAtMs: number, durationMs: number, address = '198.18.0.2'): JournalGrant {
  const grant: Grant = { id, key: 'tech', family: 4, address, services: [{ proto: 'tcp', port: 22 }], expiresAtMs };
  return { grant, durationMs };
}

test('restore: time left by the wall clock, capped at the duration; expired ones leave the journal', async () => {
  const { clock, backend, mgr, journal } = setup();
  const now = clock.wallMs();
  const r = await mgr.restore([
    stored('open', now + 20_000, 60_000), stored('gone', now - 1, 60_000, '198.18.0.4'),
    stored('back', now + 500_000, 10_000, '198.18.0.3'), stored('older', now + 5_000, 60_000),
  ]);
  assert.deepEqual(r.restored.map((g) => [g.id, g.expiresAtMs]), [['back', now + 10_000], ['open', now + 20_000]]);
  assert.deepEqual(r.expired.map((g) => g.id), ['older', 'gone'], 'expired, and superseded for the same tuple');
  assert.deepEqual(journal, ['remove older', 'remove gone']);
  await mgr.reconcile();
  assert.deepEqual([...backend.grants.keys()].sort(), ['back', 'open'], 'reconcile re-adds the restored grants');
  clock.advance(10_000);
  await settle();
  assert.deepEqual(mgr.list().map((g) => g.id), ['open'], 'a clock stepped back did not lengthen "back"');
  // The same tuple again extends the restored grant instead of adding a second one.
  const ev = await mgr.grant('tech', plan);
  assert.equal(ev?.grant.id, 'open');
  assert.equal(ev?.extended, true);
});

test('revokeById closes exactly that grant; an unknown id is false', async () => {
  const { backend, mgr, closed } = setup();
  const a = await mgr.grant('tech', plan);
  const b = await mgr.grant('tech', { ...plan, address: '198.18.0.3' });
  assert.ok(a && b);
  assert.equal(await mgr.revokeById(a.grant.id), true);
  assert.equal(await mgr.revokeById(a.grant.id), false);
  assert.deepEqual(mgr.list().map((g) => g.id), [b.grant.id]);
  assert.deepEqual(closed, [`${a.grant.id} revoked`]);
  assert.ok(!backend.grants.has(a.grant.id));
});
