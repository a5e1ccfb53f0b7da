// SPDX-License-Identifier: MIT
// The head-to-head benchmark's table and its verdicts against issue 9's targets
// (test/bench/h2h-report.ts): pure functions of the rows, checked on hand-made rows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { goodput, markdownTable, rate, targetLines, type Row } from '../../bench/h2h-report.ts';
import { summarize } from '../../bench/stats.ts';

const paced: Row = {
  daemon: 'postern/nft', scenario: 'junk-paced', sent: 200_000, floodMs: 10_000, cpuS: 3, rssBeforeMb: 70, rssAfterMb: 73,
  processed: 200_078, kernelDrops: 0, opened: 50, trials: 50, open: summarize([10, 20, 30, 40]), recoveryMs: 20, recoveryWindowMs: 7_000,
};
const fwknopd: Row = {
  daemon: 'fwknopd (pcap)', scenario: 'junk-paced', sent: 200_000, floodMs: 10_000, opened: 0, trials: 50, recoveryWindowMs: 7_000,
};

test('rate and goodput come from the rows; missing figures stay missing', () => {
  assert.equal(rate(paced), 20_000);
  assert.equal(goodput(paced), 1);
  assert.equal(goodput(fwknopd), 0);
  assert.equal(rate({ daemon: 'x', scenario: 'open' }), undefined);
  assert.equal(goodput({ daemon: 'x', scenario: 'open' }), undefined);
});

test('the Markdown table has a header, a rule and one row per figure set, with pipes escaped', () => {
  const rows: Row[] = [paced, fwknopd, { daemon: 'fwknopd (udp)', scenario: 'open', error: 'no | start\nmore' }];
  const lines = markdownTable(rows).split('\n');
  assert.equal(lines.length, 2 + rows.length);
  const cols = (l: string): number => l.split(/(?<!\\)\|/).length;
  for (const l of lines) assert.equal(cols(l), cols(lines[0]!), l);
  assert.match(lines[2]!, /\| junk-paced \| postern\/nft \| 20000 \| 200000 \| 3\.00 \| 70\.0 → 73\.0 \|/);
  assert.match(lines[2]!, /50\/50 \(100 %\) \| 25\.0 \| 38\.5 \| 20 ms \|/);
  assert.match(lines[3]!, /0\/50 \(0 %\) \| - \| - \| > 7\.0 s \|/);
  assert.match(lines[4]!, /FAILED: no \\\| start \|/);
});

test('targets: postern met where its figures meet them, missed where not, and compared with each peer', () => {
  const lines = targetLines([paced, fwknopd]);
  const get = (what: RegExp): string | undefined => lines.find((l) => what.test(l.what))?.verdict;
  assert.equal(get(/^goodput 100 %/), 'met');
  assert.equal(get(/^time-to-open p95 <= 50 ms/), 'met');
  assert.equal(get(/^recovery/), 'met');
  assert.equal(get(/^RSS growth/), 'met');
  assert.equal(get(/^goodput ahead of fwknopd \(pcap\)/), 'met');
  assert.ok(lines.every((l) => l.daemon === 'postern/nft'), 'no verdicts for the peers themselves');
  const { recoveryMs: _never, ...unrecovered } = paced;
  const slow: Row = { ...unrecovered, open: summarize([10, 90]), rssAfterMb: 80, opened: 49 };
  const missed = targetLines([slow]).filter((l) => l.verdict === 'missed').map((l) => l.what);
  assert.equal(missed.length, 4, missed.join('; '));
});
