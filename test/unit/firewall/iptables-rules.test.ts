// SPDX-License-Identifier: MIT
// Pure iptables rule text (src/firewall/iptables-rules.ts): exact builder output for plain,
// prefix and forwarding grants, parser fixtures taken from real `iptables [-t nat] -S`
// / `ip6tables [-t nat] -S` output (iptables 1.8.9, nf_tables and legacy, Debian 12),
// parse/generate round trips, and rejection of every value that must never reach argv
// (STYLE.md principles 9 and 12a). Planners are in iptables-plan.test.ts.

import assert from 'node:assert/strict';
import { SocketAddress } from 'node:net';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  FORWARD_ESTABLISHED, FirewallValueError, chainNames, checkAddress, grantRuleLines, grantTag, isForwardEstablished,
  parseGrantListing, parseGrantRules, splitRuleWords,
} from '../../../src/firewall/iptables-rules.ts';
import type { GrantChain } from '../../../src/firewall/iptables-rules.ts';
import type { Grant, Service } from '../../../src/firewall/types.ts';

const N = chainNames();
const tcp = (port: number): Service => ({ proto: 'tcp', port });
const udp = (port: number): Service => ({ proto: 'udp', port });
const G4: Grant = {
  id: 'g1a2b', key: 'alice', family: 4, address: '198.18.0.2', services: [tcp(22), tcp(443)], expiresAtMs: 1_764_150_000_000,
};
const G6: Grant = { ...G4, id: 'g6', family: 6, address: '2001:db8::2', services: [udp(51820)] };

/** The built lines of one chain, in order. */
const built = (g: Grant, c: GrantChain = 'grants'): string[] => [...grantRuleLines(N, g)[c].values()];
const F4: Grant = {
  id: 'f1', key: 'bob', family: 4, address: '198.18.0.2', services: [tcp(2222)],
  forward: { address: '198.19.0.10', port: 22 }, expiresAtMs: 1_764_150_030_000,
};
const F6: Grant = {
  id: 'f6', key: 'bob', family: 6, address: '2001:db8:1:2::', prefix: 64, services: [tcp(2222)],
  forward: { address: '2001:db8:ff::10', port: 22 }, expiresAtMs: 1_764_150_030_000,
};

describe('chain names', () => {
  it('defaults to POSTERN-IN / -GRANTS / -OUT / -FWD / -DNAT and takes a prefix', () => {
    assert.deepEqual(N, {
      input: 'POSTERN-IN', grants: 'POSTERN-GRANTS', output: 'POSTERN-OUT', forward: 'POSTERN-FWD', dnat: 'POSTERN-DNAT',
    });
    assert.deepEqual(chainNames('PT_1'), {
      input: 'PT_1-IN', grants: 'PT_1-GRANTS', output: 'PT_1-OUT', forward: 'PT_1-FWD', dnat: 'PT_1-DNAT',
    });
  });
  for (const bad of ['', '-X', 'A B', 'A;B', 'P'.repeat(21), '1ABC', 'A\n']) {
    it(`rejects chain prefix ${JSON.stringify(bad)}`, () => assert.throws(() => chainNames(bad), FirewallValueError));
  }
});

