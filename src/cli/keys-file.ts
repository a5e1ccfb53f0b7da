// SPDX-License-Identifier: MIT
// Editing key stanzas in the daemon's config file for `postern keys`: the edited config
// must validate whole (the same validator the daemon uses) before it replaces the file,
// and it replaces it atomically: temp file in the same directory, fsync, rename, with the
// original mode, so a crash leaves the old file or the new one, never half of one.

import { closeSync, fsyncSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { validateConfig } from '../config/load.ts';

export type ConfigJson = Record<string, unknown> & { keys?: Record<string, unknown>[] };

export function readConfigJson(path: string): ConfigJson {
  const value: unknown = JSON.parse(readFileSync(path, 'utf8'));
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${path}: not a JSON object`);
  return value as ConfigJson;
}

export function atomicWrite(path: string, text: string): void {
  const mode = statSync(path).mode & 0o7777;
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const fd = openSync(tmp, 'wx', mode);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, path);
  // The rename is durable once the directory entry is.
  const dfd = openSync(dirname(path), 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

/** Validate the edited config, then write it. Throws with every error when invalid. */
export function writeConfigJson(path: string, config: ConfigJson): void {
  const checked = validateConfig(config);
  if (!checked.ok) throw new Error(`the edited config would be invalid, nothing written:\n  ${checked.errors.join('\n  ')}`);
  atomicWrite(path, JSON.stringify(config, null, 2) + '\n');
}
