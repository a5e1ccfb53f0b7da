// SPDX-License-Identifier: MIT
// Pure nftables text (src/firewall/nft-rules.ts): exact script lines, listing fixtures
// captured from real `nft -j list set` output (nft 1.0.6, Debian 12, kernel 6.x), the cover
// table, the reconcile planner, rejection of every value that must never reach an nft
// script, and the fw4 drop-in's mark (STYLE.md principles 9 and 12a).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { FirewallValueError } from '../../../src/firewall/iptables-rules.ts';
import {
  CoverTable, DEFAULT_NFT_MARK, MAX_ELEMENT_TIMEOUT_MS, applyArgv, checkMark, elementLines, grantTuples, guardLines,
  hexMark, listSetArgv, listTableArgv, nftScript, parseGrantSet, planReconcile, recreateLines, stopLines,
} from '../../../src/firewall/nft-rules.ts';
import type { ListedElement } from '../../../src/firewall/nft-rules.ts';
import type { Grant, GuardSpec, Service } from '../../../src/firewall/types.ts';

const tcp = (port: number): Service => ({ proto: 'tcp', port });
const udp = (port: number): Service => ({ proto: 'udp', port });
const NOW = 1_764_150_000_000;
const G4: Grant = { id: 'g1a2b', key: 'alice', family: 4, address: '198.18.0.2', services: [tcp(22), tcp(443)], expiresAtMs: NOW + 30_000 };
const G6: Grant = { id: 'g6', key: 'alice', family: 6, address: '2001:db8::2', services: [udp(51820)], expiresAtMs: NOW + 90_000 };
const SPEC: GuardSpec = { guarded: [tcp(22), tcp(443)], capture: [udp(62201), tcp(7000)] };
const DROP_IN = new URL('../../../rootfs-overlay/openwrt/usr/share/nftables.d/chain-pre/input/30-postern.nft', import.meta.url);

const HEAD = [
  'add table inet postern',
  'add set inet postern guarded { type inet_proto . inet_service; }',
  'add set inet postern capture { type inet_proto . inet_service; }',
  'add set inet postern grants4 { type ipv4_addr . inet_proto . inet_service; flags timeout; }',
  'add set inet postern grants6 { type ipv6_addr . inet_proto . inet_service; flags timeout; }',
  'add chain inet postern input { type filter hook input priority filter - 10; policy accept; }',
  'add chain inet postern output { type filter hook output priority filter - 10; policy accept; }',
  'flush chain inet postern input',
  'flush chain inet postern output',
  'flush set inet postern guarded',
  'flush set inet postern capture',
];
const rules = (m: string, clear: string): string[] => [
  `add rule inet postern input meta mark & ${m} == ${m} meta mark set meta mark & ${clear}`,
  'add rule inet postern input iif "lo" return',
  `add rule inet postern input meta l4proto . th dport @capture meta mark set meta mark | ${m} accept`,
  'add rule inet postern input ct state established,related meta l4proto . th dport @guarded accept',
  `add rule inet postern input ip saddr . meta l4proto . th dport @grants4 meta mark set meta mark | ${m} accept`,
  `add rule inet postern input ip6 saddr . meta l4proto . th dport @grants6 meta mark set meta mark | ${m} accept`,
  'add rule inet postern input meta l4proto . th dport @guarded drop',
  'add rule inet postern output meta l4proto . th sport @capture tcp flags & rst == rst drop',
];

