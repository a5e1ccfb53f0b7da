// SPDX-License-Identifier: MIT
// NftBackend operation sequences (src/firewall/nft.ts) through a recording Runner in front
// of a small in-memory twin of `nft` (NftSim below): which commands run, with which
// scripts, and what the sets and maps hold afterwards. The twin models the behaviours the
// backend's recipes depend on, as observed on nft 1.0.6 / Linux 6.x: a transaction is all or
// nothing; `delete element` of an absent element fails it; `add element` of a present one
// keeps its comment and, before Linux 6.10 (`updateOnAdd: false`), its timeout too; `add` of
// a present map element with other data fails; an interval set refuses an element that
// overlaps another live one (the twin is stricter than the kernel, which misses a range
// that wholly contains an older one: the backend must never rely on that); a set or chain
// still referenced cannot be deleted; expired elements are absent; listings give seconds,
// truncated. The real-kernel proof is test/e2e/nft.test.ts.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { RunOptions, RunResult, Runner } from '../../../src/firewall/exec.ts';
import { FirewallValueError } from '../../../src/firewall/iptables-rules.ts';
import { NftBackend } from '../../../src/firewall/nft.ts';
import { addressToBig, networkRange } from '../../../src/firewall/nft-elements.ts';
import { DEFAULT_NFT_MARK, guardLines, nftScript } from '../../../src/firewall/nft-rules.ts';
import type { Family, Grant, GuardSpec, Service } from '../../../src/firewall/types.ts';
import { memoryLogger } from '../../../src/log/logger.ts';
import { ManualClock } from '../../../src/platform/clock.ts';

const ELEMENT_RE = /^(add|delete) element inet postern (\S+) \{ (.+?)(?: timeout (\d+)ms)?(?: comment "([^"]*)")?(?: : (.+?))? \}$/;
const DEF_RE = /^add (set|map|chain) inet postern (\S+)(?: (\{.*\}))?$/;
const ok = (stdout = ''): RunResult => ({ code: 0, stdout, stderr: '' });
const bad = (stderr: string): RunResult => ({ code: 1, stdout: '', stderr });

interface SimElement { key: string; rest: string; lo: bigint; hi: bigint; data: string | null; comment: string | null; timeoutMs: number | null; expiresAt: number | null }
interface Def { kind: string; body: string | null }
const familyOf = (set: string): Family => (/^[a-z]+6/.test(set) ? 6 : 4);

function parseSource(src: string, f: Family): { lo: bigint; hi: bigint } {
  if (src.includes('/')) return networkRange(src.split('/')[0] ?? '', f, Number(src.split('/')[1]));
  const [a = '', b] = src.split('-');
  return { lo: addressToBig(a, f), hi: addressToBig(b ?? a, f) };
}

class NftSim {
  table = false;
  defs = new Map<string, Def>();
  rules = new Map<string, string[]>();
  sets = new Map<string, Map<string, SimElement>>();
  readonly #clock: ManualClock;
  readonly #updateOnAdd: boolean;

  constructor(clock: ManualClock, updateOnAdd: boolean) {
    this.#clock = clock;
    this.#updateOnAdd = updateOnAdd;
  }

