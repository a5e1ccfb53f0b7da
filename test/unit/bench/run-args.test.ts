// SPDX-License-Identifier: MIT
// The benchmark entry's argument grammar (test/bench/run.ts): [NAME] [--backend B]
// [--scenario LIST], where a usage error is a value (the entry exits 2 on it), never a throw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BENCH_BACKENDS, parseBenchArgs } from '../../bench/run.ts';
import { BACKENDS } from '../../e2e/harness.ts';
import { SCENARIOS } from '../../bench/h2h-report.ts';

const ALL = ['core', 'open', 'grants', 'knock', 'flood', 'h2h'];

test('the entry offers exactly the harness backends, in its order', () => {
  assert.deepEqual([...BENCH_BACKENDS], [...BACKENDS]);
});

test('defaults: every benchmark, every backend', () => {
  assert.deepEqual(parseBenchArgs([]), { names: ALL, backends: ['nft', 'iptables'], scenarios: SCENARIOS });
  assert.deepEqual(parseBenchArgs(['all']), parseBenchArgs([]));
  assert.deepEqual(parseBenchArgs(['all', '--backend', 'all']), parseBenchArgs([]));
});

test('one benchmark, one backend, in either spelling and either position', () => {
  const want = { names: ['open'], backends: ['iptables'], scenarios: SCENARIOS };
  assert.deepEqual(parseBenchArgs(['open', '--backend', 'iptables']), want);
  assert.deepEqual(parseBenchArgs(['open', '--backend=iptables']), want);
  assert.deepEqual(parseBenchArgs(['--backend', 'iptables', 'open']), want);
  assert.deepEqual(parseBenchArgs(['grants', '--backend', 'nft']), { names: ['grants'], backends: ['nft'], scenarios: SCENARIOS });
  assert.deepEqual(parseBenchArgs(['grants']), { names: ['grants'], backends: ['nft', 'iptables'], scenarios: SCENARIOS });
  assert.deepEqual(parseBenchArgs(['core']), { names: ['core'], backends: ['nft', 'iptables'], scenarios: SCENARIOS });
  assert.deepEqual(parseBenchArgs(['knock', '--backend', 'nft']), { names: ['knock'], backends: ['nft'], scenarios: SCENARIOS });
  assert.deepEqual(parseBenchArgs(['all', '--backend=nft']), { names: ALL, backends: ['nft'], scenarios: SCENARIOS });
});

test('h2h scenarios: a comma-separated subset, in the order given; every one by default', () => {
  assert.deepEqual(parseBenchArgs(['h2h', '--scenario', 'junk-paced,open']), { names: ['h2h'], backends: ['nft', 'iptables'], scenarios: ['junk-paced', 'open'] });
  assert.deepEqual(parseBenchArgs(['h2h', '--scenario=memory', '--backend', 'nft']), { names: ['h2h'], backends: ['nft'], scenarios: ['memory'] });
  assert.deepEqual(parseBenchArgs(['h2h', '--scenario', 'all']), parseBenchArgs(['h2h']));
  assert.deepEqual(parseBenchArgs(['all', '--scenario', 'knock']), { names: ALL, backends: ['nft', 'iptables'], scenarios: ['knock'] });
});

test('help wins over everything else', () => {
  for (const h of ['-h', '--help', 'help']) {
    assert.deepEqual(parseBenchArgs([h]), { help: true });
    assert.deepEqual(parseBenchArgs(['open', '--backend', 'pf', h]), { help: true });
  }
});

test('usage errors are values, each with its reason', () => {
  const cases: [string[], RegExp][] = [
    [['bogus'], /unknown benchmark "bogus"/],
    [['open', 'grants'], /one benchmark at a time/],
    [['open', '--backend'], /--backend needs a value/],
    [['open', '--backend='], /--backend needs a value/],
    [['open', '--backend', 'pf'], /unknown backend "pf"/],
    [['open', '--backend', 'NFT'], /unknown backend "NFT"/],
    [['open', '--backend', 'nft', '--backend', 'iptables'], /--backend given twice/],
    [['open', '--backends=nft'], /unknown option "--backends=nft"/],
    [['open', '-x'], /unknown option "-x"/],
    [['core', '--backend', 'nft'], /core does not use a firewall backend/],
    [['h2h', '--scenario', 'junk'], /unknown scenario "junk"/],
    [['h2h', '--scenario', 'open,'], /unknown scenario ""/],
    [['h2h', '--scenario'], /--scenario needs a value/],
    [['h2h', '--scenario', 'open', '--scenario', 'memory'], /--scenario given twice/],
    [['open', '--scenario', 'open'], /--scenario applies to h2h only/],
  ];
  for (const [args, re] of cases) {
    const r = parseBenchArgs(args);
    assert.ok('error' in r, `${JSON.stringify(args)} should be a usage error, got ${JSON.stringify(r)}`);
    assert.match(r.error, re);
  }
});
