// SPDX-License-Identifier: MIT
// Pure iptables rule text (src/firewall/iptables-rules.ts): exact builder output, parser
// fixtures taken from real `iptables -S` / `ip6tables -S` output (iptables 1.8.9, nf_tables
// and legacy, Debian 12), parse/generate round trips, and rejection of every value that
// must never reach argv (STYLE.md principles 9 and 12a).

import assert from 'node:assert/strict';
import { SocketAddress } from 'node:net';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  FirewallValueError, chainNames, checkAddress, grantRuleLines, grantTag, guardRuleLines, listArgv,
  parseChainState, parseGrantListing, parseGrantRules, planStart, planStop, planUpdate, restoreArgv,
  restoreScript, splitRuleWords,
} from '../../../src/firewall/iptables-rules.ts';
import type { Grant, Service } from '../../../src/firewall/types.ts';

const N = chainNames();
const tcp = (port: number): Service => ({ proto: 'tcp', port });
const udp = (port: number): Service => ({ proto: 'udp', port });
const G4: Grant = {
  id: 'g1a2b', key: 'alice', family: 4, address: '198.18.0.2', services: [tcp(22), tcp(443)], expiresAtMs: 1_764_150_000_000,
};
const G6: Grant = { ...G4, id: 'g6', family: 6, address: '2001:db8::2', services: [udp(51820)] };

describe('chain names and argv', () => {
  it('defaults to POSTERN-IN / -GRANTS / -OUT and takes a prefix', () => {
    assert.deepEqual(N, { input: 'POSTERN-IN', grants: 'POSTERN-GRANTS', output: 'POSTERN-OUT' });
    assert.deepEqual(chainNames('PT_1'), { input: 'PT_1-IN', grants: 'PT_1-GRANTS', output: 'PT_1-OUT' });
  });
  for (const bad of ['', '-X', 'A B', 'A;B', 'P'.repeat(21), '1ABC', 'A\n']) {
    it(`rejects chain prefix ${JSON.stringify(bad)}`, () => assert.throws(() => chainNames(bad), FirewallValueError));
  }
  it('builds listing and restore argv with -w', () => {
    assert.deepEqual(listArgv('/usr/sbin/iptables'), ['/usr/sbin/iptables', '-w', '-S']);
    assert.deepEqual(listArgv('ip6tables', 'POSTERN-GRANTS'), ['ip6tables', '-w', '-S', 'POSTERN-GRANTS']);
    assert.deepEqual(restoreArgv('iptables-restore'), ['iptables-restore', '-w', '--noflush']);
  });
  it('wraps restore lines in one *filter transaction and refuses embedded newlines', () => {
    assert.equal(restoreScript(['-F X', '-X X']), '*filter\n-F X\n-X X\nCOMMIT\n');
    assert.throws(() => restoreScript(['-F X\n-F INPUT']), FirewallValueError);
  });
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
  ];
  for (const c of cases) {
    it(`builds ${c.name}`, () => assert.deepEqual([...grantRuleLines(N, c.grant).values()], c.lines));
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
  ];
  for (const [name, grant] of invalid) {
    it(`rejects ${name}`, () => assert.throws(() => grantRuleLines(N, grant), FirewallValueError));
  }
  it('accepts canonical edge addresses', () => {
    for (const [a, f] of [['0.0.0.0', 4], ['::', 6], ['::ffff:1.2.3.4', 6], ['2001:db8:0:1:1:1:1:1', 6]] as const) {
      checkAddress(a, f);
    }
  });
});

