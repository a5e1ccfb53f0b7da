// SPDX-License-Identifier: MIT
// The control request parser: exact typed errors for malformed requests, and a fuzz run
// (random bytes, random JSON, mutated valid requests) that never throws and only ever
// accepts well-formed requests (STYLE.md principle 12b).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { CONTROL_ERRORS, MAX_REQUEST_BYTES, parseRequest, parseResponse } from '../../../src/control/protocol.ts';

test('valid requests parse', () => {
  for (const cmd of ['status', 'grants', 'reload', 'keys']) assert.deepEqual(parseRequest(JSON.stringify({ cmd })), { ok: true, value: { cmd } });
  assert.deepEqual(parseRequest('{"cmd":"revoke","id":"a1b2c3d4e5f6"}'), { ok: true, value: { cmd: 'revoke', id: 'a1b2c3d4e5f6' } });
});

test('each malformed request has its own typed error', () => {
  const cases: [string, keyof typeof CONTROL_ERRORS][] = [
    ['', 'bad_json'], ['{', 'bad_json'], ['null', 'not_object'], ['[]', 'not_object'], ['"status"', 'not_object'],
    ['{}', 'unknown_cmd'], ['{"cmd":"shutdown"}', 'unknown_cmd'], ['{"cmd":1}', 'unknown_cmd'], ['{"cmd":"__proto__"}', 'unknown_cmd'],
    ['{"cmd":"revoke"}', 'bad_id'], ['{"cmd":"revoke","id":"../x"}', 'bad_id'], ['{"cmd":"revoke","id":"A"}', 'bad_id'],
    ['{"cmd":"revoke","id":"abcdefabcdefabcde"}', 'bad_id'], ['{"cmd":"revoke","id":"ab","x":1}', 'unknown_field'],
    ['{"cmd":"status","id":"ab"}', 'unknown_field'], [`{"cmd":"status","pad":"${'x'.repeat(MAX_REQUEST_BYTES)}"}`, 'too_long'],
  ];
  for (const [line, reason] of cases) assert.deepEqual(parseRequest(line), { ok: false, reason }, line.slice(0, 60));
});

test('fuzz: the parser never throws and accepts only well-formed requests', () => {
  const valid = fc.constantFrom('{"cmd":"status"}', '{"cmd":"grants"}', '{"cmd":"revoke","id":"abc123"}', '{"cmd":"keys"}');
  const mutated = fc.tuple(valid, fc.integer({ min: 0, max: 40 }), fc.string({ maxLength: 3 }))
    .map(([v, at, s]) => v.slice(0, at) + s + v.slice(at + s.length));
  const line = fc.oneof(fc.string({ maxLength: 200 }), fc.json({ maxDepth: 3 }), mutated,
    fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b).toString('latin1')));
  fc.assert(fc.property(line, (l) => {
    const r = parseRequest(l);
    if (!r.ok) return assert.ok(r.reason in CONTROL_ERRORS);
    const v = r.value;
    assert.ok(['status', 'grants', 'reload', 'keys', 'revoke'].includes(v.cmd));
    if (v.cmd === 'revoke') assert.match(v.id, /^[a-z0-9]{1,16}$/);
    assert.deepEqual(parseRequest(JSON.stringify(v)), r, 'parse(format(x)) == x');
  }), { numRuns: 20_000 });
});

test('fuzz: malformed responses are typed failures', () => {
  fc.assert(fc.property(fc.oneof(fc.string({ maxLength: 100 }), fc.json({ maxDepth: 2 })), (l) => {
    const r = parseResponse(l);
    if (r.ok) assert.ok(r.value.ok === true || r.value.error in CONTROL_ERRORS);
  }), { numRuns: 5000 });
  assert.deepEqual(parseResponse('{"ok":false,"error":"nope","message":"x"}'), { ok: false, reason: 'malformed response' });
});
