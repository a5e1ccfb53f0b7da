// SPDX-License-Identifier: MIT
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { equalCT } from '../../../src/crypto/ct.ts';

test('equalCT: equal bytes are equal, whatever the views', () => {
  assert.equal(equalCT(new Uint8Array(0), new Uint8Array(0)), true);
  assert.equal(equalCT(Buffer.from('00ff10', 'hex'), Uint8Array.of(0, 0xff, 0x10)), true);
  const backing = Buffer.from('aabbccdd', 'hex');
  assert.equal(equalCT(backing.subarray(1, 3), Buffer.from('bbcc', 'hex')), true);
});

test('equalCT: any differing byte, first or last, is unequal', () => {
  const a = Buffer.alloc(16, 7);
  for (const i of [0, 15]) {
    const b = Buffer.from(a);
    b[i] = 8;
    assert.equal(equalCT(a, b), false);
  }
});

test('equalCT: a length mismatch is false and never throws (hostile sizes)', () => {
  assert.equal(equalCT(Buffer.alloc(16), Buffer.alloc(15)), false);
  assert.equal(equalCT(Buffer.alloc(0), Buffer.alloc(1)), false);
  assert.equal(equalCT(Buffer.alloc(16), Buffer.alloc(17)), false);
});

test('equalCT agrees with Buffer.equals on random inputs', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 20 }), fc.uint8Array({ maxLength: 20 }), (a, b) => {
      assert.equal(equalCT(a, b), Buffer.from(a).equals(Buffer.from(b)));
      assert.equal(equalCT(a, a.slice()), true);
    }),
    { numRuns: 500 },
  );
});
