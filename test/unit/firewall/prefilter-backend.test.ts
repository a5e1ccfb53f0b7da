// SPDX-License-Identifier: MIT
// How the backends carry the kernel prefilter (src/firewall/prefilter.ts) through start,
// the periodic re-start and update, over the simulated iptables (dry-run.ts) and a scripted
// nft: a refused prefilter never stops guarding and is not retried every interval; the
// iptables drop count survives the chain rebuilds that reset rule counters. The real-kernel
// proof is test/e2e/prefilter.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SimulatedTable, simulatedRunner } from '../../../src/firewall/dry-run.ts';
import type { RunOptions, RunResult, Runner } from '../../../src/firewall/exec.ts';
import { DEFAULT_IPTABLES_BINARIES, IptablesBackend } from '../../../src/firewall/iptables.ts';
import { NftBackend } from '../../../src/firewall/nft.ts';
import type { GuardSpec } from '../../../src/firewall/types.ts';
import { memoryLogger } from '../../../src/log/logger.ts';
import { ManualClock } from '../../../src/platform/clock.ts';

const SPEC: GuardSpec = {
  guarded: [{ proto: 'tcp', port: 22 }],
  capture: [{ proto: 'udp', port: 62442 }],
  spaPrefilter: [{ port: 62442, shapes: [{ minLen: 45, maxLen: 512, keyIds: [0x7a3e91c4] }] }],
};

/** The simulated iptables, where a restore carrying a u32 rule fails like a kernel without
 *  xt_u32 (when `u32` is false), and `-v -S` answers with the drop rule's counter. */
function iptablesRig(opts: { u32: boolean }) {
  const sim = simulatedRunner(DEFAULT_IPTABLES_BINARIES, { 4: new SimulatedTable(), 6: new SimulatedTable() });
  const restores: string[] = [];
  const counter = { packets: 0 };
  const runner: Runner = async (argv, o?: RunOptions): Promise<RunResult> => {
    if (argv.includes('-v')) {
      return { code: 0, stderr: '', stdout: `-N POSTERN-IN\n-A POSTERN-IN -p udp -m udp --dport 62442 -m comment --comment "postern:prefilter" -c ${counter.packets} 0 -j DROP\n` };
    }
    if (argv[0]?.endsWith('-restore')) {
      restores.push(o?.input ?? '');
      if (!opts.u32 && (o?.input ?? '').includes('-m u32')) return { code: 2, stdout: '', stderr: "iptables-restore: line 5 failed: Couldn't load match `u32'" };
    }
    return sim(argv, o);
  };
  const logger = memoryLogger();
  return { backend: new IptablesBackend({ runner, logger }), restores, counter, logger };
}

test('iptables without xt_u32: guarding goes on without the prefilter, status says why, the periodic start does not retry', async () => {
  const r = iptablesRig({ u32: false });
  await r.backend.start(SPEC);
  const s = await r.backend.prefilterStatus();
  assert.equal(s.state, 'refused');
  assert.match(s.reason ?? '', /u32/);
  assert.ok(r.restores.some((x) => x.includes('-A POSTERN-IN -p tcp -m tcp --dport 22 -j DROP') && !x.includes('u32')), 'guarded without it');
  const before = r.restores.length;
  await r.backend.start(SPEC); // what the daemon's maintenance does every interval
  assert.ok(r.restores.slice(before).every((x) => !x.includes('u32')), 'not retried by the periodic start');
  const mid = r.restores.length;
  await r.backend.update(SPEC); // an operator's reload retries
  assert.ok(r.restores.slice(mid).some((x) => x.includes('u32')));
  assert.equal((await r.backend.prefilterStatus()).state, 'refused');
});

test('iptables: the drop count survives rebuilds of the input chain (which reset rule counters)', async () => {
  const r = iptablesRig({ u32: true });
  await r.backend.start(SPEC);
  r.counter.packets = 40;
  assert.deepEqual(await r.backend.prefilterStatus(), { state: 'on', dropped: 80 }); // IPv4 + IPv6 listings
  await r.backend.start(SPEC); // intact: nothing rebuilt, the kernel's counters go on
  assert.deepEqual(await r.backend.prefilterStatus(), { state: 'on', dropped: 80 });
  await r.backend.update(SPEC); // a reload rebuilds: the kernel's counters restart from 0
  r.counter.packets = 5;
  assert.deepEqual(await r.backend.prefilterStatus(), { state: 'on', dropped: 90 });
  const { spaPrefilter: _, ...off } = SPEC;
  await r.backend.update(off);
  assert.deepEqual(await r.backend.prefilterStatus(), { state: 'off' });
});

test('nft: a refused prefilter falls back to guarding without it; the counter is read from its JSON listing', async () => {
  const scripts: string[] = [];
  let refuse = true;
  const runner: Runner = async (argv, o?: RunOptions): Promise<RunResult> => {
    const cmd = argv.join(' ');
    if (cmd === 'nft -f -') {
      scripts.push(o?.input ?? '');
      return refuse && (o?.input ?? '').includes('@th,64,32') ? { code: 1, stdout: '', stderr: 'Error: syntax error' } : { code: 0, stdout: '', stderr: '' };
    }
    if (cmd === 'nft -j list counter inet postern spa_prefilter') {
      return { code: 0, stderr: '', stdout: '{"nftables": [{"counter": {"family": "inet", "name": "spa_prefilter", "table": "postern", "packets": 17, "bytes": 1}}]}' };
    }
    return { code: 0, stdout: '{"nftables": []}', stderr: '' };
  };
  const backend = new NftBackend({ runner, logger: memoryLogger(), clock: new ManualClock() });
  await backend.start(SPEC);
  assert.equal((await backend.prefilterStatus()).state, 'refused');
  assert.ok(scripts.at(-1)?.includes('@guarded drop') && !scripts.at(-1)?.includes('@th,64,32'), 'guarded without it');
  const n = scripts.length;
  await backend.start(SPEC);
  assert.ok(scripts.slice(n).every((x) => !x.includes('@th,64,32')), 'not retried by the periodic start');
  refuse = false;
  await backend.update(SPEC);
  assert.deepEqual(await backend.prefilterStatus(), { state: 'on', dropped: 17 });
});
