// SPDX-License-Identifier: MIT
// docs/security.md backs each promise with tests, by file and test name: every cited file
// must exist and every quoted name must be a test in the file cited just before it, so
// the document cannot drift from the suite (STYLE.md: docs are part of the feature).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DOC = readFileSync(`${ROOT}docs/security.md`, 'utf8');
/** `test/...ts` optionally followed by one or more "quoted test names" separated by ' and '. */
const CITE = /`(test\/[\w/.-]+\.ts)`((?:\s*(?:and\s*)?"[^"]+")*)/g;

test('docs/security.md: every cited test file exists and every quoted test name is in it', () => {
  const cites = [...DOC.matchAll(CITE)];
  assert.ok(cites.length >= 20, `only ${cites.length} citations found`);
  let names = 0;
  for (const [, path = '', quoted = ''] of cites) {
    assert.ok(existsSync(`${ROOT}${path}`), `${path} does not exist`);
    const source = readFileSync(`${ROOT}${path}`, 'utf8').replaceAll("\\'", "'"); // 'client\'s' in a string
    for (const [, name = ''] of quoted.matchAll(/"([^"]+)"/g)) {
      // A name may be cut with "..." (long names) and may quote `backticks` in the source.
      const head = name.replace(/\s+/g, ' ').split(' ...')[0] ?? ''; // a quote may wrap lines
      assert.ok(source.includes(head), `${path} has no test named "${head}"`);
      names++;
    }
  }
  assert.ok(names >= 20, `only ${names} test names checked`);
});

test('docs/security.md has a Benchmarks section that points at docs/bench.md and bench/results/', () => {
  const section = DOC.split(/^## Benchmarks$/m)[1] ?? '';
  assert.match(section, /\(bench\.md\)/);
  assert.match(section, /bench\/results\//);
  assert.doesNotMatch(DOC, /TODO|TBD|XXX|placeholder/i);
});
