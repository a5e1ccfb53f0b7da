// SPDX-License-Identifier: MIT
// Command-line parsing under random argv: parseCommandArgs (every command's parser: node's
// parseArgs in strict mode) with random option tables, and each argument parser a command
// applies after it (knock items, integer options, --since, services, NAT targets). The
// contract (src/cli/command.ts, docs/cli.md): a mistake is a UsageError (exit 2, usage
// printed), never another exception, which main would report as a crash.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { intOption, parseCommandArgs, UsageError } from '../../src/cli/command.ts';
import { parseKnockArgs } from '../../src/cli/knock.ts';
import { parseSince } from '../../src/cli/device.ts';
import { parseService, parseTarget } from '../../src/config/load.ts';
import { fuzzRuns } from './runs.ts';

const NAMES = ['config', 'json', 'port', 'udp', 'out', 'delay', 'x', 'help'];
const arg = fc.oneof(
  fc.constantFrom('--config', '-c', '--json', '--port', '-p', '--udp', '--', '-', '--=', '--port=', '-cx', '-xyz', '--help', '-h', '--no-json', '---x'),
  fc.tuple(fc.constantFrom('--', '-'), fc.constantFrom(...NAMES, 'c', 'p', 'j'), fc.constantFrom('', '=', '=1', '=a b', '=$(id)')).map(([a, b, c]) => a + b + c),
  fc.string({ maxLength: 12 }),
);
const optionTable = fc.uniqueArray(fc.tuple(fc.constantFrom(...NAMES.filter((n) => n !== 'help')), fc.constantFrom('string' as const, 'boolean' as const), fc.boolean(), fc.option(fc.constantFrom('c', 'p', 'j', 'o'), { nil: undefined })), { selector: (t) => t[0], maxLength: 5 })
  .map((entries) => {
    const used = new Set<string>(['h']);
    const table: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = {};
    for (const [name, type, multiple, short] of entries) {
      const free = short !== undefined && !used.has(short);
      if (free) used.add(short);
      table[name] = { type, ...(multiple ? { multiple } : {}), ...(free ? { short } : {}) };
    }
    return table;
  });

/** Run fn; anything thrown must be a UsageError. */
function onlyUsage(fn: () => unknown): 'ok' | 'usage' {
  try {
    fn();
    return 'ok';
  } catch (err) {
    assert.ok(err instanceof UsageError, `threw ${String(err)} (not a UsageError)`);
    assert.ok(err.message.length > 0);
    return 'usage';
  }
}

test('parseCommandArgs: random argv against random option tables throws only UsageError', () => {
  const seen = { ok: 0, usage: 0 };
  fc.assert(fc.property(optionTable, fc.array(arg, { maxLength: 10 }), fc.boolean(), (options, argv, positionals) => {
    seen[onlyUsage(() => parseCommandArgs(argv, options, positionals))]++;
  }), { numRuns: fuzzRuns(10_000) });
  assert.ok(seen.ok > 0 && seen.usage > 0, JSON.stringify(seen));
});

test('argument parsers after parseArgs: knock items, integers, --since, services, targets', () => {
  const text = fc.oneof(fc.string({ maxLength: 24 }), fc.constantFrom('22', '0', '65535', '65536', '7000:udp', '7000:UDP', '7000:sctp', '1,2,3', ',', '10m', '7d', '999999d',
    '2026-01-31T12:00:00Z', '2026-99-99', 'tcp/22', 'udp/0', 'tcp/65536', '198.18.0.20:8080', '[2001:db8::1]:22', '1.2.3.4:0', '1e3', ' 22', '0x16'));
  fc.assert(fc.property(fc.array(text, { maxLength: 30 }), text, (items, one) => {
    const knock = onlyUsage(() => parseKnockArgs(items, 'tcp'));
    if (knock === 'ok') for (const k of parseKnockArgs(items, 'tcp')) assert.ok(k.port >= 1 && k.port <= 65535);
    onlyUsage(() => {
      const n = intOption(one, 'delay', 0, 60_000);
      assert.ok(n === undefined || (Number.isInteger(n) && n >= 0 && n <= 60_000));
    });
    onlyUsage(() => assert.ok(Number.isFinite(parseSince(one, 1_764_000_000_000))));
    const s = parseService(one);
    assert.ok(s === undefined || (s.port >= 1 && s.port <= 65535));
    const t = parseTarget(one);
    assert.ok(t === undefined || (t.port >= 1 && t.port <= 65535));
  }), { numRuns: fuzzRuns(10_000) });
});
