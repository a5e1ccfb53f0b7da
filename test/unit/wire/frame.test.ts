// SPDX-License-Identifier: MIT
// Hand-built packets, one commented field per line (STYLE.md principle 12a), for every
// decoder in src/wire/frame.ts, plus one exact-reason fixture per FrameReason.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decodeFrame, decodeIPv4, decodeIPv6, decodeTransport, FRAME_REASON_TEXT,
  type Frame, type FrameReason, type FrameResult,
} from '../../../src/wire/frame.ts';

/** Hex fixture: the parts are joined and whitespace is ignored. */
function bytes(...parts: string[]): Buffer {
  return Buffer.from(parts.join('').replace(/\s+/g, ''), 'hex');
}

function expectFrame(result: FrameResult): Frame {
  assert.ok(result.ok, `expected a frame, got ${result.ok ? '' : result.reason}`);
  return result.value;
}

const SRC6 = '20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01'; // 2001:db8::1
const DST6 = '20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 02'; // 2001:db8::2

// IPv4 + UDP, 4-byte payload.
const V4_UDP = [
  '45',          // version 4, IHL 5 (20 bytes)
  '00',          // DSCP/ECN
  '00 20',       // total length 32 = 20 IP + 8 UDP + 4 payload
  '12 34',       // identification
  '40 00',       // flags DF, fragment offset 0
  '40',          // TTL 64
  '11',          // protocol 17 (UDP)
  'ab cd',       // header checksum (not verified: the kernel did)
  'c0 00 02 01', // src 192.0.2.1
  'c6 33 64 07', // dst 198.51.100.7
  'd4 31',       // UDP src port 54321
  'f2 f9',       // UDP dst port 62201
  '00 0c',       // UDP length 12 = 8 header + 4 payload
  '00 00',       // UDP checksum (not verified)
  'de ad be ef', // payload
] as const;

/** V4_UDP with the field at index `i` replaced. */
function v4udpWith(i: number, hex: string): Buffer {
  return bytes(...V4_UDP.map((p, j) => (j === i ? hex : p)));
}

// IPv6 + UDP, 4-byte payload.
const V6_UDP = [
  '60 00 00 00', // version 6, traffic class 0, flow label 0
  '00 0c',       // payload length 12 = 8 UDP + 4 payload
  '11',          // next header 17 (UDP)
  '40',          // hop limit 64
  SRC6,          // src 2001:db8::1
  DST6,          // dst 2001:db8::2
  '04 d2',       // UDP src port 1234
  '16 2e',       // UDP dst port 5678
  '00 0c',       // UDP length 12
  '00 00',       // UDP checksum
  '01 02 03 04', // payload
] as const;

function v6udpWith(i: number, hex: string): Buffer {
  return bytes(...V6_UDP.map((p, j) => (j === i ? hex : p)));
}

/** IPv6 header with payload length `len` and next header `next`, then `rest`. */
function v6(len: string, next: string, ...rest: string[]): Buffer {
  return bytes('60 00 00 00', len, next, '40', SRC6, DST6, ...rest);
}

const UDP_8 = '00 35 00 35 00 08 00 00'; // UDP 53 -> 53, length 8, checksum 0, no payload
const PAD_EXT = (next: string): string => `${next} 00 01 04 00 00 00 00`; // 8-byte ext header: PadN(4)

