// SPDX-License-Identifier: MIT
// Parser for `nft -j list table inet postern` (src/firewall/nft-listing.ts). The fixture
// items are verbatim from nft 1.0.6 (Debian 12, Linux 6.x) after loading, into a table
// built by NftBackend.start with forwarding, elements of every shape: tagged, untagged,
// without timeout, another protocol, an IPv4-mapped address, a prefix, a non-prefix range
// (the rest of a /56 around a /64), map elements with and without timeout. Rules and chains
// are in the listing too and are skipped (STYLE.md principle 12a: exact-reason fixtures).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FORWARD_SET_IDS, GRANT_SET_IDS, networkRange } from '../../../src/firewall/nft-elements.ts';
import type { SetId } from '../../../src/firewall/nft-elements.ts';
import { parseListing } from '../../../src/firewall/nft-listing.ts';
import type { ListedElement } from '../../../src/firewall/nft-listing.ts';

const ITEMS = [
  '{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}',
  '{"table": {"family": "inet", "name": "postern", "handle": 4}}',
  '{"set": {"family": "inet", "name": "guarded", "table": "postern", "type": ["inet_proto", "inet_service"], "handle": 1, "elem": [{"concat": ["tcp", 22]}]}}',
  '{"set": {"family": "inet", "name": "grants4", "table": "postern", "type": ["ipv4_addr", "inet_proto", "inet_service"], "handle": 3, "flags": ["timeout"], "elem": [{"elem": {"val": {"concat": ["198.18.0.2", "tcp", 22]}, "timeout": 30, "expires": 29, "comment": "postern:g1a2b"}}, {"elem": {"val": {"concat": ["198.18.0.9", "sctp", 22]}, "timeout": 300, "expires": 299, "comment": "operator test"}}, {"concat": ["198.18.0.7", "udp", 53]}, {"elem": {"val": {"concat": ["198.18.0.2", "tcp", 443]}, "timeout": 30, "expires": 29, "comment": "postern:g1a2b"}}]}}',
  '{"set": {"family": "inet", "name": "grants6", "table": "postern", "type": ["ipv6_addr", "inet_proto", "inet_service"], "handle": 4, "flags": ["timeout"], "elem": [{"elem": {"val": {"concat": ["::ffff:198.18.0.1", "tcp", 22]}, "timeout": 10, "expires": 9, "comment": "postern:zz9"}}, {"elem": {"val": {"concat": ["2001:db8::2", "udp", 51820]}, "timeout": 90, "expires": 89, "comment": "postern:g6"}}]}}',
  '{"set": {"family": "inet", "name": "grants4net", "table": "postern", "type": ["ipv4_addr", "inet_proto", "inet_service"], "handle": 5, "flags": ["interval", "timeout"], "elem": [{"elem": {"val": {"concat": [{"prefix": {"addr": "198.18.0.0", "len": 24}}, "tcp", 22]}, "timeout": 60, "expires": 59, "comment": "postern:n24"}}]}}',
  '{"set": {"family": "inet", "name": "grants6net", "table": "postern", "type": ["ipv6_addr", "inet_proto", "inet_service"], "handle": 6, "flags": ["interval", "timeout"], "elem": [{"elem": {"val": {"concat": [{"prefix": {"addr": "2001:db8:1::", "len": 64}}, "tcp", 22]}, "timeout": 120, "expires": 119, "comment": "postern:n64"}}, {"elem": {"val": {"concat": [{"range": ["2001:db8:1:1::", "2001:db8:1:ff:ffff:ffff:ffff:ffff"]}, "tcp", 22]}, "timeout": 60, "expires": 59, "comment": "postern:n56"}}]}}',
  '{"map": {"family": "inet", "name": "dnat4", "table": "postern", "type": ["ipv4_addr", "inet_proto", "inet_service"], "handle": 19, "map": "ipv4_addr . inet_service", "flags": ["timeout"], "elem": [[{"elem": {"val": {"concat": ["198.18.0.2", "tcp", 2222]}, "timeout": 45, "expires": 44, "comment": "postern:f1"}}, {"concat": ["198.19.0.10", 22]}], [{"concat": ["198.18.0.3", "udp", 5353]}, {"concat": ["198.19.0.11", 53]}]]}}',
  '{"map": {"family": "inet", "name": "dnat6", "table": "postern", "type": ["ipv6_addr", "inet_proto", "inet_service"], "handle": 20, "map": "ipv6_addr . inet_service", "flags": ["timeout"]}}',
  '{"map": {"family": "inet", "name": "dnat4net", "table": "postern", "type": ["ipv4_addr", "inet_proto", "inet_service"], "handle": 21, "map": "ipv4_addr . inet_service", "flags": ["interval", "timeout"]}}',
  '{"map": {"family": "inet", "name": "dnat6net", "table": "postern", "type": ["ipv6_addr", "inet_proto", "inet_service"], "handle": 22, "map": "ipv6_addr . inet_service", "flags": ["interval", "timeout"], "elem": [[{"elem": {"val": {"concat": [{"prefix": {"addr": "2001:db8:1::", "len": 64}}, "tcp", 2222]}, "timeout": 45, "expires": 44, "comment": "postern:f6"}}, {"concat": ["fd50:7375::10", 22]}]]}}',
  '{"set": {"family": "inet", "name": "fwd4", "table": "postern", "type": ["ipv4_addr", "ipv4_addr", "inet_proto", "inet_service"], "handle": 23, "flags": ["timeout"], "elem": [{"elem": {"val": {"concat": ["198.18.0.2", "198.19.0.10", "tcp", 22]}, "timeout": 45, "expires": 44, "comment": "postern:f1"}}]}}',
  '{"set": {"family": "inet", "name": "fwd6", "table": "postern", "type": ["ipv6_addr", "ipv6_addr", "inet_proto", "inet_service"], "handle": 24, "flags": ["timeout"]}}',
  '{"set": {"family": "inet", "name": "fwd4net", "table": "postern", "type": ["ipv4_addr", "ipv4_addr", "inet_proto", "inet_service"], "handle": 25, "flags": ["interval", "timeout"]}}',
  '{"set": {"family": "inet", "name": "fwd6net", "table": "postern", "type": ["ipv6_addr", "ipv6_addr", "inet_proto", "inet_service"], "handle": 26, "flags": ["interval", "timeout"], "elem": [{"elem": {"val": {"concat": [{"prefix": {"addr": "2001:db8:1::", "len": 64}}, "fd50:7375::10", "tcp", 22]}, "timeout": 45, "expires": 44, "comment": "postern:f6"}}]}}',
  '{"chain": {"family": "inet", "table": "postern", "name": "prerouting", "handle": 27, "type": "nat", "hook": "prerouting", "prio": -110, "policy": "accept"}}',
  '{"rule": {"family": "inet", "table": "postern", "chain": "input", "handle": 16, "expr": [{"match": {"op": "==", "left": {"concat": [{"payload": {"protocol": "ip6", "field": "saddr"}}, {"meta": {"key": "l4proto"}}, {"payload": {"protocol": "th", "field": "dport"}}]}, "right": "@grants6net"}}, {"mangle": {"key": {"meta": {"key": "mark"}}, "value": {"|": [{"meta": {"key": "mark"}}, 268435456]}}}, {"accept": null}]}}',
];
const doc = (items: readonly string[]): string => `{"nftables": [${items.join(', ')}]}`;
const FULL = doc(ITEMS);
/** The same table without forwarding: no maps, no fwd sets, no nat chain. */
const PLAIN = doc(ITEMS.filter((i) => !/"name": "(dnat|fwd)|"prerouting"/.test(i)));

const id = (kind: SetId['kind'], family: 4 | 6, net = false): SetId => ({ kind, family, net });
const host = (a: string, family: 4 | 6) => networkRange(a, family);
const el = (e: Partial<ListedElement> & Pick<ListedElement, 'set' | 'lo' | 'hi'>): ListedElement =>
  ({ target: null, proto: 'tcp', port: 22, data: null, grantId: null, expiresInMs: null, ...e });

describe('table listing parser', () => {
  it('grant sets: tagged, untagged, without timeout, other protocol, IPv4-mapped, prefix, range', () => {
    const r = parseListing(PLAIN, GRANT_SET_IDS);
    assert.deepEqual(r, {
      ok: true,
      value: {
        foreign: 0,
        elements: [
          el({ set: id('grants', 4), ...host('198.18.0.2', 4), grantId: 'g1a2b', expiresInMs: 29_000 }),
          el({ set: id('grants', 4), ...host('198.18.0.9', 4), proto: 'sctp', expiresInMs: 299_000 }),
          el({ set: id('grants', 4), ...host('198.18.0.7', 4), proto: 'udp', port: 53 }),
          el({ set: id('grants', 4), ...host('198.18.0.2', 4), port: 443, grantId: 'g1a2b', expiresInMs: 29_000 }),
          el({ set: id('grants', 6), ...host('::ffff:198.18.0.1', 6), grantId: 'zz9', expiresInMs: 9_000 }),
          el({ set: id('grants', 6), ...host('2001:db8::2', 6), proto: 'udp', port: 51820, grantId: 'g6', expiresInMs: 89_000 }),
          el({ set: id('grants', 4, true), ...networkRange('198.18.0.0', 4, 24), grantId: 'n24', expiresInMs: 59_000 }),
          el({ set: id('grants', 6, true), ...networkRange('2001:db8:1::', 6, 64), grantId: 'n64', expiresInMs: 119_000 }),
          el({ set: id('grants', 6, true), lo: networkRange('2001:db8:1:1::', 6, 64).lo, hi: networkRange('2001:db8:1::', 6, 56).hi, grantId: 'n56', expiresInMs: 59_000 }),
        ],
      },
    });
  });
  it('forwarding maps and sets: data, targets, an untagged map element without timeout', () => {
    const r = parseListing(FULL, FORWARD_SET_IDS);
    assert.ok(r.ok);
    const n64 = networkRange('2001:db8:1::', 6, 64);
    assert.deepEqual(r.value.elements, [
      el({ set: id('dnat', 4), ...host('198.18.0.2', 4), port: 2222, data: { address: '198.19.0.10', port: 22 }, grantId: 'f1', expiresInMs: 44_000 }),
      el({ set: id('dnat', 4), ...host('198.18.0.3', 4), proto: 'udp', port: 5353, data: { address: '198.19.0.11', port: 53 } }),
      el({ set: id('dnat', 6, true), ...n64, port: 2222, data: { address: 'fd50:7375::10', port: 22 }, grantId: 'f6', expiresInMs: 44_000 }),
      el({ set: id('fwd', 4), ...host('198.18.0.2', 4), target: '198.19.0.10', grantId: 'f1', expiresInMs: 44_000 }),
      el({ set: id('fwd', 6, true), ...n64, target: 'fd50:7375::10', grantId: 'f6', expiresInMs: 44_000 }),
    ]);
  });
  it('a set that is not there is a reason (a table without forwarding, or none)', () => {
    assert.deepEqual(parseListing(PLAIN, FORWARD_SET_IDS), { ok: false, reason: 'no_set' });
    assert.deepEqual(parseListing(doc(ITEMS.slice(0, 2)), GRANT_SET_IDS), { ok: false, reason: 'no_set' });
    // Another table's set of the same name is not ours.
    assert.deepEqual(parseListing(PLAIN.replaceAll('"table": "postern"', '"table": "fw4"'), GRANT_SET_IDS), { ok: false, reason: 'no_set' });
  });
  it('junk is a reason, never a throw', () => {
    assert.deepEqual(parseListing('Error: No such file or directory', GRANT_SET_IDS), { ok: false, reason: 'bad_json' });
    assert.deepEqual(parseListing('', GRANT_SET_IDS), { ok: false, reason: 'bad_json' });
    for (const j of ['null', '[]', '{"nftables": 3}']) assert.deepEqual(parseListing(j, GRANT_SET_IDS), { ok: false, reason: 'bad_shape' });
    const elemNotArray = PLAIN.replace('"handle": 3, "flags": ["timeout"], "elem": [', '"handle": 3, "flags": ["timeout"], "elem": {}, "x": [');
    assert.deepEqual(parseListing(elemNotArray, GRANT_SET_IDS), { ok: false, reason: 'bad_shape' });
  });
  it('elements it cannot read are counted, not guessed', () => {
    const odd4 = [
      '{"concat": ["198.18.0.2", "tcp"]}', '{"concat": ["2001:db8::2", "tcp", 22]}', '{"concat": ["198.18.0.2", "tcp", 70000]}',
      '{"concat": ["198.18.0.2", "t c p", 22]}', '"198.18.0.2"', '{"elem": {"val": 3}}', '{"concat": ["198.18.0.2", 6, "22"]}',
      '{"concat": [{"prefix": {"addr": "198.18.0.0", "len": 24}}, "tcp", 22]}', // a network in a hash set
      '{"concat": [{"prefix": {"addr": "198.18.0.1", "len": 24}}, "tcp", 22]}',
      '{"concat": [{"range": ["198.18.0.9", "198.18.0.1"]}, "tcp", 22]}',
      '[{"concat": ["198.18.0.2", "tcp", 22]}, {"concat": ["198.19.0.10", 22]}]', // a map element in a set
    ];
    const sets = (elems: string[]): string => doc([ITEMS[0] ?? '',
      `{"set": {"family": "inet", "name": "grants4", "table": "postern", "elem": [${elems.join(', ')}]}}`,
      `{"set": {"family": "inet", "name": "grants4net", "table": "postern", "elem": [${elems.slice(7).join(', ')}]}}`,
      '{"map": {"family": "inet", "name": "dnat4", "table": "postern", "elem": [{"concat": ["198.18.0.2", "tcp", 22]}, [{"concat": ["198.18.0.2", "tcp", 22]}, {"concat": ["198.19.0.10"]}]]}}']);
    const r = parseListing(sets(odd4), [id('grants', 4), id('grants', 4, true), id('dnat', 4)]);
    assert.deepEqual(r, {
      ok: true,
      value: {
        foreign: 10 + 3 + 2,
        elements: [
          el({ set: id('grants', 4), ...host('198.18.0.2', 4) }),
          el({ set: id('grants', 4, true), ...networkRange('198.18.0.0', 4, 24) }),
        ],
      },
    });
  });
});
