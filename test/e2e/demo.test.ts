// SPDX-License-Identifier: MIT
// `./build.sh demo` end to end (test/lab/demo.ts, as the README's first command runs it): it
// exits 0 with every expectation met, and leaves nothing behind (namespaces, processes,
// temporary files), also when interrupted with Ctrl-C half-way.

import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { IP_BIN, labSkipReason } from '../lab/lab.ts';
import { MOSQUITTO } from '../lab/demo-world.ts';
import { bundleSkipReason } from './harness.ts';

const DEMO = fileURLToPath(new URL('../lab/demo.ts', import.meta.url));
const skip = labSkipReason() ?? bundleSkipReason() ?? (existsSync(MOSQUITTO) ? undefined : 'needs mosquitto');
/** The demo takes ~30 s on an idle machine; a loaded CI runner gets generous slack. */
const DEMO_TIMEOUT_MS = 150_000;

interface Run { child: ChildProcess; out: () => string; done: Promise<{ code: number | null; signal: NodeJS.Signals | null }> }

/** Runs the demo with TMPDIR pointing at a directory of the test's, so its files can be checked. */
function startDemo(t: TestContext): { run: Run; tmp: string } {
  const tmp = mkdtempSync(join(tmpdir(), 'postern-demo-test-'));
  t.after(() => rmSync(tmp, { recursive: true, force: true }));
  const child = spawn(process.execPath, [DEMO], { env: { ...process.env, TMPDIR: tmp }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString('utf8'); });
  child.stderr.on('data', (d: Buffer) => { out += d.toString('utf8'); });
  const timer = setTimeout(() => child.kill('SIGKILL'), DEMO_TIMEOUT_MS);
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal }); });
  });
  t.after(() => { child.kill('SIGKILL'); });
  return { run: { child, out: () => out, done }, tmp };
}

function assertNothingLeft(pid: number | undefined, tmp: string): void {
  const namespaces = execFileSync(IP_BIN, ['netns', 'list'], { encoding: 'utf8' });
  assert.doesNotMatch(namespaces, new RegExp(`^pst-${String(pid)}-`, 'm'), 'the demo\'s namespaces are gone');
  assert.deepEqual(readdirSync(tmp), [], 'the demo\'s temporary directory is gone');
  // The daemon and mosquitto name a file under tmp on their command line (the namespaces'
  // other processes were killed with them: lab.ts deleteNamespaces).
  const survivors = readdirSync('/proc').filter((d) => /^\d+$/.test(d)).filter((d) => {
    try {
      return readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(tmp);
    } catch {
      return false; // exited while we looked
    }
  });
  assert.deepEqual(survivors, [], 'no process of the demo survives it');
}

test('the demo runs end to end: every expectation met, nothing left behind', { skip, timeout: DEMO_TIMEOUT_MS + 10_000 }, async (t) => {
  const { run, tmp } = startDemo(t);
  const { code } = await run.done;
  assert.equal(code, 0, run.out());
  for (const re of [/every expectation met/, /alerts \| .* alert replay x\d+ source=198\.18\.0\.3/, /^ +grants: 1 open$/m,
    /reason=knock_replay source=198\.18\.0\.3/, /grant opened" key=field-tech/]) assert.match(run.out(), re);
  assert.doesNotMatch(run.out(), /\x1b\[/, 'no colours when stdout is not a terminal');
  assertNothingLeft(run.child.pid, tmp);
});

test('the demo interrupted with Ctrl-C leaves nothing behind', { skip, timeout: DEMO_TIMEOUT_MS }, async (t) => {
  const { run, tmp } = startDemo(t);
  // Once the daemon, broker and alert watcher run: the moment with the most to clean up.
  await new Promise<void>((resolve, reject) => {
    const check = (): void => { if (/^2\. /m.test(run.out())) { run.child.stdout?.off('data', check); resolve(); } };
    run.child.stdout?.on('data', check);
    void run.done.then(() => reject(new Error(`the demo ended before step 2:\n${run.out()}`)));
  });
  run.child.kill('SIGINT');
  const { code } = await run.done;
  assert.equal(code, 130, run.out());
  assertNothingLeft(run.child.pid, tmp);
});
