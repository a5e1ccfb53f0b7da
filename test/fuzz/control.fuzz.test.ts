// SPDX-License-Identifier: MIT
// Control-socket JSON lines (src/control/protocol.ts), both directions, with the inputs a
// JSON parser makes special: prototype keys (__proto__, constructor, toString), duplicate
// keys, deep nesting, lone surrogates, huge numbers and lines around the length caps.
// Invariants: nothing throws; an accepted request re-parses from its own JSON; an accepted
// response names a real error (an own key of CONTROL_ERRORS, not one inherited from Object).
// (test/unit/control/protocol.test.ts fuzzes plain random lines.)

import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { CONTROL_ERRORS, MAX_REQUEST_BYTES, parseRequest, parseResponse } from '../../src/control/protocol.ts';
import { fuzzRuns } from './runs.ts';

const SPECIAL = ['__proto__', 'constructor', 'toString', 'prototype', 'hasOwnProperty', 'valueOf', 'cmd', 'id', 'ok', 'error', 'data', 'message'];
const key = fc.oneof(fc.constantFrom(...SPECIAL), fc.string({ maxLength: 6 }));
const scalar = fc.oneof(fc.constantFrom(...SPECIAL, 'status', 'revoke', 'abc123', '\ud800', 1e308, -0, true, null), fc.string({ maxLength: 8 }), fc.integer());
const value: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  v: fc.oneof({ depthSize: 'small' }, scalar, fc.array(tie('v'), { maxLength: 3 }), fc.array(fc.tuple(key, tie('v')), { maxLength: 4 })
    .map((kvs) => `{${kvs.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v) ?? 'null'}`).join(',')}}`).map((text) => JSON.parse(text) as unknown)),
})).v;
/** Objects as raw text, so duplicate keys and __proto__ reach JSON.parse as written. */
const objectText = fc.array(fc.tuple(key, value), { maxLength: 5 })
  .map((kvs) => `{${kvs.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v) ?? 'null'}`).join(',')}}`);
const padded = fc.tuple(objectText, fc.integer({ min: MAX_REQUEST_BYTES - 40, max: MAX_REQUEST_BYTES + 40 }))
  .map(([t, n]) => (t.length >= n ? t : t.slice(0, -1) + (t.length > 2 ? ',' : '') + `"p":"${'x'.repeat(Math.max(0, n - t.length - 8))}"}`));
const line = fc.oneof(objectText, padded, fc.constantFrom('{"cmd":"status","cmd":"revoke","id":"a"}', '{"__proto__":{"cmd":"status"}}', '{"cmd":"status","__proto__":null}'));

test('requests: prototype keys, duplicates, nesting and the length cap give typed results', () => {
  const seen = new Map<string, number>();
  fc.assert(fc.property(line, (l) => {
    const r = parseRequest(l);
    const tag = r.ok ? `ok:${r.value.cmd}` : r.reason;
    seen.set(tag, (seen.get(tag) ?? 0) + 1);
    if (!r.ok) { assert.ok(Object.hasOwn(CONTROL_ERRORS, r.reason), r.reason); return; }
    assert.deepEqual(parseRequest(JSON.stringify(r.value)), r);
  }), { numRuns: fuzzRuns(5000) });
  for (const reason of ['too_long', 'unknown_cmd', 'unknown_field']) assert.ok((seen.get(reason) ?? 0) > 0, `never saw ${reason}: ${JSON.stringify([...seen])}`);
});

test('responses: only real error names are accepted, never inherited ones', () => {
  const response = fc.oneof(objectText, fc.tuple(fc.constantFrom(...SPECIAL, ...Object.keys(CONTROL_ERRORS)), scalar)
    .map(([error, message]) => JSON.stringify({ ok: false, error, message })));
  fc.assert(fc.property(response, (l) => {
    const r = parseResponse(l);
    if (!r.ok || r.value.ok) return;
    assert.ok(Object.hasOwn(CONTROL_ERRORS, r.value.error), `accepted error ${JSON.stringify(r.value.error)}`);
  }), { numRuns: fuzzRuns(5000) });
});
