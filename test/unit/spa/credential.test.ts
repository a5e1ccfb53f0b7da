// SPDX-License-Identifier: MIT
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { CREDENTIAL_ERRORS, Credential, generateCredential, parseCredential } from '../../../src/spa/credential.ts';

test('credential round trip and format', () => {
  const c = generateCredential();
  const text = c.encode();
  assert.match(text, /^postern1:[A-Za-z0-9_-]{48}$/);
  const back = parseCredential(text);
  assert.ok(back.ok);
  assert.equal(back.value.keyId, c.keyId);
  assert.deepEqual(back.value.revealSecret(), c.revealSecret());
  assert.ok(parseCredential(`  ${text}\n`).ok, 'surrounding whitespace from a paste is fine');
});

test('malformed credentials: a clear reason, never the secret', () => {
  const text = generateCredential().encode();
  const cases: [string, keyof typeof CREDENTIAL_ERRORS][] = [
    [text.replace('postern1:', 'postern2:'), 'missing_prefix'],
    [text.slice(0, -1) + '!', 'bad_characters'],
    [text.slice(0, -2), 'bad_length'],
    [text + 'AA', 'bad_length'],
    ['', 'missing_prefix'],
  ];
  for (const [input, reason] of cases) {
    const r = parseCredential(input);
    assert.deepEqual(r, { ok: false, reason });
    assert.ok(!CREDENTIAL_ERRORS[reason].includes(text.slice(9, 20)));
  }
});

test('a credential never prints its secret', () => {
  const c = new Credential(0xabcdef01, Buffer.alloc(32, 0x41));
  const secretB64 = Buffer.alloc(32, 0x41).toString('base64url').slice(0, 10);
  for (const s of [String(c), JSON.stringify({ c }), inspect(c), `${c}`]) {
    assert.ok(s.includes('(hidden)'), s);
    assert.ok(!s.includes(secretB64) && !s.includes('AAAA'), s);
  }
  assert.equal(c.keyIdHex, 'abcdef01');
});
