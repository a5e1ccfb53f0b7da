// SPDX-License-Identifier: MIT
// NftBackend operation sequences (src/firewall/nft.ts) through a recording Runner in front
// of a small in-memory twin of `nft` (NftSim below): which commands run, with which
// scripts, and what the grant sets hold afterwards. The twin models the behaviours the
// backend's recipes depend on, as observed on nft 1.0.6 / Linux 6.x: a transaction is all or
// nothing; `delete element` of an absent element fails it; `add element` of a present one
// keeps its comment and, before Linux 6.10 (`updateOnAdd: false`), its timeout too; expired
// elements are absent; listings give seconds, truncated. The real-kernel proof is
// test/e2e/nft.test.ts.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { RunOptions, RunResult, Runner } from '../../../src/firewall/exec.ts';
import { FirewallValueError } from '../../../src/firewall/iptables-rules.ts';
import { NftBackend } from '../../../src/firewall/nft.ts';
import { DEFAULT_NFT_MARK, elementLines, guardLines, nftScript } from '../../../src/firewall/nft-rules.ts';
import type { Family, Grant, GuardSpec, Service } from '../../../src/firewall/types.ts';
import { memoryLogger } from '../../../src/log/logger.ts';
import { ManualClock } from '../../../src/platform/clock.ts';

const ELEMENT_RE = /^(add|delete) element inet postern grants([46]) \{ (\S+) \. (\S+) \. (\d+)(?: timeout (\d+)ms)?(?: comment "([^"]*)")? \}$/;
const DEF_RE = /^add (set|chain) inet postern (\S+) (\{.*\})$/;
const ok = (stdout = ''): RunResult => ({ code: 0, stdout, stderr: '' });
const bad = (stderr: string): RunResult => ({ code: 1, stdout: '', stderr });

interface SimElement { proto: string; port: number; address: string; comment: string | null; timeoutMs: number | null; expiresAt: number | null }

class NftSim {
  table = false;
  defs = new Map<string, string>();
  rules = new Map<string, string[]>();
  grants: Record<Family, Map<string, SimElement>> = { 4: new Map(), 6: new Map() };
  readonly #clock: ManualClock;
  readonly #updateOnAdd: boolean;

  constructor(clock: ManualClock, updateOnAdd: boolean) {
    this.#clock = clock;
    this.#updateOnAdd = updateOnAdd;
  }

  readonly run: Runner = async (argv, opts) => {
    const cmd = argv.join(' ');
    if (cmd === 'nft -f -') return this.#transaction(opts?.input ?? '');
    const list = /^nft -j list set inet postern grants([46])$/.exec(cmd);
    if (list !== null) return this.table ? ok(this.#listing(Number(list[1]) as Family)) : bad('Error: No such file or directory\n');
    if (cmd === 'nft list table inet postern') return this.table ? ok('table inet postern {}\n') : bad('Error: No such file or directory\n');
    return { code: 2, stdout: '', stderr: `sim: unsupported ${cmd}` };
  };

  live(f: Family): SimElement[] {
    const now = this.#clock.wallMs();
    return [...this.grants[f].values()].filter((e) => e.expiresAt === null || e.expiresAt > now);
  }

  /** The guard part of the table (everything but grant elements), for equality checks. */
  guardState(): string {
    return JSON.stringify([this.table, [...this.defs].sort(), [...this.rules].sort()]);
  }

  #transaction(script: string): RunResult {
    const saved = { table: this.table, defs: new Map(this.defs), rules: new Map([...this.rules].map(([k, v]) => [k, [...v]])),
      grants: { 4: new Map(this.grants[4]), 6: new Map(this.grants[6]) } };
    for (const line of script.split('\n').filter((l) => l !== '')) {
      const why = this.#apply(line);
      if (why !== undefined) {
        Object.assign(this, saved);
        return bad(`Error: Could not process rule: ${why}\n${line}\n`);
      }
    }
    return ok();
  }

