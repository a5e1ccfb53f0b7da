// SPDX-License-Identifier: MIT
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { reconnectDelay } from '../../../src/alert/publisher.ts';

test('reconnect backoff: 5 s doubling to 60 s, each within +-25 %', () => {
  for (let n = 0; n < 40; n++) {
    const base = Math.min(60_000, 5000 * 2 ** n);
    for (let k = 0; k < 50; k++) {
      const d = reconnectDelay(n);
      assert.ok(d >= base * 0.75 && d <= base * 1.25, `${n}: ${d}`);
    }
  }
});
