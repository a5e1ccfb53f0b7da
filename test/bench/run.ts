// SPDX-License-Identifier: MIT
// Benchmark entry: node test/bench/run.ts [core|open|all]   (default all)
// Also ./build.sh bench [NAME] and npm run bench -- NAME. Benchmarks print figures and
// ratios; they never assert timings. Exit 0 when every selected benchmark ran (or skipped
// with a reason), 1 when one failed, 2 on a usage error.

import { availableParallelism, cpus, loadavg } from 'node:os';

const BENCHES = {
  core: {
    about: 'hot-path costs: unknown-key rejection, full verification, replay ring, CMAC (ns/op)',
    run: async (): Promise<void> => {
      const { formatCoreBench, runCoreBench } = await import('./core.ts');
      console.log(formatCoreBench(runCoreBench()));
    },
  },
  open: {
    about: 'time-to-open and idle RSS in a network-namespace lab, against fwknopd when installed (root)',
    run: async (): Promise<void> => {
      const { runOpenBench } = await import('./open.ts');
      await runOpenBench((line) => console.log(line));
    },
  },
} as const;

type BenchName = keyof typeof BENCHES;

function usage(): string {
  const rows = Object.entries(BENCHES).map(([name, b]) => `  ${name.padEnd(5)} ${b.about}`);
  return ['usage: node test/bench/run.ts [core|open|all]   (default: all)', ...rows, '  all   every benchmark above, in order'].join('\n');
}

function isBench(name: string): name is BenchName {
  return Object.hasOwn(BENCHES, name);
}

function select(args: readonly string[]): BenchName[] | undefined {
  if (args.length > 1) return undefined;
  const name = args[0] ?? 'all';
  if (name === 'all') return Object.keys(BENCHES).filter(isBench);
  return isBench(name) ? [name] : undefined;
}

/** Figures only mean something beside the machine and its load: other work on a 2-core
 *  box moves every number here, so the header says how busy it was. */
function machineLine(): string {
  const [load1 = 0] = loadavg();
  return `machine: ${cpus()[0]?.model ?? 'unknown CPU'} x ${availableParallelism()}, load average (1 min) ${load1.toFixed(2)}, node ${process.version}`;
}

async function main(args: readonly string[]): Promise<number> {
  if (args[0] === '-h' || args[0] === '--help' || args[0] === 'help') {
    console.log(usage());
    return 0;
  }
  const names = select(args);
  if (names === undefined) {
    process.stderr.write(`bench: unknown benchmark ${JSON.stringify(args.join(' '))}\n${usage()}\n`);
    return 2;
  }
  let status = 0;
  console.log(machineLine());
  for (const name of names) {
    console.log('');
    try {
      await BENCHES[name].run();
    } catch (err) {
      process.stderr.write(`bench ${name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      status = 1;
    }
  }
  return status;
}

process.exitCode = await main(process.argv.slice(2));