  #apply(line: string): string | undefined {
    if (line === 'add table inet postern') return void (this.table = true);
    if (!this.table) return 'No such file or directory';
    if (line === 'delete table inet postern') {
      [this.table, this.defs, this.rules, this.grants] = [false, new Map(), new Map(), { 4: new Map(), 6: new Map() }];
      return undefined;
    }
    const el = ELEMENT_RE.exec(line);
    if (el !== null) return this.#element(el);
    const flushGrants = /^flush set inet postern grants([46])$/.exec(line);
    if (flushGrants !== null) return void this.grants[Number(flushGrants[1]) as Family].clear();
    const def = DEF_RE.exec(line);
    if (def !== null) {
      const [, , name = '', body = ''] = def;
      if (this.defs.has(name) && this.defs.get(name) !== body) return 'File exists';
      this.defs.set(name, body);
      return undefined;
    }
    const m = /^(?:flush (?:chain|set) inet postern (\S+)|add (?:rule|element) inet postern (\S+) (.*))$/.exec(line);
    if (m === null) return `sim cannot parse ${line}`;
    const name = m[1] ?? m[2] ?? '';
    if (!this.defs.has(name)) return 'No such file or directory';
    this.rules.set(name, m[1] !== undefined ? [] : [...(this.rules.get(name) ?? []), m[3] ?? '']);
    return undefined;
  }

  #element(m: RegExpExecArray): string | undefined {
    const [, op, fam, address = '', proto = '', port = '', timeout, comment] = m;
    const set = this.grants[Number(fam) as Family];
    const key = `${address}|${proto}|${port}`;
    const now = this.#clock.wallMs();
    const present = set.get(key);
    const live = present !== undefined && (present.expiresAt === null || present.expiresAt > now);
    if (op === 'delete') return live ? void set.delete(key) : 'No such file or directory';
    const timeoutMs = timeout === undefined ? null : Number(timeout);
    const expiresAt = timeoutMs === null ? null : now + timeoutMs;
    if (!live) set.set(key, { address, proto, port: Number(port), comment: comment ?? null, timeoutMs, expiresAt });
    else if (this.#updateOnAdd && timeoutMs !== null) set.set(key, { ...present, timeoutMs, expiresAt });
    return undefined;
  }

  #listing(f: Family): string {
    const now = this.#clock.wallMs();
    const elem = this.live(f).map((e) => {
      const val = { concat: [e.address, e.proto, e.port] };
      if (e.comment === null && e.expiresAt === null) return val;
      const times = e.expiresAt === null ? {} : { timeout: Math.floor((e.timeoutMs ?? 0) / 1000), expires: Math.floor((e.expiresAt - now) / 1000) };
      return { elem: { val, ...times, ...(e.comment === null ? {} : { comment: e.comment }) } };
    });
    const set = { family: 'inet', name: `grants${f}`, table: 'postern', type: ['x'], handle: 3, flags: ['timeout'], ...(elem.length ? { elem } : {}) };
    return JSON.stringify({ nftables: [{ metainfo: { version: '1.0.6' } }, { set }] });
  }
}

const tcp = (port: number): Service => ({ proto: 'tcp', port });
const udp = (port: number): Service => ({ proto: 'udp', port });
const SPEC: GuardSpec = { guarded: [tcp(22), tcp(443)], capture: [udp(62201), tcp(7000)] };
const T0 = 1_764_150_000_000;
const A: Grant = { id: 'a', key: 'alice', family: 4, address: '198.18.0.2', services: [tcp(22)], expiresAtMs: T0 + 60_000 };
const B: Grant = { id: 'b', key: 'bob', family: 4, address: '198.18.0.2', services: [tcp(22), tcp(443)], expiresAtMs: T0 + 30_000 };
const G6: Grant = { id: 'g6', key: 'alice', family: 6, address: '2001:db8::2', services: [udp(51820)], expiresAtMs: T0 + 90_000 };

type Fail = (argv: readonly string[], input: string | undefined) => RunResult | 'reject' | undefined;

