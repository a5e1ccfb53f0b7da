// SPDX-License-Identifier: MIT
// Wall-clock jumps during grants (issue 9), with the real daemon in the lab. The daemon's
// wall clock is moved by the test-only hook of src/platform/clock.ts (POSTERN_TEST_WALL_
// OFFSET_FILE: an offset in ms, re-read every 50 ms; set for the daemon process only). For
// each clock mode (spa.clock trusted / untrusted) and each jump (+-1 h, +-1 year) during a
// grant it shows what docs/protocol.md promises (receive order, step 6):
//   - the grant still expires on monotonic time (duration 3 s: gone 2-6 s after it opened);
//   - nothing is accepted twice: the opening packet, replayed after the jump and again
//     after the expiry, opens nothing;
//   - freshness: trusted, a packet stamped with the client's true time is now stale (it is
//     |ts - now| > window_s away from the jumped clock) and one stamped with the daemon's
//     jumped time is accepted; untrusted, acceptance follows the key's high-water mark
//     (ts > highwater - window_s), whatever the daemon's clock says.
// Plus the pure halves: a time-derived knock door's used step stays used across jumps, and
// the grant manager re-anchors wall expiries from monotonic ones before each reconcile.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { labSkipReason } from '../lab/lab.ts';
import { DoorRuntime } from '../../src/knock/door-runtime.ts';
import { TotpKey } from '../../src/knock/totp.ts';
import { GrantManager } from '../../src/grants/manager.ts';
import { memoryLogger } from '../../src/log/logger.ts';
import { ManualClock, WALL_OFFSET_ENV } from '../../src/platform/clock.ts';
import { RecordingBackend } from '../fakes/firewall.ts';
import { bundleSkipReason, createWorld, eventually, sleep, type Backend, type World } from './harness.ts';

const skip = labSkipReason() ?? bundleSkipReason();
const HOUR = 3_600_000;
const YEAR = 365 * 24 * HOUR;
const DURATION_S = 3;

async function clockWorld(t: TestContext, backend: Backend, mode: 'trusted' | 'untrusted'): Promise<{ w: World; jump: (ms: number) => Promise<void> }> {
  const w = await createWorld({ backend, tag: `clk${mode[0]}`, config: { spa: { port: 62442, clock: mode, window_s: 60 } } });
  t.after(() => w.close());
  const offsetFile = join(w.dir, 'wall-offset');
  writeFileSync(offsetFile, '0');
  // The lab spawns with this process's environment: set the hook for the daemon alone.
  process.env[WALL_OFFSET_ENV] = offsetFile;
  try {
    await w.startDaemon();
  } finally {
    delete process.env[WALL_OFFSET_ENV];
  }
  const jump = async (ms: number) => {
    writeFileSync(offsetFile, String(ms));
    await sleep(200); // past the hook's 50 ms re-read
  };
  return { w, jump };
}

const count = (w: World, re: RegExp): number => w.daemon.output().split('\n').filter((l) => re.test(l)).length;

/** The daemon logs the first refusal of a (reason, source, key) per interval and counts the
 *  repeats (src/log/aggregate.ts): a repeat shows as no new line, so the proof that a packet
 *  was refused is that it opened nothing while a line with its reason exists. */
async function expectRefused(w: World, send: () => Promise<void>, reason: RegExp): Promise<void> {
  const before = count(w, reason);
  const opened = count(w, /msg="grant (opened|extended)"/);
  await send();
  const end = performance.now() + 1500;
  while (performance.now() < end && count(w, reason) === before) await sleep(50);
  if (count(w, reason) === before) await sleep(500); // an aggregated repeat: give a grant time to show, if any
  assert.ok(count(w, reason) > 0, `no refusal matching ${reason}; daemon output ends:\n${w.daemon.output().split('\n').slice(-8).join('\n')}`);
  assert.equal(count(w, /msg="grant (opened|extended)"/), opened, 'a refused packet opened or extended a grant');
}

async function expectOpened(w: World, send: () => Promise<void>): Promise<void> {
  const opened = count(w, /msg="grant (opened|extended)"/);
  await send();
  await eventually(() => count(w, /msg="grant (opened|extended)"/) > opened, 3000, 'a grant');
}