  readonly run: Runner = async (argv, opts) => {
    const cmd = argv.join(' ');
    if (cmd === 'nft -f -') return this.#transaction(opts?.input ?? '');
    if (cmd === 'nft -j list table inet postern') return this.table ? ok(this.#listing()) : bad('Error: No such file or directory\n');
    return { code: 2, stdout: '', stderr: `sim: unsupported ${cmd}` };
  };

  live(set: string, at = this.#clock.wallMs()): SimElement[] {
    return [...(this.sets.get(set)?.values() ?? [])].filter((e) => e.expiresAt === null || e.expiresAt > at);
  }

  /** The element a packet from `addr` meets: the host set's, else the network set's. */
  lookup(kind: string, f: Family, addr: string, rest: string, at: number): SimElement | undefined {
    const a = addressToBig(addr, f);
    for (const set of [`${kind}${f}`, `${kind}${f}net`]) {
      const hit = this.live(set, at).find((e) => e.rest === rest && e.lo <= a && a <= e.hi);
      if (hit !== undefined) return hit;
    }
    return undefined;
  }

  /** Everything but grant elements, for equality checks. */
  guardState(): string {
    const constants = ['guarded', 'capture'].map((s) => [...(this.sets.get(s)?.keys() ?? [])]);
    return JSON.stringify([this.table, [...this.defs].sort(), [...this.rules].sort(), constants]);
  }

  #transaction(script: string): RunResult {
    const copy = (m: Map<string, Map<string, SimElement>>) => new Map([...m].map(([k, v]) => [k, new Map(v)]));
    const saved = { table: this.table, defs: new Map(this.defs), rules: new Map([...this.rules].map(([k, v]) => [k, [...v]])), sets: copy(this.sets) };
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
      [this.table, this.defs, this.rules, this.sets] = [false, new Map(), new Map(), new Map()];
      return undefined;
    }
    const el = ELEMENT_RE.exec(line);
    if (el !== null) return this.#element(el);
    const def = DEF_RE.exec(line);
    if (def !== null) return this.#define(def[1] ?? '', def[2] ?? '', def[3] ?? null);
    const m = /^(flush|delete) (chain|set|map) inet postern (\S+)$/.exec(line);
    if (m !== null) return this.#flushOrDelete(m[1] ?? '', m[3] ?? '');
    const r = /^add rule inet postern (\S+) (.*)$/.exec(line);
    if (r === null) return `sim cannot parse ${line}`;
    const [, chain = '', text = ''] = r;
    if (this.defs.get(chain)?.kind !== 'chain') return 'No such file or directory';
    if ([...text.matchAll(/@(\w+)/g)].some(([, s]) => !this.defs.has(s ?? ''))) return 'No such file or directory';
    this.rules.set(chain, [...(this.rules.get(chain) ?? []), text]);
    return undefined;
  }

  #define(kind: string, name: string, body: string | null): string | undefined {
    const had = this.defs.get(name);
    if (had !== undefined) return had.kind !== kind || (body !== null && had.body !== body) ? 'File exists' : undefined;
    if (kind !== 'chain' && body === null) return 'sim: a set needs a type';
    this.defs.set(name, { kind, body });
    if (kind === 'chain') this.rules.set(name, []);
    else this.sets.set(name, new Map());
    return undefined;
  }

  #flushOrDelete(op: string, name: string): string | undefined {
    const d = this.defs.get(name);
    if (d === undefined) return 'No such file or directory';
    if (op === 'flush') return d.kind === 'chain' ? void this.rules.set(name, []) : void this.sets.get(name)?.clear();
    const used = [...this.rules.values()].some((rs) => rs.some((t) => t.includes(`@${name}`)));
    if (used || (d.kind === 'chain' && (this.rules.get(name)?.length ?? 0) > 0)) return 'Device or resource busy';
    this.defs.delete(name);
    this.rules.delete(name);
    this.sets.delete(name);
    return undefined;
  }

  #element(m: RegExpExecArray): string | undefined {
    const [, op, name = '', key = '', timeout, comment, data] = m;
    const set = this.sets.get(name);
    if (set === undefined) return 'No such file or directory';
    if (name === 'guarded' || name === 'capture') return void key.split(', ').forEach((k) => set.set(k, { key: k } as SimElement));
    if (op === 'add' ? (this.defs.get(name)?.kind === 'map') !== (data !== undefined) : data !== undefined) return 'sim: map data mismatch';
    const [src = '', ...restParts] = key.split(' . ');
    const { lo, hi } = parseSource(src, familyOf(name));
    if (!name.endsWith('net') && lo !== hi) return 'sim: range in a hash set';
    const now = this.#clock.wallMs();
    const present = this.live(name).find((e) => e.key === key);
    if (op === 'delete') return present !== undefined ? void set.delete(key) : 'No such file or directory';
    if (present !== undefined) {
      if ((data ?? null) !== present.data) return 'File exists';
      if (this.#updateOnAdd && timeout !== undefined) set.set(key, { ...present, timeoutMs: Number(timeout), expiresAt: now + Number(timeout) });
      return undefined;
    }
    const rest = restParts.join(' . ');
    if (this.live(name).some((e) => e.rest === rest && e.lo <= hi && lo <= e.hi)) return 'File exists';
    const timeoutMs = timeout === undefined ? null : Number(timeout);
    set.set(key, { key, rest, lo, hi, data: data ?? null, comment: comment ?? null, timeoutMs, expiresAt: timeoutMs === null ? null : now + timeoutMs });
    return undefined;
  }

  #listing(): string {
    const now = this.#clock.wallMs();
    const part = (p: string): unknown => {
      if (/^\d+$/.test(p)) return Number(p);
      if (p.includes('/')) return { prefix: { addr: p.split('/')[0], len: Number(p.split('/')[1]) } };
      return p.includes('-') ? { range: p.split('-') } : p;
    };
    const items = [...this.defs].filter(([, d]) => d.kind !== 'chain').map(([name, d]) => {
      const elem = this.live(name).filter((e) => e.rest !== undefined).map((e) => {
        const val = { concat: e.key.split(' . ').map(part) };
        const times = e.expiresAt === null ? {} : { timeout: Math.floor((e.timeoutMs ?? 0) / 1000), expires: Math.floor((e.expiresAt - now) / 1000) };
        const k = e.comment === null && e.expiresAt === null ? val : { elem: { val, ...times, ...(e.comment === null ? {} : { comment: e.comment }) } };
        return e.data === null ? k : [k, { concat: e.data.split(' . ').map(part) }];
      });
      return { [d.kind]: { family: 'inet', name, table: 'postern', ...(elem.length ? { elem } : {}) } };
    });
    return JSON.stringify({ nftables: [{ metainfo: { version: '1.0.6' } }, ...items] });
  }
}

const tcp = (port: number): Service => ({ proto: 'tcp', port });
const udp = (port: number): Service => ({ proto: 'udp', port });
const SPEC: GuardSpec = { guarded: [tcp(22), tcp(443)], capture: [udp(62201), tcp(7000)] };
const FWD_SPEC: GuardSpec = { ...SPEC, guarded: [...SPEC.guarded, tcp(2222)], forwarding: true };
const T0 = 1_764_150_000_000;
const A: Grant = { id: 'a', key: 'alice', family: 4, address: '198.18.0.2', services: [tcp(22)], expiresAtMs: T0 + 60_000 };
const B: Grant = { id: 'b', key: 'bob', family: 4, address: '198.18.0.2', services: [tcp(22), tcp(443)], expiresAtMs: T0 + 30_000 };
const G6: Grant = { id: 'g6', key: 'alice', family: 6, address: '2001:db8::2', services: [udp(51820)], expiresAtMs: T0 + 90_000 };
const N64: Grant = { id: 'n64', key: 'bob', family: 6, address: 'fd50:7374::', prefix: 64, services: [tcp(22)], expiresAtMs: T0 + 60_000 };
const N56: Grant = { id: 'n56', key: 'carol', family: 6, address: 'fd50:7374::', prefix: 56, services: [tcp(22)], expiresAtMs: T0 + 30_000 };
const F4: Grant = { id: 'f4', key: 'dave', family: 4, address: '198.18.0.2', services: [tcp(2222)], forward: { address: '198.19.0.10', port: 22 }, expiresAtMs: T0 + 45_000 };

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
  /** Live elements of one set as `key id remaining-ms [: data]`. */
  const elements = (set: string): string[] => sim.live(set)
    .map((e) => `${e.key} ${e.comment ?? '-'} ${e.expiresAt === null ? '-' : e.expiresAt - clock.wallMs()}${e.data === null ? '' : ` : ${e.data}`}`).sort();
  return { backend, sim, clock, calls, logger, elements, take: () => calls.splice(0), log: () => logger.lines.join('\n') };
}
const script = (...lines: string[]): string => nftScript(lines);

