// SPDX-License-Identifier: MIT
// Set elements (src/firewall/nft-elements.ts): set declarations, source ranges and their
// text (address, prefix, lo-hi), the exact add / remove lines for sets and maps, refusal of
// every value that must never reach a script, and the diff recipe (STYLE.md principle 12a).
// Every line below was loaded into nft 1.0.6 on Linux 6.x (test/e2e/nft.test.ts does it
// again on every run).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { FirewallValueError } from '../../../src/firewall/iptables-rules.ts';
import {
  FORWARD_SET_IDS, GRANT_SET_IDS, MAX_ELEMENT_TIMEOUT_MS, addLine, addressToBig, bigToAddress, diffElements, elementKey, keyText,
  laneKey, networkRange, removeLines, setDeclaration, setName, sourceText, timeoutOf,
} from '../../../src/firewall/nft-elements.ts';
import type { Desired, Element, SetId } from '../../../src/firewall/nft-elements.ts';

const NOW = 1_764_150_000_000;
const set = (kind: SetId['kind'], family: 4 | 6, net = false): SetId => ({ kind, family, net });
const r4 = (a: string, prefix?: number) => networkRange(a, 4, prefix);
const r6 = (a: string, prefix?: number) => networkRange(a, 6, prefix);
const host4: Element = { set: set('grants', 4), ...r4('198.18.0.2'), target: null, proto: 'tcp', port: 22, data: null };
const net6: Element = { set: set('grants', 6, true), ...r6('fd50:7374::', 64), target: null, proto: 'tcp', port: 22, data: null };
const dnat4: Element = { set: set('dnat', 4), ...r4('198.18.0.2'), target: null, proto: 'tcp', port: 2222, data: { address: '198.19.0.10', port: 22 } };
const fwd6: Element = { set: set('fwd', 6, true), ...r6('fd50:7374::', 64), target: 'fd50:7375::10', proto: 'tcp', port: 22, data: null };
const cover = (id: string, ms: number) => ({ id, expiresAtMs: NOW + ms });
const want = (e: Element, id: string, ms: number): Desired => ({ ...e, cover: cover(id, ms) });

describe('sets', () => {
  it('names and declarations: hash sets for hosts, interval sets for networks, maps for DNAT', () => {
    assert.deepEqual(GRANT_SET_IDS.map(setName), ['grants4', 'grants6', 'grants4net', 'grants6net']);
    assert.deepEqual(FORWARD_SET_IDS.map(setName), ['dnat4', 'dnat6', 'dnat4net', 'dnat6net', 'fwd4', 'fwd6', 'fwd4net', 'fwd6net']);
    assert.equal(setDeclaration(set('grants', 6, true)), 'add set inet postern grants6net { type ipv6_addr . inet_proto . inet_service; flags interval, timeout; }');
    assert.equal(setDeclaration(set('dnat', 4)), 'add map inet postern dnat4 { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; flags timeout; }');
    assert.equal(setDeclaration(set('fwd', 6)), 'add set inet postern fwd6 { type ipv6_addr . ipv6_addr . inet_proto . inet_service; flags timeout; }');
  });
});

describe('addresses and ranges', () => {
  it('round-trips addresses through bigints, printing what nft prints', () => {
    assert.equal(addressToBig('198.18.0.2', 4), 0xc6120002n);
    assert.equal(bigToAddress(0xc6120002n, 4), '198.18.0.2');
    assert.equal(bigToAddress(addressToBig('::ffff:198.18.0.1', 6), 6), '::ffff:198.18.0.1');
    assert.equal(bigToAddress(addressToBig('fd50:7374:0:0:0:0:0:2', 6), 6), 'fd50:7374::2');
    assert.throws(() => addressToBig('198.18.0.2', 6), FirewallValueError);
    assert.throws(() => addressToBig('198.18.0.2 }', 4), FirewallValueError);
    assert.throws(() => bigToAddress(1n << 32n, 4), FirewallValueError);
  });
  it('networks: prefix length to range; host bits refused', () => {
    assert.deepEqual(r4('198.18.0.0', 24), { lo: 0xc6120000n, hi: 0xc61200ffn });
    assert.deepEqual(r4('0.0.0.0', 0), { lo: 0n, hi: 0xffffffffn });
    assert.deepEqual(r6('fd50:7374::2'), { lo: addressToBig('fd50:7374::2', 6), hi: addressToBig('fd50:7374::2', 6) });
    assert.throws(() => r4('198.18.0.1', 24), /host bits/);
  });
  it('source text: an address, a prefix, or lo-hi', () => {
    const { lo, hi } = r6('fd50:7374::', 56);
    assert.equal(sourceText(lo, hi, 6), 'fd50:7374::/56');
    assert.equal(sourceText(lo, lo, 6), 'fd50:7374::');
    assert.equal(sourceText(lo + (1n << 64n), hi, 6), 'fd50:7374:0:1::-fd50:7374:0:ff:ffff:ffff:ffff:ffff');
    assert.equal(sourceText(0n, 0xffffffffn, 4), '0.0.0.0/0');
    assert.equal(sourceText(2n, 3n, 4), '0.0.0.2/31');
    assert.equal(sourceText(1n, 2n, 4), '0.0.0.1-0.0.0.2');
  });
  it('property: every prefix prints as one and parses back to its range', () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), fc.integer({ min: 0, max: 128 }), (n, len) => {
      const lo = (n >> BigInt(128 - len)) << BigInt(128 - len);
      const hi = lo | ((1n << BigInt(128 - len)) - 1n);
      const text = sourceText(lo, hi, 6);
      const [addr = '', l] = text.split('/');
      assert.deepEqual(networkRange(addr, 6, l === undefined ? undefined : Number(l)), { lo, hi });
    }));
  });
});

