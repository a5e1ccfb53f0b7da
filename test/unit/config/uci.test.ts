// SPDX-License-Identifier: MIT
// UCI parser and UCI -> JSON translation (src/config/uci.ts, uci-config.ts): fixtures with
// exact errors, a round-trip property over arbitrary values (shell metacharacters stay
// data), and random text that must never throw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { parseUci, quoteUci, splitWords } from '../../../src/config/uci.ts';
import { uciToConfig } from '../../../src/config/uci-config.ts';
import { translateUci } from '../../../src/cli/config-uci.ts';
import { generateCredential } from '../../../src/spa/credential.ts';

const SHIPPED = readFileSync(new URL('../../../rootfs-overlay/openwrt/etc/config/postern', import.meta.url), 'utf8');

test('words: bare, single-quoted, double-quoted with escapes, concatenated, comments', () => {
  const cases: [string, string[]][] = [
    [`option a 'b c'`, ['option', 'a', 'b c']],
    [`option a "x\\"y\\\\z"`, ['option', 'a', 'x"y\\z']],
    [`option a 'it'\\''s'`, ['option', 'a', "it's"]],
    [`\toption  a  b  # trailing comment`, ['option', 'a', 'b']],
    [`option a 'has # inside'`, ['option', 'a', 'has # inside']],
    [`# only a comment`, []],
    [`option a ''`, ['option', 'a', '']],
  ];
  for (const [line, words] of cases) assert.deepEqual(splitWords(line), { ok: true, words }, line);
  assert.deepEqual(splitWords(`option a 'open`), { ok: false, error: 'unterminated single quote' });
  assert.deepEqual(splitWords(`option a "open`), { ok: false, error: 'unterminated double quote' });
  assert.deepEqual(splitWords(`option a b\\`), { ok: false, error: 'backslash at end of line' });
});

test('the shipped /etc/config/postern translates and validates (no keys, disabled)', () => {
  const r = translateUci(SHIPPED);
  assert.ok(r.ok, JSON.stringify(r));
  assert.equal(r.enabled, false);
  const json = JSON.parse(r.json) as Record<string, unknown>;
  assert.deepEqual(json['keys'], []);
  assert.deepEqual(json['guarded'], ['tcp/22']);
  assert.deepEqual(json['firewall'], { backend: 'nft' });
});

test('a key section becomes a key stanza', () => {
  const cred = generateCredential().encode();
  const text = `${SHIPPED}\nconfig key 'alice'\n\toption credential '${cred}'\n\tlist service 'tcp/22'\n\toption max_duration_s '300'\n\toption require_source_address 'no'\n\tlist allowed_address '10.0.0.0/8'\n`;
  const r = translateUci(text);
  assert.ok(r.ok, JSON.stringify(r));
  const keys = (JSON.parse(r.json) as { keys: unknown[] }).keys;
  assert.deepEqual(keys, [{ name: 'alice', credential: cred, services: ['tcp/22'], max_duration_s: 300, require_source_address: false, allowed_addresses: ['10.0.0.0/8'] }]);
});

test('every error is listed with its line; credentials never quoted', () => {
  const text = [
    "config postern 'main'",
    "\toption spa_port 'lots'",
    "\toption ipv6 'maybe'",
    "\toption colour 'blue'",
    "\tlist guarded 'tcp/22'",
    "\toption device 'x'",
    "\toption device 'y'",
    "frobnicate postern1:secretsecret",
    "config key 'k'",
    "\tlist credential 'postern1:AAAA'",
    "config door 'd'",
  ].join('\n');
  const parsed = parseUci(text);
  assert.deepEqual(parsed, { ok: false, errors: [
    'line 7: option device given twice',
    'line 8: unknown statement (expected config, option, list or package; the line is not quoted, it may hold a key)',
  ] });
  const sections = parseUci(text.split('\n').filter((_, i) => i !== 6 && i !== 7).join('\n'));
  assert.ok(sections.ok);
  const mapped = uciToConfig(sections.sections);
  assert.ok(!mapped.ok);
  assert.equal(mapped.errors.length, 5, mapped.errors.join('\n'));
  assert.match(mapped.errors[0] ?? '', /^line 2 \(config postern main\) spa_port: expected a whole number \(got "lots"\)$/);
  assert.match(mapped.errors[1] ?? '', /ipv6: expected 1\/0/);
  assert.match(mapped.errors[2] ?? '', /colour: unknown option \(known: enabled, network, device/);
  assert.match(mapped.errors[3] ?? '', /credential: is a list; expected a single option$/);
  assert.match(mapped.errors[4] ?? '', /unknown section type "door"/);
  assert.ok(!mapped.errors.join('\n').includes('postern1:'));
});

test('a valid UCI file with an invalid config is refused by the daemon validation', () => {
  const r = translateUci("config postern 'main'\n\toption device 'r1'\n\tlist guarded 'tcp/22'\n\toption log_level 'loud'\n\toption spa_port '0'\n");
  assert.ok(!r.ok);
  assert.ok(r.errors.some((e) => e.startsWith('/spa/port')), r.errors.join('\n'));
  assert.ok(r.errors.length >= 2);
});

// Values never contain a newline (the parser is line-based); everything else is fair game.
const value = fc.string({ unit: fc.constantFrom(...`ab z'"\\$();|&\`#*?<>!{}[]~=\t%/:.-_`.split('')), maxLength: 40 });
const optName = fc.stringMatching(/^[a-z_][a-z0-9_]{0,10}$/);

test('property: any value written as `uci export` does parses back to exactly itself', () => {
  fc.assert(fc.property(fc.array(fc.tuple(optName, value), { maxLength: 8 }), (pairs) => {
    const unique = [...new Map(pairs).entries()];
    const text = `config postern 'main'\n${unique.map(([k, v]) => `\toption ${k} ${quoteUci(v)}`).join('\n')}\n`;
    const r = parseUci(text);
    assert.ok(r.ok, text);
    assert.deepEqual([...(r.sections[0]?.options ?? [])], unique);
  }), { numRuns: 500 });
});

test('property: a device name full of shell metacharacters is data, refused by validation, never run', () => {
  fc.assert(fc.property(value, (v) => {
    const r = translateUci(`config postern 'main'\n\toption device ${quoteUci(v)}\n\tlist guarded 'tcp/22'\n`);
    if (/^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/.test(v)) assert.ok(r.ok);
    else assert.ok(!r.ok && r.errors.some((e) => e.startsWith('/device')));
  }), { numRuns: 300 });
});

test('fuzz: random text never throws and yields sections or errors', () => {
  const chars = fc.constantFrom('config', 'option', 'list', 'package', 'postern', 'key', 'main', 'guarded', 'spa_port',
    "'", '"', '\\', '\n', '\t', ' ', '#', 'a', '1', 'tcp/22', 'postern1:');
  fc.assert(fc.property(fc.string({ unit: chars, maxLength: 300, size: 'medium' }), (text) => {
    const r = parseUci(text);
    if (r.ok) uciToConfig(r.sections);
    else assert.ok(r.errors.length > 0);
  }), { numRuns: 2000 });
});