describe('grant rules', () => {
  it('tags with the id and the expiry in epoch seconds, rounded up', () => {
    assert.equal(grantTag('g1', 1_764_150_000_000), 'postern:g1:exp=1764150000');
    assert.equal(grantTag('g1', 1_764_150_000_001), 'postern:g1:exp=1764150001');
  });
  const cases: { name: string; grant: Grant; lines: string[] }[] = [
    {
      name: 'IPv4, two services',
      grant: G4,
      lines: [
        '-A POSTERN-GRANTS -s 198.18.0.2/32 -p tcp -m tcp --dport 22 -m comment --comment "postern:g1a2b:exp=1764150000" -j ACCEPT',
        '-A POSTERN-GRANTS -s 198.18.0.2/32 -p tcp -m tcp --dport 443 -m comment --comment "postern:g1a2b:exp=1764150000" -j ACCEPT',
      ],
    },
    {
      name: 'IPv6, udp',
      grant: G6,
      lines: ['-A POSTERN-GRANTS -s 2001:db8::2/128 -p udp -m udp --dport 51820 -m comment --comment "postern:g6:exp=1764150000" -j ACCEPT'],
    },
    {
      name: 'duplicate services collapse',
      grant: { ...G4, services: [tcp(22), tcp(22), udp(22)] },
      lines: [
        '-A POSTERN-GRANTS -s 198.18.0.2/32 -p tcp -m tcp --dport 22 -m comment --comment "postern:g1a2b:exp=1764150000" -j ACCEPT',
        '-A POSTERN-GRANTS -s 198.18.0.2/32 -p udp -m udp --dport 22 -m comment --comment "postern:g1a2b:exp=1764150000" -j ACCEPT',
      ],
    },
    {
      name: 'IPv6 /64 prefix',
      grant: { ...G6, address: '2001:db8:1:2::', prefix: 64, services: [tcp(22)] },
      lines: ['-A POSTERN-GRANTS -s 2001:db8:1:2::/64 -p tcp -m tcp --dport 22 -m comment --comment "postern:g6:exp=1764150000" -j ACCEPT'],
    },
    {
      name: 'IPv4 /24 prefix',
      grant: { ...G4, address: '198.18.0.0', prefix: 24, services: [tcp(22)] },
      lines: ['-A POSTERN-GRANTS -s 198.18.0.0/24 -p tcp -m tcp --dport 22 -m comment --comment "postern:g1a2b:exp=1764150000" -j ACCEPT'],
    },
    {
      name: 'explicit host prefix, same as none',
      grant: { ...G4, prefix: 32, services: [tcp(22)] },
      lines: ['-A POSTERN-GRANTS -s 198.18.0.2/32 -p tcp -m tcp --dport 22 -m comment --comment "postern:g1a2b:exp=1764150000" -j ACCEPT'],
    },
    {
      // iptables -S prints no -s for a /0 source, so neither do we.
      name: '/0 prefix, no -s',
      grant: { ...G6, address: '::', prefix: 0 },
      lines: ['-A POSTERN-GRANTS -p udp -m udp --dport 51820 -m comment --comment "postern:g6:exp=1764150000" -j ACCEPT'],
    },
  ];
  for (const c of cases) {
    it(`builds ${c.name}`, () => {
      assert.deepEqual(built(c.grant), c.lines);
      assert.deepEqual([built(c.grant, 'forward'), built(c.grant, 'dnat')], [[], []]);
    });
  }

  const forwards: { name: string; grant: Grant; dnat: string; forward: string }[] = [
    {
      name: 'IPv4 host',
      grant: F4,
      dnat: '-A POSTERN-DNAT -s 198.18.0.2/32 -p tcp -m tcp --dport 2222 -m comment --comment "postern:f1:exp=1764150030" -j DNAT --to-destination 198.19.0.10:22',
      forward: '-A POSTERN-FWD -s 198.18.0.2/32 -d 198.19.0.10/32 -p tcp -m tcp --dport 22 -m conntrack --ctstate DNAT -m comment --comment "postern:f1:exp=1764150030" -j ACCEPT',
    },
    {
      name: 'IPv4 /24, udp',
      grant: { ...F4, id: 'f2', address: '198.18.0.0', prefix: 24, services: [udp(5353)], forward: { address: '198.19.0.10', port: 53 } },
      dnat: '-A POSTERN-DNAT -s 198.18.0.0/24 -p udp -m udp --dport 5353 -m comment --comment "postern:f2:exp=1764150030" -j DNAT --to-destination 198.19.0.10:53',
      forward: '-A POSTERN-FWD -s 198.18.0.0/24 -d 198.19.0.10/32 -p udp -m udp --dport 53 -m conntrack --ctstate DNAT -m comment --comment "postern:f2:exp=1764150030" -j ACCEPT',
    },
    {
      name: 'IPv6 /64 (brackets in --to-destination)',
      grant: F6,
      dnat: '-A POSTERN-DNAT -s 2001:db8:1:2::/64 -p tcp -m tcp --dport 2222 -m comment --comment "postern:f6:exp=1764150030" -j DNAT --to-destination [2001:db8:ff::10]:22',
      forward: '-A POSTERN-FWD -s 2001:db8:1:2::/64 -d 2001:db8:ff::10/128 -p tcp -m tcp --dport 22 -m conntrack --ctstate DNAT -m comment --comment "postern:f6:exp=1764150030" -j ACCEPT',
    },
  ];
  for (const c of forwards) {
    it(`builds a forwarding grant, ${c.name}: one DNAT, one FORWARD accept, nothing on INPUT`, () => {
      assert.deepEqual(built(c.grant, 'dnat'), [c.dnat]);
      assert.deepEqual(built(c.grant, 'forward'), [c.forward]);
      assert.deepEqual(built(c.grant), []);
    });
  }

  const invalid: [string, Grant][] = [
    ['id with uppercase', { ...G4, id: 'G1' }],
    ['id too long', { ...G4, id: 'a'.repeat(17) }],
    ['empty id', { ...G4, id: '' }],
    ['id with space', { ...G4, id: 'a b' }],
    ['port 0', { ...G4, services: [tcp(0)] }],
    ['port 65536', { ...G4, services: [tcp(65536)] }],
    ['fractional port', { ...G4, services: [tcp(22.5)] }],
    ['NaN port', { ...G4, services: [tcp(Number.NaN)] }],
    ['protocol icmp', { ...G4, services: [{ proto: 'icmp' as 'tcp', port: 1 }] }],
    ['no services', { ...G4, services: [] }],
    ['family 5', { ...G4, family: 5 as 4 }],
    ['v6 address in a v4 grant', { ...G4, address: '2001:db8::2' }],
    ['v4 address in a v6 grant', { ...G6, address: '198.18.0.2' }],
    ['address with prefix', { ...G4, address: '198.18.0.0/24' }],
    ['address with option', { ...G4, address: '1.2.3.4 -j DROP' }],
    ['leading zeros', { ...G4, address: '198.018.0.2' }],
    ['non-canonical IPv6', { ...G6, address: '2001:DB8:0:0::2' }],
    ['IPv6 zone', { ...G6, address: 'fe80::1%eth0' }],
    ['negative expiry', { ...G4, expiresAtMs: -1 }],
    ['infinite expiry', { ...G4, expiresAtMs: Number.POSITIVE_INFINITY }],
    ['IPv4 prefix 33', { ...G4, address: '198.18.0.0', prefix: 33 }],
    ['IPv6 prefix 129', { ...G6, address: '2001:db8::', prefix: 129 }],
    ['negative prefix', { ...G4, address: '198.18.0.0', prefix: -1 }],
    ['fractional prefix', { ...G4, address: '198.18.0.0', prefix: 24.5 }],
    ['prefix as text', { ...G4, address: '198.18.0.0', prefix: '24' as unknown as number }],
    ['IPv4 host bits set', { ...G4, address: '198.18.0.2', prefix: 24 }],
    ['IPv6 host bits set', { ...G6, address: '2001:db8:1:2::1', prefix: 64 }],
    ['/0 with bits set', { ...G4, address: '198.18.0.0', prefix: 0 }],
    ['forward target of the other family', { ...F4, forward: { address: '2001:db8::10', port: 22 } }],
    ['forward target not canonical', { ...F6, forward: { address: '2001:DB8:ff::10', port: 22 } }],
    ['forward target with option', { ...F4, forward: { address: '198.19.0.10 -j ACCEPT', port: 22 } }],
    ['forward port 0', { ...F4, forward: { address: '198.19.0.10', port: 0 } }],
    ['forward port 65536', { ...F4, forward: { address: '198.19.0.10', port: 65536 } }],
    ['forward port as text', { ...F4, forward: { address: '198.19.0.10', port: '22' as unknown as number } }],
    ['forwarding grant with two services', { ...F4, services: [tcp(2222), tcp(2223)] }],
  ];
  for (const [name, grant] of invalid) {
    it(`rejects ${name}`, () => assert.throws(() => grantRuleLines(N, grant), FirewallValueError));
  }
  it('accepts canonical edge addresses and prefixes', () => {
    for (const [a, f] of [['0.0.0.0', 4], ['::', 6], ['::ffff:1.2.3.4', 6], ['2001:db8:0:1:1:1:1:1', 6]] as const) {
      checkAddress(a, f);
    }
    for (const [address, prefix] of [['198.18.0.2', 32], ['198.18.0.0', 15], ['128.0.0.0', 1], ['0.0.0.0', 0]] as const) {
      assert.equal(built({ ...G4, address, prefix }).length, 2);
    }
    for (const [address, prefix] of [['2001:db8:1:2::', 64], ['2001:db8::', 32], ['::ffff:1.2.3.0', 120], ['::', 0]] as const) {
      assert.equal(built({ ...G6, address, prefix }).length, 1);
    }
  });
});

