// SPDX-License-Identifier: MIT
// The kernel-side SPA prefilter's rule text, validation and counter parsers
// (src/firewall/prefilter.ts). The rules themselves run against the real kernel in
// test/e2e/prefilter.test.ts; here: exact text, the limits, and parsers that never throw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  IPT_PREFILTER_TAG, checkPrefilter, iptablesPrefilterRules, nftPrefilterRules, parseIptablesCounter, parseNftCounter, prefilterOf,
} from '../../../src/firewall/prefilter.ts';
import { FirewallValueError } from '../../../src/firewall/iptables-rules.ts';
import { guardLines } from '../../../src/firewall/nft-rules.ts';
import { chainNames } from '../../../src/firewall/iptables-rules.ts';
import { guardRuleLines } from '../../../src/firewall/iptables-plan.ts';
import type { GuardSpec, SpaPrefilter } from '../../../src/firewall/types.ts';

const NATIVE: SpaPrefilter = { port: 62442, shapes: [{ minLen: 45, maxLen: 512, keyIds: [0x7a3e91c4, 0x00000005] }] };
const FWKNOP: SpaPrefilter = { port: 62201, shapes: [{ minLen: 140, maxLen: 1500 }] };
const ACCEPT = 'meta mark set meta mark | 0x10000000 accept';

test('nft: one accept per shape (UDP length = payload + 8, key ids sorted in a set), then a counted drop', () => {
  assert.deepEqual(nftPrefilterRules([NATIVE, FWKNOP], ACCEPT), [
    `udp dport 62442 udp length 53-520 @th,64,32 { 0x00000005, 0x7a3e91c4 } ${ACCEPT}`,
    'udp dport 62442 counter name "spa_prefilter" drop',
    `udp dport 62201 udp length 148-1508 ${ACCEPT}`,
    'udp dport 62201 counter name "spa_prefilter" drop',
  ]);
});

test('a shape with no key ids matches nothing: only the drop is left (no key of that class)', () => {
  assert.deepEqual(nftPrefilterRules([{ port: 9, shapes: [{ minLen: 45, maxLen: 512, keyIds: [] }] }], ACCEPT), ['udp dport 9 counter name "spa_prefilter" drop']);
  assert.deepEqual(iptablesPrefilterRules([{ port: 9, shapes: [{ minLen: 45, maxLen: 512, keyIds: [] }] }], 4), [
    `-p udp -m udp --dport 9 -m comment --comment "${IPT_PREFILTER_TAG}" -j DROP`,
  ]);
});

test('iptables: u32 through the IPv4 header length; fixed IPv6 offsets behind a UDP next header', () => {
  assert.deepEqual(iptablesPrefilterRules([NATIVE], 4), [
    '-p udp -m udp --dport 62442 -m u32 --u32 "0>>22&0x3C@4>>16=53:520&&0>>22&0x3C@8=0x00000005,0x7a3e91c4" -j ACCEPT',
    '-p udp -m udp --dport 62442 -m comment --comment "postern:prefilter" -j DROP',
  ]);
  assert.deepEqual(iptablesPrefilterRules([FWKNOP], 6), [
    '-p udp -m udp --dport 62201 -m u32 --u32 "4>>8&0xFF=0x11&&44>>16=148:1508" -j ACCEPT',
    '-p udp -m udp --dport 62201 -m comment --comment "postern:prefilter" -j DROP',
  ]);
});

