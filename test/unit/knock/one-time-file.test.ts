// SPDX-License-Identifier: MIT
// One-time sequence files on disk (src/daemon/one-time-file.ts): a used line is marked by an
// atomic rewrite that keeps the file's mode, and a line someone changed meanwhile is not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { consumeOneTimeLine, readOneTimeFile } from '../../../src/daemon/one-time-file.ts';

function withFile(text: string, fn: (path: string, dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'postern-ots-'));
  try {
    const path = join(dir, 'door.ots');
    writeFileSync(path, text, { mode: 0o600 });
    fn(path, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('consuming marks the line used, keeps the mode, leaves no temporary file', () => {
  withFile(' 7000,8000\n 7100,8100\n', (path, dir) => {
    const lines = readOneTimeFile(path);
    assert.ok(lines.ok);
    const used = lines.value[0];
    assert.ok(used);
    const left = consumeOneTimeLine(path, used);
    assert.ok(left.ok);
    assert.deepEqual(left.value.map((l) => l.line), [1]);
    assert.equal(readFileSync(path, 'utf8'), '#7000,8000\n 7100,8100\n');
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.deepEqual(readdirSync(dir), ['door.ots']);
    // The same line again: already used, nothing written, one line left.
    const again = consumeOneTimeLine(path, used);
    assert.ok(again.ok);
    assert.deepEqual(again.value.map((l) => l.line), [1]);
    assert.equal(readFileSync(path, 'utf8'), '#7000,8000\n 7100,8100\n');
  });
});

test('an edited line is not marked; unreadable and malformed files are errors', () => {
  withFile(' 7000,8000\n', (path) => {
    const lines = readOneTimeFile(path);
    assert.ok(lines.ok && lines.value[0]);
    writeFileSync(path, ' 7000,8001\n');
    const r = consumeOneTimeLine(path, lines.value[0]);
    assert.ok(r.ok);
    assert.equal(readFileSync(path, 'utf8'), ' 7000,8001\n');
    assert.deepEqual(r.value[0]?.sequence.map((p) => p.port), [7000, 8001]);
    writeFileSync(path, 'x\n');
    assert.match(readOneTimeFile(path).ok ? '' : (readOneTimeFile(path) as { reason: string }).reason, /line 1/);
  });
  const missing = readOneTimeFile('/nonexistent/postern.ots');
  assert.ok(!missing.ok && missing.reason.includes('ENOENT'));
});