describe('guard rules', () => {
  const spec = { guarded: [tcp(22), tcp(443)], capture: [udp(62201), tcp(7000), tcp(7001)] };
  const expected = [
    '-A POSTERN-IN -i lo -j RETURN',
    '-A POSTERN-IN -p udp -m udp --dport 62201 -j ACCEPT',
    '-A POSTERN-IN -p tcp -m tcp --dport 7000 -j ACCEPT',
    '-A POSTERN-IN -p tcp -m tcp --dport 7001 -j ACCEPT',
    '-A POSTERN-IN -p tcp -m tcp --dport 22 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
    '-A POSTERN-IN -p tcp -m tcp --dport 443 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
    '-A POSTERN-IN -j POSTERN-GRANTS',
    '-A POSTERN-IN -p tcp -m tcp --dport 22 -j DROP',
    '-A POSTERN-IN -p tcp -m tcp --dport 443 -j DROP',
    '-A POSTERN-OUT -p tcp -m tcp --sport 7000 --tcp-flags RST RST -j DROP',
    '-A POSTERN-OUT -p tcp -m tcp --sport 7001 --tcp-flags RST RST -j DROP',
  ];
  it('orders capture accepts, established, grants jump, drops; silences TCP capture RSTs', () => {
    assert.deepEqual(guardRuleLines(N, spec), expected);
  });
  it('rejects a bad guarded or capture service', () => {
    assert.throws(() => guardRuleLines(N, { ...spec, guarded: [tcp(70000)] }), FirewallValueError);
    assert.throws(() => guardRuleLines(N, { ...spec, capture: [{ proto: 'sctp' as 'udp', port: 9 }] }), FirewallValueError);
  });
  it('start declares (creates or flushes) IN and OUT, GRANTS only when missing, and fixes jumps', () => {
    const fresh = { chains: new Set<string>(), inputJumps: [], outputJumps: [] };
    assert.deepEqual(planStart(N, spec, fresh), [
      ':POSTERN-IN - [0:0]', ':POSTERN-OUT - [0:0]', ':POSTERN-GRANTS - [0:0]', ...expected,
      '-I INPUT 1 -j POSTERN-IN', '-I OUTPUT 1 -j POSTERN-OUT',
    ]);
    const started = { chains: new Set(Object.values(N)), inputJumps: [0], outputJumps: [0] };
    assert.deepEqual(planStart(N, spec, started), [':POSTERN-IN - [0:0]', ':POSTERN-OUT - [0:0]', ...expected]);
    const displaced = { chains: new Set(Object.values(N)), inputJumps: [2, 5], outputJumps: [0] };
    assert.deepEqual(planStart(N, spec, displaced).slice(-3), [
      '-D INPUT -j POSTERN-IN', '-D INPUT -j POSTERN-IN', '-I INPUT 1 -j POSTERN-IN',
    ]);
    assert.deepEqual(planUpdate(N, spec), [':POSTERN-IN - [0:0]', ':POSTERN-OUT - [0:0]', ...expected]);
  });
  it('stop removes jumps, flushes, then deletes; keepGuarding flushes grants only', () => {
    const state = { chains: new Set(Object.values(N)), inputJumps: [0], outputJumps: [0] };
    assert.deepEqual(planStop(N, state, false), [
      '-D INPUT -j POSTERN-IN', '-D OUTPUT -j POSTERN-OUT',
      '-F POSTERN-IN', '-F POSTERN-OUT', '-F POSTERN-GRANTS', '-X POSTERN-IN', '-X POSTERN-OUT', '-X POSTERN-GRANTS',
    ]);
    assert.deepEqual(planStop(N, state, true), ['-F POSTERN-GRANTS']);
    const none = { chains: new Set<string>(), inputJumps: [], outputJumps: [] };
    assert.deepEqual(planStop(N, none, false), []);
    assert.deepEqual(planStop(N, none, true), []);
  });
});

