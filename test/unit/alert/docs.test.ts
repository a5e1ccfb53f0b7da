// SPDX-License-Identifier: MIT
// docs/mqtt.md prints the payload schemas; the tests validate real messages against the
// TypeBox ones. This keeps the two identical, and the example payloads valid.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Value } from '@sinclair/typebox/value';
import { AlertSchema, GrantSchema, StatsSchema, TOPIC_SCHEMAS } from '../../../src/alert/payloads.ts';

const DOC = readFileSync(new URL('../../../docs/mqtt.md', import.meta.url), 'utf8');

test('docs/mqtt.md shows exactly the schemas the code and tests use', () => {
  for (const [topic, schema] of TOPIC_SCHEMAS) {
    const m = new RegExp(`### Schema: ${topic}\\n\\n\`\`\`json\\n([\\s\\S]*?)\\n\`\`\``).exec(DOC);
    assert.ok(m?.[1], `docs/mqtt.md has no schema block for ${topic}`);
    assert.deepEqual(JSON.parse(m[1]), JSON.parse(JSON.stringify(schema)), `${topic} schema differs from src/alert/payloads.ts`);
  }
});

test('docs/mqtt.md example payloads validate', () => {
  const block = /## Example payloads\n\n```json\n([\s\S]*?)\n```/.exec(DOC)?.[1];
  assert.ok(block);
  const [alert, grant, stats] = block.split('\n').map((l) => JSON.parse(l) as unknown);
  assert.ok(Value.Check(AlertSchema, alert));
  assert.ok(Value.Check(GrantSchema, grant));
  assert.ok(Value.Check(StatsSchema, stats));
});