describe('decodeIPv4', () => {
  it('decodes IPv4 + UDP and hands out the payload without a copy', () => {
    const buf = bytes(...V4_UDP);
    const f = expectFrame(decodeIPv4(buf));
    assert.deepEqual(
      { ...f, payload: f.payload.toString('hex') },
      { family: 4, src: '192.0.2.1', dst: '198.51.100.7', proto: 'udp', srcPort: 54321, dstPort: 62201, tcpFlags: 0, payload: 'deadbeef' },
    );
    assert.equal(f.payload.buffer, buf.buffer);
    assert.equal(f.payload.byteOffset, buf.byteOffset + 28);
    buf[28] = 0x00; // a view, not a copy
    assert.equal(f.payload[0], 0x00);
    assert.deepEqual(decodeFrame(buf), decodeIPv4(buf));
  });

  it('skips IPv4 options and ignores bytes past the total length', () => {
    const buf = bytes(
      '46',          // version 4, IHL 6 (24 bytes)
      '00', '00 23', // DSCP/ECN; total length 35 = 24 + 8 + 3
      '00 01', '00 00', '40', '11', '00 00', // id; no flags; TTL 64; UDP; checksum
      '0a 00 00 01', // src 10.0.0.1
      '0a 00 00 02', // dst 10.0.0.2
      '01 01 01 00', // options: NOP NOP NOP End-of-Options
      '30 39 f2 f9', // UDP 12345 -> 62201
      '00 0b 00 00', // UDP length 11, checksum
      'aa bb cc',    // payload
      '00 00 00',    // link-layer padding beyond total length
    );
    const f = expectFrame(decodeIPv4(buf));
    assert.equal(f.src, '10.0.0.1');
    assert.equal(f.dst, '10.0.0.2');
    assert.equal(f.srcPort, 12345);
    assert.equal(f.payload.toString('hex'), 'aabbcc');
  });

  it('decodes IPv4 + TCP SYN with an MSS option', () => {
    const f = expectFrame(decodeIPv4(bytes(
      '45', '00', '00 2c', // IHL 5; total length 44 = 20 + 24 TCP
      '00 00', '40 00', '40', '06', '00 00', // id; DF; TTL; protocol 6 (TCP); checksum
      'c0 a8 01 0a', // src 192.168.1.10
      'c0 a8 01 01', // dst 192.168.1.1
      'c3 50',       // TCP src port 50000
      '00 16',       // TCP dst port 22
      '00 00 00 01', // sequence number
      '00 00 00 00', // acknowledgment number
      '60',          // data offset 6 (24 bytes), reserved 0
      '02',          // flags: SYN
      'fa f0',       // window
      '00 00 00 00', // checksum, urgent pointer
      '02 04 05 b4', // option: MSS 1460
    )));
    assert.deepEqual(
      { ...f, payload: f.payload.length },
      { family: 4, src: '192.168.1.10', dst: '192.168.1.1', proto: 'tcp', srcPort: 50000, dstPort: 22, tcpFlags: 0x02, payload: 0 },
    );
  });
});

describe('decodeIPv6', () => {
  it('decodes IPv6 + UDP', () => {
    const buf = bytes(...V6_UDP);
    const f = expectFrame(decodeIPv6(buf));
    assert.deepEqual(
      { ...f, payload: f.payload.toString('hex') },
      { family: 6, src: '2001:db8::1', dst: '2001:db8::2', proto: 'udp', srcPort: 1234, dstPort: 5678, tcpFlags: 0, payload: '01020304' },
    );
    assert.equal(f.payload.buffer, buf.buffer);
    assert.deepEqual(decodeFrame(buf), decodeIPv6(buf));
  });

  it('walks Hop-by-Hop and Destination Options headers before UDP', () => {
    const f = expectFrame(decodeIPv6(v6(
      '00 22',       // payload length 34 = 8 HBH + 16 DstOpts + 10 UDP
      '00',          // next header 0 (Hop-by-Hop Options)
      '3c 00',       // HBH: next 60 (Destination Options), hdr ext len 0 (8 bytes)
      '01 04 00 00 00 00', // HBH: PadN, 4 bytes
      '11 01',       // DstOpts: next 17 (UDP), hdr ext len 1 (16 bytes)
      '01 0c', '00'.repeat(12), // DstOpts: PadN, 12 bytes
      '00 07 00 09', // UDP 7 -> 9
      '00 0a 00 00', // UDP length 10, checksum
      'c0 de',       // payload
    )));
    assert.equal(f.proto, 'udp');
    assert.equal(f.dstPort, 9);
    assert.equal(f.payload.toString('hex'), 'c0de');
  });

  it('skips a Routing header and decodes TCP after it', () => {
    const f = expectFrame(decodeIPv6(v6(
      '00 1c', '2b', // payload length 28 = 8 Routing + 20 TCP; next 43 (Routing)
      '06 00 04 00 00 00 00 00', // Routing: next 6 (TCP), len 0, type 4, segments left 0
      '01 bb 00 50', // TCP 443 -> 80
      '00 00 00 00 00 00 00 00', // seq, ack
      '50 12 ff ff 00 00 00 00', // data offset 5, flags SYN|ACK, window, checksum, urgent
    )));
    assert.equal(f.proto, 'tcp');
    assert.equal(f.tcpFlags, 0x12);
    assert.equal(f.payload.length, 0);
  });

  it('accepts exactly IPV6_MAX_EXT_HEADERS (8) extension headers and refuses 9', () => {
    const chain = (n: number): Buffer =>
      v6(((n * 8) + 8).toString(16).padStart(4, '0'), '3c',
        ...Array.from({ length: n }, (_, i) => PAD_EXT(i === n - 1 ? '11' : '3c')), UDP_8);
    assert.equal(expectFrame(decodeIPv6(chain(8))).dstPort, 53);
    assert.deepEqual(decodeIPv6(chain(9)), { ok: false, reason: 'bad_ext_header' });
  });
});

