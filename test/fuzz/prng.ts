// SPDX-License-Identifier: MIT
// The fuzzers' seeded PRNG: failures reproduce from the printed seed (POSTERN_FUZZ_SEED).

export type Rng = () => number; // uniform uint32

/** mulberry32: tiny, fast, and good enough to drive a fuzzer reproducibly. */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

export const below = (rng: Rng, n: number): number => (n <= 0 ? 0 : rng() % n);
