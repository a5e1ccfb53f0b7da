// SPDX-License-Identifier: MIT
// Run counts for the fast-check fuzzers: a short run in the normal suite, a long one under
// `npm run fuzz` (./build.sh fuzz), which sets FUZZ_RUNS. A property never runs fewer times
// than its short count, so FUZZ_RUNS can only lengthen a run.

export function fuzzRuns(short: number): number {
  const n = Number(process.env['FUZZ_RUNS']);
  return Number.isInteger(n) && n > short ? n : short;
}

/** For the seeded-PRNG fuzzers, whose unit is one input (about ten times cheaper than a
 *  property run): ten inputs per FUZZ_RUNS, never fewer than the short count. */
export function fuzzTotal(short: number): number {
  const n = Number(process.env['FUZZ_RUNS']);
  return Number.isInteger(n) && n * 10 > short ? n * 10 : short;
}
