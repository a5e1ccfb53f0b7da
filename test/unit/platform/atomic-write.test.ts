// SPDX-License-Identifier: MIT
// Atomic config replacement keeps the original's mode and, written by root, its owner and
// group: `postern enroll` / `postern keys` run by root must leave the config readable by a
// daemon running as its own user (issue 9: the whole suite runs the daemon non-root).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chownSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../../../src/platform/atomic-write.ts';

const DAEMON_ID = 64242;

{
  const write = writeFileAtomic;
  test(`writeFileAtomic (postern keys, enroll, one-time files): content replaced, mode kept, owner kept when root writes`, { skip: process.getuid?.() === 0 ? false : 'needs root to chown' }, (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'postern-aw-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'config.json');
    writeFileSync(path, '{"old":true}\n', { mode: 0o640 });
    chownSync(path, DAEMON_ID, DAEMON_ID + 1);
    write(path, '{"new":true}\n');
    const st = statSync(path);
    assert.equal(readFileSync(path, 'utf8'), '{"new":true}\n');
    assert.equal(st.mode & 0o777, 0o640);
    assert.deepEqual([st.uid, st.gid], [DAEMON_ID, DAEMON_ID + 1]);
    assert.deepEqual(readdirSync(dir), ['config.json'], 'no temp file left');
  });
}

test('writeFileAtomic: a new file gets the default mode 0600', () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-aw-'));
  try {
    const path = join(dir, 'new.json');
    writeFileAtomic(path, 'x\n');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(readFileSync(path, 'utf8'), 'x\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
