// SPDX-License-Identifier: MIT
// Replace a file atomically: write a temp file beside it, fsync it, rename it over the
// original, fsync the directory. A reader (the daemon on SIGHUP) sees the old file or the
// new one, never half of either, even across a power cut. The one implementation for
// config edits (postern keys, postern enroll) and one-time sequence files.

import { closeSync, fsyncSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export function writeFileAtomic(path: string, content: string, defaultMode = 0o600): void {
  let mode = defaultMode;
  try {
    mode = statSync(path).mode & 0o777; // keep the original's permissions (a config is 0600)
  } catch {
    // a new file takes defaultMode
  }
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.tmp`);
  rmSync(tmp, { force: true }); // a leftover of a crashed run with the same pid
  const fd = openSync(tmp, 'wx', mode);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, path);
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}
