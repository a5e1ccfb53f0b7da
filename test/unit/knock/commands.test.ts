// SPDX-License-Identifier: MIT
// Door commands (src/daemon/knock-commands.ts): argv with %IP% inside one element, stop
// after cmd_timeout_s, one pending stop per (door, address), failures reported, stopAll.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DoorCommands, expandArgv } from '../../../src/daemon/knock-commands.ts';
import type { DoorConfig } from '../../../src/knock/door.ts';
import type { Runner } from '../../../src/firewall/exec.ts';
import { createLogger } from '../../../src/log/logger.ts';
import { ManualClock } from '../../../src/platform/clock.ts';

const door: DoorConfig = {
  name: 'd', source: { kind: 'static', sequence: [] }, seqTimeoutS: 25, services: [], durationS: 60, allowedAddresses: [],
  start: ['/sbin/x', 'add', '%IP%/32'], stop: ['/sbin/x', 'del', '%IP%'], cmdTimeoutS: 5,
};

function rig(code = 0) {
  const ran: string[][] = [];
  const failures: string[] = [];
  const runner: Runner = async (argv) => { ran.push([...argv]); return { code, stdout: '', stderr: code ? 'boom' : '' }; };
  const clock = new ManualClock();
  const cmds = new DoorCommands({ runner, clock, logger: createLogger({ level: 'error', sink: () => {} }), onFailure: (d, a) => failures.push(`${d} ${a}`) });
  return { ran, failures, clock, cmds };
}

const tick = () => new Promise((r) => setImmediate(r));

test('%IP% is replaced inside one element, never split', () => {
  assert.deepEqual(expandArgv(['/bin/t', '--ip=%IP%', '%IP% %IP%'], '2001:db8::1'), ['/bin/t', '--ip=2001:db8::1', '2001:db8::1 2001:db8::1']);
});

test('start now, stop after cmd_timeout_s; a repeat knock reschedules instead of starting again', async () => {
  const { ran, clock, cmds } = rig();
  cmds.opened(door, '198.18.0.2');
  await tick();
  assert.deepEqual(ran, [['/sbin/x', 'add', '198.18.0.2/32']]);
  clock.advance(4000);
  cmds.opened(door, '198.18.0.2');
  clock.advance(4000);
  await tick();
  assert.equal(ran.length, 1, 'no second start, stop not yet (rescheduled)');
  clock.advance(1001);
  await tick();
  assert.deepEqual(ran.at(-1), ['/sbin/x', 'del', '198.18.0.2']);
  assert.equal(cmds.pending, 0);
});

test('failures are reported; stopAll runs pending stops at once', async () => {
  const { ran, failures, cmds } = rig(1);
  cmds.opened(door, '198.18.0.9');
  await tick();
  assert.deepEqual(failures, ['d 198.18.0.9']);
  await cmds.stopAll();
  assert.deepEqual(ran.at(-1), ['/sbin/x', 'del', '198.18.0.9']);
  assert.equal(cmds.pending, 0);
});