describe('element lines', () => {
  it('host grant: one element with the exact remaining ms and the id comment', () => {
    assert.equal(addLine(host4, cover('g1a2b', 29_500), 29_500), 'add element inet postern grants4 { 198.18.0.2 . tcp . 22 timeout 29500ms comment "postern:g1a2b" }');
  });
  it('network grant in an interval set', () => {
    assert.equal(addLine(net6, cover('n1', 5), 5), 'add element inet postern grants6net { fd50:7374::/64 . tcp . 22 timeout 5ms comment "postern:n1" }');
  });
  it('dnat map element: key, timeout, comment, then the data', () => {
    assert.equal(addLine(dnat4, cover('f1', 1), 1), 'add element inet postern dnat4 { 198.18.0.2 . tcp . 2222 timeout 1ms comment "postern:f1" : 198.19.0.10 . 22 }');
  });
  it('fwd element: source . target . proto . target port', () => {
    assert.equal(addLine(fwd6, cover('f6', 1000), 1000), 'add element inet postern fwd6net { fd50:7374::/64 . fd50:7375::10 . tcp . 22 timeout 1000ms comment "postern:f6" }');
  });
  it('removal: a placeholder (carrying a map element\'s data), then delete', () => {
    assert.deepEqual(removeLines(host4), [
      'add element inet postern grants4 { 198.18.0.2 . tcp . 22 timeout 1000ms }',
      'delete element inet postern grants4 { 198.18.0.2 . tcp . 22 }',
    ]);
    assert.deepEqual(removeLines(dnat4), [
      'add element inet postern dnat4 { 198.18.0.2 . tcp . 2222 timeout 1000ms : 198.19.0.10 . 22 }',
      'delete element inet postern dnat4 { 198.18.0.2 . tcp . 2222 }',
    ]);
    // A listed element of another protocol (an operator's) can be removed too.
    assert.equal(removeLines({ ...host4, proto: 'sctp', port: 0 })[1], 'delete element inet postern grants4 { 198.18.0.2 . sctp . 0 }');
  });
  it('timeouts: exact remaining ms, rounded up, capped', () => {
    assert.equal(timeoutOf(cover('a', 0.2), NOW), 1);
    assert.equal(timeoutOf(cover('a', 30 * 86_400_000), NOW), MAX_ELEMENT_TIMEOUT_MS);
  });
  it('lanes: a hash set lane is one address, an interval set lane the whole source space', () => {
    assert.equal(laneKey(host4), 'grants4||tcp|22|3323068418');
    assert.equal(laneKey(net6), 'grants6net||tcp|22');
    assert.equal(laneKey(fwd6), 'fwd6net|fd50:7375::10|tcp|22');
    assert.notEqual(elementKey(net6), elementKey({ ...net6, hi: net6.hi - 1n }));
  });
});

