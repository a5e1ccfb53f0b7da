// SPDX-License-Identifier: MIT
// The benchmark entry's argument grammar (test/bench/run.ts): [NAME] [--backend B], where a
// usage error is a value (the entry exits 2 on it), never a throw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BENCH_BACKENDS, parseBenchArgs } from '../../bench/run.ts';
import { BACKENDS } from '../../e2e/harness.ts';

test('the entry offers exactly the harness backends, in its order', () => {
  assert.deepEqual([...BENCH_BACKENDS], [...BACKENDS]);
});

test('defaults: every benchmark, every backend', () => {
  assert.deepEqual(parseBenchArgs([]), { names: ['core', 'open', 'grants', 'knock', 'flood'], backends: ['nft', 'iptables'] });
  assert.deepEqual(parseBenchArgs(['all']), parseBenchArgs([]));
  assert.deepEqual(parseBenchArgs(['all', '--backend', 'all']), parseBenchArgs([]));
});

test('one benchmark, one backend, in either spelling and either position', () => {
  const want = { names: ['open'], backends: ['iptables'] };
  assert.deepEqual(parseBenchArgs(['open', '--backend', 'iptables']), want);
  assert.deepEqual(parseBenchArgs(['open', '--backend=iptables']), want);
  assert.deepEqual(parseBenchArgs(['--backend', 'iptables', 'open']), want);
  assert.deepEqual(parseBenchArgs(['grants', '--backend', 'nft']), { names: ['grants'], backends: ['nft'] });
  assert.deepEqual(parseBenchArgs(['grants']), { names: ['grants'], backends: ['nft', 'iptables'] });
  assert.deepEqual(parseBenchArgs(['core']), { names: ['core'], backends: ['nft', 'iptables'] });
  assert.deepEqual(parseBenchArgs(['knock', '--backend', 'nft']), { names: ['knock'], backends: ['nft'] });
  assert.deepEqual(parseBenchArgs(['all', '--backend=nft']), { names: ['core', 'open', 'grants', 'knock', 'flood'], backends: ['nft'] });
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
  ];
  for (const [args, re] of cases) {
    const r = parseBenchArgs(args);
    assert.ok('error' in r, `${JSON.stringify(args)} should be a usage error, got ${JSON.stringify(r)}`);
    assert.match(r.error, re);
  }
});