describe('NftBackend: guard', () => {
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
    assert.deepEqual(r.elements('grants4'), ['198.18.0.2 . tcp . 22 postern:a 60000']);
    assert.equal(r.backend.forwarding, false);
    assert.equal(r.sim.defs.has('prerouting'), false);
  });

  it('start replaces a table of another shape, atomically, and says so', async () => {
    const r = rig();
    await r.sim.run(['nft', '-f', '-'], { input: 'add table inet postern\nadd set inet postern grants4 { type ipv4_addr; flags timeout; }\n' });
    await r.backend.start(SPEC);
    const [first, second] = r.take();
    assert.equal(first?.input, nftScript(guardLines(SPEC, DEFAULT_NFT_MARK)));
    assert.match(second?.input ?? '', /^add table inet postern\ndelete table inet postern\nadd table inet postern\n/);
    assert.match(r.log(), /level=warn .*replacing it/);
    const fresh = rig();
    await fresh.backend.start(SPEC);
    assert.equal(r.sim.guardState(), fresh.sim.guardState());
  });

  it('start does not retry when nft cannot be run at all', async () => {
    const r = rig({ fail: () => 'reject' });
    await assert.rejects(r.backend.start(SPEC), /ENOENT/);
    assert.equal(r.calls.length, 1);
  });

  it('forwarding: start sets it up; update without it removes every forwarding object; update with it restores them', async () => {
    const r = rig();
    await r.backend.start(FWD_SPEC);
    assert.equal(r.backend.forwarding, true);
    assert.equal(r.sim.defs.get('prerouting')?.body, '{ type nat hook prerouting priority dstnat - 10; policy accept; }');
    const withFwd = r.sim.guardState();
    await r.backend.applyGrant(F4);
    await r.backend.update({ ...FWD_SPEC, forwarding: false });
    assert.equal(r.backend.forwarding, false);
    for (const name of ['prerouting', 'forward', 'dnat4', 'dnat6net', 'fwd4', 'fwd6net']) assert.equal(r.sim.defs.has(name), false, name);
    const plain = rig();
    await plain.backend.start({ ...FWD_SPEC, forwarding: false });
    assert.equal(r.sim.guardState(), plain.sim.guardState());
    await assert.rejects(r.backend.applyGrant(F4), /forwarding is off/);
    await r.backend.revokeGrant(F4); // nothing of it is in the kernel: no command
    r.take();
    await r.backend.update(FWD_SPEC);
    assert.equal(r.sim.guardState(), withFwd);
    assert.deepEqual(r.elements('dnat4'), []);
    await r.backend.applyGrant(F4);
    assert.deepEqual(r.elements('dnat4'), ['198.18.0.2 . tcp . 2222 postern:f4 45000 : 198.19.0.10 . 22']);
  });

  it('without nat support: start goes on without forwarding, keeps the grants, says so once, refuses forwarding grants', async () => {
    const r = rig({ fail: (_, input) => (input?.includes('type nat') === true ? bad('Error: Could not process rule: No such file or directory\n') : undefined) });
    await r.backend.start(SPEC);
    await r.backend.applyGrant(A);
    r.take();
    await r.backend.start(FWD_SPEC);
    assert.deepEqual(r.take().map((c) => c.input), [
      nftScript(guardLines(FWD_SPEC, DEFAULT_NFT_MARK)),
      nftScript(['add table inet postern', 'delete table inet postern', ...guardLines(FWD_SPEC, DEFAULT_NFT_MARK)]),
      nftScript(guardLines({ ...FWD_SPEC, forwarding: false }, DEFAULT_NFT_MARK)),
    ]);
    assert.equal(r.backend.forwarding, false);
    assert.deepEqual(r.elements('grants4'), ['198.18.0.2 . tcp . 22 postern:a 60000']);
    assert.equal(r.logger.lines.filter((l) => /level=error .*nft refused the forwarding chains/.test(l)).length, 1);
    await assert.rejects(r.backend.applyGrant(F4), /forwarding is off/);
    // The periodic start does not try again; a config reload (update) does.
    await r.backend.start(FWD_SPEC);
    assert.deepEqual(r.take().map((c) => c.input), [nftScript(guardLines({ ...FWD_SPEC, forwarding: false }, DEFAULT_NFT_MARK))]);
    await r.backend.update(FWD_SPEC);
    assert.equal(r.take().length, 2);
    assert.equal(r.logger.lines.filter((l) => /level=error .*nft refused the forwarding chains/.test(l)).length, 2);
    assert.deepEqual(r.elements('grants4'), ['198.18.0.2 . tcp . 22 postern:a 60000']);
  });
});

