// SPDX-License-Identifier: MIT
// Benchmark entry: node test/bench/run.ts [core|open|grants|knock|flood|all] [--backend all|nft|iptables]
// (defaults: all, all). Also ./build.sh bench [NAME] [--backend B] and npm run bench -- NAME
// --backend B. --backend picks the firewall backends that `open` and `grants` measure.
// Benchmarks print figures and ratios; they never assert timings. Exit 0 when every selected
// benchmark ran (or skipped with a reason), 1 when one failed, 2 on a usage error.

import { availableParallelism, cpus, loadavg } from 'node:os';
import type { Backend } from '../e2e/harness.ts';

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
} as const;

export type BenchName = keyof typeof BENCHES;

export interface BenchArgs {
  readonly names: readonly BenchName[];
  readonly backends: readonly Backend[];
}

export type ParsedArgs = BenchArgs | { readonly help: true } | { readonly error: string };

function usage(): string {
  const rows = Object.entries(BENCHES).map(([name, b]) => `  ${name.padEnd(6)} ${b.about}`);
  return [
    'usage: node test/bench/run.ts [core|open|grants|knock|flood|all] [--backend all|nft|iptables]   (defaults: all, all)',
    ...rows,
    '  all    every benchmark above, in order',
    '  --backend  the firewall backends that open, grants, knock and flood measure (all: nft, then iptables)',
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

/** Splits argv into positionals and the one --backend value (as `--backend X` or `--backend=X`). */
function split(args: readonly string[]): { positional: string[]; backend: string | undefined } | string {
  const positional: string[] = [];
  let backend: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const eq = a.startsWith('--backend=') ? a.slice('--backend='.length) : undefined;
    if (a !== '--backend' && eq === undefined) {
      if (a.startsWith('-')) return `unknown option ${JSON.stringify(a)}`;
      positional.push(a);
      continue;
    }
    if (backend !== undefined) return '--backend given twice';
    backend = eq ?? args[++i];
    if (backend === undefined || backend === '') return '--backend needs a value: all, nft or iptables';
  }
  return { positional, backend };
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
    return { error: `${name} does not use a firewall backend: --backend applies to open, grants, knock and flood` };
  }
  return { names, backends };
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
      await BENCHES[name].run(parsed.backends);
    } catch (err) {
      process.stderr.write(`bench ${name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      status = 1;
    }
  }
  return status;
}

if (import.meta.main) process.exitCode = await main(process.argv.slice(2));
