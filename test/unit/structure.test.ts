// SPDX-License-Identifier: MIT
// Architecture rules as a test (STYLE.md principles 1, 8, 15 and "one importer per native
// or heavy dependency"): they hold because a machine checks them, not because we remember.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

function files(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)));
}

const SRC = files('src');
const read = (f: string) => readFileSync(join(ROOT, f), 'utf8');
const code = (f: string) => read(f).replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');

/** Modules allowed to use something, by path prefix. */
const ONLY: [RegExp, string[], string][] = [
  [/from 'node:child_process'|require\('child_process'\)/, ['src/firewall/exec.ts', 'src/cli/ssh.ts'], 'child processes'],
  [/require\('raw-socket'\)|from 'raw-socket'/, ['src/capture/'], 'raw-socket'],
  [/require\('better-sqlite3'\)|from 'better-sqlite3'/, ['src/store/'], 'better-sqlite3'],
  [/from 'mqtt'|require\('mqtt'\)/, ['src/alert/'], 'mqtt'],
  [/\bDate\.now\(|performance\.now\(/, ['src/platform/', 'src/cli/'], 'the clock (daemon code takes a Clock)'],
];

test('one importer per native or heavy dependency; the clock is injected', () => {
  for (const [re, allowed, what] of ONLY) {
    for (const f of SRC) {
      if (re.test(code(f))) assert.ok(allowed.some((a) => f.startsWith(a)), `${f} uses ${what}; only ${allowed.join(', ')} may`);
    }
  }
});

test('pure modules do no I/O', () => {
  const pure = SRC.filter((f) => /^src\/(wire|crypto|spa|policy|pipeline|board|knock)\//.test(f));
  assert.ok(pure.length > 10);
  for (const f of pure) {
    assert.doesNotMatch(code(f), /from 'node:(fs|net|dgram|child_process|http|https|os)'/, `${f} must stay pure`);
  }
});

test('every source and test file starts with an SPDX line; no any in src', () => {
  for (const f of [...SRC, ...files('test')]) {
    assert.match(read(f), /^(#!.*\n)?\/\/ SPDX-License-Identifier: MIT\n/, `${f} lacks the SPDX line`);
  }
  for (const f of SRC) assert.doesNotMatch(code(f), /:\s*any\b|as any\b|<any>/, `${f} uses any`);
});

test('no TODO, FIXME or XXX markers in src', () => {
  for (const f of SRC) assert.doesNotMatch(read(f), /\b(TODO|FIXME|XXX)\b/, f);
});