for (const updateOnAdd of [false, true]) {
  describe(`NftBackend: host grants (add of a present element ${updateOnAdd ? 'updates its timeout, Linux >= 6.10' : 'is a no-op'})`, () => {
    it('a new grant is one transaction of plain adds: one element per service, exact remaining ms, id comment', async () => {
      const r = rig({ updateOnAdd });
      await r.backend.start(SPEC);
      r.clock.advance(250);
      r.take();
      await r.backend.applyGrant(B);
      assert.deepEqual(r.take().map((c) => c.input), [script(
        'add element inet postern grants4 { 198.18.0.2 . tcp . 22 timeout 29750ms comment "postern:b" }',
        'add element inet postern grants4 { 198.18.0.2 . tcp . 443 timeout 29750ms comment "postern:b" }',
      )]);
      assert.deepEqual(r.elements('grants4'), ['198.18.0.2 . tcp . 22 postern:b 29750', '198.18.0.2 . tcp . 443 postern:b 29750']);
      await r.backend.applyGrant(G6);
      assert.deepEqual(r.elements('grants6'), ['2001:db8::2 . udp . 51820 postern:g6 89750']);
    });

    it('a second grant on a covered tuple rewrites the element for the longest cover', async () => {
      const r = rig({ updateOnAdd });
      await r.backend.start(SPEC);
      await r.backend.applyGrant(B);
      r.take();
      await r.backend.applyGrant(A);
      assert.deepEqual(r.take().map((c) => c.input), [script(
        'add element inet postern grants4 { 198.18.0.2 . tcp . 22 timeout 1000ms }',
        'delete element inet postern grants4 { 198.18.0.2 . tcp . 22 }',
        'add element inet postern grants4 { 198.18.0.2 . tcp . 22 timeout 60000ms comment "postern:a" }',
      )]);
      await r.backend.applyGrant({ ...B, id: 'c' }); // shorter than a: nothing to write
      assert.deepEqual(r.take().map((c) => c.input), []);
    });

    it('a leftover element under a new grant never outlives what was there; reconcile rewrites it', async () => {
      const r = rig({ updateOnAdd });
      await r.backend.start(SPEC);
      await r.sim.run(['nft', '-f', '-'], { input: 'add element inet postern grants4 { 198.18.0.2 . tcp . 22 timeout 5000ms comment "postern:left" }\n' });
      await r.backend.applyGrant(A);
      assert.deepEqual(r.elements('grants4'), [`198.18.0.2 . tcp . 22 postern:left ${updateOnAdd ? 60_000 : 5_000}`]);
      assert.deepEqual(await r.backend.reconcile([A], T0), { removed: ['left'], restored: ['a'] });
      assert.deepEqual(r.elements('grants4'), ['198.18.0.2 . tcp . 22 postern:a 60000']);
    });

    it('extension is one transaction and leaves one element per tuple with the new timeout', async () => {
      const r = rig({ updateOnAdd });
      await r.backend.start(SPEC);
      await r.backend.applyGrant(B);
      r.take();
      const longer = { ...B, expiresAtMs: T0 + 90_000 };
      await r.backend.applyGrant(longer, B);
      assert.equal(r.take().length, 1);
      assert.deepEqual(r.elements('grants4'), ['198.18.0.2 . tcp . 22 postern:b 90000', '198.18.0.2 . tcp . 443 postern:b 90000']);
      // Extension with fewer services: the dropped tuple goes, in the same transaction.
      await r.backend.applyGrant({ ...longer, services: [tcp(22)], expiresAtMs: T0 + 120_000 }, longer);
      assert.equal(r.take().length, 1);
      assert.deepEqual(r.elements('grants4'), ['198.18.0.2 . tcp . 22 postern:b 120000']);
    });

    it('extension after the kernel already expired the element puts it back', async () => {
      const r = rig({ updateOnAdd });
      await r.backend.start(SPEC);
      await r.backend.applyGrant(B);
      r.clock.advance(31_000);
      assert.deepEqual(r.elements('grants4'), []);
      await r.backend.applyGrant({ ...B, expiresAtMs: T0 + 91_000 }, B);
      assert.deepEqual(r.elements('grants4'), ['198.18.0.2 . tcp . 22 postern:b 60000', '198.18.0.2 . tcp . 443 postern:b 60000']);
    });

    it('revoking one of two grants on a shared tuple keeps the other one\'s cover', async () => {
      const r = rig({ updateOnAdd });
      await r.backend.start(SPEC);
      await r.backend.applyGrant(A);
      await r.backend.applyGrant(B);
      assert.deepEqual(r.elements('grants4'), ['198.18.0.2 . tcp . 22 postern:a 60000', '198.18.0.2 . tcp . 443 postern:b 30000']);
      r.clock.advance(1_000);
      r.take();
      await r.backend.revokeGrant(A);
      assert.equal(r.take().length, 1);
      assert.deepEqual(r.elements('grants4'), ['198.18.0.2 . tcp . 22 postern:b 29000', '198.18.0.2 . tcp . 443 postern:b 29000']);
      await r.backend.revokeGrant(B);
      assert.deepEqual(r.elements('grants4'), []);
    });
  });
}

