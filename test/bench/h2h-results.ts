// SPDX-License-Identifier: MIT
// Where the head-to-head figures go: bench/results/<date>.md (the table, the targets, the
// machine) and <date>.json (the same rows and machine, for tools). Returns the Markdown.

import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { join } from 'node:path';
import { markdownTable, targetLines, targetsTable, type Row, type Scenario } from './h2h-report.ts';

export interface Machine {
  readonly date: string;
  readonly cpu: string;
  readonly nproc: number;
  readonly kernel: string;
  readonly node: string;
  readonly load1: number;
  readonly lscpu: string;
}

function text(file: string, args: readonly string[]): string {
  try {
    return execFileSync(file, args, { encoding: 'utf8', timeout: 10_000 }).trim();
  } catch {
    return 'unavailable';
  }
}

export function machine(): Machine {
  const lscpu = text('lscpu', []);
  return {
    date: new Date().toISOString(), cpu: /^Model name:\s*(.*)$/m.exec(lscpu)?.[1] ?? 'unknown', nproc: availableParallelism(),
    kernel: text('uname', ['-r']), node: process.version, load1: loadavg()[0] ?? 0, lscpu,
  };
}

export function resultsMarkdown(m: Machine, rows: readonly Row[], scenarios: readonly Scenario[], withLscpu = true): string {
  return [
    `# postern head-to-head benchmark, ${m.date}`, '',
    `Machine: ${m.cpu}, nproc ${m.nproc}, kernel ${m.kernel}, node ${m.node}, load average (1 min) at the end ${m.load1.toFixed(2)}.`,
    `Scenarios: ${scenarios.join(', ')}. Shared machine: figures are noisy; compare within one run.`, '',
    markdownTable(rows), '', '## Targets (issue 9)', '', targetsTable(targetLines(rows)), '',
    ...(withLscpu ? ['<details><summary>lscpu</summary>', '', '```', m.lscpu, '```', '', '</details>', ''] : []),
  ].join('\n');
}

/** Writes both files under `dir` and returns the Markdown to print (without lscpu). */
export function writeResults(dir: string, rows: readonly Row[], scenarios: readonly Scenario[]): string {
  const m = machine();
  const stem = m.date.slice(0, 19).replace(/:/g, '-');
  const md = resultsMarkdown(m, rows, scenarios);
  writeFileSync(join(dir, `${stem}.md`), md);
  writeFileSync(join(dir, `${stem}.json`), `${JSON.stringify({ machine: m, scenarios, rows, targets: targetLines(rows) }, null, 2)}\n`);
  return `${resultsMarkdown(m, rows, scenarios, false)}\nwritten: ${join(dir, `${stem}.md`)} and .json`;
}