describe('decodeTransport (IPv6 raw socket: no IP header)', () => {
  it('decodes a UDP segment and canonicalises the recvfrom address text', () => {
    const seg = bytes('d4 31 f2 f9', '00 0a 00 00', '99 88'); // 54321 -> 62201, length 10
    const f = expectFrame(decodeTransport('udp', seg, '2001:DB8:0:0:0:0:0:1', '', 6));
    assert.deepEqual(
      { ...f, payload: f.payload.toString('hex') },
      { family: 6, src: '2001:db8::1', dst: '', proto: 'udp', srcPort: 54321, dstPort: 62201, tcpFlags: 0, payload: '9988' },
    );
    assert.equal(f.payload.buffer, seg.buffer);
    // libuv's inet_ntop prints ::102:304 in mixed notation; RFC 5952 §5 keeps that for ::ffff: only.
    assert.equal(expectFrame(decodeTransport('udp', seg, '::1.2.3.4', '', 6)).src, '::102:304');
  });

  it('decodes a TCP segment with a payload after options', () => {
    const seg = bytes(
      '13 88 00 17', '00 00 00 00 00 00 00 00', // 5000 -> 23; seq, ack
      '70 18 01 00 00 00 00 00', // data offset 7 (28 bytes), flags PSH|ACK, window, checksum, urgent
      '01 01 08 0a 00 00 00 01', // options: NOP NOP Timestamps (first 4 bytes)
      '68 69',                   // payload "hi"
    );
    const f = expectFrame(decodeTransport('tcp', seg, 'fe80::1', 'fe80::2', 6));
    assert.deepEqual([f.srcPort, f.dstPort, f.tcpFlags, f.dst, f.payload.toString()], [5000, 23, 0x18, 'fe80::2', 'hi']);
  });
});

