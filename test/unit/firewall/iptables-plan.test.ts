// SPDX-License-Identifier: MIT
// Pure planners of the iptables backend (src/firewall/iptables-plan.ts): restore input and
// argv, guard rules, whole-table listings (real `iptables -S` and `iptables -t nat -S`
// output, 1.8.9 nf_tables) parsed into ChainState, and the exact lines and block order of
// start, stop, grant and reconcile plans, with and without forwarding (STYLE.md 9, 12a).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  grantSections, guardRuleLines, listArgv, parseChainState, planGrants, planReconcile, planStart, planStartNat, planStop,
  planStopNat, planUpdate, restoreArgv, restoreScript, restoreSections,
} from '../../../src/firewall/iptables-plan.ts';
import type { ChainState } from '../../../src/firewall/iptables-plan.ts';
import { FORWARD_ESTABLISHED, FirewallValueError, chainNames, grantRuleLines, parseGrantRules } from '../../../src/firewall/iptables-rules.ts';
import type { GrantChain } from '../../../src/firewall/iptables-rules.ts';
import type { Grant, Service } from '../../../src/firewall/types.ts';

const N = chainNames();
const tcp = (port: number): Service => ({ proto: 'tcp', port });
const udp = (port: number): Service => ({ proto: 'udp', port });
const NOW = 1_764_150_000_000;
const G: Grant = { id: 'g1', key: 'alice', family: 4, address: '198.18.0.2', services: [tcp(22)], expiresAtMs: NOW + 30_000 };
const F: Grant = {
  id: 'f1', key: 'bob', family: 4, address: '198.18.0.2', services: [tcp(2222)],
  forward: { address: '198.19.0.10', port: 22 }, expiresAtMs: NOW + 30_000,
};
const state = (over: Partial<ChainState> = {}): ChainState => ({
  chains: new Set(), inputJumps: [], outputJumps: [], forwardJumps: [], preroutingJumps: [], forwardEstablished: [], inputRules: 0, outputRules: 0, ...over,
});
const ALL = new Set(Object.values(N));
const built = (g: Grant, c: GrantChain): string[] => [...grantRuleLines(N, g)[c].values()];
/** Parses built lines back, as the listing of a chain would read (spec after `-A CHAIN `). */
const listed = (g: Grant, c: GrantChain) => parseGrantRules(built(g, c).join('\n'), g.family, N[c], c);

describe('restore input and argv', () => {
  it('builds listing and restore argv with -w; nat listings name the table', () => {
    assert.deepEqual(listArgv('/usr/sbin/iptables'), ['/usr/sbin/iptables', '-w', '-S']);
    assert.deepEqual(listArgv('ip6tables', 'POSTERN-GRANTS'), ['ip6tables', '-w', '-S', 'POSTERN-GRANTS']);
    assert.deepEqual(listArgv('iptables', 'POSTERN-DNAT', 'nat'), ['iptables', '-w', '-t', 'nat', '-S', 'POSTERN-DNAT']);
    assert.deepEqual(listArgv('iptables', undefined, 'nat'), ['iptables', '-w', '-t', 'nat', '-S']);
    assert.deepEqual(restoreArgv('iptables-restore'), ['iptables-restore', '-w', '--noflush']);
  });
  it('wraps lines in one *filter transaction and refuses embedded newlines', () => {
    assert.equal(restoreScript(['-F X', '-X X']), '*filter\n-F X\n-X X\nCOMMIT\n');
    assert.throws(() => restoreScript(['-F X\n-F INPUT']), FirewallValueError);
    assert.throws(() => restoreSections([{ table: 'nat', lines: ['-F X\r'] }]), FirewallValueError);
  });
  it('writes one block per non-empty section, in order, and nothing when all are empty', () => {
    assert.equal(
      restoreSections([{ table: 'filter', lines: ['-F A'] }, { table: 'nat', lines: [] }, { table: 'nat', lines: ['-F B'] }]),
      '*filter\n-F A\nCOMMIT\n*nat\n-F B\nCOMMIT\n',
    );
    assert.equal(restoreSections([{ table: 'filter', lines: [] }]), '');
  });
});

