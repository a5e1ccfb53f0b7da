// SPDX-License-Identifier: MIT
// `postern daemon` re-executes itself once with the memory settings that only work before V8
// and glibc start (src/cli/daemon.ts reexecTuned; issue 9 RSS growth): same pid, so the lab
// (like procd and systemd) keeps supervising the process it started. Root (network namespaces).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { bundleSkipReason, createWorld } from './harness.ts';
import { labSkipReason } from '../lab/lab.ts';

const skip = labSkipReason() ?? bundleSkipReason();

function procList(pid: number, file: 'cmdline' | 'environ'): string[] {
  return readFileSync(`/proc/${pid}/${file}`, 'utf8').split('\0').filter(Boolean);
}

test('the daemon runs with a 1 MB young generation, no TurboFan and one malloc arena, board flags kept after ours', { skip, timeout: 60_000 }, async () => {
  const w = await createWorld({ tag: 'tuned', nodeFlags: ['--max-old-space-size=64'] });
  try {
    const p = await w.startDaemon();
    const argv = procList(p.pid, 'cmdline');
    const env = procList(p.pid, 'environ');
    assert.equal(argv.filter((a) => a === '--max-semi-space-size=1').length, 1, argv.join(' '));
    // Maglev as the top tier: TurboFan's code pages and zones never join the RSS.
    assert.equal(argv.filter((a) => a === '--max-opt=2').length, 1, argv.join(' '));
    // gc() for the heap compactor (src/daemon/heap-compactor.ts), nothing else.
    assert.equal(argv.filter((a) => a === '--expose-gc').length, 1, argv.join(' '));
    // Ours first, the caller's after: a board that sets its own semi-space size wins.
    assert.ok(argv.indexOf('--max-semi-space-size=1') < argv.indexOf('--max-old-space-size=64'), argv.join(' '));
    assert.deepEqual(argv.slice(-3), ['daemon', '--config', w.configPath]);
    assert.ok(env.includes('MALLOC_ARENA_MAX=1'), 'MALLOC_ARENA_MAX=1 in the environment');
    assert.ok(env.includes('MALLOC_MMAP_THRESHOLD_=8192'), 'zone segments and Buffer slabs in mappings of their own');
    assert.ok(env.includes('POSTERN_DAEMON_TUNED=1'), 'marker set: no second re-exec');
    // It still does its job after the re-exec: a valid packet opens a grant.
    await w.sendRaw(w.lab.client, w.packet());
    await p.waitForOutput(/msg="grant opened"/, 5_000);
  } finally {
    await w.close();
  }
});
