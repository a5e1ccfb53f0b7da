// SPDX-License-Identifier: MIT
// The `memory` scenario of the head-to-head benchmark (h2h.ts): a daemon's VmRSS idle, after
// JUNK random datagrams to its SPA port at the sender's full rate, and (postern) after GRANTS
// grants opened and expired. The grants are GRANTS distinct allowed addresses (10.x; the key
// has require_source_address off) in GRANTS valid packets, sent from the client by
// udp-blast --payload-file at GRANT_PPS, each for GRANT_S second; then the daemon's status is
// polled until no grant is open. Bounded in count and time throughout.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from '../e2e/harness.ts';
import { readRss } from './open.ts';
import { posternStatus, type Daemon } from './h2h-daemons.ts';
import type { Row } from './h2h-report.ts';
import { cpuSeconds } from './cpu.ts';
import type { Bins } from './h2h.ts';

const JUNK = 1_000_000;
const JUNK_MAX_S = 30;
const GRANTS = 10_000;
const GRANT_PPS = 1_000;
const GRANT_S = 1;
const DRAIN_MAX_MS = 30_000;
const SETTLE_MS = 2_000;
/** Later RSS readings after the grants closed, in seconds (the note under the table). */
const LATER_S = [5, 10];

/** 10.0.0.1, 10.0.0.2, ...: one allowed address per grant. */
export function address(i: number): string {
  const n = i + 1;
  return `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
}

/** Counter increases between two status reads, the non-zero ones: "accepted 9000, grant_limit 12". */
export function deltas(a: Readonly<Record<string, number>>, b: Readonly<Record<string, number>>): string {
  return Object.entries(b).map(([k, v]) => [k, v - (a[k] ?? 0)] as const).filter(([, v]) => v !== 0).map(([k, v]) => `${k} ${v}`).join(', ');
}

/** Packets classified between two status reads: every counter but `closed` (grants closing). */
function handled(a: Readonly<Record<string, number>>, b: Readonly<Record<string, number>>): number {
  return Object.entries(b).filter(([k]) => k !== 'closed').reduce((n, [k, v]) => n + v - (a[k] ?? 0), 0);
}

/** Sends GRANTS grants and waits until every one has expired: how many were accepted, and
 *  every counter that moved. */
async function grantCycle(d: Daemon, bins: Bins): Promise<{ accepted: number; note: string }> {
  const w = d.world!;
  const s0 = await posternStatus(w);
  const drops0 = (await d.counts()).kernelDrops ?? 0;
  const file = join(w.dir, 'grants.hex');
  const hex = Array.from({ length: GRANTS }, (_, i) => w.packet({ allowAddress: address(i), durationS: GRANT_S }).toString('hex'));
  writeFileSync(file, `${hex.join('\n')}\n`);
  const seconds = Math.ceil(GRANTS / GRANT_PPS) + 5;
  const r = await d.lab.exec(d.lab.client, [bins.udp, '--to', d.lab.router.ip4, '--port', String(d.spaPort), '--count', String(GRANTS), '--seconds', String(seconds), '--pps', String(GRANT_PPS), '--payload-file', file], { timeoutMs: (seconds + 10) * 1000 });
  if (r.code !== 0) throw new Error(`grant sender exited ${r.code}: ${r.stderr}`);
  // Done when every packet has been classified (the daemon may still be reading them from
  // its socket buffer when the sender ends) and no grant is open: a moment with no grant
  // open alone is not the end (the earlier check stopped there, mid-burst).
  const t0 = performance.now();
  let s1 = await posternStatus(w);
  while (performance.now() - t0 < DRAIN_MAX_MS && (s1.grantsOpen > 0 || handled(s0.counters, s1.counters) < GRANTS)) {
    await sleep(500);
    s1 = await posternStatus(w);
  }
  const drainS = ((performance.now() - t0) / 1000).toFixed(1);
  const drops = ((await d.counts()).kernelDrops ?? 0) - drops0;
  const left = s1.grantsOpen > 0 || handled(s0.counters, s1.counters) < GRANTS
    ? `; ${handled(s0.counters, s1.counters)} packets classified and ${s1.grantsOpen} grants still open ${DRAIN_MAX_MS / 1000} s after the last packet`
    : `; all classified and closed ${drainS} s after the last packet`;
  return { accepted: (s1.counters['accepted'] ?? 0) - (s0.counters['accepted'] ?? 0), note: `${deltas(s0.counters, s1.counters)}; capture socket kernel drops ${drops}${left}` };
}

export async function runMemory(d: Daemon, bins: Bins): Promise<Row> {
  await sleep(SETTLE_MS);
  const idle = readRss(d.pid)?.mb;
  const cpu0 = cpuSeconds(d.pid);
  const counts0 = await d.counts();
  const junk = await d.lab.exec(d.lab.attacker, [bins.udp, '--to', d.lab.router.ip4, '--port', String(d.spaPort), '--count', String(JUNK), '--seconds', String(JUNK_MAX_S), '--seed', '5'], { timeoutMs: (JUNK_MAX_S + 10) * 1000 });
  if (junk.code !== 0) throw new Error(`junk sender exited ${junk.code}: ${junk.stderr}`);
  const sent = JSON.parse(junk.stdout.trim()) as { sent: number; ms: number };
  await sleep(SETTLE_MS);
  const afterJunk = readRss(d.pid)?.mb;
  const counts1 = await d.counts();
  const granted = d.world ? await grantCycle(d, bins) : undefined;
  if (granted !== undefined) await sleep(SETTLE_MS);
  const afterGrants = granted === undefined ? undefined : readRss(d.pid)?.mb;
  // How RSS goes on once the grants are gone (the row shows the first of these).
  const later: string[] = [];
  for (const at of granted === undefined ? [] : LATER_S) {
    await sleep(at * 1000 - (LATER_S[LATER_S.indexOf(at) - 1] ?? SETTLE_MS / 1000) * 1000);
    later.push(`${at} s ${readRss(d.pid)?.mb.toFixed(1) ?? '?'} MB`);
  }
  const note = granted && `${d.name}, ${GRANTS} grant packets at ${GRANT_PPS}/s, ${GRANT_S} s each: ${granted.note}; RSS after the last grant closed: ${SETTLE_MS / 1000} s ${afterGrants?.toFixed(1) ?? '?'} MB, ${later.join(', ')}`;
  return {
    daemon: d.name, scenario: 'memory', sent: sent.sent, floodMs: sent.ms, cpuS: cpuSeconds(d.pid) - cpu0,
    ...(idle !== undefined && { rssBeforeMb: idle }), ...(afterJunk !== undefined && { rssJunkMb: afterJunk, rssAfterMb: afterJunk }),
    ...(afterGrants !== undefined && { rssGrantsMb: afterGrants }), ...(granted !== undefined && { grants: granted.accepted }), ...(note !== undefined && { note }),
    ...(counts0.processed !== undefined && counts1.processed !== undefined && { processed: counts1.processed - counts0.processed }),
    ...(counts0.kernelDrops !== undefined && counts1.kernelDrops !== undefined && { kernelDrops: counts1.kernelDrops - counts0.kernelDrops }),
    ...(counts0.prefiltered !== undefined && counts1.prefiltered !== undefined && { prefiltered: counts1.prefiltered - counts0.prefiltered }),
  };
}