function rig(opts: { updateOnAdd?: boolean; fail?: Fail } = {}) {
  const clock = new ManualClock(T0);
  const sim = new NftSim(clock, opts.updateOnAdd ?? false);
  const calls: { argv: readonly string[]; input: string | undefined }[] = [];
  const runner: Runner = async (argv, o?: RunOptions) => {
    calls.push({ argv, input: o?.input });
    const f = opts.fail?.(argv, o?.input);
    if (f === 'reject') throw new Error('cannot run nft: ENOENT');
    return f ?? sim.run(argv, o);
  };
  const logger = memoryLogger();
  const backend = new NftBackend({ runner, logger, clock });
  /** Live grant elements as `addr . proto . port id remaining-ms`. */
  const elements = (f: Family): string[] => sim.live(f)
    .map((e) => `${e.address} . ${e.proto} . ${e.port} ${e.comment ?? '-'} ${e.expiresAt === null ? '-' : e.expiresAt - clock.wallMs()}`).sort();
  return { backend, sim, clock, calls, logger, elements, take: () => calls.splice(0) };
}

describe('NftBackend', () => {
  it('constructor runs nothing and refuses a mark that is not one bit', () => {
    const r = rig();
    assert.equal(r.backend.name, 'nft');
    assert.equal(r.calls.length, 0);
    assert.throws(() => new NftBackend({ runner: r.sim.run, logger: memoryLogger(), clock: r.clock, mark: 0x30 }), FirewallValueError);
  });

  it('start is one transaction; a second start is identical and keeps the grants', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    assert.deepEqual(r.take(), [{ argv: ['nft', '-f', '-'], input: nftScript(guardLines(SPEC, DEFAULT_NFT_MARK)) }]);
    const state = r.sim.guardState();
    await r.backend.applyGrant(A);
    r.take();
    await r.backend.start(SPEC);
    assert.deepEqual(r.take(), [{ argv: ['nft', '-f', '-'], input: nftScript(guardLines(SPEC, DEFAULT_NFT_MARK)) }]);
    assert.equal(r.sim.guardState(), state);
    assert.deepEqual(r.elements(4), ['198.18.0.2 . tcp . 22 postern:a 60000']);
  });

  it('start replaces a table of another shape, atomically, and says so', async () => {
    const r = rig();
    await r.sim.run(['nft', '-f', '-'], { input: 'add table inet postern\nadd set inet postern grants4 { type ipv4_addr; flags timeout; }\n' });
    await r.backend.start(SPEC);
    const [first, second] = r.take();
    assert.equal(first?.input, nftScript(guardLines(SPEC, DEFAULT_NFT_MARK)));
    assert.match(second?.input ?? '', /^add table inet postern\ndelete table inet postern\nadd table inet postern\n/);
    assert.match(r.logger.lines.join('\n'), /level=warn .*replacing it/);
    const fresh = rig();
    await fresh.backend.start(SPEC);
    assert.equal(r.sim.guardState(), fresh.sim.guardState());
  });

  it('start does not retry when nft cannot be run at all', async () => {
    const r = rig({ fail: () => 'reject' });
    await assert.rejects(r.backend.start(SPEC), /ENOENT/);
    assert.equal(r.calls.length, 1);
  });

  for (const updateOnAdd of [false, true]) {
    describe(`grants (add of a present element ${updateOnAdd ? 'updates its timeout, Linux >= 6.10' : 'is a no-op'})`, () => {
      it('a new grant is one transaction: one element per service, exact remaining ms, id comment', async () => {
        const r = rig({ updateOnAdd });
        await r.backend.start(SPEC);
        r.clock.advance(250);
        r.take();
        await r.backend.applyGrant(B);
        const calls = r.take();
        assert.equal(calls.length, 1);
        assert.equal(calls[0]?.input, nftScript([
          ...elementLines({ ...B, proto: 'tcp', port: 22 }, { id: 'b', timeoutMs: 29_750 }),
          ...elementLines({ ...B, proto: 'tcp', port: 443 }, { id: 'b', timeoutMs: 29_750 }),
        ]));
        assert.deepEqual(r.elements(4), ['198.18.0.2 . tcp . 22 postern:b 29750', '198.18.0.2 . tcp . 443 postern:b 29750']);
        await r.backend.applyGrant(G6);
        assert.deepEqual(r.elements(6), ['2001:db8::2 . udp . 51820 postern:g6 89750']);
      });

      it('extension is one transaction and leaves one element per tuple with the new timeout', async () => {
        const r = rig({ updateOnAdd });
        await r.backend.start(SPEC);
        await r.backend.applyGrant(B);
        r.take();
        const longer = { ...B, expiresAtMs: T0 + 90_000 };
        await r.backend.applyGrant(longer, B);
        assert.equal(r.take().length, 1);
        assert.deepEqual(r.elements(4), ['198.18.0.2 . tcp . 22 postern:b 90000', '198.18.0.2 . tcp . 443 postern:b 90000']);
        // Extension with fewer services: the dropped tuple goes, in the same transaction.
        await r.backend.applyGrant({ ...longer, services: [tcp(22)], expiresAtMs: T0 + 120_000 }, longer);
        assert.equal(r.take().length, 1);
        assert.deepEqual(r.elements(4), ['198.18.0.2 . tcp . 22 postern:b 120000']);
      });

      it('extension after the kernel already expired the element puts it back', async () => {
        const r = rig({ updateOnAdd });
        await r.backend.start(SPEC);
        await r.backend.applyGrant(B);
        r.clock.advance(31_000);
        assert.deepEqual(r.elements(4), []);
        await r.backend.applyGrant({ ...B, expiresAtMs: T0 + 91_000 }, B);
        assert.deepEqual(r.elements(4), ['198.18.0.2 . tcp . 22 postern:b 60000', '198.18.0.2 . tcp . 443 postern:b 60000']);
      });

      it('revoking one of two grants on a shared tuple keeps the other one\'s cover', async () => {
        const r = rig({ updateOnAdd });
        await r.backend.start(SPEC);
        await r.backend.applyGrant(A);
        await r.backend.applyGrant(B);
        assert.deepEqual(r.elements(4), ['198.18.0.2 . tcp . 22 postern:a 60000', '198.18.0.2 . tcp . 443 postern:b 30000']);
        r.clock.advance(1_000);
        r.take();
        await r.backend.revokeGrant(A);
        assert.equal(r.take().length, 1);
        assert.deepEqual(r.elements(4), ['198.18.0.2 . tcp . 22 postern:b 29000', '198.18.0.2 . tcp . 443 postern:b 29000']);
        await r.backend.revokeGrant(B);
        assert.deepEqual(r.elements(4), []);
      });

      it('revoking the shorter grant leaves the longer one untouched', async () => {
        const r = rig({ updateOnAdd });
        await r.backend.start(SPEC);
        await r.backend.applyGrant(A);
        await r.backend.applyGrant(B);
        await r.backend.revokeGrant(B);
        assert.deepEqual(r.elements(4), ['198.18.0.2 . tcp . 22 postern:a 60000']);
      });
    });
  }

  it('revoke succeeds when the elements already expired, twice, and for an unknown grant', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    await r.backend.applyGrant(B);
    r.clock.advance(40_000);
    await r.backend.revokeGrant(B);
    await r.backend.revokeGrant(B);
    await r.backend.revokeGrant(G6);
    assert.deepEqual([r.elements(4), r.elements(6)], [[], []]);
  });

  it('a grant whose transaction failed never becomes a cover', async () => {
    let failNext = false;
    const r = rig({ fail: () => (failNext ? ((failNext = false), bad('Error: Could not process rule: No buffer space available\n')) : undefined) });
    await r.backend.start(SPEC);
    await r.backend.applyGrant(A);
    failNext = true;
    await assert.rejects(r.backend.applyGrant({ ...B, expiresAtMs: T0 + 600_000 }), /No buffer space/);
    await r.backend.revokeGrant(A);
    assert.deepEqual(r.elements(4), []);
  });

  it('reconcile: two listings, one transaction; unknown and untagged go, missing come back', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    await r.backend.applyGrant(B);
    await r.backend.applyGrant(G6);
    await r.sim.run(['nft', '-f', '-'], { input: [
      'add element inet postern grants4 { 198.18.0.9 . tcp . 22 timeout 500000ms comment "postern:ghost" }',
      'add element inet postern grants4 { 198.18.0.7 . udp . 53 }',
      'delete element inet postern grants4 { 198.18.0.2 . tcp . 443 }',
      'delete element inet postern grants6 { 2001:db8::2 . udp . 51820 }', ''].join('\n') });
    r.take();
    r.clock.advance(5_000);
    const report = await r.backend.reconcile([B, G6], r.clock.wallMs());
    assert.deepEqual([...report.removed].sort(), ['ghost']);
    assert.deepEqual([...report.restored].sort(), ['b', 'g6']);
    assert.deepEqual(r.take().map((c) => c.argv.join(' ')), [
      'nft -j list set inet postern grants4', 'nft -j list set inet postern grants6', 'nft -f -',
    ]);
    assert.deepEqual(r.elements(4), ['198.18.0.2 . tcp . 22 postern:b 25000', '198.18.0.2 . tcp . 443 postern:b 25000']);
    assert.deepEqual(r.elements(6), ['2001:db8::2 . udp . 51820 postern:g6 85000']);
    assert.match(r.logger.lines.join('\n'), /without a postern id removed.* count=1/);
    assert.deepEqual(await r.backend.reconcile([B, G6], r.clock.wallMs()), { removed: [], restored: [] });
    assert.equal(r.take().length, 2); // listings only
  });

  it('reconcile rebuilds the covers from the live grants', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    await r.backend.applyGrant(A);
    await r.backend.reconcile([A, B], T0); // B was never applied here, e.g. after a restart
    assert.deepEqual(r.elements(4), ['198.18.0.2 . tcp . 22 postern:a 60000', '198.18.0.2 . tcp . 443 postern:b 30000']);
    await r.backend.revokeGrant(A);
    assert.deepEqual(r.elements(4), ['198.18.0.2 . tcp . 22 postern:b 30000', '198.18.0.2 . tcp . 443 postern:b 30000']);
  });

  it('reconcile refuses to act on an unreadable listing or a missing table', async () => {
    const r = rig({ fail: (argv) => (argv.at(-1) === 'grants6' ? ok('Error: unexpected') : undefined) });
    await r.backend.start(SPEC);
    r.take();
    await assert.rejects(r.backend.reconcile([A], T0), /unreadable listing \(bad_json\)/);
    assert.equal(r.take().filter((c) => c.argv.includes('-f')).length, 0);
    await assert.rejects(rig().backend.reconcile([], T0), /failed \(exit 1\)/);
  });

  it('stop removes the table in one idempotent transaction; keepGuarding flushes only the grant sets', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    await r.backend.applyGrant(B);
    const guard = r.sim.guardState();
    r.take();
    await r.backend.stop({ keepGuarding: true });
    assert.deepEqual(r.take().map((c) => c.input), ['flush set inet postern grants4\nflush set inet postern grants6\n']);
    assert.deepEqual(r.elements(4), []);
    assert.equal(r.sim.guardState(), guard);
    await r.backend.stop({ keepGuarding: false });
    assert.deepEqual(r.take().map((c) => c.input), ['add table inet postern\ndelete table inet postern\n']);
    assert.equal(r.sim.table, false);
    await r.backend.stop({ keepGuarding: false });
    await r.backend.stop({ keepGuarding: true }); // no table: nothing to flush
    assert.deepEqual(r.take().map((c) => c.argv.join(' ')), ['nft -f -', 'nft -f -', 'nft list table inet postern']);
  });

  it('invalid values are rejections, before anything runs', async () => {
    const r = rig();
    await assert.rejects(r.backend.applyGrant({ ...A, address: '198.18.0.2 } ; flush ruleset' }), FirewallValueError);
    await assert.rejects(r.backend.applyGrant(A, { ...A, id: 'A"' }), FirewallValueError);
    await assert.rejects(r.backend.revokeGrant({ ...A, services: [tcp(0)] }), FirewallValueError);
    await assert.rejects(r.backend.start({ guarded: [tcp(65536)], capture: [] }), FirewallValueError);
    await assert.rejects(r.backend.update({ guarded: [], capture: [{ proto: 'icmp' as never, port: 1 }] }), FirewallValueError);
    assert.equal(r.calls.length, 0);
  });

  it('operations run one at a time, in call order', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    r.take();
    await Promise.all([r.backend.applyGrant(A), r.backend.revokeGrant(A), r.backend.applyGrant(B), r.backend.stop({ keepGuarding: true })]);
    const inputs = r.take().map((c) => c.input ?? '');
    assert.deepEqual(inputs.map((i) => /postern:(\w+)/.exec(i)?.[1] ?? (i.startsWith('flush') ? 'flush' : 'revoke')), ['a', 'revoke', 'b', 'flush']);
  });
});