describe('guard script', () => {
  const cases: { name: string; spec: GuardSpec; mark: number; lines: string[] }[] = [
    {
      name: 'default mark, guarded and capture ports',
      spec: SPEC,
      mark: DEFAULT_NFT_MARK,
      lines: [
        ...HEAD,
        'add element inet postern guarded { tcp . 22, tcp . 443 }',
        'add element inet postern capture { udp . 62201, tcp . 7000 }',
        ...rules('0x10000000', '0xefffffff'),
      ],
    },
    {
      name: 'lowest bit as mark, duplicates collapse, no capture ports',
      spec: { guarded: [tcp(22), tcp(22), udp(22)], capture: [] },
      mark: 0x1,
      lines: [...HEAD, 'add element inet postern guarded { tcp . 22, udp . 22 }', ...rules('0x00000001', '0xfffffffe')],
    },
    {
      name: 'highest bit as mark, nothing guarded',
      spec: { guarded: [], capture: [udp(62201)] },
      mark: 0x80000000,
      lines: [...HEAD, 'add element inet postern capture { udp . 62201 }', ...rules('0x80000000', '0x7fffffff')],
    },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(guardLines(c.spec, c.mark), c.lines));

  it('recreate deletes the table first, inside the same transaction', () => {
    assert.deepEqual(recreateLines(SPEC, DEFAULT_NFT_MARK).slice(0, 3), ['add table inet postern', 'delete table inet postern', 'add table inet postern']);
    assert.deepEqual(recreateLines(SPEC, DEFAULT_NFT_MARK).slice(2), guardLines(SPEC, DEFAULT_NFT_MARK));
  });

  it('stop deletes the table idempotently, or flushes only the grant sets', () => {
    assert.deepEqual(stopLines(false), ['add table inet postern', 'delete table inet postern']);
    assert.deepEqual(stopLines(true), ['flush set inet postern grants4', 'flush set inet postern grants6']);
  });

  it('builds argv: script on stdin, JSON listing per family, table probe', () => {
    assert.deepEqual(applyArgv('/usr/sbin/nft'), ['/usr/sbin/nft', '-f', '-']);
    assert.deepEqual(listSetArgv('nft', 4), ['nft', '-j', 'list', 'set', 'inet', 'postern', 'grants4']);
    assert.deepEqual(listSetArgv('nft', 6), ['nft', '-j', 'list', 'set', 'inet', 'postern', 'grants6']);
    assert.deepEqual(listTableArgv('nft'), ['nft', 'list', 'table', 'inet', 'postern']);
    assert.equal(nftScript(['flush set inet postern grants4', 'flush set inet postern grants6']), 'flush set inet postern grants4\nflush set inet postern grants6\n');
  });
});

describe('element lines', () => {
  const k4 = { family: 4, address: '198.18.0.2', proto: 'tcp', port: 22 } as const;
  const k6 = { family: 6, address: '::ffff:198.18.0.1', proto: 'udp', port: 53 } as const;
  it('add, delete, add: one element with the cover, whether or not one was there', () => {
    const add = 'add element inet postern grants4 { 198.18.0.2 . tcp . 22 timeout 29500ms comment "postern:g1a2b" }';
    assert.deepEqual(elementLines(k4, { id: 'g1a2b', timeoutMs: 29_500 }), [add, 'delete element inet postern grants4 { 198.18.0.2 . tcp . 22 }', add]);
    const add6 = 'add element inet postern grants6 { ::ffff:198.18.0.1 . udp . 53 timeout 1ms comment "postern:z" }';
    assert.deepEqual(elementLines(k6, { id: 'z', timeoutMs: 1 }), [add6, 'delete element inet postern grants6 { ::ffff:198.18.0.1 . udp . 53 }', add6]);
  });
  it('no cover: a short-lived placeholder, then delete (never fails on an absent element)', () => {
    assert.deepEqual(elementLines(k4, undefined), [
      'add element inet postern grants4 { 198.18.0.2 . tcp . 22 timeout 1000ms }',
      'delete element inet postern grants4 { 198.18.0.2 . tcp . 22 }',
    ]);
    // A listed element of another protocol (an operator's) can be removed too.
    assert.equal(elementLines({ family: 4, address: '198.18.0.9', proto: 'sctp', port: 0 }, undefined)[1],
      'delete element inet postern grants4 { 198.18.0.9 . sctp . 0 }');
  });
  it('one tuple per distinct service', () => {
    assert.deepEqual(grantTuples({ ...G4, services: [tcp(22), tcp(22), udp(22)] }), [
      { family: 4, address: '198.18.0.2', proto: 'tcp', port: 22 },
      { family: 4, address: '198.18.0.2', proto: 'udp', port: 22 },
    ]);
  });
});