// Real output of `iptables -S POSTERN-GRANTS` / `ip6tables -S POSTERN-GRANTS` (1.8.9 nf_tables);
// the `all` line is how both print a ::/0 source (no -s at all).
const LISTING_V4 = `-N POSTERN-GRANTS
-A POSTERN-GRANTS -s 198.18.0.2/32 -p tcp -m tcp --dport 22 -m comment --comment "postern:g1a2b:exp=1764150000" -j ACCEPT
-A POSTERN-GRANTS -s 198.18.0.2/32 -p tcp -m tcp --dport 443 -m comment --comment "postern:g1a2b:exp=1764150000" -j ACCEPT
-A POSTERN-GRANTS -s 10.0.0.0/8 -p tcp -m tcp --dport 22 -j ACCEPT
-A POSTERN-GRANTS -s 198.18.0.9/32 -p tcp -m tcp --dport 22 -m comment --comment "someone else's rule" -j ACCEPT
-A POSTERN-GRANTS -s 198.18.0.3/32 -p udp -m udp --dport 53 -m comment --comment "postern:old:exp=1700000000" -j ACCEPT
-A POSTERN-GRANTS -s 198.18.0.4/32 -p tcp -m tcp ! --dport 22 -m comment --comment "postern:odd:exp=1764150000" -j ACCEPT
`;
const LISTING_V6 = `-N POSTERN-GRANTS
-A POSTERN-GRANTS -s 2001:db8::2/128 -p udp -m udp --dport 51820 -m comment --comment "postern:g6:exp=1764150000" -j ACCEPT
-A POSTERN-GRANTS -s 2001:db8::/64 -p tcp -m tcp --dport 22 -m comment --comment "postern:wide:exp=1764150000" -j ACCEPT
-A POSTERN-GRANTS -p tcp -m tcp --dport 22 -m comment --comment "postern:all:exp=1764150000" -j ACCEPT
`;
// Real output of `iptables -S POSTERN-FWD` and `iptables -t nat -S POSTERN-DNAT` (and the
// ip6tables ones) after the builder's lines went through iptables-restore: 1.8.9 nf_tables
// and legacy print them identically. Added by hand: tagged rules of shapes postern never
// writes (`odd`: a second conntrack match, or an ACCEPT in the DNAT chain; `nod`: no -d)
// and one foreign rule.
const FWD_V4 = `-N POSTERN-FWD
-A POSTERN-FWD -m conntrack --ctstate RELATED,ESTABLISHED -m conntrack --ctstate DNAT -j ACCEPT
-A POSTERN-FWD -s 198.18.0.2/32 -d 198.19.0.10/32 -p tcp -m tcp --dport 22 -m conntrack --ctstate DNAT -m comment --comment "postern:f1:exp=1764150030" -j ACCEPT
-A POSTERN-FWD -s 198.18.0.0/24 -d 198.19.0.10/32 -p udp -m udp --dport 53 -m conntrack --ctstate DNAT -m comment --comment "postern:f2:exp=1764150030" -j ACCEPT
-A POSTERN-FWD -d 198.19.0.11/32 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT -m comment --comment "postern:any:exp=1764150030" -j ACCEPT
-A POSTERN-FWD -s 198.18.0.5/32 -d 198.19.0.10/32 -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW -m conntrack --ctstate DNAT -m comment --comment "postern:odd:exp=1764150030" -j ACCEPT
-A POSTERN-FWD -s 198.18.0.6/32 -p tcp -m tcp --dport 22 -m conntrack --ctstate DNAT -m comment --comment "postern:nod:exp=1764150030" -j ACCEPT
-A POSTERN-FWD -i wan -j DROP
`;
const DNAT_V4 = `-N POSTERN-DNAT
-A POSTERN-DNAT -s 198.18.0.2/32 -p tcp -m tcp --dport 2222 -m comment --comment "postern:f1:exp=1764150030" -j DNAT --to-destination 198.19.0.10:22
-A POSTERN-DNAT -s 198.18.0.0/24 -p udp -m udp --dport 5353 -m comment --comment "postern:f2:exp=1764150030" -j DNAT --to-destination 198.19.0.10:53
-A POSTERN-DNAT -p tcp -m tcp --dport 8080 -m comment --comment "postern:any:exp=1764150030" -j DNAT --to-destination 198.19.0.11:80
-A POSTERN-DNAT -s 198.18.0.5/32 -p tcp -m tcp --dport 2222 -m comment --comment "postern:odd:exp=1764150030" -j ACCEPT
`;
const FWD_V6 = `-N POSTERN-FWD
-A POSTERN-FWD -m conntrack --ctstate RELATED,ESTABLISHED -m conntrack --ctstate DNAT -j ACCEPT
-A POSTERN-FWD -s 2001:db8:1:2::/64 -d 2001:db8:ff::10/128 -p tcp -m tcp --dport 22 -m conntrack --ctstate DNAT -m comment --comment "postern:f6:exp=1764150030" -j ACCEPT
-A POSTERN-FWD -s 2001:db8::2/128 -d 2001:db8:ff::11/128 -p udp -m udp --dport 51820 -m conntrack --ctstate DNAT -m comment --comment "postern:h6:exp=1764150030" -j ACCEPT
`;
const DNAT_V6 = `-N POSTERN-DNAT
-A POSTERN-DNAT -s 2001:db8:1:2::/64 -p tcp -m tcp --dport 2222 -m comment --comment "postern:f6:exp=1764150030" -j DNAT --to-destination [2001:db8:ff::10]:22
-A POSTERN-DNAT -s 2001:db8::2/128 -p udp -m udp --dport 51820 -m comment --comment "postern:h6:exp=1764150030" -j DNAT --to-destination [2001:db8:ff::11]:51820
`;

