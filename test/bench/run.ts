// SPDX-License-Identifier: MIT
// Benchmark entry: node test/bench/run.ts [core|open|grants|knock|flood|h2h|all] [--backend all|nft|iptables]
// [--scenario LIST] (defaults: all, all, every h2h scenario). Also ./build.sh bench [NAME] [--backend B] and npm run bench -- NAME
// --backend B. --backend picks the firewall backends that `open` and `grants` measure.
// Benchmarks print figures and ratios; they never assert timings. Exit 0 when every selected
// benchmark ran (or skipped with a reason), 1 when one failed, 2 on a usage error.

import { availableParallelism, cpus, loadavg } from 'node:os';
import type { Backend } from '../e2e/harness.ts';
import { SCENARIOS, type Scenario } from './h2h-report.ts';

/** The harness's BACKENDS, in its order (a unit test keeps the two equal); listed here so
 *  that parsing arguments loads nothing else. */
export const BENCH_BACKENDS = ['nft', 'iptables'] as const satisfies readonly Backend[];

const BENCHES = {
  core: {
    about: 'hot-path costs: unknown-key rejection, full verification, replay ring, CMAC, fwknop and asymmetric packets (ns/op)',
    byBackend: false,
    run: async (): Promise<void> => {
      const { formatCoreBench, runCoreBench } = await import('./core.ts');
      console.log(formatCoreBench(runCoreBench()));
    },
  },
  open: {
    about: 'time-to-open and idle RSS per backend in a network-namespace lab, against fwknopd when installed (root)',
    byBackend: true,
    run: async (backends: readonly Backend[]): Promise<void> => {
      const { runOpenBench } = await import('./open.ts');
      await runOpenBench((line) => console.log(line), backends);
    },
  },
  grants: {
    about: 'cost of 1,000 concurrent grants per backend: adds, reconcile, ruleset size, RSS (root)',
    byBackend: true,
    run: async (backends: readonly Backend[]): Promise<void> => {
      const { runGrantsBench } = await import('./grants.ts');
      await runGrantsBench((line) => console.log(line), backends);
    },
  },
  knock: {
    about: 'time from last knock to open port, and a 100k spoofed-first-knock flood (CPU, RSS); against knockd when installed (root)',
    byBackend: true,
    run: async (backends: readonly Backend[]): Promise<void> => {
      const { runKnockBench } = await import('./knock.ts');
      await runKnockBench((line) => console.log(line), backends);
    },
  },
  flood: {
    about: 'state database under 10 s junk and 10 s replayed-packet floods: SQLite writes/s, bytes written (root)',
    byBackend: true,
    run: async (backends: readonly Backend[]): Promise<void> => {
      const { runFloodBench } = await import('./flood.ts');
      await runFloodBench((line) => console.log(line), backends);
    },
  },
  h2h: {
    about: 'head-to-head against fwknopd (pcap, udp) and knockd: time-to-open, floods, replay, memory; writes bench/results/ (root)',
    byBackend: true,
    run: async (backends: readonly Backend[], scenarios: readonly Scenario[] = SCENARIOS): Promise<void> => {
      const { runH2hBench } = await import('./h2h.ts');
      await runH2hBench((line) => console.log(line), backends, scenarios);
    },
  },
} as const;

export type BenchName = keyof typeof BENCHES;

export interface BenchArgs {
  readonly names: readonly BenchName[];
  readonly backends: readonly Backend[];
  /** the h2h scenarios to run (every one unless --scenario) */
  readonly scenarios: readonly Scenario[];
}

export type ParsedArgs = BenchArgs | { readonly help: true } | { readonly error: string };

function usage(): string {
  const rows = Object.entries(BENCHES).map(([name, b]) => `  ${name.padEnd(6)} ${b.about}`);
  return [
    'usage: node test/bench/run.ts [core|open|grants|knock|flood|h2h|all] [--backend all|nft|iptables] [--scenario LIST]   (defaults: all, all, all)',
    ...rows,
    '  all    every benchmark above, in order',
    '  --backend  the firewall backends that open, grants, knock, flood and h2h measure (all: nft, then iptables)',
    `  --scenario  h2h only: comma-separated, from ${SCENARIOS.join(', ')}`,
  ].join('\n');
}

