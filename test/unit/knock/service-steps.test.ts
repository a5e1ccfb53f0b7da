// SPDX-License-Identifier: MIT
// The knock service (src/daemon/knock.ts) with a real state store: a time-derived door's
// used step is committed (visible to another connection) before the grant is asked for,
// and a new service over the reopened database (a restart) refuses the same sequence as
// knock_replay while the previous step's sequence still opens.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateConfig, type Config } from '../../../src/config/load.ts';
import { KnockService } from '../../../src/daemon/knock.ts';
import { KnockStepLedger } from '../../../src/daemon/knock-steps.ts';
import { TotpKey, currentStep, deriveSequence, formatDoorKey } from '../../../src/knock/totp.ts';
import { memoryLogger } from '../../../src/log/logger.ts';
import { ManualClock } from '../../../src/platform/clock.ts';
import { Credential } from '../../../src/spa/credential.ts';
import { openReadOnly } from '../../../src/store/sqlite.ts';
import { Store } from '../../../src/store/store.ts';

const dir = mkdtempSync(join(tmpdir(), 'postern-ksvc-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const DB = join(dir, 'state.db');
const RAW_KEY = Buffer.alloc(32, 3);
const RANGE = { length: 4, portMin: 20000, portMax: 40000 };

function config(): Config {
  const r = validateConfig({
    device: 'edge-1', guarded: ['tcp/22'],
    keys: [{ name: 'alice', credential: new Credential(1, Buffer.alloc(32, 1)).encode(), services: ['tcp/22'] }],
    doors: [{ name: 'otp', totp: { key: formatDoorKey(RAW_KEY), port_min: RANGE.portMin, port_max: RANGE.portMax }, services: ['tcp/22'] }],
  });
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  return r.config;
}

function service(clock: ManualClock) {
  const store = Store.open({ path: DB, caps: { auditRows: 100, outboxRows: 10, grantRows: 16, auditSources: 8 }, log: memoryLogger(), nowMs: clock.wallMs() });
  const refused: string[] = [];
  const granted: { source: string; stepsOnDisk: unknown[] }[] = [];
  const svc = new KnockService(config(), {
    clock, logger: memoryLogger(), runner: async () => ({ code: 0, stdout: '', stderr: '' }),
    refuse: (reason, source) => refused.push(`${reason} ${source}`),
    opened: () => {},
    grant: async (_name, _plan, source) => {
      const db = openReadOnly(DB); // another connection: sees only what is committed
      try { granted.push({ source, stepsOnDisk: db.prepare('SELECT door, step FROM knock_steps').all() }); } finally { db.close(); }
    },
    steps: new KnockStepLedger(() => store),
  });
  return { store, svc, refused, granted };
}

function knock(svc: KnockService, ports: readonly number[], src: string): void {
  for (const port of ports) svc.onFrame({ family: 4, src, dst: '198.18.0.1', proto: 'tcp', srcPort: 40000, dstPort: port, tcpFlags: 0x02, payload: Buffer.alloc(0) });
}

test('the used step is on disk before the grant; after a restart its sequence is a knock_replay', () => {
  const clock = new ManualClock();
  const step = currentStep(clock.wallMs(), 30);
  const seq = (s: number) => deriveSequence(new TotpKey(RAW_KEY), s, { ...RANGE, avoid: new Set() });
  const first = service(clock);
  knock(first.svc, seq(step), '198.18.0.2');
  assert.deepEqual(first.granted, [{ source: '198.18.0.2', stepsOnDisk: [{ door: 'otp', step }] }]);
  first.svc.retire();
  first.store.close();

  clock.advance(5000); // same step: the sequence would still be accepted
  const second = service(clock);
  knock(second.svc, seq(step), '198.18.0.3');
  assert.equal(second.granted.length, 0);
  assert.deepEqual(second.refused, ['knock_replay 198.18.0.3']);
  knock(second.svc, seq(step - 1), '198.18.0.4');
  assert.equal(second.granted[0]?.source, '198.18.0.4', 'the previous step was never used');
  second.svc.retire();
  second.store.close();
});