describe('guard rules and start/stop plans', () => {
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
  const established = `-A POSTERN-FWD ${FORWARD_ESTABLISHED}`;
  it('orders capture accepts, established, grants jump, drops; silences TCP capture RSTs', () => {
    assert.deepEqual(guardRuleLines(N, spec, 4), expected);
  });
  it('rejects a bad guarded or capture service', () => {
    assert.throws(() => guardRuleLines(N, { ...spec, guarded: [tcp(70000)] }, 4), FirewallValueError);
    assert.throws(() => guardRuleLines(N, { ...spec, capture: [{ proto: 'sctp' as 'udp', port: 9 }] }, 4), FirewallValueError);
  });
  it('start declares (creates or flushes) IN and OUT, GRANTS only when missing, and fixes jumps', () => {
    assert.deepEqual(planStart(N, spec, state(), 4), [
      ':POSTERN-IN - [0:0]', ':POSTERN-OUT - [0:0]', ':POSTERN-GRANTS - [0:0]', ...expected,
      '-I INPUT 1 -j POSTERN-IN', '-I OUTPUT 1 -j POSTERN-OUT',
    ]);
    const started = state({ chains: new Set([N.input, N.grants, N.output]), inputJumps: [0], outputJumps: [0] });
    assert.deepEqual(planStart(N, spec, started, 4), [':POSTERN-IN - [0:0]', ':POSTERN-OUT - [0:0]', ...expected]);
    const displaced = state({ chains: new Set([N.input, N.grants, N.output]), inputJumps: [2, 5], outputJumps: [0] });
    assert.deepEqual(planStart(N, spec, displaced, 4).slice(-3), [
      '-D INPUT -j POSTERN-IN', '-D INPUT -j POSTERN-IN', '-I INPUT 1 -j POSTERN-IN',
    ]);
    assert.deepEqual(planUpdate(N, spec, 4), [':POSTERN-IN - [0:0]', ':POSTERN-OUT - [0:0]', ...expected]);
  });
  it('start with forwarding creates FWD with its established rule and FORWARD jump once', () => {
    const fwd = { ...spec, forwarding: true };
    assert.deepEqual(planStart(N, fwd, state(), 4).slice(-3), [':POSTERN-FWD - [0:0]', established, '-I FORWARD 1 -j POSTERN-FWD']);
    const started = state({ chains: ALL, inputJumps: [0], outputJumps: [0], forwardJumps: [0], forwardEstablished: [0] });
    assert.deepEqual(planStart(N, fwd, started, 4), [':POSTERN-IN - [0:0]', ':POSTERN-OUT - [0:0]', ...expected]);
    // Grant rules in FWD are kept; a misplaced or missing established rule goes back on top.
    const moved = { ...started, forwardJumps: [1], forwardEstablished: [2] };
    assert.deepEqual(planStart(N, fwd, moved, 4).slice(-4), [
      `-D POSTERN-FWD ${FORWARD_ESTABLISHED}`, `-I POSTERN-FWD 1 ${FORWARD_ESTABLISHED}`,
      '-D FORWARD -j POSTERN-FWD', '-I FORWARD 1 -j POSTERN-FWD',
    ]);
    assert.deepEqual(planStart(N, fwd, { ...started, forwardEstablished: [] }, 4).slice(-1), [`-I POSTERN-FWD 1 ${FORWARD_ESTABLISHED}`]);
  });
  it('start without forwarding removes a FWD chain left by an earlier configuration', () => {
    const left = state({ chains: ALL, inputJumps: [0], outputJumps: [0], forwardJumps: [0], forwardEstablished: [0] });
    assert.deepEqual(planStart(N, spec, left, 4).slice(-3), ['-D FORWARD -j POSTERN-FWD', '-F POSTERN-FWD', '-X POSTERN-FWD']);
  });
  it('nat start creates DNAT once and leaves one PREROUTING jump at the top', () => {
    assert.deepEqual(planStartNat(N, state()), [':POSTERN-DNAT - [0:0]', '-I PREROUTING 1 -j POSTERN-DNAT']);
    assert.deepEqual(planStartNat(N, state({ chains: new Set([N.dnat]), preroutingJumps: [0] })), []);
    assert.deepEqual(planStartNat(N, state({ chains: new Set([N.dnat]), preroutingJumps: [1, 2] })), [
      '-D PREROUTING -j POSTERN-DNAT', '-D PREROUTING -j POSTERN-DNAT', '-I PREROUTING 1 -j POSTERN-DNAT',
    ]);
  });
  it('stop removes jumps, flushes, then deletes; keepGuarding flushes grant rules only', () => {
    const plain = state({ chains: new Set([N.input, N.grants, N.output]), inputJumps: [0], outputJumps: [0] });
    assert.deepEqual(planStop(N, plain, false), [
      '-D INPUT -j POSTERN-IN', '-D OUTPUT -j POSTERN-OUT',
      '-F POSTERN-IN', '-F POSTERN-OUT', '-F POSTERN-GRANTS', '-X POSTERN-IN', '-X POSTERN-OUT', '-X POSTERN-GRANTS',
    ]);
    assert.deepEqual(planStop(N, plain, true), ['-F POSTERN-GRANTS']);
    assert.deepEqual(planStop(N, state(), false), []);
    assert.deepEqual(planStop(N, state(), true), []);
  });
  it('stop with forwarding also removes FWD; keepGuarding keeps its established rule', () => {
    const fwd = state({ chains: ALL, inputJumps: [0], outputJumps: [0], forwardJumps: [0], forwardEstablished: [0] });
    assert.deepEqual(planStop(N, fwd, false).slice(-3), ['-D FORWARD -j POSTERN-FWD', '-F POSTERN-FWD', '-X POSTERN-FWD']);
    assert.deepEqual(planStop(N, fwd, true), ['-F POSTERN-GRANTS', '-F POSTERN-FWD', established]);
    const nat = state({ chains: new Set([N.dnat]), preroutingJumps: [0] });
    assert.deepEqual(planStopNat(N, nat, false), ['-D PREROUTING -j POSTERN-DNAT', '-F POSTERN-DNAT', '-X POSTERN-DNAT']);
    assert.deepEqual(planStopNat(N, nat, true), ['-F POSTERN-DNAT']);
    assert.deepEqual(planStopNat(N, state(), false), []);
  });
});