function scenario(backend: Backend, mode: 'trusted' | 'untrusted', jumpMs: number, label: string): void {
  test(`[${backend}] clock ${mode}, wall jump ${label} during a grant: monotonic expiry, no replay, freshness as documented`, { skip }, async (t) => {
    const { w, jump } = await clockWorld(t, backend, mode);
    const { lab } = w;
    const p1 = w.packet({ durationS: DURATION_S });
    await w.sendRaw(lab.client, p1);
    await eventually(async () => (await w.grantRules()).length === 1, 3000, 'the first grant');
    const openedAt = performance.now();
    await jump(jumpMs);
    await expectRefused(w, () => w.sendRaw(lab.attacker, p1), /msg=refused reason=(replay|stale) source=198\.18\.0\.3/);
    await eventually(async () => (await w.grantRules()).length === 0, 8000, 'the grant to expire');
    const livedMs = performance.now() - openedAt;
    assert.ok(livedMs >= (DURATION_S - 1) * 1000 && livedMs <= (DURATION_S + 3) * 1000, `grant lived ${Math.round(livedMs)} ms after a ${label} jump`);
    await expectRefused(w, () => w.sendRaw(lab.client, p1), /msg=refused reason=(replay|stale) source=198\.18\.0\.2/);
    assert.equal((await w.grantRules()).length, 0, 'the replay after expiry opened nothing');
    const trueTime = () => w.sendRaw(lab.client, w.packet({ durationS: DURATION_S, nowMs: Date.now() }));
    const daemonTime = () => w.sendRaw(lab.client, w.packet({ durationS: DURATION_S, nowMs: Date.now() + jumpMs }));
    if (mode === 'trusted') {
      await expectRefused(w, trueTime, /msg=refused reason=stale source=198\.18\.0\.2/);
      await expectOpened(w, daemonTime);
    } else {
      // Above the high-water mark (the first packet's stamp) minus the window: accepted.
      await expectOpened(w, trueTime);
      if (jumpMs > 0) await expectOpened(w, daemonTime);
      else await expectRefused(w, daemonTime, /msg=refused reason=stale source=198\.18\.0\.2/);
    }
  });
}

for (const mode of ['trusted', 'untrusted'] as const) {
  for (const [jumpMs, label] of [[HOUR, '+1 h'], [-HOUR, '-1 h'], [YEAR, '+1 year'], [-YEAR, '-1 year']] as const) scenario('nft', mode, jumpMs, label);
}
// iptables tags rules with a wall-clock expiry and reconciles against it: the year jumps
// there show that a jumped wall clock neither keeps a grant open nor breaks the replay check.
for (const [jumpMs, label] of [[YEAR, '+1 year'], [-YEAR, '-1 year']] as const) scenario('iptables', 'trusted', jumpMs, label);

test('time-derived knock door: a used step stays used when the wall clock jumps forward and back', () => {
  const rt = new DoorRuntime({
    name: 't', source: { kind: 'totp', key: new TotpKey(Buffer.alloc(32, 3)), stepS: 30, length: 3, portMin: 20000, portMax: 20999, proto: 'tcp' },
    seqTimeoutS: 25, services: [], durationS: 60, allowedAddresses: [], cmdTimeoutS: 5,
  });
  const step = 58_000_000;
  assert.equal(rt.useStep(step), true);
  assert.equal(rt.useStep(step + 120), true, 'after a +1 h jump, the current step opens once');
  assert.equal(rt.useStep(step), false, 'back again: the step used before the jump is still refused');
  assert.equal(rt.useStep(step - 120), true);
  assert.equal(rt.useStep(step + 120), false);
});

test('grant manager: a reconcile after a wall jump keeps the grant, re-anchored to its monotonic expiry; drift alone changes nothing', async () => {
  const clock = new ManualClock();
  const backend = new RecordingBackend();
  const mgr = new GrantManager({ backend, clock, logger: memoryLogger('info'), maxGrants: 4 });
  const ev = await mgr.grant('tech', { family: 4, address: '198.18.0.2', services: [{ proto: 'tcp', port: 22 }], durationS: 30 });
  assert.ok(ev);
  clock.jumpWall(1500); // within the slack: no rewrite
  await mgr.reconcile();
  assert.equal(mgr.list()[0]?.expiresAtMs, ev.grant.expiresAtMs);
  for (const jump of [HOUR, -YEAR]) {
    clock.jumpWall(jump);
    await mgr.reconcile();
    assert.equal(backend.grants.size, 1, `the grant survived a ${jump} ms jump`);
    const left = (mgr.list()[0]?.expiresAtMs ?? 0) - clock.wallMs();
    assert.ok(left > 25_000 && left <= 30_000, `wall expiry re-anchored: ${left} ms left`);
  }
  clock.advance(30_000);
  await new Promise((r) => setImmediate(r));
  assert.equal(backend.grants.size, 0, 'still expires on monotonic time');
});