function isBench(name: string): name is BenchName {
  return Object.hasOwn(BENCHES, name);
}

function isBackend(name: string): name is Backend {
  return (BENCH_BACKENDS as readonly string[]).includes(name);
}

function backendsFor(value: string): readonly Backend[] | undefined {
  if (value === 'all') return BENCH_BACKENDS;
  return isBackend(value) ? [value] : undefined;
}

/** Splits argv into positionals and the one value of each option (`--opt X` or `--opt=X`). */
function split(args: readonly string[]): { positional: string[]; backend: string | undefined; scenario: string | undefined } | string {
  const positional: string[] = [];
  const opts: Record<'backend' | 'scenario', string | undefined> = { backend: undefined, scenario: undefined };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const name = (['backend', 'scenario'] as const).find((o) => a === `--${o}` || a.startsWith(`--${o}=`));
    if (name === undefined) {
      if (a.startsWith('-')) return `unknown option ${JSON.stringify(a)}`;
      positional.push(a);
      continue;
    }
    if (opts[name] !== undefined) return `--${name} given twice`;
    const value = a.includes('=') ? a.slice(a.indexOf('=') + 1) : args[++i];
    if (value === undefined || value === '') return name === 'backend' ? '--backend needs a value: all, nft or iptables' : '--scenario needs a value';
    opts[name] = value;
  }
  return { positional, ...opts };
}

function isScenario(name: string): name is Scenario {
  return (SCENARIOS as readonly string[]).includes(name);
}

/** "a,b" to h2h scenarios, or the first unknown name. */
function scenariosFor(value: string | undefined): readonly Scenario[] | string {
  if (value === undefined || value === 'all') return SCENARIOS;
  const names = value.split(',');
  const bad = names.find((n) => !isScenario(n));
  return bad === undefined ? names.filter(isScenario) : `unknown scenario ${JSON.stringify(bad)} (${SCENARIOS.join(', ')})`;
}

/** Pure: argv (after the script) to what to run, a help request, or a usage error. */
export function parseBenchArgs(args: readonly string[]): ParsedArgs {
  if (args.some((a) => a === '-h' || a === '--help' || a === 'help')) return { help: true };
  const parts = split(args);
  if (typeof parts === 'string') return { error: parts };
  if (parts.positional.length > 1) return { error: `one benchmark at a time, got ${JSON.stringify(parts.positional.join(' '))}` };
  const name = parts.positional[0] ?? 'all';
  const names = name === 'all' ? Object.keys(BENCHES).filter(isBench) : isBench(name) ? [name] : undefined;
  if (names === undefined) return { error: `unknown benchmark ${JSON.stringify(name)}` };
  const backends = backendsFor(parts.backend ?? 'all');
  if (backends === undefined) return { error: `unknown backend ${JSON.stringify(parts.backend)} (all, nft or iptables)` };
  if (parts.backend !== undefined && !names.some((n) => BENCHES[n].byBackend)) {
    return { error: `${name} does not use a firewall backend: --backend applies to open, grants, knock, flood and h2h` };
  }
  const scenarios = scenariosFor(parts.scenario);
  if (typeof scenarios === 'string') return { error: scenarios };
  if (parts.scenario !== undefined && !names.includes('h2h')) return { error: '--scenario applies to h2h only' };
  return { names, backends, scenarios };
}

/** Figures only mean something beside the machine and its load: other work on a 2-core
 *  box moves every number here, so the header says how busy it was. */
function machineLine(): string {
  const [load1 = 0] = loadavg();
  return `machine: ${cpus()[0]?.model ?? 'unknown CPU'} x ${availableParallelism()}, load average (1 min) ${load1.toFixed(2)}, node ${process.version}`;
}

async function main(args: readonly string[]): Promise<number> {
  const parsed = parseBenchArgs(args);
  if ('help' in parsed) {
    console.log(usage());
    return 0;
  }
  if ('error' in parsed) {
    process.stderr.write(`bench: ${parsed.error}\n${usage()}\n`);
    return 2;
  }
  let status = 0;
  console.log(machineLine());
  for (const name of parsed.names) {
    console.log('');
    try {
      await BENCHES[name].run(parsed.backends, parsed.scenarios);
    } catch (err) {
      process.stderr.write(`bench ${name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      status = 1;
    }
  }
  return status;
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
