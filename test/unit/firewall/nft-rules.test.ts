// SPDX-License-Identifier: MIT
// Pure nftables table text (src/firewall/nft-rules.ts): the exact guard script with and
// without forwarding, replacing and stopping, argv, refusal of marks and ports that must
// never reach a script, and the fw4 drop-ins' marks (STYLE.md principles 9 and 12a).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { FirewallValueError } from '../../../src/firewall/iptables-rules.ts';
import {
  DEFAULT_NFT_MARK, applyArgv, checkMark, dropForwardingLines, guardAttempts, guardLines, hexMark, listTableArgv, nftScript, recreateLines, stopLines,
} from '../../../src/firewall/nft-rules.ts';
import type { GuardSpec, Service } from '../../../src/firewall/types.ts';

const tcp = (port: number): Service => ({ proto: 'tcp', port });
const udp = (port: number): Service => ({ proto: 'udp', port });
const SPEC: GuardSpec = { guarded: [tcp(22), tcp(443)], capture: [udp(62201), tcp(7000)] };
const dropIn = (chain: string): URL => new URL(`../../../rootfs-overlay/openwrt/usr/share/nftables.d/chain-pre/${chain}/30-postern.nft`, import.meta.url);

const HEAD = [
  'add table inet postern',
  'add set inet postern guarded { type inet_proto . inet_service; }',
  'add set inet postern capture { type inet_proto . inet_service; }',
  'add set inet postern grants4 { type ipv4_addr . inet_proto . inet_service; flags timeout; }',
  'add set inet postern grants6 { type ipv6_addr . inet_proto . inet_service; flags timeout; }',
  'add set inet postern grants4net { type ipv4_addr . inet_proto . inet_service; flags interval, timeout; }',
  'add set inet postern grants6net { type ipv6_addr . inet_proto . inet_service; flags interval, timeout; }',
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
  `add rule inet postern input ip saddr . meta l4proto . th dport @grants4net meta mark set meta mark | ${m} accept`,
  `add rule inet postern input ip6 saddr . meta l4proto . th dport @grants6net meta mark set meta mark | ${m} accept`,
  'add rule inet postern input meta l4proto . th dport @guarded drop',
  'add rule inet postern output meta l4proto . th sport @capture tcp flags & rst == rst drop',
];
const FORWARD_DECLS = [
  'add map inet postern dnat4 { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; flags timeout; }',
  'add map inet postern dnat6 { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; flags timeout; }',
  'add map inet postern dnat4net { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; flags interval, timeout; }',
  'add map inet postern dnat6net { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; flags interval, timeout; }',
  'add set inet postern fwd4 { type ipv4_addr . ipv4_addr . inet_proto . inet_service; flags timeout; }',
  'add set inet postern fwd6 { type ipv6_addr . ipv6_addr . inet_proto . inet_service; flags timeout; }',
  'add set inet postern fwd4net { type ipv4_addr . ipv4_addr . inet_proto . inet_service; flags interval, timeout; }',
  'add set inet postern fwd6net { type ipv6_addr . ipv6_addr . inet_proto . inet_service; flags interval, timeout; }',
];
const forwarding = (m: string, clear: string): string[] => [
  ...FORWARD_DECLS,
  'add chain inet postern prerouting { type nat hook prerouting priority dstnat - 10; policy accept; }',
  'add chain inet postern forward { type filter hook forward priority filter - 10; policy accept; }',
  'flush chain inet postern prerouting',
  'flush chain inet postern forward',
  'add rule inet postern prerouting meta l4proto { tcp, udp } dnat ip to ip saddr . meta l4proto . th dport map @dnat4',
  'add rule inet postern prerouting meta l4proto { tcp, udp } dnat ip6 to ip6 saddr . meta l4proto . th dport map @dnat6',
  'add rule inet postern prerouting meta l4proto { tcp, udp } dnat ip to ip saddr . meta l4proto . th dport map @dnat4net',
  'add rule inet postern prerouting meta l4proto { tcp, udp } dnat ip6 to ip6 saddr . meta l4proto . th dport map @dnat6net',
  `add rule inet postern forward meta mark & ${m} == ${m} meta mark set meta mark & ${clear}`,
  `add rule inet postern forward ct state established,related ct status dnat meta mark set meta mark | ${m} accept`,
  `add rule inet postern forward ct status dnat ip saddr . ip daddr . meta l4proto . th dport @fwd4 meta mark set meta mark | ${m} accept`,
  `add rule inet postern forward ct status dnat ip6 saddr . ip6 daddr . meta l4proto . th dport @fwd6 meta mark set meta mark | ${m} accept`,
  `add rule inet postern forward ct status dnat ip saddr . ip daddr . meta l4proto . th dport @fwd4net meta mark set meta mark | ${m} accept`,
  `add rule inet postern forward ct status dnat ip6 saddr . ip6 daddr . meta l4proto . th dport @fwd6net meta mark set meta mark | ${m} accept`,
];
/** Without forwarding: whatever a run with it left goes, without creating a nat chain. */
const NO_FORWARDING = [
  'add chain inet postern prerouting', 'flush chain inet postern prerouting', 'delete chain inet postern prerouting',
  'add chain inet postern forward', 'flush chain inet postern forward', 'delete chain inet postern forward',
  ...FORWARD_DECLS.flatMap((d) => [d, d.replace(/^add (map|set) (inet postern \S+) .*$/, 'delete $1 $2')]),
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
        ...NO_FORWARDING,
      ],
    },
    {
      name: 'lowest bit as mark, duplicates collapse, no capture ports',
      spec: { guarded: [tcp(22), tcp(22), udp(22)], capture: [] },
      mark: 0x1,
      lines: [...HEAD, 'add element inet postern guarded { tcp . 22, udp . 22 }', ...rules('0x00000001', '0xfffffffe'), ...NO_FORWARDING],
    },
    {
      name: 'highest bit as mark, nothing guarded, forwarding: false',
      spec: { guarded: [], capture: [udp(62201)], forwarding: false },
      mark: 0x80000000,
      lines: [...HEAD, 'add element inet postern capture { udp . 62201 }', ...rules('0x80000000', '0x7fffffff'), ...NO_FORWARDING],
    },
    {
      name: 'forwarding: maps, fwd sets, the nat and forward chains',
      spec: { ...SPEC, guarded: [...SPEC.guarded, tcp(2222)], forwarding: true },
      mark: DEFAULT_NFT_MARK,
      lines: [
        ...HEAD,
        'add element inet postern guarded { tcp . 22, tcp . 443, tcp . 2222 }',
        'add element inet postern capture { udp . 62201, tcp . 7000 }',
        ...rules('0x10000000', '0xefffffff'),
        ...forwarding('0x10000000', '0xefffffff'),
      ],
    },
  ];
  for (const c of cases) it(c.name, () => assert.deepEqual(guardLines(c.spec, c.mark), c.lines));

  it('only a run with forwarding creates a nat chain', () => {
    assert.equal(guardLines(SPEC, DEFAULT_NFT_MARK).filter((l) => / type nat /.test(l)).length, 0);
    assert.equal(guardLines({ ...SPEC, forwarding: true }, DEFAULT_NFT_MARK).filter((l) => / type nat /.test(l)).length, 1);
    assert.deepEqual(dropForwardingLines(), NO_FORWARDING);
  });

  it('recreate deletes the table first, inside the same transaction', () => {
    assert.deepEqual(recreateLines(SPEC, DEFAULT_NFT_MARK).slice(0, 3), ['add table inet postern', 'delete table inet postern', 'add table inet postern']);
    assert.deepEqual(recreateLines(SPEC, DEFAULT_NFT_MARK).slice(2), guardLines(SPEC, DEFAULT_NFT_MARK));
  });

  it('attempts: amend, replace; with forwarding, both again without it, unless nft refused it before', () => {
    const fwd = { ...SPEC, forwarding: true };
    const plain = { ...SPEC, forwarding: false };
    const m = DEFAULT_NFT_MARK;
    const shape = (a: ReturnType<typeof guardAttempts>) => a.map((x) => [x.lines, x.recreate, x.forwarding, x.note]);
    assert.deepEqual(shape(guardAttempts(SPEC, m, { mayRecreate: true, natRefused: false })), [
      [guardLines(SPEC, m), false, false, 'trying again without forwarding'],
      [recreateLines(SPEC, m), true, false, 'cannot amend table inet postern; replacing it (grants in it are lost)'],
    ]);
    assert.deepEqual(shape(guardAttempts(fwd, m, { mayRecreate: true, natRefused: false })), [
      [guardLines(fwd, m), false, true, 'trying again without forwarding'],
      [recreateLines(fwd, m), true, true, 'cannot amend table inet postern; replacing it (grants in it are lost)'],
      [guardLines(plain, m), false, false, 'trying again without forwarding'],
      [recreateLines(plain, m), true, false, 'cannot amend table inet postern; replacing it without forwarding (grants in it are lost)'],
    ]);
    assert.deepEqual(shape(guardAttempts(fwd, m, { mayRecreate: false, natRefused: false })).map((a) => a[2]), [true, false]);
    assert.deepEqual(shape(guardAttempts(fwd, m, { mayRecreate: false, natRefused: true })), [[guardLines(plain, m), false, false, 'trying again without forwarding']]);
  });

  it('stop deletes the table idempotently, or flushes only the grant sets (and maps, with forwarding)', () => {
    assert.deepEqual(stopLines(false, true), ['add table inet postern', 'delete table inet postern']);
    const flushGrants = ['grants4', 'grants6', 'grants4net', 'grants6net'].map((s) => `flush set inet postern ${s}`);
    assert.deepEqual(stopLines(true, false), flushGrants);
    assert.deepEqual(stopLines(true, true), [
      ...flushGrants,
      ...['dnat4', 'dnat6', 'dnat4net', 'dnat6net'].map((s) => `flush map inet postern ${s}`),
      ...['fwd4', 'fwd6', 'fwd4net', 'fwd6net'].map((s) => `flush set inet postern ${s}`),
    ]);
  });

  it('builds argv: script on stdin, the table listing as JSON', () => {
    assert.deepEqual(applyArgv('/usr/sbin/nft'), ['/usr/sbin/nft', '-f', '-']);
    assert.deepEqual(listTableArgv('nft'), ['nft', '-j', 'list', 'table', 'inet', 'postern']);
    assert.equal(nftScript(['flush set inet postern grants4', 'flush set inet postern grants6']), 'flush set inet postern grants4\nflush set inet postern grants6\n');
  });
});

