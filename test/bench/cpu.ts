// SPDX-License-Identifier: MIT
// A daemon's CPU time for the benchmarks: utime + stime from /proc/PID/stat (fields 14 and
// 15, proc(5)), in seconds. The field list starts after the last ')' because the command
// name in parentheses may itself contain spaces and parentheses.

import { readFileSync } from 'node:fs';

/** USER_HZ: 100 on every Linux architecture postern targets (sysconf(_SC_CLK_TCK)). */
const CLK_TCK = 100;

export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}
