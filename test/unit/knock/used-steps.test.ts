// SPDX-License-Identifier: MIT
// Used steps handed to the knock engine (restart/reload: KnockEngine.markUsed) are refused
// as knock_replay; other steps and other doors are unaffected.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KnockEngine, type KnockEvent } from '../../../src/knock/engine.ts';
import type { DoorConfig } from '../../../src/knock/door.ts';
import { TotpKey, currentStep, deriveSequence } from '../../../src/knock/totp.ts';
import { parseCidr } from '../../../src/wire/address.ts';

const ALL = [parseCidr('0.0.0.0/0')].flatMap((c) => (c.ok ? [c.value] : []));
const key = new TotpKey(Buffer.alloc(32, 9));
const RANGE = { length: 4, portMin: 20000, portMax: 40000 };
const totpDoor = (name: string): DoorConfig => ({
  name, source: { kind: 'totp', key, stepS: 30, proto: 'tcp', ...RANGE },
  seqTimeoutS: 25, services: [], durationS: 60, allowedAddresses: ALL, cmdTimeoutS: 10,
});
const WALL = 1_700_000_000_000;
const at = (step: number) => deriveSequence(key, step, { ...RANGE, avoid: new Set() });

function knockAll(engine: KnockEngine, ports: readonly number[], src: string, monoMs: number): KnockEvent[] {
  return ports.flatMap((port) => engine.hit({ src, dst: '', proto: 'tcp', port, tcpFlags: 0x02 }, { monoMs, wallMs: WALL }));
}

test('a step marked used (before a restart) is refused as knock_replay; the other step still opens', () => {
  const now = currentStep(WALL, 30);
  const engine = new KnockEngine([totpDoor('otp')], { maxSources: 8, guardWidth: 0, penaltyMs: 0 });
  engine.markUsed('otp', [now]);
  engine.markUsed('nope', [now - 1]); // an unknown door: ignored
  const replay = knockAll(engine, at(now), '203.0.113.66', 0);
  assert.deepEqual(replay.filter((e) => e.kind === 'open'), []);
  assert.deepEqual(replay.flatMap((e) => (e.kind === 'refused' ? [`${e.reason} ${e.door ?? ''}`] : [])), ['knock_replay otp']);
  const prev = knockAll(engine, at(now - 1), '198.18.0.2', 1);
  assert.deepEqual(prev.flatMap((e) => (e.kind === 'open' ? [e.step] : [])), [now - 1]);
});