// Real output of `iptables -S POSTERN-GRANTS` / `ip6tables -S POSTERN-GRANTS` (1.8.9 nf_tables).
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
`;

describe('grant listing parser', () => {
  it('reads tagged rules with their deletion spec; keys only for rules of our exact shape', () => {
    const { rules, foreign } = parseGrantListing(LISTING_V4, 4, N.grants);
    assert.deepEqual(
      rules.map((r) => [r.grantId, r.expiresAtMs, r.key]),
      [
        ['g1a2b', 1_764_150_000_000, '198.18.0.2|tcp|22|postern:g1a2b:exp=1764150000'],
        ['g1a2b', 1_764_150_000_000, '198.18.0.2|tcp|443|postern:g1a2b:exp=1764150000'],
        ['old', 1_700_000_000_000, '198.18.0.3|udp|53|postern:old:exp=1700000000'],
        ['odd', 1_764_150_000_000, null],
      ],
    );
    assert.equal(rules[0]?.spec, LISTING_V4.split('\n')[1]?.slice('-A POSTERN-GRANTS '.length));
    assert.equal(rules[0]?.family, 4);
    assert.equal(foreign.length, 2);
  });
  it('reads IPv6 rules; a /64 source is tagged but not ours in shape', () => {
    const rules = parseGrantRules(LISTING_V6, 6);
    assert.deepEqual(rules.map((r) => [r.grantId, r.key]), [
      ['g6', '2001:db8::2|udp|51820|postern:g6:exp=1764150000'],
      ['wide', null],
    ]);
  });
  it('never throws on junk and treats it as foreign', () => {
    const junk = '-A POSTERN-GRANTS -s "unterminated\n-A POSTERN-GRANTS\n\u0000\n-A OTHER -j ACCEPT\n';
    assert.deepEqual(parseGrantListing(junk, 4, N.grants).rules, []);
    fc.assert(fc.property(fc.string(), (s) => Array.isArray(parseGrantRules(s, 4))));
  });
  it('splits quoted words with escapes', () => {
    assert.deepEqual(splitRuleWords('-m comment --comment "a \\"b\\" c" -j X'), [
      '-m', 'comment', '--comment', 'a "b" c', '-j', 'X',
    ]);
    assert.deepEqual(splitRuleWords('--comment ""'), ['--comment', '']);
    assert.equal(splitRuleWords('"open'), null);
  });
  it('round-trips what the builder writes (property)', () => {
    const service = fc.record({ proto: fc.constantFrom('tcp' as const, 'udp' as const), port: fc.integer({ min: 1, max: 65535 }) });
    const v4 = fc.ipV4().map((address) => ({ family: 4 as const, address }));
    // Canonical text as inet_ntop (and so ip6tables -S) prints it.
    const v6 = fc.ipV6().map((a) => ({ family: 6 as const, address: new SocketAddress({ address: a, family: 'ipv6' }).address }));
    const grant = fc.record({
      id: fc.stringMatching(/^[a-z0-9]{1,16}$/),
      where: fc.oneof(v4, v6),
      services: fc.array(service, { minLength: 1, maxLength: 5 }),
      expiresAtMs: fc.integer({ min: 0, max: 9e14 }),
    });
    fc.assert(fc.property(grant, ({ where, ...g }) => {
      const full: Grant = { ...g, ...where, key: 'k' };
      const built = grantRuleLines(N, full);
      const parsed = parseGrantRules(`-N POSTERN-GRANTS\n${[...built.values()].join('\n')}\n`, full.family);
      assert.deepEqual(parsed.map((r) => r.key), [...built.keys()]);
      assert.ok(parsed.every((r) => r.grantId === full.id && r.expiresAtMs >= full.expiresAtMs));
      assert.ok(parsed.every((r) => r.expiresAtMs - full.expiresAtMs < 1000));
    }), { numRuns: 300 });
  });
});

describe('chain state parser', () => {
  // Real `iptables -S` after start, with a host rule inserted above our jump.
  const LISTING = `-P INPUT DROP
-P FORWARD ACCEPT
-P OUTPUT ACCEPT
-N POSTERN-GRANTS
-N POSTERN-IN
-N POSTERN-OUT
-A INPUT -i lo -j ACCEPT
-A INPUT -j POSTERN-IN
-A INPUT -i eth0 -j POSTERN-IN
-A OUTPUT -j POSTERN-OUT
-A POSTERN-IN -j POSTERN-GRANTS
`;
  it('finds our chains and the positions of exact jumps only', () => {
    const s = parseChainState(LISTING, N);
    assert.deepEqual([...s.chains].sort(), ['POSTERN-GRANTS', 'POSTERN-IN', 'POSTERN-OUT']);
    assert.deepEqual(s.inputJumps, [1]);
    assert.deepEqual(s.outputJumps, [0]);
  });
  it('sees nothing in a pristine table', () => {
    const s = parseChainState('-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n', N);
    assert.deepEqual([s.chains.size, s.inputJumps, s.outputJumps], [0, [], []]);
  });
});
