// SPDX-License-Identifier: MIT
// spawnRunner and prefixRunner (src/firewall/exec.ts) against real child processes: the
// pinned Node itself (process.execPath), so the test needs no other binary.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_OUTPUT_CHARS, prefixRunner, spawnRunner } from '../../../src/firewall/exec.ts';
import type { RunOptions } from '../../../src/firewall/exec.ts';

const node = (code: string): string[] => [process.execPath, '-e', code];

describe('spawnRunner', () => {
  it('returns stdout, stderr and the exit code without rejecting on failure', async () => {
    const r = await spawnRunner(node('process.stdout.write("out"); process.stderr.write("err"); process.exit(3)'));
    assert.deepEqual(r, { code: 3, stdout: 'out', stderr: 'err' });
  });

  it('writes input to stdin and closes it', async () => {
    const echo = 'let s=""; process.stdin.on("data", d => s += d).on("end", () => process.stdout.write(s.toUpperCase()))';
    const r = await spawnRunner(node(echo), { input: '*filter\nCOMMIT\n' });
    assert.deepEqual(r, { code: 0, stdout: '*FILTER\nCOMMIT\n', stderr: '' });
  });

  it('gives /dev/null as stdin when there is no input', async () => {
    const r = await spawnRunner(node('let n=0; process.stdin.on("data", d => n += d.length).on("end", () => console.log(n))'));
    assert.equal(r.stdout, '0\n');
  });

  it('passes argv verbatim, never through a shell', async () => {
    const tricky = ['$(id)', '; rm -rf /', '"quoted" \'single\'', 'a b\nc'];
    const r = await spawnRunner([...node('console.log(JSON.stringify(process.argv.slice(1)))'), ...tricky]);
    assert.deepEqual(JSON.parse(r.stdout), tricky);
  });

  it('survives a child that exits without reading a large input (EPIPE)', async () => {
    const r = await spawnRunner(node('process.exit(0)'), { input: 'x'.repeat(4 * 1024 * 1024) });
    assert.equal(r.code, 0);
  });

  it('kills a child that outlives its timeout and reports 128 + SIGKILL', async () => {
    const t0 = performance.now();
    const r = await spawnRunner(node('setTimeout(() => {}, 60_000)'), { timeoutMs: 200 });
    assert.equal(r.code, 137);
    assert.match(r.stderr, /killed \(timeout 200 ms\)/);
    assert.ok(performance.now() - t0 < 5_000);
  });

  it('kills a child whose output passes the cap and reports failure', async () => {
    const r = await spawnRunner(node(`process.stdout.write("x".repeat(${MAX_OUTPUT_CHARS} + 10))`));
    assert.equal(r.code, 137);
    assert.match(r.stderr, /output exceeded \d+ characters; killed$/);
    assert.ok(r.stdout.length <= MAX_OUTPUT_CHARS + 1024 * 1024);
  });

  it('maps death by another signal to 128 + its number', async () => {
    const r = await spawnRunner(node('process.kill(process.pid, "SIGTERM"); setTimeout(() => {}, 5_000)'));
    assert.equal(r.code, 143);
  });

  it('rejects with the binary name when it cannot be spawned', async () => {
    await assert.rejects(spawnRunner(['/nonexistent/iptables-restore', '-w']), /cannot run \/nonexistent\/iptables-restore: ENOENT/);
    await assert.rejects(spawnRunner([]), /empty argv/);
  });
});

describe('prefixRunner', () => {
  it('prepends the prefix and passes options through', async () => {
    const seen: [readonly string[], RunOptions | undefined][] = [];
    const inner = async (argv: readonly string[], opts?: RunOptions) => {
      seen.push([argv, opts]);
      return { code: 0, stdout: '', stderr: '' };
    };
    await prefixRunner(['ip', 'netns', 'exec', 'ns1'], inner)(['iptables', '-w', '-S'], { input: 'x' });
    assert.deepEqual(seen, [[['ip', 'netns', 'exec', 'ns1', 'iptables', '-w', '-S'], { input: 'x' }]]);
  });

  it('composes with spawnRunner', async () => {
    const r = await prefixRunner([process.execPath, '-e'], spawnRunner)(['console.log(40 + 2)']);
    assert.equal(r.stdout, '42\n');
  });
});
