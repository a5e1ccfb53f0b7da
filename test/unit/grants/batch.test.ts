// SPDX-License-Identifier: MIT
// GrantManager batching (src/grants/manager.ts, batch.ts) against the in-memory backend
// twin: what queues while a firewall call is in flight goes out in the next call, a lone
// request goes out at once, a failed batch fails only its bad changes, and a burst gives
// the same grants and answers as the same requests one after another (property test).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { Grant } from '../../../src/firewall/types.ts';
import type { GrantJournal } from '../../../src/grants/manager.ts';
import { GrantManager, MAX_BATCH } from '../../../src/grants/manager.ts';
import { memoryLogger } from '../../../src/log/logger.ts';
import { ManualClock } from '../../../src/platform/clock.ts';
import type { GrantPlan } from '../../../src/policy/decide.ts';
import { RecordingBackend } from '../../fakes/firewall.ts';

const plan = (i: number, over: Partial<GrantPlan> = {}): GrantPlan => ({
  family: 4, address: `198.18.${i >> 8}.${i & 255}`, services: [{ proto: 'tcp', port: 22 }], durationS: 30, ...over,
});

class Journal implements GrantJournal {
  readonly rows = new Map<string, Grant>();
  /** Journal writes per batch() call; writes outside one are counted as -1 each. */
  readonly batches: number[] = [];
  #open: number | undefined;
  save(g: Grant): void { this.rows.set(g.id, g); this.#count(); }
  remove(id: string): void { this.rows.delete(id); this.#count(); }
  batch(fn: () => void): void {
    this.#open = 0;
    fn();
    if (this.#open > 0) this.batches.push(this.#open);
    this.#open = undefined;
  }
  #count(): void {
    if (this.#open === undefined) this.batches.push(-1);
    else this.#open++;
  }
}

function setup(maxGrants = 10_000) {
  const clock = new ManualClock();
  const backend = new RecordingBackend();
  const journal = new Journal();
  const closed: string[] = [];
  const mgr = new GrantManager({ backend, clock, logger: memoryLogger(), maxGrants, journal, onClose: (g, why) => closed.push(`${g.address} ${why}`) });
  /** Holds every firewall call until the returned function is called. */
  const hold = (): (() => void) => {
    let open = (): void => undefined;
    backend.gate = new Promise<void>((r) => { open = r; });
    return () => { backend.gate = undefined; open(); };
  };
  return { clock, backend, journal, mgr, closed, hold };
}

const settle = () => new Promise((r) => setImmediate(r));

test('a lone request is one call at once: no timer, nothing waited for', async () => {
  const { backend, mgr } = setup();
  const ev = await mgr.grant('alice', plan(1)); // ManualClock: a timer would never fire
  assert.ok(ev && !ev.extended);
  assert.deepEqual(backend.batches, [1]);
});

test('what queues behind a call in flight goes out in ONE next call: opens, extensions, expiries, revocations', async () => {
  const { clock, backend, journal, mgr, hold, closed } = setup();
  await mgr.grant('alice', plan(0, { durationS: 1 }));
  await mgr.grant('alice', plan(1, { durationS: 60 }));
  const release = hold();
  const first = mgr.grant('alice', plan(2)); // in flight
  await settle();
  const burst = Array.from({ length: 100 }, (_, i) => mgr.grant('alice', plan(10 + i)));
  const extended = mgr.grant('alice', plan(1, { durationS: 120 }));
  clock.advance(1_000); // grant 0 expires while the call is in flight
  const revoked = mgr.revokeMatching('alice', '198.18.0.10'); // opened in this same burst: must still close it
  release();
  assert.ok(await first);
  assert.ok((await Promise.all(burst)).every((e) => e && !e.extended));
  assert.equal((await extended)?.extended, true);
  assert.equal(await revoked, 1);
  // 1, 1, 1 (in flight), then 100 opens + 1 extension + 1 expiry; the revocation of a grant
  // opened in that batch waited for the next one.
  assert.deepEqual(backend.batches, [1, 1, 1, 102, 1]);
  assert.deepEqual(journal.batches, [1, 1, 1, 102, 1], 'one journal transaction per firewall call, made before it');
  assert.deepEqual(closed, ['198.18.0.0 expired', '198.18.0.10 closed by client']);
  assert.equal(mgr.size, 101);
  assert.deepEqual(new Set(mgr.list().map((g) => g.id)), new Set(backend.grants.keys()));
});

test('a failed batch is retried one by one: only the refused grant fails, the others open and are journalled', async () => {
  const { backend, journal, mgr, hold } = setup();
  const release = hold();
  void mgr.grant('alice', plan(0));
  await settle();
  backend.refuse = (g) => g.address === '198.18.0.7';
  const asked = Array.from({ length: 10 }, (_, i) => mgr.grant('alice', plan(1 + i)).then((e) => e?.grant.address, (err: unknown) => `failed ${String(err)}`));
  release();
  const got = await Promise.all(asked);
  assert.deepEqual(got.filter((g) => g?.startsWith('failed')), ['failed Error: iptables-restore: exit 4']);
  assert.equal(got.indexOf('failed Error: iptables-restore: exit 4'), 6);
  assert.deepEqual(backend.batches, [1, 10, ...Array(10).fill(1)]);
  assert.equal(mgr.size, 10);
  assert.equal(backend.grants.size, 10);
  assert.deepEqual(new Set([...journal.rows.values()].map((g) => g.address)), new Set(mgr.list().map((g) => g.address)), 'the refused grant left the journal');
});

test('the same tuple twice in one batch is one grant, extended, never shortened', async () => {
  const { backend, mgr, hold } = setup();
  const release = hold();
  void mgr.grant('alice', plan(0));
  await settle();
  const a = mgr.grant('alice', plan(1, { durationS: 60 }));
  const b = mgr.grant('alice', plan(1, { durationS: 10 }));
  release();
  const [ea, eb] = await Promise.all([a, b]);
  assert.ok(ea && eb);
  assert.equal(ea.extended, false);
  assert.equal(eb.extended, true);
  assert.equal(ea.grant.id, eb.grant.id);
  assert.equal(eb.grant.expiresAtMs - ea.grant.expiresAtMs, 0);
  assert.deepEqual(backend.batches, [1, 1]);
  assert.equal(mgr.size, 2);
});

test('maxGrants counts the opens of the batch itself', async () => {
  const { backend, mgr, hold } = setup(5);
  const release = hold();
  void mgr.grant('alice', plan(0));
  await settle();
  const asked = Array.from({ length: 10 }, (_, i) => mgr.grant('alice', plan(1 + i)));
  release();
  assert.equal((await Promise.all(asked)).filter((e) => e !== undefined).length, 4);
  assert.equal(backend.grants.size, 5);
});

test(`a batch holds at most MAX_BATCH (${MAX_BATCH}) requests; expiries of a large batch are one call`, async () => {
  const { clock, backend, mgr, hold } = setup();
  const release = hold();
  void mgr.grant('alice', plan(0, { durationS: 1 }));
  await settle();
  const n = 500;
  const asked = Array.from({ length: n }, (_, i) => mgr.grant('alice', plan(1 + i, { durationS: 1 })));
  release();
  await Promise.all(asked);
  for (let i = 0; i < 3; i++) void mgr.revokeById('none');
  assert.deepEqual(backend.batches, [1, n]);
  assert.ok(backend.batches.every((b) => b <= MAX_BATCH));
  clock.advance(1_000);
  await settle();
  await mgr.reconcile();
  assert.equal(mgr.size, 0);
  assert.equal(backend.grants.size, 0);
  assert.deepEqual(backend.batches.slice(2, 3), [n + 1], 'every expiry in one call');
});

type Op = { kind: 'grant'; addr: number; durationS: number } | { kind: 'close'; addr: number } | { kind: 'revoke'; known: boolean };

/** Runs the ops; `burst`: all asked while one firewall call is held (so they coalesce);
 *  else each awaited before the next. Returns every answer and the final grants. */
async function run(ops: readonly Op[], burst: boolean): Promise<unknown> {
  const { backend, mgr, hold } = setup(4);
  const known = (await mgr.grant('alice', plan(200)))?.grant.id ?? '';
  const release = burst ? hold() : () => undefined;
  // The first call: held in a burst, so that every op after it queues behind it.
  const answers: Array<Promise<unknown>> = [mgr.grant('alice', plan(201)).then((e) => e?.grant.address)];
  if (burst) await settle();
  else await answers[0];
  for (const op of ops) {
    const p: Promise<unknown> =
      op.kind === 'grant' ? mgr.grant('alice', plan(op.addr, { durationS: op.durationS }))
        // Without the expiry: requests for one tuple in one batch all answer with the grant
        // as it went to the firewall (the longest expiry), one after another each with its own.
        .then((e) => (e === undefined ? 'refused' : `${e.grant.address} ${e.extended}`))
      : op.kind === 'close' ? mgr.revokeMatching('alice', plan(op.addr).address)
        : mgr.revokeById(op.known ? known : 'none');
    answers.push(p);
    if (!burst) await p;
  }
  release();
  const all = await Promise.all(answers);
  const live = mgr.list().map((g) => `${g.address} ${g.expiresAtMs}`).sort();
  assert.deepEqual([...backend.grants.values()].map((g) => `${g.address} ${g.expiresAtMs}`).sort(), live, 'firewall = manager');
  return { all, live };
}

test('property: a burst gives the same answers and grants as the same requests one after another', async () => {
  const op = fc.oneof(
    fc.record({ kind: fc.constant('grant' as const), addr: fc.integer({ min: 0, max: 5 }), durationS: fc.integer({ min: 1, max: 3 }) }),
    fc.record({ kind: fc.constant('close' as const), addr: fc.integer({ min: 0, max: 5 }) }),
    fc.record({ kind: fc.constant('revoke' as const), known: fc.boolean() }),
  );
  await fc.assert(fc.asyncProperty(fc.array(op, { maxLength: 30 }), async (ops) => {
    const [a, b] = [await run(ops, true), await run(ops, false)];
    assert.deepEqual(a, b);
  }), { numRuns: 200 });
});

test('an expiry timer that fires early (libuv counts from a stale loop time) waits again instead of leaving the grant open', async () => {
  const clock = new ManualClock();
  const EARLY_MS = 50;
  // Fires EARLY_MS before it is due, as a setTimeout armed during a long synchronous turn does.
  const early = { wallMs: () => clock.wallMs(), monoMs: () => clock.monoMs(), schedule: (ms: number, fn: () => void) => clock.schedule(ms - EARLY_MS, fn) };
  const backend = new RecordingBackend();
  const mgr = new GrantManager({ backend, clock: early, logger: memoryLogger(), maxGrants: 10 });
  await mgr.grant('alice', plan(1, { durationS: 1 }));
  clock.advance(1_000 - EARLY_MS);
  await settle();
  assert.equal(mgr.size, 1, 'not due yet');
  clock.advance(EARLY_MS);
  await settle();
  clock.advance(EARLY_MS); // the re-armed timer fires early too, by at most the same
  await settle();
  assert.equal(mgr.size, 0);
  assert.equal(backend.grants.size, 0);
});
