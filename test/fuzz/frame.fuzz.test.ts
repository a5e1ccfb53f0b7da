// SPDX-License-Identifier: MIT
// Random and mutated packets through every frame decoder (STYLE.md principle 12b; the
// mqtt-packet testRandom.js idea). 200,000 buffers: purely random ones (0..120 bytes) and
// byte mutations (bit flips, truncations, length-field overwrites, insertions, deletions) of
// valid IPv4/IPv6 UDP/TCP packets. Invariants: no decoder ever throws; an accepted frame's
// payload is a view inside the input; ports, flags and families are in range; decodeFrame
// agrees with the family decoder. The PRNG is seeded: the seed is printed as a test
// diagnostic and in every failure; rerun with POSTERN_FUZZ_SEED=<seed> to reproduce.

import assert from 'node:assert/strict';
import { it } from 'node:test';
import { fuzzTotal } from './runs.ts';
import { below, mulberry32, type Rng } from './prng.ts';
import {
  decodeFrame, decodeIPv4, decodeIPv6, decodeTransport, FRAME_REASON_TEXT, type FrameResult,
} from '../../src/wire/frame.ts';

const TOTAL = fuzzTotal(200_000);
const RANDOM_SHARE = 0.3;
const MAX_RANDOM_LEN = 120;
const ARENA_SIZE = 4096;


function randomBytes(rng: Rng, n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = below(rng, 256);
  return out;
}

interface Seed {
  readonly packet: Buffer;
  /** Offsets of length-like fields (IHL, lengths, next headers, data offset) worth overwriting. */
  readonly fields: readonly number[];
}

/** A valid UDP or TCP segment with random ports, options and payload. */
function buildSegment(rng: Rng, tcp: boolean): Buffer {
  const headerLen = tcp ? (5 + below(rng, 11)) * 4 : 8;
  const seg = Buffer.concat([randomBytes(rng, headerLen), randomBytes(rng, below(rng, 48))]);
  if (tcp) seg[12] = ((headerLen / 4) << 4) | (seg.readUInt8(12) & 0x0f);
  else seg.writeUInt16BE(seg.length, 4);
  return seg;
}

function buildIPv4(rng: Rng): Seed {
  const tcp = below(rng, 2) === 1;
  const seg = buildSegment(rng, tcp);
  const ihl = 5 + below(rng, 11);
  const header = randomBytes(rng, ihl * 4);
  header[0] = 0x40 | ihl;
  header.writeUInt16BE(ihl * 4 + seg.length, 2);
  header.writeUInt16BE(below(rng, 2) === 1 ? 0x4000 : 0, 6); // DF or nothing: not a fragment
  header[9] = tcp ? 6 : 17;
  const h = ihl * 4;
  return { packet: Buffer.concat([header, seg, randomBytes(rng, below(rng, 4))]), fields: [0, 2, 6, 9, h + 4, h + 12] };
}

function buildIPv6(rng: Rng): Seed {
  const tcp = below(rng, 2) === 1;
  const seg = buildSegment(rng, tcp);
  const types = Array.from({ length: below(rng, 4) }, (_, i) => (i === 0 && below(rng, 2) === 1 ? 0 : below(rng, 2) === 1 ? 43 : 60));
  const exts = types.map((_, i) => {
    const ext = randomBytes(rng, (below(rng, 3) + 1) * 8);
    ext[0] = types[i + 1] ?? (tcp ? 6 : 17);
    ext[1] = ext.length / 8 - 1;
    return ext;
  });
  const header = randomBytes(rng, 40);
  header[0] = 0x60 | (header.readUInt8(0) & 0x0f);
  const payload = Buffer.concat([...exts, seg]);
  header.writeUInt16BE(payload.length, 4);
  header[6] = types[0] ?? (tcp ? 6 : 17);
  const segAt = 40 + payload.length - seg.length;
  return { packet: Buffer.concat([header, payload, randomBytes(rng, below(rng, 4))]), fields: [0, 4, 6, 40, 41, segAt + 4, segAt + 12] };
}

const INTERESTING_U16 = [0, 1, 7, 8, 19, 20, 39, 40, 41, 0x7fff, 0xffff];