// Real `iptables -S` and `iptables -t nat -S` after start with forwarding and one forwarding
// grant, then a host rule inserted above the FORWARD jump, a host rule and a second jump
// added to PREROUTING.
const FILTER_LISTING = `-P INPUT ACCEPT
-P FORWARD ACCEPT
-P OUTPUT ACCEPT
-N POSTERN-FWD
-N POSTERN-GRANTS
-N POSTERN-IN
-N POSTERN-OUT
-A INPUT -j POSTERN-IN
-A FORWARD -i lo -j ACCEPT
-A FORWARD -j POSTERN-FWD
-A OUTPUT -j POSTERN-OUT
-A POSTERN-FWD -m conntrack --ctstate RELATED,ESTABLISHED -m conntrack --ctstate DNAT -j ACCEPT
-A POSTERN-FWD -s 198.18.0.2/32 -d 198.19.0.10/32 -p tcp -m tcp --dport 22 -m conntrack --ctstate DNAT -m comment --comment "postern:f1:exp=1764150030" -j ACCEPT
-A POSTERN-IN -i lo -j RETURN
-A POSTERN-IN -p udp -m udp --dport 62201 -j ACCEPT
-A POSTERN-IN -p tcp -m tcp --dport 22 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A POSTERN-IN -p tcp -m tcp --dport 2222 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A POSTERN-IN -j POSTERN-GRANTS
-A POSTERN-IN -p tcp -m tcp --dport 22 -j DROP
-A POSTERN-IN -p tcp -m tcp --dport 2222 -j DROP
`;
const NAT_LISTING = `-P PREROUTING ACCEPT
-P INPUT ACCEPT
-P OUTPUT ACCEPT
-P POSTROUTING ACCEPT
-N POSTERN-DNAT
-A PREROUTING -i lo -j RETURN
-A PREROUTING -j POSTERN-DNAT
-A PREROUTING -j POSTERN-DNAT
-A POSTERN-DNAT -s 198.18.0.2/32 -p tcp -m tcp --dport 2222 -m comment --comment "postern:f1:exp=1764150030" -j DNAT --to-destination 198.19.0.10:22
`;

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
    assert.deepEqual([s.inputJumps, s.outputJumps, s.forwardJumps, s.preroutingJumps], [[1], [0], [], []]);
    assert.equal(s.inputRules, LISTING.split('\n').filter((l) => l.startsWith('-A POSTERN-IN ')).length);
  });
  it('finds the FORWARD jump and the established rule in a forwarding filter table', () => {
    const s = parseChainState(FILTER_LISTING, N);
    assert.deepEqual([...s.chains].sort(), ['POSTERN-FWD', 'POSTERN-GRANTS', 'POSTERN-IN', 'POSTERN-OUT']);
    assert.deepEqual([s.inputJumps, s.outputJumps, s.forwardJumps, s.forwardEstablished], [[0], [0], [1], [0]]);
  });
  it('finds DNAT and the PREROUTING jumps in the nat table', () => {
    const s = parseChainState(NAT_LISTING, N);
    assert.deepEqual([[...s.chains], s.preroutingJumps, s.inputJumps], [['POSTERN-DNAT'], [1, 2], []]);
  });
  it('sees nothing in pristine tables', () => {
    const s = parseChainState('-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n', N);
    assert.deepEqual(s, state());
  });
});

const section = (table: 'filter' | 'nat', lines: string[]) => ({ table, lines });