describe('NftBackend: network grants', () => {
  it('a /64 is one plain add in grants6net; a host grant for an address inside it lives beside it', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    r.take();
    await r.backend.applyGrant(N64);
    assert.deepEqual(r.take().map((c) => c.input), [script('add element inet postern grants6net { fd50:7374::/64 . tcp . 22 timeout 60000ms comment "postern:n64" }')]);
    await r.backend.applyGrant({ ...G6, id: 'h', address: 'fd50:7374::2', services: [tcp(22)] });
    assert.deepEqual([r.elements('grants6'), r.elements('grants6net')], [['fd50:7374::2 . tcp . 22 postern:h 90000'], ['fd50:7374::/64 . tcp . 22 postern:n64 60000']]);
  });

  it('a /56 and a /64 inside it (two keys): disjoint pieces, each with its grant\'s own timeout; revoking either leaves the other whole', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    await r.backend.applyGrant(N64);
    r.take();
    await r.backend.applyGrant(N56);
    assert.deepEqual(r.take().map((c) => c.input), [script(
      'add element inet postern grants6net { fd50:7374:0:1::-fd50:7374:0:ff:ffff:ffff:ffff:ffff . tcp . 22 timeout 30000ms comment "postern:n56" }',
    )]);
    await r.backend.revokeGrant(N64);
    assert.deepEqual(r.elements('grants6net'), ['fd50:7374::/56 . tcp . 22 postern:n56 30000']);
    await r.backend.applyGrant(N64);
    await r.backend.revokeGrant(N56);
    assert.deepEqual(r.elements('grants6net'), ['fd50:7374::/64 . tcp . 22 postern:n64 60000']);
  });

  it('with no daemon, each piece ends with its own grant: the /56 rest at 30 s, the /64 at 60 s', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    await r.backend.applyGrant(N56);
    await r.backend.applyGrant({ ...N64, address: 'fd50:7374:0:5::' });
    const open = (addr: string, t: number): string | undefined => r.sim.lookup('grants', 6, addr, 'tcp . 22', T0 + t)?.comment ?? undefined;
    assert.deepEqual([open('fd50:7374::1', 29_999), open('fd50:7374:0:5::1', 29_999), open('fd50:7374:0:ff::1', 29_999)], ['postern:n56', 'postern:n64', 'postern:n56']);
    assert.deepEqual([open('fd50:7374::1', 30_000), open('fd50:7374:0:5::1', 59_999), open('fd50:7374:0:5::1', 60_000)], [undefined, 'postern:n64', undefined]);
    assert.equal(open('fd50:7374:1::1', 0), undefined);
  });

  it('extension rewrites the pieces it changes and only those', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    await r.backend.applyGrant(N56);
    await r.backend.applyGrant(N64);
    r.take();
    await r.backend.applyGrant({ ...N56, expiresAtMs: T0 + 120_000 }, N56); // now longer than the /64: one /56 again
    assert.deepEqual(r.take().map((c) => c.input), [script(
      'add element inet postern grants6net { fd50:7374::/64 . tcp . 22 timeout 1000ms }',
      'delete element inet postern grants6net { fd50:7374::/64 . tcp . 22 }',
      'add element inet postern grants6net { fd50:7374:0:1::-fd50:7374:0:ff:ffff:ffff:ffff:ffff . tcp . 22 timeout 1000ms }',
      'delete element inet postern grants6net { fd50:7374:0:1::-fd50:7374:0:ff:ffff:ffff:ffff:ffff . tcp . 22 }',
      'add element inet postern grants6net { fd50:7374::/56 . tcp . 22 timeout 120000ms comment "postern:n56" }',
    )]);
  });
});

describe('NftBackend: forwarding grants', () => {
  it('one transaction: the dnat map element and the fwd element, same id and timeout; nothing in grants4', async () => {
    const r = rig();
    await r.backend.start(FWD_SPEC);
    r.take();
    await r.backend.applyGrant(F4);
    assert.deepEqual(r.take().map((c) => c.input), [script(
      'add element inet postern dnat4 { 198.18.0.2 . tcp . 2222 timeout 45000ms comment "postern:f4" : 198.19.0.10 . 22 }',
      'add element inet postern fwd4 { 198.18.0.2 . 198.19.0.10 . tcp . 22 timeout 45000ms comment "postern:f4" }',
    )]);
    assert.deepEqual(r.elements('grants4'), []);
  });

  it('a network forwarding grant (IPv6 /64) goes to the interval map and set', async () => {
    const r = rig();
    await r.backend.start(FWD_SPEC);
    await r.backend.applyGrant({ ...N64, id: 'f6', services: [tcp(2222)], forward: { address: 'fd50:7375::10', port: 22 } });
    assert.deepEqual([r.elements('dnat6net'), r.elements('fwd6net')], [
      ['fd50:7374::/64 . tcp . 2222 postern:f6 60000 : fd50:7375::10 . 22'],
      ['fd50:7374::/64 . fd50:7375::10 . tcp . 22 postern:f6 60000'],
    ]);
  });

  it('extension to another target: the map element is rewritten (its placeholder carries the old data), the fwd element moves', async () => {
    const r = rig();
    await r.backend.start(FWD_SPEC);
    await r.backend.applyGrant(F4);
    r.clock.advance(5_000);
    r.take();
    const moved: Grant = { ...F4, forward: { address: '198.19.0.11', port: 2022 }, expiresAtMs: T0 + 90_000 };
    await r.backend.applyGrant(moved, F4);
    assert.deepEqual(r.take().map((c) => c.input), [script(
      'add element inet postern fwd4 { 198.18.0.2 . 198.19.0.10 . tcp . 22 timeout 1000ms }',
      'delete element inet postern fwd4 { 198.18.0.2 . 198.19.0.10 . tcp . 22 }',
      'add element inet postern dnat4 { 198.18.0.2 . tcp . 2222 timeout 1000ms : 198.19.0.10 . 22 }',
      'delete element inet postern dnat4 { 198.18.0.2 . tcp . 2222 }',
      'add element inet postern dnat4 { 198.18.0.2 . tcp . 2222 timeout 85000ms comment "postern:f4" : 198.19.0.11 . 2022 }',
      'add element inet postern fwd4 { 198.18.0.2 . 198.19.0.11 . tcp . 2022 timeout 85000ms comment "postern:f4" }',
    )]);
    await r.backend.revokeGrant(moved);
    assert.deepEqual([r.elements('dnat4'), r.elements('fwd4')], [[], []]);
  });

  it('reconcile lists the forwarding maps too, and restores and removes their elements', async () => {
    const r = rig();
    await r.backend.start(FWD_SPEC);
    await r.backend.applyGrant(F4);
    await r.sim.run(['nft', '-f', '-'], { input: script(
      'delete element inet postern fwd4 { 198.18.0.2 . 198.19.0.10 . tcp . 22 }',
      'add element inet postern dnat4 { 198.18.0.9 . tcp . 2222 timeout 50000ms comment "postern:ghost" : 198.19.0.10 . 22 }',
    ) });
    assert.deepEqual(await r.backend.reconcile([F4], T0), { removed: ['ghost'], restored: ['f4'] });
    assert.deepEqual([r.elements('dnat4'), r.elements('fwd4')], [
      ['198.18.0.2 . tcp . 2222 postern:f4 45000 : 198.19.0.10 . 22'], ['198.18.0.2 . 198.19.0.10 . tcp . 22 postern:f4 45000'],
    ]);
  });

  it('stop keepGuarding flushes the maps as well', async () => {
    const r = rig();
    await r.backend.start(FWD_SPEC);
    await r.backend.applyGrant(F4);
    await r.backend.stop({ keepGuarding: true });
    assert.deepEqual([r.elements('dnat4'), r.elements('fwd4')], [[], []]);
    assert.equal(r.backend.forwarding, true);
    await r.backend.stop({ keepGuarding: false });
    assert.equal(r.backend.forwarding, false);
  });
});

