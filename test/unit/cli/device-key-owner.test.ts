// SPDX-License-Identifier: MIT
// `postern device-key` run by root before the daemon's first start makes the device key in
// the daemon's state directory: the file must belong to that directory's owner (the
// daemon's user), still mode 0600, or a non-root daemon cannot read its own key (issue 9).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chownSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOrCreateDeviceKey } from '../../../src/daemon/device-key.ts';

const DAEMON_ID = 64242;

test('a device key made by root belongs to the owner of its directory, mode 0600', { skip: process.getuid?.() === 0 ? false : 'needs root to chown' }, (t) => {
  const top = mkdtempSync(join(tmpdir(), 'postern-dk-'));
  t.after(() => rmSync(top, { recursive: true, force: true }));
  const state = join(top, 'state');
  mkdirSync(state, { mode: 0o700 });
  chownSync(state, DAEMON_ID, DAEMON_ID);
  const path = join(state, 'device.key');
  const made = loadOrCreateDeviceKey(path);
  assert.equal(made.created, true);
  const st = statSync(path);
  assert.deepEqual([st.uid, st.gid, st.mode & 0o777], [DAEMON_ID, DAEMON_ID, 0o600]);
  assert.deepEqual(loadOrCreateDeviceKey(path).key.publicKey, made.key.publicKey, 'read back, not remade');
});
