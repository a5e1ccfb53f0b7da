// SPDX-License-Identifier: MIT
// Random and mutated buffers through decodeIcmpEcho (STYLE.md principle 12b), 50,000 of
// them: purely random bytes (0..120) and mutations (bit flips, truncations, overwrites of
// the length, protocol, type and code fields, insertions, deletions) of valid IPv4 ICMP and
// header-less ICMPv6 echo messages. Invariants: never throws; an accepted echo's payload is
// a view inside the input and ends where the IPv4 total length (or the buffer) ends; kind,
// id and seq are in range. Seeded; POSTERN_FUZZ_SEED=<seed> reproduces a run.

import assert from 'node:assert/strict';
import { it } from 'node:test';
import { decodeIcmpEcho, ICMP_REASON_TEXT, type IcmpResult } from '../../src/wire/frame.ts';
import { fuzzTotal } from './runs.ts';
import { below, mulberry32, type Rng } from './prng.ts';

const TOTAL = fuzzTotal(50_000);
const ARENA_SIZE = 2048;


function randomBytes(rng: Rng, n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = below(rng, 256);
  return out;
}

const ECHO_TYPES = [0, 8, 128, 129];

function buildEcho(rng: Rng, six: boolean): { packet: Buffer; fields: number[] } {
  const msg = Buffer.concat([randomBytes(rng, 8), randomBytes(rng, below(rng, 64))]);
  msg[0] = six ? 128 + below(rng, 2) : below(rng, 2) * 8;
  msg[1] = 0;
  if (six) return { packet: msg, fields: [0, 1] };
  const ihl = 5 + below(rng, 3);
  const ip = randomBytes(rng, ihl * 4);
  ip[0] = 0x40 | ihl;
  ip.writeUInt16BE(ip.length + msg.length, 2);
  ip.writeUInt16BE(0x4000, 6);
  ip[9] = 1;
  const h = ip.length;
  return { packet: Buffer.concat([ip, msg, randomBytes(rng, below(rng, 4))]), fields: [0, 2, 6, 9, h, h + 1] };
}

function mutate(rng: Rng, seed: { packet: Buffer; fields: number[] }): Buffer {
  let b = Buffer.from(seed.packet);
  const rounds = 1 + below(rng, 3);
  for (let r = 0; r < rounds && b.length > 0; r++) {
    const op = below(rng, 6);
    const at = below(rng, b.length);
    if (op === 0) b[at] = (b.readUInt8(at) ^ (1 << below(rng, 8))) & 0xff;
    else if (op === 1) b = b.subarray(0, below(rng, b.length + 1));
    else if (op === 2) {
      const f = seed.fields[below(rng, seed.fields.length)] ?? 0;
      if (f < b.length) b[f] = below(rng, 2) === 1 ? (ECHO_TYPES[below(rng, 4)] ?? 0) : below(rng, 256);
    } else if (op === 3) b = Buffer.concat([b.subarray(0, at), randomBytes(rng, 1 + below(rng, 8)), b.subarray(at)]);
    else if (op === 4) b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + below(rng, 8))]);
    else if (op === 5 && b.length >= 4) b.writeUInt16BE(below(rng, 0x10000), 2);
  }
  return b;
}

function check(input: Buffer, r: IcmpResult, family: 4 | 6, fail: (m: string) => never, seen: Map<string, number>): void {
  if (!r.ok) {
    if (!(r.reason in ICMP_REASON_TEXT)) fail(`unknown reason ${r.reason}`);
    seen.set(r.reason, (seen.get(r.reason) ?? 0) + 1);
    return;
  }
  const e = r.value;
  const p = e.payload;
  if (p.buffer !== input.buffer || p.byteOffset < input.byteOffset || p.byteOffset + p.length > input.byteOffset + input.length) fail('payload not inside the input');
  const end = family === 4 ? input.readUInt16BE(2) : input.length;
  if (p.byteOffset - input.byteOffset + p.length !== end) fail('payload does not end where the message ends');
  if (e.family !== family || (e.kind !== 'request' && e.kind !== 'reply') || e.id < 0 || e.id > 0xffff || e.seq < 0 || e.seq > 0xffff) fail('bad fields');
  if (family === 4 && e.src.split('.').length !== 4) fail(`bad src ${e.src}`);
  seen.set(`accepted:${family}:${e.kind}`, (seen.get(`accepted:${family}:${e.kind}`) ?? 0) + 1);
}

it(`${TOTAL} random and mutated buffers through decodeIcmpEcho: never throws, payload inside the input`, (t) => {
  const seed = process.env['POSTERN_FUZZ_SEED'] !== undefined ? Number(process.env['POSTERN_FUZZ_SEED']) >>> 0 : Math.floor(Math.random() * 2 ** 32);
  t.diagnostic(`seed ${seed} (POSTERN_FUZZ_SEED=${seed} reproduces this run)`);
  const rng = mulberry32(seed);
  const arena = Buffer.alloc(ARENA_SIZE);
  const seen = new Map<string, number>();
  for (let i = 0; i < TOTAL; i++) {
    const six = below(rng, 2) === 1;
    const bytes = below(rng, 10) < 3 ? randomBytes(rng, below(rng, 121)) : mutate(rng, buildEcho(rng, six));
    // A view at a random offset of a shared arena, so "inside the input" means something.
    const off = below(rng, ARENA_SIZE - bytes.length);
    arena.fill(0xa5);
    bytes.copy(arena, off);
    const input = arena.subarray(off, off + bytes.length);
    const fail = (m: string): never => assert.fail(`fuzz seed ${seed}, buffer #${i}: ${m}; input ${input.toString('hex')}`);
    const src = below(rng, 4) === 0 ? '192.0.2.1' : 'fd50:7374::2';
    for (const family of [4, 6] as const) {
      let r: IcmpResult;
      try {
        r = decodeIcmpEcho(input, family, src);
      } catch (err) {
        return fail(`threw ${String(err)}`);
      }
      check(input, r, family, fail, seen);
    }
  }
  t.diagnostic(JSON.stringify(Object.fromEntries(seen)));
  for (const reason of Object.keys(ICMP_REASON_TEXT)) assert.ok((seen.get(reason) ?? 0) > 0, `seed ${seed}: never saw ${reason}`);
  for (const key of ['accepted:4:request', 'accepted:4:reply', 'accepted:6:request', 'accepted:6:reply']) {
    assert.ok((seen.get(key) ?? 0) > 500, `seed ${seed}: few ${key}`);
  }
});