describe('NftBackend: revoke, reconcile, stop, validation, order', () => {
  it('revoke succeeds when the elements already expired, twice, and for an unknown grant', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    await r.backend.applyGrant(B);
    await r.backend.applyGrant(N64);
    r.clock.advance(70_000);
    await r.backend.revokeGrant(B);
    await r.backend.revokeGrant(B);
    await r.backend.revokeGrant(N64);
    await r.backend.revokeGrant(G6);
    assert.deepEqual([r.elements('grants4'), r.elements('grants6'), r.elements('grants6net')], [[], [], []]);
  });

  it('a grant whose transaction failed never becomes a cover; a failed revoke is retried by the next change', async () => {
    let failNext = false;
    const r = rig({ fail: () => (failNext ? ((failNext = false), bad('Error: Could not process rule: No buffer space available\n')) : undefined) });
    await r.backend.start(SPEC);
    await r.backend.applyGrant(A);
    failNext = true;
    await assert.rejects(r.backend.applyGrant({ ...B, expiresAtMs: T0 + 600_000 }), /No buffer space/);
    failNext = true;
    await assert.rejects(r.backend.revokeGrant(A), /No buffer space/);
    assert.deepEqual(r.elements('grants4'), ['198.18.0.2 . tcp . 22 postern:a 60000']);
    await r.backend.applyGrant({ ...B, services: [tcp(443)] }); // another lane: the stale element stays
    assert.deepEqual(r.elements('grants4'), ['198.18.0.2 . tcp . 22 postern:a 60000', '198.18.0.2 . tcp . 443 postern:b 30000']);
    await r.backend.applyGrant({ ...B, id: 'c', services: [tcp(22)] });
    await r.backend.revokeGrant({ ...B, id: 'c', services: [tcp(22)] });
    assert.deepEqual(r.elements('grants4'), ['198.18.0.2 . tcp . 443 postern:b 30000']);
  });

  it('reconcile: one listing, one transaction; unknown and untagged go, missing come back', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    await r.backend.applyGrant(B);
    await r.backend.applyGrant(G6);
    await r.backend.applyGrant(N64);
    await r.sim.run(['nft', '-f', '-'], { input: script(
      'add element inet postern grants4 { 198.18.0.9 . tcp . 22 timeout 500000ms comment "postern:ghost" }',
      'add element inet postern grants4 { 198.18.0.7 . udp . 53 }',
      'add element inet postern grants4net { 198.18.0.0/24 . udp . 53 timeout 500000ms comment "postern:ghost" }',
      'delete element inet postern grants4 { 198.18.0.2 . tcp . 443 }',
      'delete element inet postern grants6 { 2001:db8::2 . udp . 51820 }',
      'delete element inet postern grants6net { fd50:7374::/64 . tcp . 22 }') });
    r.take();
    r.clock.advance(5_000);
    const report = await r.backend.reconcile([B, G6, N64], r.clock.wallMs());
    assert.deepEqual([[...report.removed].sort(), [...report.restored].sort()], [['ghost'], ['b', 'g6', 'n64']]);
    assert.deepEqual(r.take().map((c) => c.argv.join(' ')), ['nft -j list table inet postern', 'nft -f -']);
    assert.deepEqual(r.elements('grants4'), ['198.18.0.2 . tcp . 22 postern:b 25000', '198.18.0.2 . tcp . 443 postern:b 25000']);
    assert.deepEqual([r.elements('grants6'), r.elements('grants6net'), r.elements('grants4net')], [
      ['2001:db8::2 . udp . 51820 postern:g6 85000'], ['fd50:7374::/64 . tcp . 22 postern:n64 55000'], [],
    ]);
    assert.match(r.log(), /without a postern id removed.* count=1/);
    assert.deepEqual(await r.backend.reconcile([B, G6, N64], r.clock.wallMs()), { removed: [], restored: [] });
    assert.equal(r.take().length, 1); // the listing only
  });

  it('reconcile rebuilds the covers from the live grants; forwarding grants wait while forwarding is off', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    await r.backend.applyGrant(A);
    await r.backend.reconcile([A, B, F4], T0); // B was never applied here, e.g. after a restart
    assert.deepEqual(r.elements('grants4'), ['198.18.0.2 . tcp . 22 postern:a 60000', '198.18.0.2 . tcp . 443 postern:b 30000']);
    assert.match(r.log(), /level=warn .*forwarding grants not applied: forwarding is off.* ids=f4/);
    await r.backend.revokeGrant(A);
    assert.deepEqual(r.elements('grants4'), ['198.18.0.2 . tcp . 22 postern:b 30000', '198.18.0.2 . tcp . 443 postern:b 30000']);
  });

  it('reconcile refuses to act on an unreadable listing or a missing table', async () => {
    const r = rig({ fail: (argv) => (argv.includes('-j') ? ok('Error: unexpected') : undefined) });
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
    await r.backend.applyGrant(N64);
    const guard = r.sim.guardState();
    r.take();
    await r.backend.stop({ keepGuarding: true });
    assert.deepEqual(r.take().map((c) => c.input), [script(...['grants4', 'grants6', 'grants4net', 'grants6net'].map((s) => `flush set inet postern ${s}`))]);
    assert.deepEqual([r.elements('grants4'), r.elements('grants6net')], [[], []]);
    assert.equal(r.sim.guardState(), guard);
    await r.backend.stop({ keepGuarding: false });
    assert.deepEqual(r.take().map((c) => c.input), ['add table inet postern\ndelete table inet postern\n']);
    assert.equal(r.sim.table, false);
    await r.backend.stop({ keepGuarding: false });
    await r.backend.stop({ keepGuarding: true }); // no table: nothing to flush
    assert.deepEqual(r.take().map((c) => c.argv.join(' ')), ['nft -f -', 'nft -f -', 'nft -j list table inet postern']);
  });

  it('invalid values are rejections, before anything runs', async () => {
    const r = rig();
    await assert.rejects(r.backend.applyGrant({ ...A, address: '198.18.0.2 } ; flush ruleset' }), FirewallValueError);
    await assert.rejects(r.backend.applyGrant(A, { ...A, id: 'A"' }), FirewallValueError);
    await assert.rejects(r.backend.applyGrant({ ...N64, address: 'fd50:7374::1' }), /host bits/);
    await assert.rejects(r.backend.applyGrant({ ...F4, forward: { address: '198.19.0.10 . 22', port: 22 } }), FirewallValueError);
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
  /** Who a grant is for: hosts and nested networks of both families. */
  const WHO: readonly { readonly family: Family; readonly address: string; readonly prefix?: number }[] = [
    { family: 4, address: '198.18.0.2' }, { family: 4, address: '198.18.0.3' }, { family: 4, address: '198.18.0.0', prefix: 30 },
    { family: 4, address: '198.18.0.2', prefix: 31 }, { family: 6, address: 'fd50:7374::2' }, { family: 6, address: 'fd50:7374::', prefix: 64 },
    { family: 6, address: 'fd50:7374::', prefix: 56 }, { family: 6, address: 'fd50:7374:0:1::', prefix: 64 },
  ];
  const PROBES: Record<Family, string[]> = { 4: ['198.18.0.1', '198.18.0.2', '198.18.0.3', '198.18.0.4'], 6: ['fd50:7374::2', 'fd50:7374::3', 'fd50:7374:0:1::5', 'fd50:7374:0:2::1'] };
  const TARGETS: Record<Family, readonly [string, string]> = { 4: ['198.19.0.10', '198.19.0.11'], 6: ['fd50:7375::10', 'fd50:7375::11'] };
  const POOL = [tcp(22), tcp(443), udp(53)];
  const op = fc.oneof(
    fc.record({ kind: fc.constant('apply' as const), id: fc.constantFrom('a', 'b', 'c', 'd', 'e'), who: fc.nat(WHO.length - 1),
      services: fc.subarray(POOL, { minLength: 1 }), target: fc.option(fc.nat(1)), ttl: fc.integer({ min: 1, max: 120_000 }) }),
    fc.record({ kind: fc.constant('revoke' as const), id: fc.constantFrom('a', 'b', 'c', 'd', 'e') }),
    fc.record({ kind: fc.constant('wait' as const), ms: fc.integer({ min: 0, max: 40_000 }) }),
  );
  const covers = (g: Grant, addr: string): boolean => {
    const { lo, hi } = networkRange(g.address, g.family, g.prefix);
    const a = addressToBig(addr, g.family);
    return lo <= a && a <= hi;
  };
  const isNet = (g: Grant): boolean => g.prefix !== undefined && g.prefix < (g.family === 4 ? 32 : 128);
  /** Latest expiry, ties: smallest id; host grants first (the host set is looked up first). */
  const best = (gs: Grant[]): Grant | undefined => {
    const order = (x: Grant[]) => x.sort((p, q) => q.expiresAtMs - p.expiresAtMs || (p.id < q.id ? -1 : 1))[0];
    return order(gs.filter((g) => !isNet(g))) ?? order(gs.filter(isNet));
  };

  /** At time t, every probe sees what the live grants (per the model) say it must. */
  function check(sim: NftSim, live: ReadonlyMap<string, Grant>, t: number): void {
    const grants = [...live.values()].filter((g) => g.expiresAtMs > t);
    for (const f of [4, 6] as const) {
      for (const p of PROBES[f]) {
        const mine = grants.filter((g) => g.family === f && covers(g, p));
        for (const s of POOL) {
          const want = best(mine.filter((g) => g.forward === undefined && g.services.some((x) => x.proto === s.proto && x.port === s.port)));
          assert.equal(sim.lookup('grants', f, p, `${s.proto} . ${s.port}`, t)?.comment ?? null, want === undefined ? null : `postern:${want.id}`, `${p} ${s.proto}/${s.port} at +${t - T0}`);
        }
        const fwd = best(mine.filter((g) => g.forward !== undefined));
        const dnat = sim.lookup('dnat', f, p, 'tcp . 2222', t);
        assert.equal(dnat?.data ?? null, fwd?.forward ? `${fwd.forward.address} . 22` : null, `dnat ${p} at +${t - T0}`);
        for (const target of TARGETS[f]) {
          const open = mine.some((g) => g.forward?.address === target);
          assert.equal(sim.lookup('fwd', f, p, `${target} . tcp . 22`, t) !== undefined, open, `fwd ${p} -> ${target} at +${t - T0}`);
        }
      }
    }
  }

  it('after every operation, and at every later expiry with no daemon, each probe is open exactly when a live grant covers it', async () => {
    await fc.assert(fc.asyncProperty(fc.array(op, { maxLength: 20 }), fc.boolean(), async (ops, updateOnAdd) => {
      const r = rig({ updateOnAdd });
      await r.backend.start(FWD_SPEC);
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
          const who = prev ?? WHO[o.who] ?? { family: 4, address: '198.18.0.2' };
          const forwarding = prev === undefined ? o.target !== null : prev.forward !== undefined;
          const base = { id: o.id, key: 'k', family: who.family, address: who.address, ...(who.prefix === undefined ? {} : { prefix: who.prefix }), expiresAtMs: now + o.ttl };
          const g: Grant = forwarding
            ? { ...base, services: [tcp(2222)], forward: { address: TARGETS[who.family][o.target === 1 ? 1 : 0], port: 22 } }
            : { ...base, services: o.services };
          await r.backend.applyGrant(g, prev);
          live.set(o.id, g);
        }
        check(r.sim, live, r.clock.wallMs());
      }
      const ends = [...new Set([...live.values()].flatMap((g) => [g.expiresAtMs - 1, g.expiresAtMs]))];
      for (const t of ends) if (t >= r.clock.wallMs()) check(r.sim, live, t);
      assert.deepEqual(await r.backend.reconcile([...live.values()], r.clock.wallMs()), { removed: [], restored: [] });
    }), { numRuns: 150 });
  });
});