test('iptables: u32 takes at most 10 values per test, so 25 key ids make 3 rules, each id once', () => {
  const ids = Array.from({ length: 25 }, (_, i) => 1000 + i);
  const rules = iptablesPrefilterRules([{ port: 7, shapes: [{ minLen: 45, maxLen: 512, keyIds: [...ids, 1000] }] }], 4);
  assert.equal(rules.length, 4);
  const listed = rules.slice(0, 3).flatMap((r) => /@8=([0-9a-fx,]+)"/.exec(r)?.[1]?.split(',') ?? []);
  assert.deepEqual(listed.map(Number), ids);
  assert.ok(rules.slice(0, 3).every((r) => (r.match(/,/g) ?? []).length <= 9));
});

test('guard rules put the prefilter before the capture accept, on both backends', () => {
  const spec: GuardSpec = { guarded: [{ proto: 'tcp', port: 22 }], capture: [{ proto: 'udp', port: 62442 }], spaPrefilter: [NATIVE] };
  const nft = guardLines(spec, 0x10000000);
  const at = (needle: string): number => nft.findIndex((l) => l.includes(needle));
  assert.ok(at('add counter inet postern spa_prefilter') >= 0);
  assert.ok(at('@th,64,32') < at('@capture meta mark'));
  assert.ok(at('counter name "spa_prefilter" drop') < at('@capture meta mark'));
  const ipt = guardRuleLines(chainNames(), spec, 6);
  const idx = (needle: string): number => ipt.findIndex((l) => l.includes(needle));
  assert.ok(idx('-m u32') > idx('-i lo -j RETURN'));
  assert.ok(idx(IPT_PREFILTER_TAG) < ipt.indexOf('-A POSTERN-IN -p udp -m udp --dport 62442 -j ACCEPT'));
  const { spaPrefilter: _, ...without } = spec;
  assert.ok(!guardLines(without, 0x10000000).some((l) => l.includes('spa_prefilter')));
});

test('validation: only integers in range reach rule text; a prefiltered port must be a udp capture port', () => {
  const bad: SpaPrefilter[] = [
    { port: 0, shapes: [] }, { port: 70000, shapes: [] }, { port: 1.5, shapes: [] },
    { port: 9, shapes: [{ minLen: 0, maxLen: 10 }] }, { port: 9, shapes: [{ minLen: 20, maxLen: 10 }] },
    { port: 9, shapes: [{ minLen: 1, maxLen: 70000 }] },
    { port: 9, shapes: [{ minLen: 1, maxLen: 10, keyIds: [-1] }] }, { port: 9, shapes: [{ minLen: 1, maxLen: 10, keyIds: [2 ** 32] }] },
    { port: 9, shapes: [{ minLen: 1, maxLen: 10, keyIds: [1.5] }] },
    { port: 9, shapes: [{ minLen: 1, maxLen: 10, keyIds: ['1; drop' as unknown as number] }] },
    { port: 9, shapes: Array.from({ length: 9 }, () => ({ minLen: 1, maxLen: 2 })) },
  ];
  for (const p of bad) assert.throws(() => checkPrefilter([p]), FirewallValueError, JSON.stringify(p));
  assert.throws(() => checkPrefilter([FWKNOP, FWKNOP]), /given twice/);
  const spec: GuardSpec = { guarded: [], capture: [{ proto: 'tcp', port: 62442 }], spaPrefilter: [NATIVE] };
  assert.throws(() => prefilterOf(spec), /not a udp capture port/);
  assert.deepEqual(prefilterOf({ ...spec, capture: [{ proto: 'udp', port: 62442 }] }), [NATIVE]);
});

test('parseNftCounter reads `nft -j list counter` (nft 1.0.6 output) and nothing else', () => {
  const listed = '{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, '
    + '{"counter": {"family": "inet", "name": "spa_prefilter", "table": "postern", "handle": 1, "packets": 1234, "bytes": 99000}}]}';
  assert.equal(parseNftCounter(listed), 1234);
  assert.equal(parseNftCounter(listed.replace('spa_prefilter', 'other')), undefined);
  assert.equal(parseNftCounter(listed.replace('1234', '-1')), undefined);
  for (const text of ['', 'null', '{}', '{"nftables": 3}', '{"nftables": [null, 1, {"counter": null}]}', '[']) assert.equal(parseNftCounter(text), undefined);
});

test('parseIptablesCounter sums the tagged drop rules of `iptables -v -S` (iptables 1.8.9 output)', () => {
  const listed = [
    '-N POSTERN-IN',
    '-A POSTERN-IN -i lo -c 5 300 -j RETURN',
    '-A POSTERN-IN -p udp -m udp --dport 62442 -m u32 --u32 "0x0>>0x16&0x3c@0x4>>0x10=0x35:0x208&&0x0>>0x16&0x3c@0x8=0x7a3e91c4" -c 2 140 -j ACCEPT',
    '-A POSTERN-IN -p udp -m udp --dport 62442 -m comment --comment "postern:prefilter" -c 40 3100 -j DROP',
    '-A POSTERN-IN -p udp -m udp --dport 62201 -m comment --comment "postern:prefilter" -c 2 1000 -j DROP',
  ].join('\n');
  assert.equal(parseIptablesCounter(listed), 42);
  assert.equal(parseIptablesCounter('-N POSTERN-IN\n'), undefined);
});

test('both counter parsers never throw and only return safe non-negative integers (property)', () => {
  fc.assert(fc.property(fc.string({ maxLength: 400 }), (s) => {
    for (const text of [s, `{"nftables": [{"counter": {"name": "spa_prefilter", "packets": ${s}}}]}`, `-A X --comment "postern:prefilter" -c ${s} -j DROP`]) {
      for (const n of [parseNftCounter(text), parseIptablesCounter(text)]) assert.ok(n === undefined || (Number.isSafeInteger(n) && n >= 0));
    }
  }), { numRuns: 500 });
});