describe('grant plans', () => {
  it('a new plain grant is one filter block of adds (unchanged behaviour)', () => {
    const plan = planGrants(N, {}, [{ ...G, services: [tcp(22), tcp(443)] }], () => true);
    assert.deepEqual(plan.sections, [section('filter', built({ ...G, services: [tcp(22), tcp(443)] }, 'grants'))]);
    assert.deepEqual([[...plan.added], [...plan.deleted]], [['g1'], []]);
  });
  it('a new forwarding grant adds its FORWARD accept before its DNAT, and nothing to GRANTS', () => {
    const plan = planGrants(N, {}, [F], () => true);
    assert.deepEqual(plan.sections, [section('filter', built(F, 'forward')), section('nat', built(F, 'dnat'))]);
  });
  it('extension: new accept, then new DNAT and old DNAT out, then old accept out', () => {
    const longer = { ...F, expiresAtMs: NOW + 90_000 };
    const existing = { grants: [], forward: listed(F, 'forward'), dnat: listed(F, 'dnat') };
    const plan = planGrants(N, existing, [longer], (r) => r.grantId === F.id);
    const del = (c: GrantChain) => built(F, c).map((l) => l.replace(/^-A/, '-D'));
    assert.deepEqual(plan.sections, [
      section('filter', built(longer, 'forward')),
      section('nat', [...built(longer, 'dnat'), ...del('dnat')]),
      section('filter', del('forward')),
    ]);
    // Nothing to do when the rules are already those of the grant.
    assert.deepEqual(planGrants(N, existing, [F], () => true).sections, []);
  });
  it('a new target replaces both rules; revoke takes the DNAT out first', () => {
    const moved = { ...F, forward: { address: '198.19.0.11', port: 2200 } };
    const existing = { forward: listed(F, 'forward'), dnat: listed(F, 'dnat') };
    const plan = planGrants(N, existing, [moved], () => true);
    assert.deepEqual(plan.sections.map((s) => [s.table, s.lines.map((l) => l.slice(0, 2))]), [
      ['filter', ['-A']], ['nat', ['-A', '-D']], ['filter', ['-D']],
    ]);
    const revoke = planGrants(N, existing, [], (r) => r.grantId === F.id);
    assert.deepEqual(revoke.sections.map((s) => s.table), ['nat', 'filter']);
    assert.deepEqual([...revoke.deleted], ['f1']);
  });
  it('leaves rules of other grants alone', () => {
    const other = { ...F, id: 'f2', address: '198.18.0.3' };
    const existing = { forward: [...listed(F, 'forward'), ...listed(other, 'forward')], dnat: listed(other, 'dnat') };
    const plan = planGrants(N, existing, [], (r) => r.grantId === F.id);
    assert.deepEqual(plan.sections, [section('filter', built(F, 'forward').map((l) => l.replace(/^-A/, '-D')))]);
  });
  it('blocks merge when the nat block is empty', () => {
    const adds = { grants: ['-A G 1'], forward: ['-A F 1'], dnat: [] };
    const dels = { grants: ['-D G 0'], forward: ['-D F 0'], dnat: [] };
    assert.deepEqual(grantSections(adds, dels), [section('filter', ['-A F 1', '-A G 1', '-D G 0', '-D F 0'])]);
  });
});

describe('reconcile plan', () => {
  const expired = { ...F, id: 'old', address: '198.18.0.4', expiresAtMs: NOW - 1 };
  const ghost = { ...F, id: 'ghost', address: '198.18.0.7' };
  const existing = {
    grants: listed(G, 'grants'),
    forward: [...listed(expired, 'forward'), ...listed(ghost, 'forward')],
    dnat: [...listed(F, 'dnat'), ...listed(expired, 'dnat'), ...listed(ghost, 'dnat')],
  };
  it('removes expired and unknown forwarding rules and restores a missing live one', () => {
    const plan = planReconcile(N, 4, existing, [G, F, expired], NOW);
    assert.deepEqual([...plan.removed].sort(), ['ghost', 'old']);
    assert.deepEqual(plan.restored, ['f1']); // its FWD accept was missing
    assert.deepEqual(plan.sections.map((s) => s.table), ['filter', 'nat', 'filter']);
    assert.deepEqual(plan.sections[0]?.lines, built(F, 'forward'));
    assert.equal(plan.sections[1]?.lines.length, 2);
    assert.equal(plan.sections[2]?.lines.length, 2);
  });
  it('cannot place forwarding grants when the forwarding chains were not listed', () => {
    const plan = planReconcile(N, 4, { grants: listed(G, 'grants') }, [G, F], NOW);
    assert.deepEqual([plan.unplaced, plan.sections, plan.removed, plan.restored], [['f1'], [], [], []]);
  });
  it('treats an invalid live grant as expired (fail closed)', () => {
    const plan = planReconcile(N, 4, existing, [G, { ...F, forward: { address: '198.19.0.300', port: 22 } }], NOW);
    assert.deepEqual(plan.invalid, ['f1']);
    assert.ok(plan.removed.includes('f1'));
  });
});
