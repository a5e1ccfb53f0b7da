// SPDX-License-Identifier: MIT
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GrantManager, MAX_PENDING_GRANTS } from '../../../src/grants/manager.ts';
import { memoryLogger } from '../../../src/log/logger.ts';
import { ManualClock } from '../../../src/platform/clock.ts';
import type { GrantPlan } from '../../../src/policy/decide.ts';
import { RecordingBackend } from '../../fakes/firewall.ts';

const plan = (over: Partial<GrantPlan> = {}): GrantPlan => ({
  family: 4, address: '198.18.0.2', services: [{ proto: 'tcp', port: 22 }], durationS: 30, ...over,
});

function setup(maxGrants = 10) {
  const clock = new ManualClock();
  const backend = new RecordingBackend();
  const log = memoryLogger();
  const mgr = new GrantManager({ backend, clock, logger: log, maxGrants });
  return { clock, backend, mgr, log };
}

const settle = () => new Promise((r) => setImmediate(r));

test('a grant expires on the monotonic timer, within the second', async () => {
  const { clock, backend, mgr } = setup();
  const ev = await mgr.grant('alice', plan());
  assert.ok(ev && !ev.extended);
  assert.equal(ev.grant.expiresAtMs, clock.wallMs() + 30_000);
  clock.advance(29_999);
  await settle();
  assert.equal(backend.grants.size, 1);
  clock.advance(1);
  await settle();
  assert.equal(backend.grants.size, 0);
  assert.deepEqual(backend.ops, [`apply ${ev.grant.id}`, `revoke ${ev.grant.id}`]);
});

test('re-authorising the same tuple extends; it never duplicates or shortens', async () => {
  const { clock, backend, mgr } = setup();
  const a = await mgr.grant('alice', plan({ durationS: 60 }));
  clock.advance(10_000);
  const b = await mgr.grant('alice', plan({ durationS: 20 }));
  assert.ok(a && b && b.extended);
  assert.equal(b.grant.id, a.grant.id);
  assert.equal(b.grant.expiresAtMs, a.grant.expiresAtMs, 'a shorter request does not shorten');
  const c = await mgr.grant('alice', plan({ durationS: 120, services: [{ proto: 'tcp', port: 22 }] }));
  assert.ok(c?.extended);
  assert.equal(mgr.size, 1);
  assert.equal(backend.grants.size, 1);
  clock.advance(119_999);
  await settle();
  assert.equal(backend.grants.size, 1, 'the extended grant outlives the first timer');
  clock.advance(2);
  await settle();
  assert.equal(backend.grants.size, 0);
});

test('a wall-clock jump neither shortens nor extends a grant', async () => {
  const { clock, backend, mgr } = setup();
  await mgr.grant('alice', plan({ durationS: 30 }));
  clock.jumpWall(3_600_000);
  clock.advance(29_000);
  await settle();
  assert.equal(backend.grants.size, 1);
  clock.jumpWall(-7_200_000);
  clock.advance(1_000);
  await settle();
  assert.equal(backend.grants.size, 0);
});

test('different addresses or services are separate grants; the cap holds', async () => {
  const { mgr } = setup(2);
  assert.ok(await mgr.grant('alice', plan()));
  assert.ok(await mgr.grant('alice', plan({ address: '198.18.0.3' })));
  assert.equal(await mgr.grant('alice', plan({ address: '198.18.0.4' })), undefined);
  assert.ok(await mgr.grant('alice', plan()), 'extending at the cap still works');
});

test('close early revokes only that key and address', async () => {
  const { backend, mgr } = setup();
  await mgr.grant('alice', plan());
  await mgr.grant('alice', plan({ address: '198.18.0.3' }));
  await mgr.grant('bob', plan());
  assert.equal(await mgr.revokeMatching('alice', '198.18.0.2'), 1);
  assert.equal(backend.grants.size, 2);
});

test('a firewall failure rejects that grant and leaves the queue working', async () => {
  const { backend, mgr } = setup();
  backend.failNext = true;
  await assert.rejects(mgr.grant('alice', plan()), /exit 4/);
  assert.equal(mgr.size, 0);
  assert.ok(await mgr.grant('alice', plan()));
});

test('requests waiting for the firewall are bounded: past the bound they are refused at once', async () => {
  const { backend, mgr } = setup(10_000);
  // Twice the bound of distinct grants asked for in one burst, none awaited: they all wait
  // for one firewall call.
  const asked = Array.from({ length: 2 * MAX_PENDING_GRANTS }, (_, i) => mgr.grant('alice', plan({ address: `198.18.${i >> 8}.${i & 255}` })));
  const results = await Promise.all(asked);
  const granted = results.filter((r) => r !== undefined).length;
  assert.equal(granted, MAX_PENDING_GRANTS, 'exactly the bound was queued; the rest refused (grant_limit)');
  assert.equal(backend.grants.size, MAX_PENDING_GRANTS);
  // Once the queue has drained, new requests are taken again.
  assert.ok(await mgr.grant('alice', plan({ address: '198.19.0.1' })));
});
