// SPDX-License-Identifier: MIT
// One-time sequence files (knockd's One_Time_Sequences, ref/knockd.md §2): read the unused
// lines, and mark one used with a safe atomic rewrite (write a temporary file beside it,
// fsync, rename over the original, fsync the directory), so a crash leaves either the old
// file or the new one, never a torn one, and a used sequence never becomes usable again.
// Parsing is pure (knock/sequence.ts); this file does the I/O.

import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../platform/atomic-write.ts';
import { markLineUsed, parseOneTimeFile, samePort, type OneTimeLine } from '../knock/sequence.ts';
import { fail, ok, type Decoded } from '../wire/result.ts';

export function readOneTimeFile(path: string): Decoded<OneTimeLine[], string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return fail(`${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  const parsed = parseOneTimeFile(text);
  return parsed.ok ? parsed : fail(`${path}: ${parsed.reason}`);
}

/**
 * Mark `used` (the line the engine just opened the door with) as used and return the
 * unused lines left. The file is read again first: if that line no longer holds that
 * sequence (someone edited the file), nothing is written and the fresh lines are returned,
 * so the door goes on with what the file says now.
 */
export function consumeOneTimeLine(path: string, used: OneTimeLine): Decoded<OneTimeLine[], string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return fail(`${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  const now = parseOneTimeFile(text);
  if (!now.ok) return fail(`${path}: ${now.reason}`);
  const line = now.value.find((l) => l.line === used.line);
  const same = line !== undefined && line.sequence.length === used.sequence.length
    && line.sequence.every((p, i) => { const q = used.sequence[i]; return q !== undefined && samePort(p, q); });
  if (!same) return now;
  try {
    writeFileAtomic(path, markLineUsed(text, used.line));
  } catch (err) {
    return fail(`${path}: cannot rewrite (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  return ok(now.value.filter((l) => l.line !== used.line));
}
