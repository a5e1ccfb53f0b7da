// SPDX-License-Identifier: MIT
// Editing key stanzas in the daemon's config file for `postern keys`: the edited config
// must validate whole (the same validator the daemon uses) before it replaces the file,
// and it replaces it atomically: temp file in the same directory, fsync, rename, with the
// original mode and owner (platform/atomic-write.ts), so a crash leaves the old file or the new one,
// never half of one.

import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../platform/atomic-write.ts';
import { validateConfig } from '../config/load.ts';

export type ConfigJson = Record<string, unknown> & { keys?: Record<string, unknown>[] };

export function readConfigJson(path: string): ConfigJson {
  const value: unknown = JSON.parse(readFileSync(path, 'utf8'));
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${path}: not a JSON object`);
  return value as ConfigJson;
}

/** Validate the edited config, then write it. Throws with every error when invalid. */
export function writeConfigJson(path: string, config: ConfigJson): void {
  const checked = validateConfig(config);
  if (!checked.ok) throw new Error(`the edited config would be invalid, nothing written:\n  ${checked.errors.join('\n  ')}`);
  writeFileAtomic(path, JSON.stringify(config, null, 2) + '\n');
}