describe('grant listing parser', () => {
  it('reads tagged rules with their deletion spec; keys only for rules of our exact shape', () => {
    const { rules, foreign } = parseGrantListing(LISTING_V4, 4, N.grants);
    assert.deepEqual(
      rules.map((r) => [r.grantId, r.expiresAtMs, r.key]),
      [
        ['g1a2b', 1_764_150_000_000, '198.18.0.2/32|tcp|22|postern:g1a2b:exp=1764150000'],
        ['g1a2b', 1_764_150_000_000, '198.18.0.2/32|tcp|443|postern:g1a2b:exp=1764150000'],
        ['old', 1_700_000_000_000, '198.18.0.3/32|udp|53|postern:old:exp=1700000000'],
        ['odd', 1_764_150_000_000, null],
      ],
    );
    assert.equal(rules[0]?.spec, LISTING_V4.split('\n')[1]?.slice('-A POSTERN-GRANTS '.length));
    assert.equal(rules[0]?.family, 4);
    assert.equal(foreign.length, 2);
  });
  it('reads IPv6 rules with any prefix, and a missing -s as the /0 source', () => {
    const rules = parseGrantRules(LISTING_V6, 6);
    assert.deepEqual(rules.map((r) => [r.grantId, r.key]), [
      ['g6', '2001:db8::2/128|udp|51820|postern:g6:exp=1764150000'],
      ['wide', '2001:db8::/64|tcp|22|postern:wide:exp=1764150000'],
      ['all', '::/0|tcp|22|postern:all:exp=1764150000'],
    ]);
  });
  it('reads DNAT and FWD listings: keys carry the target; the established rule is neither rule nor foreign', () => {
    const fwd = parseGrantListing(FWD_V4, 4, N.forward, 'forward');
    assert.deepEqual(fwd.rules.map((r) => [r.grantId, r.key]), [
      ['f1', '198.18.0.2/32|tcp|22|postern:f1:exp=1764150030|198.19.0.10/32'],
      ['f2', '198.18.0.0/24|udp|53|postern:f2:exp=1764150030|198.19.0.10/32'],
      ['any', '0.0.0.0/0|tcp|80|postern:any:exp=1764150030|198.19.0.11/32'],
      ['odd', null],
      ['nod', null],
    ]);
    assert.deepEqual(fwd.foreign, ['-A POSTERN-FWD -i wan -j DROP']);
    const dnat = parseGrantListing(DNAT_V4, 4, N.dnat, 'dnat');
    assert.deepEqual(dnat.rules.map((r) => [r.grantId, r.key]), [
      ['f1', '198.18.0.2/32|tcp|2222|postern:f1:exp=1764150030|198.19.0.10:22'],
      ['f2', '198.18.0.0/24|udp|5353|postern:f2:exp=1764150030|198.19.0.10:53'],
      ['any', '0.0.0.0/0|tcp|8080|postern:any:exp=1764150030|198.19.0.11:80'],
      ['odd', null],
    ]);
    assert.deepEqual(dnat.foreign, []);
  });
  it('reads IPv6 DNAT and FWD listings', () => {
    assert.deepEqual(parseGrantRules(FWD_V6, 6, N.forward, 'forward').map((r) => r.key), [
      '2001:db8:1:2::/64|tcp|22|postern:f6:exp=1764150030|2001:db8:ff::10/128',
      '2001:db8::2/128|udp|51820|postern:h6:exp=1764150030|2001:db8:ff::11/128',
    ]);
    assert.deepEqual(parseGrantRules(DNAT_V6, 6, N.dnat, 'dnat').map((r) => r.key), [
      '2001:db8:1:2::/64|tcp|2222|postern:f6:exp=1764150030|[2001:db8:ff::10]:22',
      '2001:db8::2/128|udp|51820|postern:h6:exp=1764150030|[2001:db8:ff::11]:51820',
    ]);
  });
  it('a rule of one chain has no key when read as another chain', () => {
    const dnatLine = built(F4, 'dnat').join('\n');
    assert.equal(parseGrantRules(dnatLine.replace('POSTERN-DNAT', 'POSTERN-GRANTS'), 4)[0]?.key, null);
    assert.equal(parseGrantRules(built(F4, 'forward').join('\n'), 4, N.forward, 'dnat')[0]?.key, null);
    assert.equal(parseGrantRules(built(G4).join('\n'), 4, N.grants, 'forward')[0]?.key, null);
  });
  it('recognises the established rule in both state orders only', () => {
    assert.ok(isForwardEstablished(FORWARD_ESTABLISHED));
    assert.ok(isForwardEstablished('-m conntrack --ctstate RELATED,ESTABLISHED -m conntrack --ctstate DNAT -j ACCEPT'));
    assert.ok(!isForwardEstablished('-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT'));
    assert.ok(!isForwardEstablished(`${FORWARD_ESTABLISHED} -i wan`));
  });
  it('never throws on junk and treats it as foreign', () => {
    const junk = '-A POSTERN-GRANTS -s "unterminated\n-A POSTERN-GRANTS\n\u0000\n-A OTHER -j ACCEPT\n';
    assert.deepEqual(parseGrantListing(junk, 4, N.grants).rules, []);
    for (const kind of ['grants', 'forward', 'dnat'] as const) {
      fc.assert(fc.property(fc.string(), (s) => Array.isArray(parseGrantRules(s, 4, N[kind], kind))));
    }
  });
  it('splits quoted words with escapes', () => {
    assert.deepEqual(splitRuleWords('-m comment --comment "a \\"b\\" c" -j X'), [
      '-m', 'comment', '--comment', 'a "b" c', '-j', 'X',
    ]);
    assert.deepEqual(splitRuleWords('--comment ""'), ['--comment', '']);
    assert.equal(splitRuleWords('"open'), null);
  });
  it('round-trips what the builder writes, plain and forwarding, any prefix (property)', () => {
    const service = fc.record({ proto: fc.constantFrom('tcp' as const, 'udp' as const), port: fc.integer({ min: 1, max: 65535 }) });
    // Canonical text as inet_ntop (and so ip6tables -S) prints it; the network of the prefix.
    const v4 = fc.tuple(fc.ipV4(), fc.ipV4(), fc.option(fc.integer({ min: 0, max: 32 }), { nil: undefined }))
      .map(([a, t, prefix]) => ({ family: 4 as const, address: net(4, a, prefix), target: t, prefix }));
    const v6 = fc.tuple(fc.ipV6(), fc.ipV6(), fc.option(fc.integer({ min: 0, max: 128 }), { nil: undefined }))
      .map(([a, t, prefix]) => ({ family: 6 as const, address: net(6, a, prefix), target: canonical6(t), prefix }));
    const grant = fc.record({
      id: fc.stringMatching(/^[a-z0-9]{1,16}$/),
      where: fc.oneof(v4, v6),
      services: fc.array(service, { minLength: 1, maxLength: 5 }),
      forwardPort: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
      expiresAtMs: fc.integer({ min: 0, max: 9e14 }),
    });
    fc.assert(fc.property(grant, ({ where: { target, prefix, ...where }, forwardPort, services, ...g }) => {
      const full: Grant = {
        ...g, ...where, key: 'k', ...(prefix === undefined ? {} : { prefix }),
        ...(forwardPort === undefined ? { services } : { services: services.slice(0, 1), forward: { address: target, port: forwardPort } }),
      };
      const lines = grantRuleLines(N, full);
      for (const kind of ['grants', 'forward', 'dnat'] as const) {
        const parsed = parseGrantRules(`-N ${N[kind]}\n${[...lines[kind].values()].join('\n')}\n`, full.family, N[kind], kind);
        assert.deepEqual(parsed.map((r) => r.key), [...lines[kind].keys()]);
        assert.ok(parsed.every((r) => r.grantId === full.id && r.expiresAtMs >= full.expiresAtMs));
        assert.ok(parsed.every((r) => r.expiresAtMs - full.expiresAtMs < 1000));
      }
      assert.equal(lines.grants.size === 0, forwardPort !== undefined);
    }), { numRuns: 300 });
  });
});