describe('values that must never reach a script are refused', () => {
  const badKeys: [string, object][] = [
    ['non-canonical IPv6', { family: 6, address: '2001:DB8::2', proto: 'tcp', port: 22 }],
    ['prefix', { family: 4, address: '198.18.0.2/32', proto: 'tcp', port: 22 }],
    ['injection in address', { family: 4, address: '198.18.0.2 } ; flush ruleset', proto: 'tcp', port: 22 }],
    ['wrong family', { family: 4, address: '2001:db8::2', proto: 'tcp', port: 22 }],
    ['family 5', { family: 5, address: '198.18.0.2', proto: 'tcp', port: 22 }],
    ['proto with space', { family: 4, address: '198.18.0.2', proto: 'tcp }', port: 22 }],
    ['port 65536', { family: 4, address: '198.18.0.2', proto: 'tcp', port: 65536 }],
    ['fractional port', { family: 4, address: '198.18.0.2', proto: 'tcp', port: 22.5 }],
  ];
  for (const [name, key] of badKeys) {
    it(`element key: ${name}`, () => assert.throws(() => elementLines(key as never, undefined), FirewallValueError));
  }
  const k = { family: 4, address: '198.18.0.2', proto: 'tcp', port: 22 } as const;
  for (const id of ['', 'G1', 'a"b', 'x'.repeat(17), 'a b']) {
    it(`grant id ${JSON.stringify(id)}`, () => assert.throws(() => elementLines(k, { id, timeoutMs: 1000 }), FirewallValueError));
  }
  for (const t of [0, -1, 1.5, Number.NaN, MAX_ELEMENT_TIMEOUT_MS + 1]) {
    it(`timeout ${t}`, () => assert.throws(() => elementLines(k, { id: 'g1', timeoutMs: t }), FirewallValueError));
  }
  for (const m of [0, 3, 0x30000000, 2 ** 32, -1, 1.5, Number.NaN]) {
    it(`mark ${m}`, () => {
      assert.throws(() => checkMark(m), FirewallValueError);
      assert.throws(() => guardLines(SPEC, m), FirewallValueError);
    });
  }
  it('services: protocol and port of a grant or a spec', () => {
    assert.throws(() => grantTuples({ ...G4, services: [{ proto: 'icmp' as never, port: 1 }] }), FirewallValueError);
    assert.throws(() => grantTuples({ ...G4, services: [tcp(0)] }), FirewallValueError);
    assert.throws(() => guardLines({ guarded: [tcp(70000)], capture: [] }, DEFAULT_NFT_MARK), FirewallValueError);
  });
  it('a newline never enters a script', () => assert.throws(() => nftScript(['flush ruleset\nadd table x']), FirewallValueError));
  it('hexMark pads to 32 bits', () => assert.equal(hexMark(0x100), '0x00000100'));
});

describe('cover table', () => {
  const t22 = { family: 4, address: '198.18.0.2', proto: 'tcp', port: 22 } as const;
  const a: Grant = { ...G4, id: 'a', services: [tcp(22)], expiresAtMs: NOW + 60_000 };
  const b: Grant = { ...G4, id: 'b', services: [tcp(22), tcp(443)], expiresAtMs: NOW + 30_000 };
  it('the longest cover wins; removing it falls back to the other; expired covers vanish', () => {
    const c = new CoverTable();
    c.add(a);
    c.add(b);
    assert.deepEqual(c.best(t22, NOW), { id: 'a', timeoutMs: 60_000 });
    c.remove(a);
    assert.deepEqual(c.best(t22, NOW + 0.5), { id: 'b', timeoutMs: 30_000 });
    assert.equal(c.best(t22, NOW + 30_000), undefined);
    assert.deepEqual(c.tuples().map((t) => t.port), [443]);
  });
  it('ties go to the smallest id; timeouts are capped', () => {
    const c = new CoverTable();
    c.add({ ...a, id: 'z' });
    c.add({ ...a, id: 'm' });
    assert.equal(c.best(t22, NOW)?.id, 'm');
    c.add({ ...a, id: 'far', expiresAtMs: NOW + 30 * 86_400_000 });
    assert.deepEqual(c.best(t22, NOW), { id: 'far', timeoutMs: MAX_ELEMENT_TIMEOUT_MS });
  });
  it('save() restores the covers of the given tuples', () => {
    const c = new CoverTable();
    c.add(a);
    const undo = c.save(grantTuples(b));
    c.add(b);
    c.remove(a);
    undo();
    assert.deepEqual(c.best(t22, NOW), { id: 'a', timeoutMs: 60_000 });
    assert.equal(c.size, 1);
  });
});