function mutate(rng: Rng, seed: Seed): Buffer {
  let buf: Buffer = Buffer.from(seed.packet);
  for (let n = 1 + below(rng, 3); n > 0; n--) {
    const at = below(rng, buf.length);
    switch (below(rng, 6)) {
      case 0: if (buf.length > 0) buf[at] = buf.readUInt8(at) ^ (1 << below(rng, 8)); break;                      // bit flip
      case 1: buf = buf.subarray(0, below(rng, buf.length + 1)); break;                                                 // truncation
      case 2: buf = overwriteField(rng, buf, seed.fields); break;                                                       // length field
      case 3: buf = Buffer.concat([buf.subarray(0, at), randomBytes(rng, 1 + below(rng, 8)), buf.subarray(at)]); break; // insertion
      case 4: buf = Buffer.concat([buf.subarray(0, at), buf.subarray(at + 1 + below(rng, 8))]); break;                  // deletion
      default: if (buf.length > 0) buf[at] = below(rng, 256);                                                            // byte overwrite
    }
  }
  return buf;
}

function overwriteField(rng: Rng, buf: Buffer, fields: readonly number[]): Buffer {
  const at = fields[below(rng, fields.length)] ?? 0;
  const value = below(rng, 4) === 0 ? buf.length + below(rng, 3) - 1 : INTERESTING_U16[below(rng, INTERESTING_U16.length)] ?? 0;
  if (at + 2 <= buf.length) buf.writeUInt16BE(value & 0xffff, at);
  else if (at < buf.length) buf[at] = value & 0xff;
  return buf;
}

/** Copy into a shared arena at a random offset, so views are checked against a real byteOffset. */
function place(rng: Rng, arena: Buffer, bytes: Buffer): Buffer {
  const off = below(rng, arena.length - bytes.length + 1);
  bytes.copy(arena, off);
  return arena.subarray(off, off + bytes.length);
}

const TRANSPORT_SOURCES = [['2001:db8::1', 6], ['::1.2.3.4', 6], ['fe80::1%eth0', 6], ['192.0.2.1', 4]] as const;

interface Tally { readonly reasons: Map<string, number>; readonly accepted: Map<string, number> }
interface CheckContext { readonly tally: Tally; readonly fail: (msg: string) => never }

/** `whole`: r came from a whole-packet decoder, so the IP length fields bound the payload. */
function checkResult(input: Buffer, r: FrameResult, whole: boolean, ctx: CheckContext): void {
  const { tally, fail } = ctx;
  if (!r.ok) {
    if (!(r.reason in FRAME_REASON_TEXT)) fail(`unknown reason ${r.reason}`);
    tally.reasons.set(r.reason, (tally.reasons.get(r.reason) ?? 0) + 1);
    return;
  }
  const f = r.value;
  const p = f.payload;
  if (p.buffer !== input.buffer) fail('payload is not a view of the input');
  if (p.byteOffset < input.byteOffset || p.byteOffset + p.length > input.byteOffset + input.length) fail('payload outside the input');
  for (const port of [f.srcPort, f.dstPort]) if (!Number.isInteger(port) || port < 0 || port > 0xffff) fail(`port ${port}`);
  if (!Number.isInteger(f.tcpFlags) || f.tcpFlags < 0 || f.tcpFlags > 0xff || (f.proto === 'udp' && f.tcpFlags !== 0)) fail(`flags ${f.tcpFlags}`);
  if ((f.family !== 4 && f.family !== 6) || (f.proto !== 'udp' && f.proto !== 'tcp') || f.src === '') fail('bad frame fields');
  const start = p.byteOffset - input.byteOffset;
  // UDP: the payload is exactly the datagram's Length - 8 bytes (its header ends where it starts).
  if (f.proto === 'udp' && (start < 8 || input.readUInt16BE(start - 4) !== p.length + 8)) fail('UDP payload length != Length - 8');
  if (whole && start + p.length > ipEnd(input, f.family)) fail('payload past the IP length');
  const headers = headersEnd(input, f.proto, whole ? f.family : 0);
  if (headers !== undefined && start !== headers) fail(`payload starts at ${start}, headers end at ${headers}`);
  const key = `${whole ? 'packet' : 'segment'}:${f.family}/${f.proto}`;
  tally.accepted.set(key, (tally.accepted.get(key) ?? 0) + 1);
}

/**
 * Where the payload must start per the header length fields, for a segment (family 0) or an
 * IPv4 packet; undefined for IPv6, whose extension header chain this test does not re-walk.
 */
