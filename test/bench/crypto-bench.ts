// SPDX-License-Identifier: MIT
// Micro-benchmark of the SPA hot path's crypto (DESIGN.md fact 5; target: PreparedSiv.open of
// an ~80-byte SPA ciphertext well under 15 us). Run: node test/bench/crypto-bench.ts
// Each figure is ns per operation, over SAMPLES timed batches of BATCH calls after a warm-up;
// we print the median and the p10/p90 of the batches. Bounded: a few seconds in total.

import { createRequire } from 'node:module';
import { Cmac } from '../../src/crypto/cmac.ts';
import { AesSiv } from '../../src/crypto/siv.ts';

const { aesCmac } = createRequire(import.meta.url)('node-aes-cmac') as {
  aesCmac(key: Buffer, message: Buffer, options: { returnAsBuffer: true }): Buffer;
};

const WARMUP = 3_000;
const SAMPLES = 41;

export interface CryptoBenchRow {
  readonly name: string;
  readonly medianNs: number;
  readonly p10Ns: number;
  readonly p90Ns: number;
}

function measure(name: string, batch: number, op: () => unknown): CryptoBenchRow {
  for (let i = 0; i < WARMUP; i++) op();
  const perOp: number[] = [];
  for (let s = 0; s < SAMPLES; s++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) op();
    perOp.push(Number(process.hrtime.bigint() - start) / batch);
  }
  perOp.sort((a, b) => a - b);
  const at = (q: number): number => Math.round(perOp[Math.floor(q * (SAMPLES - 1))]!);
  return { name, medianNs: at(0.5), p10Ns: at(0.1), p90Ns: at(0.9) };
}

/** Fixed, non-secret bench inputs: a 4-byte key id as the only AD, as in SPA v1. */
function fixtures(): { key: Buffer; keyId: Buffer; msg: (n: number) => Buffer } {
  const key = Buffer.from(Array.from({ length: 32 }, (_, i) => (i * 29 + 7) & 0xff));
  const msg = (n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 13) & 0xff));
  return { key, keyId: Buffer.from('a1b2c3d4', 'hex'), msg };
}

export function runCryptoBench(): CryptoBenchRow[] {
  const { key, keyId, msg } = fixtures();
  const k16 = key.subarray(0, 16);
  const mac = new Cmac(k16);
  const siv = new AesSiv(key);
  const prepared = siv.prepare([keyId]);
  const { tag, ciphertext } = prepared.seal(msg(80));
  if (prepared.open(tag, ciphertext) === undefined) throw new Error('bench fixture does not open');
  const rows: CryptoBenchRow[] = [];
  for (const n of [16, 64, 128, 256]) {
    const m = msg(n);
    rows.push(measure(`Cmac.mac (${n} B)`, 2_000, () => mac.mac(m)));
    rows.push(measure(`node-aes-cmac (${n} B)`, 50, () => aesCmac(k16, m, { returnAsBuffer: true })));
  }
  rows.push(measure('PreparedSiv.open (80 B)', 2_000, () => prepared.open(tag, ciphertext)));
  rows.push(measure('AesSiv.open (80 B, AD per call)', 2_000, () => siv.open([keyId], tag, ciphertext)));
  rows.push(measure('PreparedSiv.seal (80 B)', 2_000, () => prepared.seal(ciphertext)));
  return rows;
}

export function formatCryptoBench(rows: readonly CryptoBenchRow[]): string {
  const lines = rows.map(
    (r) => `${r.name.padEnd(34)} ${String(r.medianNs).padStart(8)} ns/op   p10 ${r.p10Ns}  p90 ${r.p90Ns}`,
  );
  return [`crypto (${process.version}, ${SAMPLES} batches per row, median)`, ...lines].join('\n');
}

if (import.meta.main) console.log(formatCryptoBench(runCryptoBench()));