describe('NftBackend against a model of live grants (random operation sequences)', () => {
  const addrs = [[4, '198.18.0.2'], [4, '198.18.0.3'], [6, 'fd50:7374::2']] as const;
  const pool = [tcp(22), tcp(443), udp(53)];
  const op = fc.oneof(
    fc.record({ kind: fc.constant('apply' as const), id: fc.constantFrom('a', 'b', 'c', 'd'), addr: fc.nat(2),
      services: fc.subarray(pool, { minLength: 1 }), ttl: fc.integer({ min: 1, max: 120_000 }) }),
    fc.record({ kind: fc.constant('revoke' as const), id: fc.constantFrom('a', 'b', 'c', 'd') }),
    fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 40_000 }) }),
  );

  /** The element each tuple must carry: the latest expiry among live grants (ties: smallest id). */
  function expected(live: ReadonlyMap<string, Grant>, now: number): string[] {
    const best = new Map<string, [string, number]>();
    for (const g of live.values()) {
      if (g.expiresAtMs <= now) continue;
      for (const s of g.services) {
        const k = `${g.family}|${g.address} . ${s.proto} . ${s.port}`;
        const cur = best.get(k);
        if (cur === undefined || g.expiresAtMs > cur[1] || (g.expiresAtMs === cur[1] && g.id < cur[0])) best.set(k, [g.id, g.expiresAtMs]);
      }
    }
    return [...best].map(([k, [id, exp]]) => `${k} postern:${id} ${exp - now}`).sort();
  }

  it('after every operation the sets hold exactly the longest live cover of each tuple; reconcile then finds nothing', async () => {
    await fc.assert(fc.asyncProperty(fc.array(op, { maxLength: 25 }), fc.boolean(), async (ops, updateOnAdd) => {
      const r = rig({ updateOnAdd });
      await r.backend.start(SPEC);
      const live = new Map<string, Grant>();
      for (const o of ops) {
        const now = r.clock.wallMs();
        if (o.kind === 'wait') r.clock.advance(o.ms);
        else if (o.kind === 'revoke') {
          const g = live.get(o.id);
          if (g !== undefined) await r.backend.revokeGrant(g);
          live.delete(o.id);
        } else {
          const prev = live.get(o.id);
          const [family, address] = addrs[prev === undefined ? o.addr : addrs.findIndex((x) => x[1] === prev.address)] ?? addrs[0];
          const g: Grant = { id: o.id, key: 'k', family, address, services: o.services, expiresAtMs: now + o.ttl };
          await r.backend.applyGrant(g, prev);
          live.set(o.id, g);
        }
        const got = [...r.elements(4).map((e) => `4|${e}`), ...r.elements(6).map((e) => `6|${e}`)].sort();
        assert.deepEqual(got, expected(live, r.clock.wallMs()));
      }
      assert.deepEqual(await r.backend.reconcile([...live.values()], r.clock.wallMs()), { removed: [], restored: [] });
    }), { numRuns: 150 });
  });
});