// Captured from `nft -j list set inet postern grants4|grants6` (nft 1.0.6): an element with
// neither timeout nor comment is listed bare, every other one wrapped in "elem".
const EMPTY4 = '{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"set": {"family": "inet", "name": "grants4", "table": "postern", "type": ["ipv4_addr", "inet_proto", "inet_service"], "handle": 3, "flags": ["timeout"]}}]}';
const MIXED4 = '{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"set": {"family": "inet", "name": "grants4", "table": "postern", "type": ["ipv4_addr", "inet_proto", "inet_service"], "handle": 3, "flags": ["timeout"], "elem": [{"elem": {"val": {"concat": ["198.18.0.2", "tcp", 22]}, "timeout": 30, "expires": 29, "comment": "postern:g1a2b"}}, {"elem": {"val": {"concat": ["198.18.0.9", "sctp", 22]}, "timeout": 300, "expires": 299, "comment": "operator test"}}, {"concat": ["198.18.0.7", "udp", 53]}, {"elem": {"val": {"concat": ["198.18.0.8", "tcp", 8080]}, "timeout": 3600, "expires": 3599}}, {"elem": {"val": {"concat": ["198.18.0.2", "tcp", 443]}, "timeout": 30, "expires": 29, "comment": "postern:g1a2b"}}]}}]}';
const MIXED6 = '{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"set": {"family": "inet", "name": "grants6", "table": "postern", "type": ["ipv6_addr", "inet_proto", "inet_service"], "handle": 4, "flags": ["timeout"], "elem": [{"elem": {"val": {"concat": ["::ffff:198.18.0.1", "tcp", 22]}, "timeout": 10, "expires": 9, "comment": "postern:zz9"}}, {"concat": ["fd50:7374::3", "tcp", 22]}, {"elem": {"val": {"concat": ["2001:db8::2", "udp", 51820]}, "timeout": 90, "expires": 89, "comment": "postern:g6"}}]}}]}';

const el = (e: Partial<ListedElement> & Pick<ListedElement, 'address' | 'port'>): ListedElement =>
  ({ family: 4, proto: 'tcp', grantId: null, expiresInMs: null, ...e });

describe('grant set listing parser', () => {
  it('an empty set', () => assert.deepEqual(parseGrantSet(EMPTY4, 4), { ok: true, value: { elements: [], foreign: 0 } }));
  it('IPv4: tagged, untagged, without timeout, other protocol', () => {
    assert.deepEqual(parseGrantSet(MIXED4, 4), {
      ok: true,
      value: {
        foreign: 0,
        elements: [
          el({ address: '198.18.0.2', port: 22, grantId: 'g1a2b', expiresInMs: 29_000 }),
          el({ address: '198.18.0.9', proto: 'sctp', port: 22, expiresInMs: 299_000 }),
          el({ address: '198.18.0.7', proto: 'udp', port: 53 }),
          el({ address: '198.18.0.8', port: 8080, expiresInMs: 3_599_000 }),
          el({ address: '198.18.0.2', port: 443, grantId: 'g1a2b', expiresInMs: 29_000 }),
        ],
      },
    });
  });
  it('IPv6, including an IPv4-mapped address', () => {
    const r = parseGrantSet(MIXED6, 6);
    assert.ok(r.ok);
    assert.deepEqual(r.value.elements, [
      el({ family: 6, address: '::ffff:198.18.0.1', port: 22, grantId: 'zz9', expiresInMs: 9_000 }),
      el({ family: 6, address: 'fd50:7374::3', port: 22 }),
      el({ family: 6, address: '2001:db8::2', proto: 'udp', port: 51820, grantId: 'g6', expiresInMs: 89_000 }),
    ]);
  });
  it('the set of the other family is not there', () => {
    assert.deepEqual(parseGrantSet(MIXED6, 4), { ok: false, reason: 'no_set' });
    assert.deepEqual(parseGrantSet(EMPTY4, 6), { ok: false, reason: 'no_set' });
  });
  it('junk is a reason, never a throw', () => {
    assert.deepEqual(parseGrantSet('Error: No such file or directory', 4), { ok: false, reason: 'bad_json' });
    assert.deepEqual(parseGrantSet('', 4), { ok: false, reason: 'bad_json' });
    for (const j of ['null', '[]', '{"nftables": 3}']) assert.deepEqual(parseGrantSet(j, 4), { ok: false, reason: 'bad_shape' });
    const elemNotArray = EMPTY4.replace('"flags": ["timeout"]', '"flags": ["timeout"], "elem": {}');
    assert.deepEqual(parseGrantSet(elemNotArray, 4), { ok: false, reason: 'bad_shape' });
  });
  it('elements it cannot read are counted, not guessed', () => {
    const odd = [
      '{"concat": ["198.18.0.2", "tcp"]}', '{"concat": ["2001:db8::2", "tcp", 22]}', '{"concat": ["198.18.0.2", "tcp", 70000]}',
      '{"concat": ["198.18.0.2", "t c p", 22]}', '"198.18.0.2"', '{"elem": {"val": 3}}', '{"concat": ["198.18.0.2", 6, "22"]}',
    ];
    const json = EMPTY4.replace('"flags": ["timeout"]', `"flags": ["timeout"], "elem": [${odd.join(', ')}]`);
    assert.deepEqual(parseGrantSet(json, 4), { ok: true, value: { foreign: 6, elements: [el({ address: '198.18.0.2', port: 22 })] } });
  });
});