function headersEnd(input: Buffer, proto: string, family: 0 | 4 | 6): number | undefined {
  if (family === 6 || (proto !== 'udp' && proto !== 'tcp')) return undefined; // others fail 'bad frame fields'
  const seg = family === 4 ? (input.readUInt8(0) & 0x0f) * 4 : 0;
  return seg + (proto === 'udp' ? 8 : (input.readUInt8(seg + 12) >> 4) * 4);
}

/** End of the packet per its own length field: IPv4 total length, IPv6 40 + payload length. */
function ipEnd(input: Buffer, family: 4 | 6): number {
  return family === 4 ? input.readUInt16BE(2) : 40 + input.readUInt16BE(4);
}

function sameResult(a: FrameResult, b: FrameResult): boolean {
  if (!a.ok || !b.ok) return a.ok === b.ok && (a.ok || b.ok || a.reason === b.reason);
  return a.value.src === b.value.src && a.value.dstPort === b.value.dstPort && a.value.payload.byteOffset === b.value.payload.byteOffset;
}

interface RunContext { readonly seed: number; readonly i: number; readonly tally: Tally }

function runOne(rng: Rng, arena: Buffer, ctx: RunContext): void {
  const { i } = ctx;
  let bytes: Buffer;
  if (rng() / 2 ** 32 < RANDOM_SHARE) {
    bytes = randomBytes(rng, below(rng, MAX_RANDOM_LEN + 1));
    if (bytes.length > 0 && below(rng, 2) === 1) bytes[0] = (below(rng, 2) === 1 ? 0x40 : 0x60) | (bytes.readUInt8(0) & 0x0f);
  } else {
    bytes = mutate(rng, below(rng, 2) === 1 ? buildIPv4(rng) : buildIPv6(rng));
  }
  const input = place(rng, arena, bytes);
  const fail = (msg: string): never =>
    assert.fail(`fuzz seed ${ctx.seed}, buffer #${i}: ${msg}; input ${input.toString('hex')}`);
  const [src, family] = TRANSPORT_SOURCES[i % TRANSPORT_SOURCES.length] ?? TRANSPORT_SOURCES[0];
  const check = { tally: ctx.tally, fail };
  let step = 'decodeFrame';
  try {
    const whole = decodeFrame(input);
    checkResult(input, whole, true, check);
    step = 'decodeIPv4';
    const v4 = decodeIPv4(input);
    checkResult(input, v4, true, check);
    step = 'decodeIPv6';
    const v6 = decodeIPv6(input);
    checkResult(input, v6, true, check);
    step = 'decodeTransport';
    for (const proto of ['udp', 'tcp'] as const) checkResult(input, decodeTransport(proto, input, src, '', family), false, check);
    const nibble = input.length > 0 ? input.readUInt8(0) >> 4 : 0;
    if ((nibble === 4 && !sameResult(whole, v4)) || (nibble === 6 && !sameResult(whole, v6))) fail('decodeFrame disagrees with the family decoder');
  } catch (err) {
    if (err instanceof assert.AssertionError) throw err;
    fail(`${step} threw ${String(err)}`);
  }
}

it(`${TOTAL} random and mutated buffers: never throws, payload always inside the input`, (t) => {
  const seed = process.env['POSTERN_FUZZ_SEED'] !== undefined ? Number(process.env['POSTERN_FUZZ_SEED']) >>> 0 : Math.floor(Math.random() * 2 ** 32);
  t.diagnostic(`seed ${seed} (POSTERN_FUZZ_SEED=${seed} reproduces this run)`);
  const rng = mulberry32(seed);
  const arena = Buffer.alloc(ARENA_SIZE);
  const tally: Tally = { reasons: new Map(), accepted: new Map() };
  for (let i = 0; i < TOTAL; i++) runOne(rng, arena, { seed, i, tally });
  t.diagnostic(`accepted ${JSON.stringify(Object.fromEntries(tally.accepted))}`);
  t.diagnostic(`refused ${JSON.stringify(Object.fromEntries(tally.reasons))}`);
  // The fuzzer must reach every branch it claims to test, or its silence means nothing.
  for (const reason of Object.keys(FRAME_REASON_TEXT)) assert.ok((tally.reasons.get(reason) ?? 0) > 0, `seed ${seed}: never saw ${reason}`);
  for (const key of ['packet:4/udp', 'packet:4/tcp', 'packet:6/udp', 'packet:6/tcp', 'segment:4/udp', 'segment:6/tcp']) assert.ok((tally.accepted.get(key) ?? 0) > 1000, `seed ${seed}: few ${key} frames`);
});
