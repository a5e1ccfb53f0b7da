// SPDX-License-Identifier: MIT
// Operator input under random structures: the daemon's JSON config (validateConfig), UCI
// files (parseUci -> uciToConfig -> validateConfig, as the procd init script runs them),
// fwknop access.conf/fwknopd.conf import, and credential strings. Invariants: nothing throws;
// a refusal lists at least one error, each a non-empty string; a credential's secret never
// appears in an error or report line (STYLE.md principle 6); whatever is accepted is frozen
// and re-validates. (knockd.conf import has its own fuzzer: test/unit/config/import-knockd-fuzz.)

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { validateConfig } from '../../src/config/load.ts';
import { translateUci } from '../../src/cli/config-uci.ts';
import { importFwknop } from '../../src/config/import-fwknop.ts';
import { Credential, parseCredential } from '../../src/spa/credential.ts';
import { fuzzRuns } from './runs.ts';

const SECRET = new Credential(0x11223344, Buffer.alloc(32, 0x6b)).encode();
const SECRET_BODY = SECRET.slice('postern1:'.length);
const valid = {
  device: 'edge-1', guarded: ['tcp/22', 'udp/53'],
  spa: { port: 62442, window_s: 90, clock: 'auto' },
  keys: [{ name: 'alice', credential: SECRET, services: ['tcp/22'], max_duration_s: 600 }],
  doors: [{ name: 'door1', sequence: ['7000', '8000:udp', '9000'], services: ['tcp/22'] }],
};
const PATHS: readonly (readonly (string | number)[])[] = [
  ['device'], ['guarded'], ['guarded', 0], ['spa'], ['spa', 'port'], ['spa', 'window_s'], ['spa', 'clock'], ['spa', 'replay_ring'],
  ['keys'], ['keys', 0], ['keys', 0, 'name'], ['keys', 0, 'services'], ['keys', 0, 'max_duration_s'], ['keys', 0, 'allowed_addresses'],
  ['doors'], ['doors', 0, 'sequence'], ['doors', 0, 'start'], ['doors', 0, 'seq_timeout_s'], ['firewall'], ['firewall', 'backend'],
  ['state'], ['control'], ['knock'], ['fwknop'], ['mqtt'], ['bogus'],
];
const nasty = fc.constantFrom('', ' ', '$(reboot)', '`id`', "'; rm -rf / #", '%IP%', '\n', '\u0000', 'a'.repeat(5000), -1, 0, 1e308, NaN, null, true, [], {}, SECRET, `  ${SECRET}  `);
const jsonish = fc.oneof(fc.jsonValue({ maxDepth: 3 }), nasty);

function setPath(root: unknown, path: readonly (string | number)[], value: unknown): unknown {
  const copy = structuredClone(root) as Record<string | number, unknown>;
  let obj: Record<string | number, unknown> = copy;
  for (const p of path.slice(0, -1)) {
    const next = obj[p];
    if (typeof next !== 'object' || next === null) return copy;
    obj = next as Record<string | number, unknown>;
  }
  obj[path[path.length - 1] as string | number] = value;
  return copy;
}

function checkResult(input: unknown): boolean {
  const r = validateConfig(input);
  if (r.ok) {
    assert.ok(Object.isFrozen(r.config));
    assert.ok(validateConfig(r.config.raw).ok, 'an accepted config does not re-validate');
    return true;
  }
  assert.ok(r.errors.length > 0, 'refused with no error');
  for (const e of r.errors) {
    assert.ok(typeof e === 'string' && e.length > 0);
    assert.ok(!e.includes(SECRET_BODY), `an error quotes the secret: ${e}`);
  }
  return false;
}

test('validateConfig: arbitrary JSON values never throw, refusals list errors', () => {
  fc.assert(fc.property(fc.oneof(fc.anything({ maxDepth: 3 }), fc.jsonValue({ maxDepth: 4 })), (v) => { checkResult(v); }), { numRuns: fuzzRuns(3000) });
});

test('validateConfig: a valid config with 1..4 fields replaced by junk', () => {
  assert.ok(checkResult(valid), 'the base config must be valid');
  let accepted = 0;
  fc.assert(fc.property(fc.array(fc.tuple(fc.constantFrom(...PATHS), jsonish), { minLength: 1, maxLength: 4 }), (edits) => {
    let cfg: unknown = valid;
    for (const [path, v] of edits) cfg = setPath(cfg, path, v);
    if (checkResult(cfg)) accepted++;
  }), { numRuns: fuzzRuns(3000) });
  assert.ok(accepted > 0, 'no mutated config was accepted: the accept branch went untested');
});

const UCI_OPTS = ['enabled', 'device', 'guarded', 'spa_port', 'window_s', 'clock', 'replay_ring', 'backend', 'nft', 'iptables', 'database',
  'name', 'credential', 'service', 'default_duration_s', 'max_duration_s', 'allowed_address', 'ipv6_prefix', 'bogus', 'log_level'];
const UCI_VALUES = ['1', '0', 'edge1', 'tcp/22', '62442', 'auto', 'nft', '/usr/sbin/nft', SECRET, `'${SECRET}'`, "'$(reboot)'", '"`id`"',
  "'a'\\''b'", '"x\\"y"', "'unterminated", '; reboot', '|', '&&', '0x10', '-1', '999999999999', "'192.0.2.0/24'", '\t'];
