// SPDX-License-Identifier: MIT
// Command injection end to end (issue 9): the real daemon runs a knock door's start/stop
// templates full of shell metacharacters through its Runner when the real `postern knock`
// client knocks; a recording program writes the argv it got. And the bundle's
// `postern config uci` (what the procd init script runs) turns UCI values full of
// metacharacters into the same JSON strings. Payloads would create PWNED under any shell.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { labSkipReason } from '../lab/lab.ts';
import { quoteUci } from '../../src/config/uci.ts';
import { BUNDLE, bundleSkipReason, createWorld, eventually } from './harness.ts';

const dir = mkdtempSync(join(tmpdir(), 'postern-inject-e2e-'));
const PWNED = join(dir, 'pwned');
const RECORDER = join(dir, 'record-argv');
writeFileSync(RECORDER, '#!/usr/bin/env python3\nimport json, sys\nwith open(sys.argv[1], "w") as f:\n    json.dump(sys.argv[2:], f)\n');
chmodSync(RECORDER, 0o755);
const PAYLOADS = [
  `$(touch ${PWNED})`, `\`touch ${PWNED}\``, `; touch ${PWNED}`, `| touch ${PWNED}`, `&& touch ${PWNED}`, `\ntouch ${PWNED}`,
  `'; touch ${PWNED}; '`, `"; touch ${PWNED}; "`, `> ${PWNED}`, '$IFS', '*', '~', '#', 'a b', '\t', '-rf', '--', '${PATH}', '\\',
];

test.after(() => rmSync(dir, { recursive: true, force: true }));

test('knock door start/stop: metacharacters and %IP% stay inside their own argv element', { skip: labSkipReason() ?? bundleSkipReason() }, async (t) => {
  const startOut = join(dir, 'start.json');
  const stopOut = join(dir, 'stop.json');
  const door = {
    name: 'inject', sequence: ['7100', '7200'], cmd_timeout_s: 1,
    start: [RECORDER, startOut, ...PAYLOADS, '%IP%', `--src=%IP%;touch ${PWNED}`],
    stop: [RECORDER, stopOut, '-D', '%IP%$(id)', ...PAYLOADS],
  };
  const w = await createWorld({ backend: 'nft', tag: 'inj', config: { doors: [door] } });
  t.after(() => w.close());
  w.own(dir); // the commands run as the daemon's (non-root) user: it writes its argv record here
  await w.startDaemon();
  const r = await w.postern(w.lab.client, ['knock', w.lab.router.ip4, '7100', '7200']);
  assert.equal(r.code, 0, r.stderr);
  await eventually(() => existsSync(startOut), 4000, 'the start command');
  const ip = w.lab.client.ip4;
  assert.deepEqual(JSON.parse(readFileSync(startOut, 'utf8')), [...PAYLOADS, ip, `--src=${ip};touch ${PWNED}`]);
  await eventually(() => existsSync(stopOut), 5000, 'the stop command');
  assert.deepEqual(JSON.parse(readFileSync(stopOut, 'utf8')), ['-D', `${ip}$(id)`, ...PAYLOADS]);
  assert.equal(existsSync(PWNED), false, 'a payload reached a shell');
});

function run(argv: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BUNDLE, ...argv], (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }));
  });
}

test('postern config uci (the procd path): UCI values full of metacharacters are data in the JSON', { skip: bundleSkipReason() }, async () => {
  const cred = 'postern1:' + Buffer.alloc(36, 7).toString('base64url');
  let accepted = 0;
  for (const value of PAYLOADS) {
    const uci = join(dir, 'postern.uci');
    const out = join(dir, 'config.json');
    rmSync(out, { force: true });
    writeFileSync(uci, `config postern 'main'\n\toption enabled '1'\n\toption network ${quoteUci(value)}\n\toption database ${quoteUci(`/var/lib/postern/${value}`)}\n\toption device 'edge1'\n\tlist guarded 'tcp/22'\n`
      + `config key 'alice'\n\toption credential '${cred}'\n\tlist service 'tcp/22'\n`);
    const r = await run(['config', 'uci', uci, '--out', out]);
    if (r.code === 0) {
      accepted++;
      const cfg = JSON.parse(readFileSync(out, 'utf8')) as { state: { database: string } };
      assert.equal(cfg.state.database, `/var/lib/postern/${value}`);
    } else {
      assert.equal(r.code, 1, `${JSON.stringify(value)}: exit ${r.code} ${r.stderr}`);
      assert.match(r.stderr, /database|multi-line|quote/i, 'refused with the reason'); // UCI has no multi-line values
    }
  }
  assert.equal(existsSync(PWNED), false);
  assert.ok(accepted > PAYLOADS.length / 2, `only ${accepted} payloads were data in an accepted file: the accept path went untested`);
});