/** One fixture (or more) per reason; the test below checks the table covers every reason. */
const REASON_FIXTURES: Record<FrameReason, ReadonlyArray<readonly [string, () => FrameResult]>> = {
  truncated: [
    ['empty buffer', () => decodeFrame(Buffer.alloc(0))],
    ['IPv4 shorter than 20 bytes', () => decodeIPv4(bytes(...V4_UDP).subarray(0, 19))],
    ['IPv6 shorter than 40 bytes', () => decodeIPv6(bytes(...V6_UDP).subarray(0, 39))],
    ['UDP shorter than 8 bytes', () => decodeIPv4(bytes('45 00 00 1b', '0000 0000 4011 0000', '01020304 05060708', '00'.repeat(7)))],
    ['TCP shorter than 20 bytes', () => decodeTransport('tcp', Buffer.alloc(19), '::1', '', 6)],
  ],
  bad_version: [
    ['version 5 to decodeFrame', () => decodeFrame(v4udpWith(0, '55'))],
    ['IPv6 bytes to decodeIPv4', () => decodeIPv4(bytes(...V6_UDP))],
    ['IPv4 bytes to decodeIPv6', () => decodeIPv6(Buffer.concat([bytes(...V4_UDP), Buffer.alloc(8)]))],
  ],
  bad_ihl: [
    ['IHL 4 (16 bytes)', () => decodeIPv4(v4udpWith(0, '44'))],
    ['IHL 15 (60 bytes) past total length 32', () => decodeIPv4(v4udpWith(0, '4f'))],
  ],
  bad_length: [
    ['IPv4 total length 33 > 32 received', () => decodeIPv4(v4udpWith(2, '00 21'))],
    ['IPv4 total length 19', () => decodeIPv4(v4udpWith(2, '00 13'))],
    ['IPv6 payload length 13 > 12 received', () => decodeIPv6(v6udpWith(1, '00 0d'))],
  ],
  fragment: [
    ['IPv4 More Fragments', () => decodeIPv4(v4udpWith(4, '20 00'))],
    ['IPv4 fragment offset 1', () => decodeIPv4(v4udpWith(4, '00 01'))],
    ['IPv6 Fragment header', () => decodeIPv6(v6('00 10', '2c', '11 00 00 00 00 00 00 01', UDP_8))],
  ],
  unsupported_proto: [
    ['IPv4 protocol 1 (ICMP)', () => decodeIPv4(v4udpWith(6, '01'))],
    ['IPv6 next header 58 (ICMPv6)', () => decodeIPv6(v6udpWith(2, '3a'))],
    ['IPv6 ESP (50)', () => decodeIPv6(v6udpWith(2, '32'))],
    ['IPv6 AH (51)', () => decodeIPv6(v6udpWith(2, '33'))],
    ['IPv6 No Next Header (59)', () => decodeIPv6(v6udpWith(2, '3b'))],
    ['unknown transport name', () => decodeTransport('sctp' as 'udp', Buffer.alloc(8), '::1', '', 6)],
  ],
  bad_ext_header: [
    ['Hop-by-Hop after another header', () => decodeIPv6(v6('00 18', '3c', PAD_EXT('00'), PAD_EXT('11'), UDP_8))],
    ['extension header expected but the packet ends at 40 bytes', () => decodeIPv6(v6('00 00', '3c'))],
    ['extension header cut off by payload length', () => decodeIPv6(v6('00 04', '3c', PAD_EXT('11')))],
    ['extension length past payload length', () => decodeIPv6(v6('00 10', '3c', '11 02 00 00 00 00 00 00', UDP_8))],
    ['jumbogram: payload length 0', () => decodeIPv6(v6('00 00', '00', 'c2 04 00 01 00 00', '00 00', UDP_8))],
  ],
  bad_udp_length: [
    ['UDP length 7', () => decodeIPv4(v4udpWith(12, '00 07'))],
    ['UDP length 13 > 12 available', () => decodeIPv4(v4udpWith(12, '00 0d'))],
  ],
  bad_tcp_offset: [
    ['data offset 4', () => decodeTransport('tcp', bytes('0001 0002', '00'.repeat(8), '40 02', '00'.repeat(6)), '::1', '', 6)],
    ['data offset 6 > 20 bytes available', () => decodeTransport('tcp', bytes('0001 0002', '00'.repeat(8), '60 02', '00'.repeat(6)), '::1', '', 6)],
  ],
  bad_address: [
    ['source is not an address', () => decodeTransport('udp', bytes(UDP_8), 'nonsense', '', 6)],
    ['IPv4 source with family 6', () => decodeTransport('udp', bytes(UDP_8), '192.0.2.1', '', 6)],
    ['destination with a zone id', () => decodeTransport('udp', bytes(UDP_8), 'fe80::1', 'fe80::2%eth0', 6)],
    ['empty source', () => decodeTransport('udp', bytes(UDP_8), '', '', 4)],
  ],
};

describe('exact rejection reasons', () => {
  it('has at least one fixture for every reason in FRAME_REASON_TEXT', () => {
    assert.deepEqual(Object.keys(REASON_FIXTURES).sort(), Object.keys(FRAME_REASON_TEXT).sort());
    for (const text of Object.values(FRAME_REASON_TEXT)) assert.ok(text.length > 0);
  });
  for (const [reason, fixtures] of Object.entries(REASON_FIXTURES)) {
    for (const [name, run] of fixtures) {
      it(`${reason}: ${name}`, () => assert.deepEqual(run(), { ok: false, reason }));
    }
  }
});
