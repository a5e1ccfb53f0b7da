// SPDX-License-Identifier: MIT
// Memory budget (issue 8): the daemon's RSS idle and after a bounded junk flood, with each
// board's Node flags, on this x86_64 host. Figures are printed, never asserted (the machine
// is shared; DESIGN.md fact 9 puts Node at ~40-45 MB idle). The arm64 figures come from
// test/board/emulated.test.ts (under qemu-user, which adds its own translation cache).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { SPA_PORT, bundleSkipReason, createWorld } from '../e2e/harness.ts';
import { labSkipReason } from '../lab/lab.ts';
import { runProbe, type UdpFloodResult } from '../lab/net-probe.ts';
import { validateBoard } from '../../src/board/schema.ts';

const skip = labSkipReason() ?? bundleSkipReason();
const FLOOD_PACKETS = 20_000;
const FLOOD_MAX_S = 20;

function rssMb(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Math.round(Number(m?.[1]) / 102.4) / 10;
}

function boardFlags(name: string): string[] {
  const r = validateBoard(JSON.parse(readFileSync(new URL(`../../board/${name}/board.json`, import.meta.url), 'utf8')), name);
  assert.ok(r.ok);
  return [...r.board.node.flags];
}

for (const board of ['rpi-arm64', 'openwrt-aarch64']) {
  test(`memory with ${board}'s Node flags on x86_64: idle and after ${FLOOD_PACKETS} junk packets (printed)`, { skip }, async (t) => {
    const flags = boardFlags(board);
    const world = await createWorld({ backend: 'nft', nodeFlags: flags, tag: 'mem' });
    t.after(() => world.close());
    const daemon = await world.startDaemon();
    await new Promise((r) => setTimeout(r, 1000));
    const idle = rssMb(daemon.pid);
    const flood = await runProbe<UdpFloodResult>(world.lab, world.lab.attacker, ['udp-flood', world.lab.router.ip4, SPA_PORT, FLOOD_PACKETS, FLOOD_MAX_S, 7]);
    const peak = rssMb(daemon.pid);
    await new Promise((r) => setTimeout(r, 2000));
    process.stdout.write(`# ${board} flags [${flags.join(' ')}] x86_64 daemon RSS: idle ${idle} MB; after ${flood.sent} junk packets in ${flood.ms} ms ${peak} MB; 2 s later ${rssMb(daemon.pid)} MB\n`);
    assert.ok(flood.sent > 0);
    assert.match(daemon.output(), /postern started/);
  });
}