describe('reconcile plan', () => {
  const listed = (g: Grant, s: Service, leftMs: number, id: string | null = g.id): ListedElement =>
    ({ family: g.family, address: g.address, proto: s.proto, port: s.port, grantId: id, expiresInMs: leftMs });

  it('nothing to do when the sets agree with the live grants (listed seconds are truncated)', () => {
    const existing = [listed(G4, tcp(22), 29_000), listed(G4, tcp(443), 30_000), listed(G6, udp(51820), 89_000)];
    const plan = planReconcile(existing, [G4, G6], NOW);
    assert.deepEqual([plan.lines, plan.removed, plan.restored, plan.invalid, plan.untagged], [[], [], [], [], 0]);
    assert.equal(plan.covers.size, 3);
  });
  it('removes unknown, expired and untagged elements; restores missing ones', () => {
    const old: Grant = { ...G4, id: 'old', address: '198.18.0.5', expiresAtMs: NOW - 1 };
    const existing = [
      listed(G4, tcp(22), 29_000),
      listed({ ...G4, id: 'ghost', address: '198.18.0.9' }, tcp(22), 500_000),
      listed(old, tcp(22), 2_000),
      listed({ ...G4, address: '198.18.0.7' }, udp(53), 0, null),
    ];
    const plan = planReconcile(existing, [G4, G6, old], NOW);
    assert.deepEqual([...plan.removed].sort(), ['ghost', 'old']);
    assert.deepEqual([...plan.restored].sort(), ['g1a2b', 'g6']);
    assert.equal(plan.untagged, 1);
    assert.deepEqual(plan.lines.filter((l) => l.startsWith('delete')), [
      'delete element inet postern grants4 { 198.18.0.9 . tcp . 22 }',
      'delete element inet postern grants4 { 198.18.0.5 . tcp . 22 }',
      'delete element inet postern grants4 { 198.18.0.7 . udp . 53 }',
      'delete element inet postern grants4 { 198.18.0.2 . tcp . 443 }',
      'delete element inet postern grants6 { 2001:db8::2 . udp . 51820 }',
    ]);
    assert.ok(plan.lines.includes('add element inet postern grants6 { 2001:db8::2 . udp . 51820 timeout 90000ms comment "postern:g6" }'));
    assert.equal(plan.lines.length, 3 * 2 + 3 * 2); // three removals of two lines, two rewrites of three
  });
  it('rewrites an element whose expiry disagrees (either way) or whose owner is not the longest cover', () => {
    const b: Grant = { ...G4, id: 'b', services: [tcp(22)], expiresAtMs: NOW + 600_000 };
    const existing = [listed(G4, tcp(22), 29_000), listed(G4, tcp(443), 120_000)];
    const plan = planReconcile(existing, [G4, b], NOW);
    assert.deepEqual(plan.removed, []);
    assert.deepEqual([...plan.restored].sort(), ['b', 'g1a2b']);
    assert.ok(plan.lines.includes('add element inet postern grants4 { 198.18.0.2 . tcp . 22 timeout 600000ms comment "postern:b" }'));
    assert.ok(plan.lines.includes('add element inet postern grants4 { 198.18.0.2 . tcp . 443 timeout 30000ms comment "postern:g1a2b" }'));
    const short = planReconcile([listed(G4, tcp(22), 20_000), listed(G4, tcp(443), 29_000)], [G4], NOW);
    assert.deepEqual(short.restored, ['g1a2b']);
    assert.equal(short.lines.length, 3);
  });
  it('an invalid live grant is treated as expired (fail closed)', () => {
    const bad = { ...G4, id: 'bad', address: '198.18.0.02' };
    const plan = planReconcile([listed(G4, tcp(22), 29_000, 'bad')], [bad], NOW);
    assert.deepEqual([plan.invalid, plan.removed, plan.restored], [['bad'], ['bad'], []]);
  });
});

describe('fw4 drop-in', () => {
  const text = readFileSync(DROP_IN, 'utf8');
  it('accepts exactly the default mark bit, as its only rule', () => {
    const rulesIn = text.split('\n').filter((l) => l.trim() !== '' && !l.trimStart().startsWith('#'));
    const m = hexMark(DEFAULT_NFT_MARK);
    assert.deepEqual(rulesIn, [`meta mark & ${m} == ${m} accept comment "postern: granted or capture packet"`]);
  });
  it('starts with the SPDX line', () => assert.match(text, /^# SPDX-License-Identifier: MIT\n/));
});
