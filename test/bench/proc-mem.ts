// SPDX-License-Identifier: MIT
// A daemon's memory for the development benchmarks (mem-flood.ts, perf-flood.ts), from
// /proc/PID/status (VmRSS, RssAnon, RssFile; proc(5)) and /proc/PID/smaps (Rss per mapping).

import { readFileSync } from 'node:fs';

export interface MemStatus {
  /** MB */
  readonly rss: number;
  readonly anon: number;
  readonly file: number;
}

export function memStatus(pid: number): MemStatus {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const mb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? NaN) / 1024;
  return { rss: mb('VmRSS'), anon: mb('RssAnon'), file: mb('RssFile') };
}

/** Rss (kB) per mapping, keyed by start address, size and name ([anon] for none). */
export function smaps(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  let key = '';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) key = `${head[1]} ${(parseInt(head[2]!, 16) - parseInt(head[1]!, 16)) >> 10}kB ${head[3] || '[anon]'}`;
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) out.set(key, Number(rss[1]));
  }
  return out;
}