const uciLine = fc.oneof(
  fc.tuple(fc.constantFrom('option', 'list'), fc.constantFrom(...UCI_OPTS), fc.constantFrom(...UCI_VALUES)).map(([k, o, v]) => `\t${k} ${o} ${v}`),
  fc.constantFrom("config postern 'main'", 'config key', "config key 'alice'", 'config door', 'package postern', '# c', '', 'config', "config 'x y'"),
  fc.string({ maxLength: 40 }),
);

test('UCI text -> config: never throws, never quotes a credential', (t) => {
  let accepted = 0;
  fc.assert(fc.property(fc.array(uciLine, { maxLength: 25 }), (lines) => {
    const r = translateUci(lines.join('\n'));
    if (r.ok) {
      accepted++;
      assert.ok(validateConfig(JSON.parse(r.json)).ok);
      return;
    }
    assert.ok(r.errors.length > 0);
    for (const e of r.errors) assert.ok(!e.includes(SECRET_BODY), `a UCI error quotes the secret: ${e}`);
  }), { numRuns: fuzzRuns(3000) });
  t.diagnostic(`accepted ${accepted} random UCI files`);
});

const FWKNOP_SECRETS = ['secretsecret', 'c2VjcmV0c2VjcmV0c2VjcmV0'];
const FWKNOP_KEYS = ['SOURCE', 'OPEN_PORTS', 'RESTRICT_PORTS', 'HMAC_DIGEST_TYPE',
  'FW_ACCESS_TIMEOUT', 'MAX_FW_TIMEOUT', 'REQUIRE_SOURCE_ADDRESS', 'REQUIRE_USERNAME', 'ENABLE_CMD_EXEC', 'CMD_EXEC_USER', 'GPG_REMOTE_ID',
  'FORCE_NAT', 'DISABLE_DNAT', 'ACCESS_EXPIRE', 'ENCRYPTION_MODE', 'BOGUS'];
const FWKNOP_VALUES = ['ANY', '192.0.2.0/24', '2001:db8::/32', 'tcp/22, udp/53', 'tcp/99999',
  'sha256', 'md5', 'sha3_512', '30', '0', '86401', 'Y', 'N', 'root', '192.0.2.9 22', '$(reboot)', '`id`', ';', ''];
const fwLine = fc.oneof(
  fc.tuple(fc.constantFrom(...FWKNOP_KEYS), fc.constantFrom(' ', '\t', '  '), fc.constantFrom(...FWKNOP_VALUES)).map(([k, s, v]) => `${k}${s}${v}`),
  // Key lines carry only secret-looking values, which no report line may quote.
  fc.tuple(fc.constantFrom('KEY', 'KEY_BASE64', 'HMAC_KEY', 'HMAC_KEY_BASE64'), fc.constantFrom(...FWKNOP_SECRETS)).map(([k, v]) => `${k} ${v}`),
  fc.constantFrom('#', '', '   ', '%include x', 'SOURCE'),
  fc.string({ maxLength: 40 }),
);
const fwdLine = fc.tuple(fc.constantFrom('PCAP_FILTER', 'UDPSERV_PORT', 'MAX_SPA_PACKET_AGE', 'ENABLE_UDP_SERVER', 'X'), fc.constantFrom('udp port 62201', '70000', '120', 'Y', '-5', 'x')).map(([k, v]) => `${k} ${v}`);

test('fwknop access.conf import: never throws, reports every stanza, never quotes a key', () => {
  let valid = 0;
  const good = ['SOURCE ANY', 'KEY secretsecret', 'HMAC_KEY_BASE64 c2VjcmV0c2VjcmV0c2VjcmV0', 'OPEN_PORTS tcp/22'];
  fc.assert(fc.property(fc.boolean(), fc.array(fwLine, { maxLength: 30 }), fc.option(fc.array(fwdLine, { maxLength: 6 }), { nil: undefined }), (seeded, junk, fwd) => {
    const lines = seeded ? [...good, ...junk] : junk;
    const r = importFwknop(lines.join('\n'), fwd?.join('\n'));
    assert.ok(r.converted <= r.total);
    assert.equal(r.fwknop.stanzas.length, r.converted);
    if (r.valid) valid++;
    for (const l of r.report) assert.ok(FWKNOP_SECRETS.every((k) => !l.message.includes(k)), `report quotes a key: ${l.message}`);
  }), { numRuns: fuzzRuns(2000) });
  assert.ok(valid > 0, 'no random access.conf was valid: the accept branch went untested');
});

test('credential strings: random and mutated text parse to a typed result; valid ones mirror', () => {
  const B64U = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'];
  const mutated = fc.tuple(fc.nat(), fc.constantFrom(...B64U, '=', '+', '/', ' ', '\n', '')).map(([at, c]) => {
    const i = at % SECRET.length;
    return SECRET.slice(0, i) + c + SECRET.slice(i + 1);
  });
  const text = fc.oneof(fc.string({ maxLength: 80 }), fc.string({ maxLength: 60 }).map((s) => `postern1:${s}`), mutated);
  fc.assert(fc.property(text, (t) => {
    const r = parseCredential(t);
    if (!r.ok) { assert.ok(['missing_prefix', 'bad_characters', 'bad_length'].includes(r.reason)); return; }
    assert.equal(r.value.encode(), t.trim(), 'an accepted credential does not re-encode to its text');
    assert.ok(!String(r.value).includes(t.slice(12)) && !JSON.stringify(r.value).includes(t.slice(12)), 'a credential prints its secret');
  }), { numRuns: fuzzRuns(5000) });
});
