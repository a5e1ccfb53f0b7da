// SPDX-License-Identifier: MIT
// Which grant each element carries (src/firewall/nft-covers.ts): the claims of plain,
// network and forwarding grants, lane segments (exact cases and a differential property
// against a per-address model, including what the kernel does when elements time out with
// no daemon), the cover table, and the reconcile planner (STYLE.md principle 12a/b).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { FirewallValueError } from '../../../src/firewall/iptables-rules.ts';
import { CoverTable, grantClaims, grantLanes, planReconcile, segments } from '../../../src/firewall/nft-covers.ts';
import type { Claim } from '../../../src/firewall/nft-covers.ts';
import { addressToBig, networkRange, setName, sourceText } from '../../../src/firewall/nft-elements.ts';
import type { Desired, ElementKey } from '../../../src/firewall/nft-elements.ts';
import type { ListedElement } from '../../../src/firewall/nft-listing.ts';
import type { Grant, Service } from '../../../src/firewall/types.ts';

const tcp = (port: number): Service => ({ proto: 'tcp', port });
const udp = (port: number): Service => ({ proto: 'udp', port });
const NOW = 1_764_150_000_000;
const G4: Grant = { id: 'g1a2b', key: 'alice', family: 4, address: '198.18.0.2', services: [tcp(22), tcp(443)], expiresAtMs: NOW + 30_000 };
const G6: Grant = { id: 'g6', key: 'alice', family: 6, address: '2001:db8::2', services: [udp(51820)], expiresAtMs: NOW + 90_000 };
const N64: Grant = { id: 'n64', key: 'bob', family: 6, address: 'fd50:7374::', prefix: 64, services: [tcp(22)], expiresAtMs: NOW + 60_000 };
const N56: Grant = { id: 'n56', key: 'carol', family: 6, address: 'fd50:7374::', prefix: 56, services: [tcp(22)], expiresAtMs: NOW + 30_000 };
const F4: Grant = { id: 'f4', key: 'dave', family: 4, address: '198.18.0.2', services: [tcp(2222)], forward: { address: '198.19.0.10', port: 22 }, expiresAtMs: NOW + 45_000 };
const F6: Grant = { ...N64, id: 'f6', services: [tcp(2222)], forward: { address: 'fd50:7375::10', port: 22 } };

/** `set src . [target .] proto . port id remaining-ms [-> data]` */
const show = (d: Desired, now = NOW): string =>
  `${setName(d.set)} ${sourceText(d.lo, d.hi, d.set.family)} . ${d.target === null ? '' : `${d.target} . `}${d.proto} . ${d.port} ${d.cover.id} ${d.cover.expiresAtMs - now}${d.data === null ? '' : ` -> ${d.data.address}:${d.data.port}`}`;
const all = (c: CoverTable, now = NOW): string[] => c.lanes().flatMap((l) => c.desired(l, now)).map((d) => show(d, now)).sort();

describe('claims', () => {
  it('a plain grant: one lane per distinct service, in the hash set of its family', () => {
    const c = grantClaims({ ...G4, services: [tcp(22), tcp(22), udp(22)] });
    assert.deepEqual(c.map((x) => [setName(x.key.set), x.key.proto, x.key.port, x.claim.lo === x.claim.hi]), [['grants4', 'tcp', 22, true], ['grants4', 'udp', 22, true]]);
  });
  it('a network grant claims its prefix in the interval set; /32 and /128 are hosts', () => {
    const [n] = grantClaims(N64);
    assert.deepEqual([n && setName(n.key.set), n && sourceText(n.claim.lo, n.claim.hi, 6)], ['grants6net', 'fd50:7374::/64']);
    assert.equal(setName(grantClaims({ ...G4, prefix: 32 })[0]?.key.set ?? { kind: 'grants', family: 4, net: true }), 'grants4');
    assert.equal(setName(grantClaims({ ...G6, prefix: 128 })[0]?.key.set ?? { kind: 'grants', family: 6, net: true }), 'grants6');
  });
  it('a forwarding grant: the dnat map (external service -> target) and the fwd set (target service)', () => {
    const c = grantClaims(F6);
    assert.deepEqual(c.map((x) => [setName(x.key.set), x.key.target, x.key.proto, x.key.port, x.claim.data]), [
      ['dnat6net', null, 'tcp', 2222, { address: 'fd50:7375::10', port: 22 }],
      ['fwd6net', 'fd50:7375::10', 'tcp', 22, null],
    ]);
    assert.deepEqual(grantLanes(F4), ['dnat4||tcp|2222|3323068418', 'fwd4|198.19.0.10|tcp|22|3323068418']);
  });
  it('invalid grants are refused', () => {
    assert.throws(() => grantClaims({ ...N64, address: 'fd50:7374::1' }), FirewallValueError); // host bits
    assert.throws(() => grantClaims({ ...F4, services: [tcp(2222), tcp(2223)] }), FirewallValueError);
    assert.throws(() => grantClaims({ ...F4, forward: { address: 'fd50:7375::10', port: 22 } }), FirewallValueError);
    assert.throws(() => grantClaims({ ...G4, expiresAtMs: Number.NaN }), FirewallValueError);
  });
});

