// SPDX-License-Identifier: MIT
// Resource exhaustion in the grant manager (src/grants/manager.ts): a flood of valid-looking
// grant requests from 100,000 distinct addresses (e.g. a leaked key used from a botnet) never
// holds more than maxGrants live grants, in the manager or in the firewall; expiry frees the
// slots on monotonic time.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { GrantManager } from '../../../src/grants/manager.ts';
import { memoryLogger } from '../../../src/log/logger.ts';
import { ManualClock } from '../../../src/platform/clock.ts';
import { RecordingBackend } from '../../fakes/firewall.ts';

const FLOOD = 100_000;
const MAX = 256;

test('100,000 distinct grant requests keep at most maxGrants live, in the manager and the firewall', async () => {
  const clock = new ManualClock();
  const backend = new RecordingBackend();
  const mgr = new GrantManager({ backend, clock, logger: memoryLogger('info'), maxGrants: MAX });
  let refused = 0;
  const pending: Promise<unknown>[] = [];
  for (let i = 0; i < FLOOD; i++) {
    const address = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    pending.push(mgr.grant('leaked', { family: 4, address, services: [{ proto: 'tcp', port: 22 }], durationS: 30 }).then((ev) => { if (!ev) refused++; }));
    if (pending.length >= 1000) await Promise.all(pending.splice(0));
  }
  await Promise.all(pending);
  assert.equal(mgr.size, MAX);
  assert.equal(backend.grants.size, MAX);
  assert.equal(refused, FLOOD - MAX);
  clock.advance(30_000);
  await new Promise((r) => setImmediate(r));
  await mgr.grant('alice', { family: 4, address: '198.18.0.2', services: [{ proto: 'tcp', port: 22 }], durationS: 30 });
  assert.equal(mgr.size, 1, 'expiry on monotonic time freed every slot');
});