describe('NftBackend: applyChanges (a GrantManager batch)', () => {
  const host = (i: number, over: Partial<Grant> = {}): Grant => ({ ...A, id: `h${i}`, address: `198.18.1.${i}`, ...over });

  it('opens, an extension and a revocation go out in ONE nft -f - (removals first)', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    await r.backend.applyGrant(B);
    r.take();
    await r.backend.applyChanges([
      { op: 'revoke', grant: B },
      ...[1, 2, 3].map((i) => ({ op: 'apply' as const, grant: host(i) })),
      { op: 'apply', grant: { ...host(1, { id: 'x' }), address: '198.18.0.9', expiresAtMs: T0 + 90_000 }, previous: { ...host(1, { id: 'x' }), address: '198.18.0.9' } },
    ]);
    const calls = r.take();
    assert.deepEqual(calls.map((c) => c.argv.join(' ')), ['nft -f -']);
    const lines = (calls[0]?.input ?? '').split('\n').filter((l) => l.startsWith('add element') || l.startsWith('delete element'));
    assert.ok(lines.findIndex((l) => l.startsWith('delete')) < lines.findIndex((l) => l.includes('198.18.1.1')), 'removals come before adds');
    assert.deepEqual(r.elements('grants4'), [
      '198.18.0.9 . tcp . 22 postern:x 90000',
      '198.18.1.1 . tcp . 22 postern:h1 60000', '198.18.1.2 . tcp . 22 postern:h2 60000', '198.18.1.3 . tcp . 22 postern:h3 60000',
    ]);
  });

  it('200 new grants are one transaction of 200 plain adds', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    r.take();
    await r.backend.applyChanges(Array.from({ length: 200 }, (_, i) => ({ op: 'apply' as const, grant: { ...host(i), address: `198.18.${2 + (i >> 8)}.${i & 255}` } })));
    const calls = r.take();
    assert.equal(calls.length, 1);
    assert.equal((calls[0]?.input ?? '').split('\n').filter((l) => l.startsWith('add element inet postern grants4 ')).length, 200);
    assert.equal(r.elements('grants4').length, 200);
  });

  it('a refused batch applies nothing and makes no cover; the revoked grant stays forgotten', async () => {
    let refuse = true;
    const r = rig({ fail: (argv, input) => (refuse && argv[1] === '-f' && (input ?? '').includes('198.18.1.2') ? bad('Error: Could not process rule\n') : undefined) });
    await r.backend.start(SPEC);
    await r.backend.applyGrant(B);
    await assert.rejects(r.backend.applyChanges([{ op: 'revoke', grant: B }, { op: 'apply', grant: host(1) }, { op: 'apply', grant: host(2) }]), /Could not process/);
    assert.deepEqual(r.elements('grants4').map((e) => e.split(' postern:')[1]?.split(' ')[0]), ['b', 'b'], 'nothing of the batch applied');
    refuse = false;
    // Retried one by one (what GrantManager does): each is exact, and B's elements go.
    await r.backend.applyChanges([{ op: 'apply', grant: host(1) }]);
    await r.backend.applyChanges([{ op: 'revoke', grant: B }]);
    assert.deepEqual(r.elements('grants4'), ['198.18.1.1 . tcp . 22 postern:h1 60000']);
  });

  it('one forwarding grant with forwarding off refuses the whole batch before any command', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    r.take();
    await assert.rejects(r.backend.applyChanges([{ op: 'apply', grant: host(1) }, { op: 'apply', grant: F4 }]), /forwarding is off/);
    assert.deepEqual(r.take(), []);
    await r.backend.applyChanges([{ op: 'apply', grant: host(1) }]);
    assert.equal(r.elements('grants4').length, 1);
  });
});