describe('segments', () => {
  const lane: ElementKey = { set: { kind: 'grants', family: 6, net: true }, lo: 0n, hi: 0n, target: null, proto: 'tcp', port: 22 };
  const claim = (id: string, net: string, prefix: number, ms: number): Claim => ({ id, expiresAtMs: NOW + ms, ...networkRange(net, 6, prefix), data: null });
  const seg = (claims: Claim[], now = NOW): string[] => segments(lane, claims, now).map((d) => `${sourceText(d.lo, d.hi, 6)} ${d.cover.id}`);
  it('one claim is one element, its own prefix', () => assert.deepEqual(seg([claim('a', 'fd50:7374::', 64, 10)]), ['fd50:7374::/64 a']));
  it('a longer /64 inside a shorter /56: the /64 and the rest of the /56', () => {
    assert.deepEqual(seg([claim('a', 'fd50:7374::', 56, 10), claim('b', 'fd50:7374:0:5::', 64, 20)]), [
      'fd50:7374::-fd50:7374:0:4:ffff:ffff:ffff:ffff a', 'fd50:7374:0:5::/64 b', 'fd50:7374:0:6::-fd50:7374:0:ff:ffff:ffff:ffff:ffff a',
    ]);
  });
  it('a shorter /64 inside a longer /56: the /56 alone', () => {
    assert.deepEqual(seg([claim('a', 'fd50:7374::', 56, 30), claim('b', 'fd50:7374:0:5::', 64, 20)]), ['fd50:7374::/56 a']);
  });
  it('equal ranges: the later expiry, then the smaller id; expired claims count for nothing', () => {
    assert.deepEqual(seg([claim('z', 'fd50:7374::', 64, 10), claim('m', 'fd50:7374::', 64, 10)]), ['fd50:7374::/64 m']);
    assert.deepEqual(seg([claim('z', 'fd50:7374::', 64, 10), claim('m', 'fd50:7374::', 64, 0)]), ['fd50:7374::/64 z']);
    assert.deepEqual(seg([claim('z', 'fd50:7374::', 64, 10)], NOW + 10), []);
  });
  it('disjoint and adjacent claims stay separate elements', () => {
    assert.deepEqual(seg([claim('a', 'fd50:7374::', 64, 10), claim('b', 'fd50:7374:0:1::', 64, 10), claim('a2', 'fd50:7374:0:2::', 64, 10)]),
      ['fd50:7374::/64 a', 'fd50:7374:0:1::/64 b', 'fd50:7374:0:2::/64 a2']);
  });

  // Differential: 16 addresses of 198.18.0.0/28, claims of random prefixes /28 - /32.
  const base = addressToBig('198.18.0.0', 4);
  const lane4: ElementKey = { ...lane, set: { kind: 'grants', family: 4, net: true } };
  const arbClaim = fc.record({ id: fc.constantFrom('a', 'b', 'c', 'd', 'e'), len: fc.integer({ min: 28, max: 32 }), at: fc.nat(15), ms: fc.integer({ min: 1, max: 50 }) })
    .map(({ id, len, at, ms }): Claim => {
      const lo = base + ((BigInt(at) >> BigInt(32 - len)) << BigInt(32 - len));
      return { id, expiresAtMs: NOW + ms, lo, hi: lo + (1n << BigInt(32 - len)) - 1n, data: null };
    });
  it('property: per address, the element that covers it is its best live claim; disjoint, merged; right after every expiry too', () => {
    fc.assert(fc.property(fc.uniqueArray(arbClaim, { selector: (c) => c.id, maxLength: 5 }), fc.integer({ min: 0, max: 50 }), (claims, dt) => {
      const now = NOW + dt;
      const els = segments(lane4, claims, now);
      for (let i = 1; i < els.length; i++) {
        const [prev, cur] = [els[i - 1], els[i]];
        assert.ok(prev && cur && prev.hi < cur.lo, 'sorted and disjoint');
        assert.ok(prev && cur && (prev.hi + 1n < cur.lo || prev.cover.id !== cur.cover.id), 'merged');
      }
      for (let p = base; p < base + 16n; p++) {
        const live = claims.filter((c) => c.lo <= p && p <= c.hi && c.expiresAtMs > now);
        const top = live.sort((a, b) => b.expiresAtMs - a.expiresAtMs || (a.id < b.id ? -1 : 1))[0];
        const el = els.filter((e) => e.lo <= p && p <= e.hi);
        assert.deepEqual(el.map((e) => e.cover), top === undefined ? [] : [{ id: top.id, expiresAtMs: top.expiresAtMs }]);
        // With no daemon, the kernel drops each element at its own expiry: p stays open
        // exactly while some claim covering it is live.
        for (let t = now; t <= NOW + 51; t++) {
          assert.equal(el.some((e) => e.cover.expiresAtMs > t), claims.some((c) => c.lo <= p && p <= c.hi && c.expiresAtMs > t));
        }
      }
    }), { numRuns: 300 });
  });
});