describe('values that must never reach a script are refused', () => {
  for (const m of [0, 3, 0x30000000, 2 ** 32, -1, 1.5, Number.NaN]) {
    it(`mark ${m}`, () => {
      assert.throws(() => checkMark(m), FirewallValueError);
      assert.throws(() => guardLines(SPEC, m), FirewallValueError);
    });
  }
  it('services of a spec', () => {
    assert.throws(() => guardLines({ guarded: [tcp(70000)], capture: [] }, DEFAULT_NFT_MARK), FirewallValueError);
    assert.throws(() => guardLines({ guarded: [], capture: [{ proto: 'icmp' as never, port: 1 }] }, DEFAULT_NFT_MARK), FirewallValueError);
  });
  it('a newline never enters a script', () => assert.throws(() => nftScript(['flush ruleset\nadd table x']), FirewallValueError));
  it('hexMark pads to 32 bits', () => assert.equal(hexMark(0x100), '0x00000100'));
});

describe('fw4 drop-ins', () => {
  const m = hexMark(DEFAULT_NFT_MARK);
  const rulesOf = (text: string): string[] => text.split('\n').filter((l) => l.trim() !== '' && !l.trimStart().startsWith('#'));
  it('input: accepts exactly the default mark bit, as its only rule', () => {
    assert.deepEqual(rulesOf(readFileSync(dropIn('input'), 'utf8')), [`meta mark & ${m} == ${m} accept comment "postern: granted or capture packet"`]);
  });
  it('forward: accepts the default mark bit on destination-NATed traffic only, as its only rule', () => {
    assert.deepEqual(rulesOf(readFileSync(dropIn('forward'), 'utf8')), [`meta mark & ${m} == ${m} ct status dnat accept comment "postern: forwarding grant"`]);
  });
  it('both start with the SPDX line', () => {
    for (const c of ['input', 'forward']) assert.match(readFileSync(dropIn(c), 'utf8'), /^# SPDX-License-Identifier: MIT\n/);
  });
});