function canonical6(a: string): string {
  return new SocketAddress({ address: a, family: 'ipv6' }).address;
}

/** The network address of `a` under `prefix`, canonical (the property's test oracle is
 *  BigInt arithmetic, independent of the src/wire helper the builder uses). */
function net(family: 4 | 6, a: string, prefix: number | undefined): string {
  const bits = family === 4 ? 32 : 128;
  if (prefix === undefined) return family === 4 ? a : canonical6(a);
  const bytes = family === 4 ? a.split('.').map(Number) : [...v6bytes(canonical6(a))];
  let n = bytes.reduce((acc, b) => (acc << 8n) | BigInt(b), 0n);
  n &= ((1n << BigInt(bits)) - 1n) ^ ((1n << BigInt(bits - prefix)) - 1n);
  const out = Array.from({ length: bits / 8 }, (_, i) => Number((n >> BigInt(bits - 8 - i * 8)) & 0xffn));
  if (family === 4) return out.join('.');
  const groups = Array.from({ length: 8 }, (_, i) => ((out[2 * i] ?? 0) * 256 + (out[2 * i + 1] ?? 0)).toString(16));
  return canonical6(groups.join(':'));
}

function v6bytes(a: string): Uint8Array {
  const [head = '', tail = ''] = a.includes('::') ? a.split('::') : [a, ''];
  const words = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const expand = (w: string): number[] => (w.includes('.') ? w.split('.').map(Number) : [parseInt(w, 16) >> 8, parseInt(w, 16) & 0xff]);
  const h = words(head).flatMap(expand);
  const t = words(tail).flatMap(expand);
  return Uint8Array.from([...h, ...new Array<number>(16 - h.length - t.length).fill(0), ...t]);
}
