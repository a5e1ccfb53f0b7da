// SPDX-License-Identifier: MIT
// Order statistics for the benchmarks (test/bench/*). Benchmarks print figures; they never
// assert timings, because a shared CI machine's timings are not a property of the code.
//
// Quantiles use linear interpolation between closest ranks (Hyndman & Fan 1996, type 7,
// the default of R and NumPy): q = 0 is the minimum, q = 1 the maximum, q = 0.5 the usual
// median (the mean of the two middle values for an even count).

export interface Summary {
  readonly n: number;
  readonly min: number;
  readonly p10: number;
  readonly median: number;
  readonly p90: number;
  readonly p95: number;
  readonly max: number;
  readonly mean: number;
}

/** The q-quantile (0 <= q <= 1) of values already sorted ascending. Throws on an empty list
 *  or a q outside [0, 1]: both are programmer errors in a benchmark, not hostile input. */
export function quantileSorted(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) throw new RangeError('quantile of an empty list');
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile ${q} is outside [0, 1]`);
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, sorted.length - 1);
  const a = sorted[lo]!;
  const b = sorted[hi]!;
  return a + (b - a) * (pos - lo);
}

function ascending(values: readonly number[]): number[] {
  for (const v of values) if (!Number.isFinite(v)) throw new RangeError(`not a finite number: ${v}`);
  return [...values].sort((a, b) => a - b);
}

export function quantile(values: readonly number[], q: number): number {
  return quantileSorted(ascending(values), q);
}

export function median(values: readonly number[]): number {
  return quantile(values, 0.5);
}

export function summarize(values: readonly number[]): Summary {
  const s = ascending(values);
  const at = (q: number): number => quantileSorted(s, q);
  return {
    n: s.length,
    min: at(0),
    p10: at(0.1),
    median: at(0.5),
    p90: at(0.9),
    p95: at(0.95),
    max: at(1),
    mean: s.reduce((sum, v) => sum + v, 0) / s.length,
  };
}

/** Fixed-point text for a figure: at most `digits` decimals, trailing zeros kept for columns. */
export function fmt(value: number, digits = 1): string {
  return value.toFixed(digits);
}

/** "ok" when the measured figure meets a "lower is better" target, else "MISSED". */
export function verdict(measured: number, target: number): 'ok' | 'MISSED' {
  return measured <= target ? 'ok' : 'MISSED';
}
