// SPDX-License-Identifier: MIT
// The bundle defines POSTERN_VERSION (build.sh, esbuild --define); running from source
// reads package.json's version instead.

import { readFileSync } from 'node:fs';

declare const POSTERN_VERSION: string | undefined;

function sourceVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export const VERSION: string = typeof POSTERN_VERSION === 'string' ? POSTERN_VERSION : sourceVersion();