describe('cover table', () => {
  it('the longest cover wins; removing it falls back to the other; expired covers vanish', () => {
    const a: Grant = { ...G4, id: 'a', services: [tcp(22)], expiresAtMs: NOW + 60_000 };
    const c = new CoverTable();
    c.add(a);
    c.add(G4);
    assert.deepEqual(all(c), ['grants4 198.18.0.2 . tcp . 22 a 60000', 'grants4 198.18.0.2 . tcp . 443 g1a2b 30000']);
    c.remove(a);
    assert.deepEqual(all(c), ['grants4 198.18.0.2 . tcp . 22 g1a2b 30000', 'grants4 198.18.0.2 . tcp . 443 g1a2b 30000']);
    assert.deepEqual(all(c, NOW + 30_000), []);
    assert.equal(c.size, 0);
  });
  it('networks, hosts and forwards side by side; removeKinds forgets the forwarding lanes', () => {
    const c = new CoverTable();
    for (const g of [N56, N64, G6, F4, F6]) c.add(g);
    assert.deepEqual(all(c), [
      'dnat4 198.18.0.2 . tcp . 2222 f4 45000 -> 198.19.0.10:22',
      'dnat6net fd50:7374::/64 . tcp . 2222 f6 60000 -> fd50:7375::10:22',
      'fwd4 198.18.0.2 . 198.19.0.10 . tcp . 22 f4 45000',
      'fwd6net fd50:7374::/64 . fd50:7375::10 . tcp . 22 f6 60000',
      'grants6 2001:db8::2 . udp . 51820 g6 90000',
      'grants6net fd50:7374:0:1::-fd50:7374:0:ff:ffff:ffff:ffff:ffff . tcp . 22 n56 30000',
      'grants6net fd50:7374::/64 . tcp . 22 n64 60000',
    ]);
    c.removeKinds(['dnat', 'fwd']);
    assert.equal(c.size, 2);
  });
  it('save() puts the lanes back as they were', () => {
    const c = new CoverTable();
    c.add(N64);
    const undo = c.save(grantLanes(N56));
    c.add(N56);
    c.remove(N64);
    undo();
    assert.deepEqual(all(c), ['grants6net fd50:7374::/64 . tcp . 22 n64 60000']);
  });
});

const listed = (d: Desired, leftMs: number, id: string | null = d.cover.id): ListedElement =>
  ({ set: d.set, lo: d.lo, hi: d.hi, target: d.target, proto: d.proto, port: d.port, data: d.data, grantId: id, expiresInMs: leftMs });
/** What the given grants ask for, as listed `truncate` ms after they were written. */
function listing(grants: readonly Grant[], truncate = 500): ListedElement[] {
  const c = new CoverTable();
  grants.forEach((g) => c.add(g));
  return c.lanes().flatMap((l) => c.desired(l, NOW)).map((d) => listed(d, Math.floor((d.cover.expiresAtMs - NOW - truncate) / 1000) * 1000));
}

