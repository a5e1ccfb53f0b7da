// SPDX-License-Identifier: MIT
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FailureAggregator, type FailureLine, type Overflow } from '../../../src/log/aggregate.ts';
import { formatLine } from '../../../src/log/logger.ts';

test('a flood becomes a handful of lines with counts', () => {
  const lines: FailureLine[] = [];
  const overflows: Overflow[] = [];
  const agg = new FailureAggregator({ maxTracked: 8, emit: (l) => lines.push(l), emitOverflow: (o) => overflows.push(o) });
  for (let i = 0; i < 100_000; i++) agg.record('bad_auth', `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`);
  for (let i = 0; i < 500; i++) agg.record('replay', '198.18.0.3', 'alice');
  agg.flush();
  assert.equal(lines.filter((l) => l.first).length, 8);
  assert.equal(overflows.length, 1);
  assert.equal(overflows[0]!.count, 100_000 - 8 + 500);
  agg.record('replay', '198.18.0.3', 'alice');
  agg.record('replay', '198.18.0.3', 'alice');
  agg.flush();
  assert.deepEqual(lines.slice(-2), [
    { reason: 'replay', source: '198.18.0.3', key: 'alice', count: 1, first: true },
    { reason: 'replay', source: '198.18.0.3', key: 'alice', count: 1, first: false },
  ]);
});

test('logfmt lines quote what needs quoting', () => {
  assert.equal(formatLine('info', 'postern', 'grant opened', { key: 'alice', n: 3, note: 'a b', skip: undefined }),
    'level=info ns=postern msg="grant opened" key=alice n=3 note="a b"');
});

test('repeats of one (reason, source, key) in a row count into the same line, across other sources', () => {
  const lines: FailureLine[] = [];
  const agg = new FailureAggregator({ maxTracked: 8, emit: (l) => lines.push(l), emitOverflow: () => assert.fail('no overflow expected') });
  for (let i = 0; i < 3; i++) agg.record('bad_auth', '198.18.0.3', 'alice');
  agg.record('bad_auth', '198.18.0.3'); // same source, no key: its own line
  agg.record('bad_auth', '198.18.0.3', 'alice');
  agg.record('replay', '198.18.0.3', 'alice');
  agg.record('bad_auth', '198.18.0.4', 'alice');
  agg.record('bad_auth', '198.18.0.3', 'alice');
  agg.flush();
  agg.record('bad_auth', '198.18.0.3', 'alice'); // a new interval starts with a first line again
  assert.deepEqual(lines, [
    { reason: 'bad_auth', source: '198.18.0.3', key: 'alice', count: 1, first: true },
    { reason: 'bad_auth', source: '198.18.0.3', key: undefined, count: 1, first: true },
    { reason: 'replay', source: '198.18.0.3', key: 'alice', count: 1, first: true },
    { reason: 'bad_auth', source: '198.18.0.4', key: 'alice', count: 1, first: true },
    { reason: 'bad_auth', source: '198.18.0.3', key: 'alice', count: 4, first: false },
    { reason: 'bad_auth', source: '198.18.0.3', key: 'alice', count: 1, first: true },
  ]);
});
