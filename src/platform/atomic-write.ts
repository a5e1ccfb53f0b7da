// SPDX-License-Identifier: MIT
// Replace a file atomically: write a temp file beside it, fsync it, rename it over the
// original, fsync the directory. A reader (the daemon on SIGHUP) sees the old file or the
// new one, never half of either, even across a power cut. The one implementation for
// config edits (postern keys, postern enroll) and one-time sequence files.
// The replacement keeps the original's mode and, when root writes it, its owner and group:
// root editing the config of a daemon that runs as its own user (the systemd unit's
// User=postern) must not leave that daemon a file it cannot read on the next SIGHUP.

import { closeSync, fchownSync, fsyncSync, openSync, renameSync, rmSync, statSync, writeSync, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined; // a new file
  }
}

export function writeFileAtomic(path: string, content: string, defaultMode = 0o600): void {
  const before = statOrUndefined(path);
  const mode = before === undefined ? defaultMode : before.mode & 0o777; // a config is 0600
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.tmp`);
  rmSync(tmp, { force: true }); // a leftover of a crashed run with the same pid
  const fd = openSync(tmp, 'wx', mode);
  try {
    // Only root may give a file away; anyone else writes a file of their own, as before.
    if (before !== undefined && process.getuid?.() === 0) fchownSync(fd, before.uid, before.gid);
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