describe('values that must never reach a script are refused', () => {
  const bad: [string, Element][] = [
    ['range in a hash set', { ...host4, hi: host4.hi + 1n }],
    ['lo > hi', { ...net6, lo: net6.hi, hi: net6.lo }],
    ['family 5', { ...host4, set: { ...host4.set, family: 5 as never } }],
    ['proto with space', { ...host4, proto: 'tcp }' }],
    ['port 65536', { ...host4, port: 65536 }],
    ['fractional port', { ...host4, port: 22.5 }],
    ['target in a grants set', { ...host4, target: '198.19.0.10' }],
    ['no target in a fwd set', { ...fwd6, target: null }],
    ['injection in a target', { ...fwd6, target: 'fd50:7375::10 } ; flush ruleset' }],
    ['target of the other family', { ...fwd6, target: '198.19.0.10' }],
    ['no data in a map', { ...dnat4, data: null }],
    ['data in a set', { ...host4, data: { address: '198.19.0.10', port: 22 } }],
    ['injection in data', { ...dnat4, data: { address: '198.19.0.10 . 22 }', port: 22 } }],
    ['data port', { ...dnat4, data: { address: '198.19.0.10', port: -1 } }],
  ];
  for (const [name, e] of bad) it(name, () => assert.throws(() => addLine(e, cover('a', 1), 1), FirewallValueError));
  for (const id of ['', 'G1', 'a"b', 'x'.repeat(17), 'a b']) {
    it(`grant id ${JSON.stringify(id)}`, () => assert.throws(() => addLine(host4, { id, expiresAtMs: NOW }, 1000), FirewallValueError));
  }
  for (const t of [0, -1, 1.5, Number.NaN, MAX_ELEMENT_TIMEOUT_MS + 1]) {
    it(`timeout ${t}`, () => assert.throws(() => addLine(host4, cover('g1', 1), t), FirewallValueError));
  }
  it('keyText validates on its own too', () => assert.throws(() => keyText({ ...host4, port: 70000 }), FirewallValueError));
});

describe('diff', () => {
  const same = (h: Desired, d: Desired): boolean => h.cover.id === d.cover.id && h.cover.expiresAtMs === d.cover.expiresAtMs;
  const lo = net6.lo;
  const piece = (a: bigint, b: bigint, id: string, ms: number): Desired => want({ ...net6, lo: a, hi: b }, id, ms);
  it('nothing held: one plain add per element (the time-to-open path)', () => {
    const d = diffElements([], [want(host4, 'a', 30_000), want({ ...host4, port: 443 }, 'a', 30_000)], same, NOW);
    assert.deepEqual(d.lines, [
      'add element inet postern grants4 { 198.18.0.2 . tcp . 22 timeout 30000ms comment "postern:a" }',
      'add element inet postern grants4 { 198.18.0.2 . tcp . 443 timeout 30000ms comment "postern:a" }',
    ]);
    assert.deepEqual([d.dropped.length, d.written.length], [0, 2]);
  });
  it('unchanged elements are left alone; a changed one is removed and added again', () => {
    const held = [want(host4, 'a', 30_000), want({ ...host4, port: 443 }, 'a', 30_000)];
    const d = diffElements(held, [want(host4, 'a', 30_000), want({ ...host4, port: 443 }, 'b', 60_000)], same, NOW);
    assert.deepEqual(d.lines, [
      'add element inet postern grants4 { 198.18.0.2 . tcp . 443 timeout 1000ms }',
      'delete element inet postern grants4 { 198.18.0.2 . tcp . 443 }',
      'add element inet postern grants4 { 198.18.0.2 . tcp . 443 timeout 60000ms comment "postern:b" }',
    ]);
  });
  it('a map element whose target changes: the placeholder carries the old data', () => {
    const d = diffElements([want(dnat4, 'a', 30_000)], [want({ ...dnat4, data: { address: '198.19.0.11', port: 22 } }, 'b', 30_000)], same, NOW);
    assert.deepEqual(d.lines, [
      'add element inet postern dnat4 { 198.18.0.2 . tcp . 2222 timeout 1000ms : 198.19.0.10 . 22 }',
      'delete element inet postern dnat4 { 198.18.0.2 . tcp . 2222 }',
      'add element inet postern dnat4 { 198.18.0.2 . tcp . 2222 timeout 30000ms comment "postern:b" : 198.19.0.11 . 22 }',
    ]);
  });
  it('removals come before every add, so new ranges never meet old overlapping ones', () => {
    const whole = piece(lo, net6.hi, 'a', 30_000);
    const split = [piece(lo, lo + 9n, 'a', 30_000), piece(lo + 10n, lo + 10n, 'b', 60_000), piece(lo + 11n, net6.hi, 'a', 30_000)];
    const d = diffElements([whole], split, same, NOW);
    assert.deepEqual(d.lines.map((l) => l.split(' ')[0]), ['add', 'delete', 'add', 'add', 'add']);
    assert.match(d.lines[0] ?? '', /fd50:7374::\/64 \. tcp \. 22 timeout 1000ms/);
    assert.deepEqual(d.dropped, [whole]);
    assert.equal(d.written.length, 3);
  });
});