describe('reconcile plan', () => {
  it('nothing to do when the sets agree with the live grants (listed seconds are truncated)', () => {
    const live = [G4, G6, N56, N64, F4, F6];
    const plan = planReconcile(listing(live), live, NOW, true);
    assert.deepEqual([plan.lines, plan.removed, plan.restored, plan.invalid, plan.unplaced, plan.untagged], [[], [], [], [], [], 0]);
    assert.equal(plan.installed.size, 8); // the /56 and the /64 share one lane
  });
  it('removes unknown, expired and untagged elements; restores missing ones', () => {
    const old: Grant = { ...G4, id: 'old', address: '198.18.0.5', expiresAtMs: NOW - 1 };
    const ghost = listing([{ ...N64, id: 'ghost', address: 'fd50:7374:0:9::' }]);
    const untagged = listing([{ ...G4, address: '198.18.0.7', services: [udp(53)] }]).map((e) => ({ ...e, grantId: null, expiresInMs: null }));
    const existing = [...listing([G4]).slice(0, 1), ...ghost, ...listing([{ ...old, expiresAtMs: NOW + 2_000 }]), ...untagged];
    const plan = planReconcile(existing, [G4, G6, old, N64], NOW, false);
    assert.deepEqual([...plan.removed].sort(), ['ghost', 'old']);
    assert.deepEqual([...plan.restored].sort(), ['g1a2b', 'g6', 'n64']);
    assert.equal(plan.untagged, 1);
    assert.deepEqual(plan.lines.filter((l) => l.startsWith('delete')), [
      'delete element inet postern grants6net { fd50:7374:0:9::/64 . tcp . 22 }',
      'delete element inet postern grants4 { 198.18.0.5 . tcp . 22 }',
      'delete element inet postern grants4 { 198.18.0.5 . tcp . 443 }',
      'delete element inet postern grants4 { 198.18.0.7 . udp . 53 }',
    ]);
    assert.deepEqual(plan.lines.filter((l) => l.startsWith('add') && l.includes('postern:')), [
      'add element inet postern grants4 { 198.18.0.2 . tcp . 443 timeout 30000ms comment "postern:g1a2b" }',
      'add element inet postern grants6 { 2001:db8::2 . udp . 51820 timeout 90000ms comment "postern:g6" }',
      'add element inet postern grants6net { fd50:7374::/64 . tcp . 22 timeout 60000ms comment "postern:n64" }',
    ]);
  });
  it('rewrites an element whose expiry, owner, data or range disagrees', () => {
    const [e22, e443] = listing([G4]);
    assert.ok(e22 && e443);
    const b: Grant = { ...G4, id: 'b', services: [tcp(22)], expiresAtMs: NOW + 600_000 };
    const plan = planReconcile([e22, { ...e443, expiresInMs: 120_000 }], [G4, b], NOW, false);
    assert.deepEqual([plan.removed, [...plan.restored].sort(), plan.lines.length], [[], ['b', 'g1a2b'], 6]);
    const [dnat] = listing([F4]);
    assert.ok(dnat);
    const moved = planReconcile([{ ...dnat, data: { address: '198.19.0.99', port: 22 } }, ...listing([F4]).slice(1)], [F4], NOW, true);
    assert.deepEqual(moved.lines, [
      'add element inet postern dnat4 { 198.18.0.2 . tcp . 2222 timeout 1000ms : 198.19.0.99 . 22 }',
      'delete element inet postern dnat4 { 198.18.0.2 . tcp . 2222 }',
      'add element inet postern dnat4 { 198.18.0.2 . tcp . 2222 timeout 45000ms comment "postern:f4" : 198.19.0.10 . 22 }',
    ]);
    // A /56 listed whole while a /64 inside it lives longer: cut into pieces, removal first.
    const split = planReconcile(listing([N56]), [N56, { ...N64, address: 'fd50:7374:0:5::' }], NOW, false);
    assert.deepEqual(split.lines.map((l) => l.replace(/ timeout .*/, '').replace(/^(\w+) element inet postern grants6net \{ /, '$1 ')), [
      'add fd50:7374::/56 . tcp . 22', 'delete fd50:7374::/56 . tcp . 22 }',
      'add fd50:7374::-fd50:7374:0:4:ffff:ffff:ffff:ffff . tcp . 22', 'add fd50:7374:0:5::/64 . tcp . 22',
      'add fd50:7374:0:6::-fd50:7374:0:ff:ffff:ffff:ffff:ffff . tcp . 22',
    ]);
  });
  it('an invalid live grant is treated as expired (fail closed); forwarding grants wait for forwarding', () => {
    const bad = { ...G4, id: 'bad', address: '198.18.0.02' };
    const plan = planReconcile(listing([G4]).map((e) => ({ ...e, grantId: 'bad' })), [bad], NOW, false);
    assert.deepEqual([plan.invalid, plan.removed, plan.restored], [['bad'], ['bad'], []]);
    const off = planReconcile(listing([F4]), [F4], NOW, false);
    assert.deepEqual([off.unplaced, off.removed, off.restored], [['f4'], ['f4'], []]);
  });
});
