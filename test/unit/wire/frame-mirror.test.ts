// SPDX-License-Identifier: MIT
// Mirror test (STYLE.md principle 12a, mqtt-packet's parse/generate): a small independent
// encoder, here in the test and not in src/, builds IPv4/IPv6 UDP/TCP packets from a Frame
// with random options, extension headers and trailing padding; decoding must give the
// Frame back exactly.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { formatIPv4, formatIPv6, parseAddress } from '../../../src/wire/address.ts';
import { decodeFrame, decodeIPv4, decodeIPv6, decodeTransport, type Frame } from '../../../src/wire/frame.ts';
import { ok } from '../../../src/wire/result.ts';

interface Layout {
  readonly ipv4OptionWords: number;   // 0..10 32-bit words of IPv4 options
  readonly tcpOptionWords: number;    // 0..10 32-bit words of TCP options
  readonly extHeaders: ReadonlyArray<{ readonly type: 0 | 43 | 60; readonly units: number }>;
  readonly trailer: number;           // bytes after the packet (link padding)
}

function addressBytes(text: string): Buffer {
  const parsed = parseAddress(text);
  assert.ok(parsed.ok, text);
  return parsed.value.bytes;
}

function encodeSegment(f: Frame, tcpOptionWords: number): Buffer {
  const headerLen = f.proto === 'udp' ? 8 : (5 + tcpOptionWords) * 4;
  const out = Buffer.alloc(headerLen + f.payload.length, 0x01); // options: TCP NOPs
  out.writeUInt16BE(f.srcPort, 0);
  out.writeUInt16BE(f.dstPort, 2);
  if (f.proto === 'udp') {
    out.writeUInt16BE(out.length, 4);                // length: header + data
    out.writeUInt16BE(0, 6);                         // checksum: none
  } else {
    out.writeUInt32BE(0x01020304, 4);                // sequence number
    out.writeUInt32BE(0, 8);                         // acknowledgment number
    out[12] = (headerLen / 4) << 4;                  // data offset
    out[13] = f.tcpFlags;
    out.writeUInt32BE(0xffff0000, 14);               // window, checksum
    out.writeUInt16BE(0, 18);                        // urgent pointer
  }
  f.payload.copy(out, headerLen);
  return out;
}

function encodeIPv4(f: Frame, layout: Layout): Buffer {
  const seg = encodeSegment(f, layout.tcpOptionWords);
  const headerLen = (5 + layout.ipv4OptionWords) * 4;
  const out = Buffer.alloc(headerLen + seg.length + layout.trailer, 0x01); // options: IP NOPs
  out[0] = 0x40 | (headerLen / 4);                   // version 4, IHL
  out[1] = 0;                                        // DSCP/ECN
  out.writeUInt16BE(headerLen + seg.length, 2);      // total length (trailer excluded)
  out.writeUInt32BE(0xbeef4000, 4);                  // identification, DF
  out[8] = 64;                                       // TTL
  out[9] = f.proto === 'udp' ? 17 : 6;
  out.writeUInt16BE(0, 10);                          // header checksum: not verified
  addressBytes(f.src).copy(out, 12);
  addressBytes(f.dst).copy(out, 16);
  seg.copy(out, headerLen);
  out.fill(0, headerLen + seg.length);
  return out;
}

function encodeIPv6(f: Frame, layout: Layout): Buffer {
  const seg = encodeSegment(f, layout.tcpOptionWords);
  const extLen = layout.extHeaders.reduce((n, h) => n + (h.units + 1) * 8, 0);
  const out = Buffer.alloc(40 + extLen + seg.length + layout.trailer);
  out.writeUInt32BE(0x60000000, 0);                  // version 6, class 0, flow 0
  out.writeUInt16BE(extLen + seg.length, 4);         // payload length
  const upper = f.proto === 'udp' ? 17 : 6;
  out[6] = layout.extHeaders[0]?.type ?? upper;      // next header
  out[7] = 64;                                       // hop limit
  addressBytes(f.src).copy(out, 8);
  addressBytes(f.dst).copy(out, 24);
  let off = 40;
  layout.extHeaders.forEach((h, i) => {
    out[off] = layout.extHeaders[i + 1]?.type ?? upper; // next header
    out[off + 1] = h.units;                              // hdr ext len
    out[off + 2] = 0x01;                                 // PadN option covering the rest
    out[off + 3] = (h.units + 1) * 8 - 4;
    off += (h.units + 1) * 8;
  });
  seg.copy(out, off);
  return out;
}

const arbV6 = fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 })
  .map((g) => formatIPv6(Buffer.from(g.flatMap((x) => [x >> 8, x & 0xff])), 0));
const arbV4 = fc.uint8Array({ minLength: 4, maxLength: 4 }).map((b) => formatIPv4(b, 0));
const port = fc.integer({ min: 0, max: 0xffff });

const arbFrame: fc.Arbitrary<Frame> = fc.constantFrom(4 as const, 6 as const).chain((family) => fc.record({
  family: fc.constant(family),
  src: family === 4 ? arbV4 : arbV6,
  dst: family === 4 ? arbV4 : arbV6,
  proto: fc.constantFrom('udp' as const, 'tcp' as const),
  srcPort: port,
  dstPort: port,
  tcpFlags: fc.integer({ min: 0, max: 0xff }),
  payload: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
// Spread: fc.record builds null-prototype objects, and decoded frames are plain objects.
})).map((f) => ({ ...f, tcpFlags: f.proto === 'udp' ? 0 : f.tcpFlags }));

const arbLayout: fc.Arbitrary<Layout> = fc.record({
  ipv4OptionWords: fc.integer({ min: 0, max: 10 }),
  tcpOptionWords: fc.integer({ min: 0, max: 10 }),
  hopByHop: fc.option(fc.integer({ min: 0, max: 3 }), { nil: undefined }),
  rest: fc.array(fc.record({ type: fc.constantFrom(43 as const, 60 as const), units: fc.integer({ min: 0, max: 3 }) }), { maxLength: 6 }),
  trailer: fc.integer({ min: 0, max: 16 }),
}).map(({ hopByHop, rest, ...l }) => ({
  ...l,
  extHeaders: hopByHop === undefined ? rest : [{ type: 0 as const, units: hopByHop }, ...rest],
}));

describe('decode(encode(frame)) == frame', () => {
  it('whole IPv4/IPv6 packets through decodeFrame and the family decoder', () => {
    fc.assert(fc.property(arbFrame, arbLayout, (frame, layout) => {
      const packet = frame.family === 4 ? encodeIPv4(frame, layout) : encodeIPv6(frame, layout);
      assert.deepStrictEqual(decodeFrame(packet), ok(frame));
      assert.deepStrictEqual((frame.family === 4 ? decodeIPv4 : decodeIPv6)(packet), ok(frame));
    }), { numRuns: 3000 });
  });

  it('header-less segments through decodeTransport', () => {
    fc.assert(fc.property(arbFrame, arbLayout, fc.boolean(), (frame, layout, knowDst) => {
      const seg = encodeSegment(frame, layout.tcpOptionWords);
      const dst = knowDst ? frame.dst : '';
      assert.deepStrictEqual(decodeTransport(frame.proto, seg, frame.src, dst, frame.family), ok({ ...frame, dst }));
    }), { numRuns: 3000 });
  });
});
