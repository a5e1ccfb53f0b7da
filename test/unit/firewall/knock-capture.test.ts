// SPDX-License-Identifier: MIT
// Knock capture in both backends: TCP ranges of time-derived doors are accepted and their
// RSTs dropped, like single capture ports (DESIGN.md fact 1); bad ranges are refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { guardRuleLines } from '../../../src/firewall/iptables-plan.ts';
import { chainNames, FirewallValueError } from '../../../src/firewall/iptables-rules.ts';
import { guardLines, DEFAULT_NFT_MARK } from '../../../src/firewall/nft-rules.ts';
import type { GuardSpec } from '../../../src/firewall/types.ts';

const spec: GuardSpec = { guarded: [{ proto: 'tcp', port: 22 }], capture: [{ proto: 'tcp', port: 7000 }], captureTcpRanges: [{ from: 20000, to: 40000 }] };

test('iptables: range accepted before the guard drops, RSTs from it dropped', () => {
  const lines = guardRuleLines(chainNames(), spec, 4);
  const accept = lines.indexOf('-A POSTERN-IN -p tcp -m tcp --dport 20000:40000 -j ACCEPT');
  assert.ok(accept > 0 && accept < lines.indexOf('-A POSTERN-IN -p tcp -m tcp --dport 22 -j DROP'));
  assert.ok(lines.includes('-A POSTERN-OUT -p tcp -m tcp --sport 20000:40000 --tcp-flags RST RST -j DROP'));
  assert.throws(() => guardRuleLines(chainNames(), { ...spec, captureTcpRanges: [{ from: 5, to: 4 }] }, 4), FirewallValueError);
  assert.throws(() => guardRuleLines(chainNames(), { ...spec, captureTcpRanges: [{ from: 1, to: 70000 }] }, 4), FirewallValueError);
});

test('nft: range accepted with the mark before the guard drop, RSTs from it dropped', () => {
  const lines = guardLines(spec, DEFAULT_NFT_MARK);
  const accept = lines.findIndex((l) => l.includes('input tcp dport 20000-40000 meta mark set'));
  assert.ok(accept > 0 && accept < lines.findIndex((l) => l.endsWith('@guarded drop')));
  assert.ok(lines.includes('add rule inet postern output tcp sport 20000-40000 tcp flags & rst == rst drop'));
});
