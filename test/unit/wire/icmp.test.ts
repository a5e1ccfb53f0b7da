// SPDX-License-Identifier: MIT
// ICMP / ICMPv6 echo: hand-built messages, one commented field per line (STYLE.md principle
// 12a), an exact-reason fixture per IcmpReason, and encode -> decode mirrors for the
// client's encoder (src/cli/icmp-send.ts) with its RFC 1071 checksum.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decodeIcmpEcho, ICMP_REASON_TEXT, type IcmpEcho, type IcmpReason, type IcmpResult } from '../../../src/wire/frame.ts';
import { encodeIcmpEcho, internetChecksum } from '../../../src/cli/icmp-send.ts';

function bytes(...parts: string[]): Buffer {
  return Buffer.from(parts.join('').replace(/\s+/g, ''), 'hex');
}

function expectEcho(r: IcmpResult): IcmpEcho {
  assert.ok(r.ok, `expected an echo, got ${r.ok ? '' : r.reason}`);
  return r.value;
}

// IPv4 + ICMP echo request carrying 4 bytes "SPA!".
const V4_ECHO = [
  '45',          // version 4, IHL 5
  '00',          // DSCP/ECN
  '00 20',       // total length 32 = 20 IP + 8 ICMP + 4 data
  '12 34',       // identification
  '40 00',       // DF, offset 0
  '40',          // TTL
  '01',          // protocol 1 (ICMP)
  '00 00',       // header checksum (checked by the kernel, not here)
  'c0 00 02 01', // src 192.0.2.1
  'c6 33 64 07', // dst 198.51.100.7
  '08',          // type 8 echo request
  '00',          // code 0
  '00 00',       // checksum (not verified)
  'ab cd',       // identifier
  '00 01',       // sequence 1
  '53 50 41 21', // data "SPA!"
];

// ICMPv6 echo request as an IPv6 raw socket gives it: no IP header.
const V6_ECHO = [
  '80',          // type 128 echo request
  '00',          // code 0
  '00 00',       // checksum (the kernel verified it: rawv6 sockets with IPPROTO_ICMPV6)
  '00 07',       // identifier
  '00 02',       // sequence
  '53 50 41 21', // data
];

describe('decodeIcmpEcho', () => {
  it('IPv4 echo request: addresses from the header, data as a view', () => {
    const buf = bytes(...V4_ECHO, 'ee ee'); // link padding after total length is cut off
    const e = expectEcho(decodeIcmpEcho(buf, 4, 'ignored'));
    assert.deepEqual({ ...e, payload: e.payload.toString() }, {
      family: 4, src: '192.0.2.1', dst: '198.51.100.7', kind: 'request', id: 0xabcd, seq: 1, payload: 'SPA!',
    });
    assert.equal(e.payload.buffer, buf.buffer, 'no copy');
  });

  it('IPv4 echo reply (fwknop -P icmp default: type 0, id 0, seq 0)', () => {
    const buf = bytes(...V4_ECHO);
    buf[20] = 0;
    buf.writeUInt32BE(0, 24);
    const e = expectEcho(decodeIcmpEcho(buf, 4, ''));
    assert.equal(e.kind, 'reply');
    assert.equal(e.id, 0);
  });

  it('ICMPv6 echo request and reply: source from recvfrom, canonicalised; dst unknown', () => {
    const e = expectEcho(decodeIcmpEcho(bytes(...V6_ECHO), 6, '2001:DB8:0:0::1'));
    assert.deepEqual({ ...e, payload: e.payload.toString() }, {
      family: 6, src: '2001:db8::1', dst: '', kind: 'request', id: 7, seq: 2, payload: 'SPA!',
    });
    const reply = bytes(...V6_ECHO);
    reply[0] = 129;
    assert.equal(expectEcho(decodeIcmpEcho(reply, 6, '::1')).kind, 'reply');
  });

  it('an empty echo is fine (data of length 0)', () => {
    assert.equal(expectEcho(decodeIcmpEcho(bytes(...V6_ECHO).subarray(0, 8), 6, '::1')).payload.length, 0);
  });

  const v4 = (patch: (b: Buffer) => void): Buffer => { const b = bytes(...V4_ECHO); patch(b); return b; };
  const v6 = (patch: (b: Buffer) => void): Buffer => { const b = bytes(...V6_ECHO); patch(b); return b; };
  const fixtures: Record<IcmpReason, [Buffer, 4 | 6, string]> = {
    truncated: [bytes(...V6_ECHO).subarray(0, 7), 6, '::1'],
    bad_version: [v4((b) => { b[0] = 0x65; }), 4, ''],
    bad_ihl: [v4((b) => { b[0] = 0x44; }), 4, ''],
    bad_length: [v4((b) => { b.writeUInt16BE(33, 2); }), 4, ''],
    fragment: [v4((b) => { b.writeUInt16BE(0x2000, 6); }), 4, ''],
    unsupported_proto: [v4((b) => { b[9] = 17; }), 4, ''],
    not_echo: [v6((b) => { b[0] = 135; }), 6, '::1'], // neighbour solicitation
    bad_address: [bytes(...V6_ECHO), 6, '192.0.2.1'],
  };
  for (const [reason, [buf, family, src]] of Object.entries(fixtures)) {
    it(`refuses with ${reason}: ${ICMP_REASON_TEXT[reason as IcmpReason]}`, () => {
      assert.deepEqual(decodeIcmpEcho(buf, family, src), { ok: false, reason });
    });
  }

  it('a nonzero code is not an echo; an IPv4 echo without its 8-byte header is truncated', () => {
    assert.deepEqual(decodeIcmpEcho(v6((b) => { b[1] = 1; }), 6, '::1'), { ok: false, reason: 'not_echo' });
    const short = v4((b) => { b.writeUInt16BE(27, 2); });
    assert.deepEqual(decodeIcmpEcho(short, 4, ''), { ok: false, reason: 'truncated' });
  });
});

describe('encodeIcmpEcho and internetChecksum', () => {
  it('RFC 1071 checksum of a known ping (raw-socket README: 08 00 43 52 ...)', () => {
    const ping = Buffer.from('0800435200010a09616263646566676869 6a6b6c6d6e6f7071727374757677616263646566676869'.replace(/ /g, ''), 'hex');
    assert.equal(internetChecksum(ping), 0, 'a message with its checksum in place sums to 0');
    const zeroed = Buffer.from(ping);
    zeroed.writeUInt16BE(0, 2);
    assert.equal(internetChecksum(zeroed), 0x4352);
  });

  it('odd lengths pad the last byte with zero', () => {
    assert.equal(internetChecksum(Buffer.from([0x01])), ~0x0100 & 0xffff);
    assert.equal(internetChecksum(Buffer.alloc(0)), 0xffff);
  });

  it('IPv4 echo request: type 8, code 0, id, seq, valid checksum, data after 8 bytes', () => {
    const msg = encodeIcmpEcho(Buffer.from('SPA!'), { family: 4, id: 0xabcd, seq: 1 });
    assert.equal(msg.subarray(0, 2).toString('hex'), '0800');
    assert.equal(msg.subarray(4).toString('hex'), 'abcd000153504121');
    assert.equal(internetChecksum(msg), 0);
  });

  it('ICMPv6 echo request: type 128, checksum left 0 for the kernel', () => {
    const msg = encodeIcmpEcho(Buffer.from('SPA!'), { family: 6, id: 7, seq: 2 });
    assert.equal(msg.toString('hex'), bytes(...V6_ECHO).toString('hex'));
  });

  it('mirror: decode(encode(payload)) gives the payload, id and seq back', () => {
    fc.assert(fc.property(
      fc.uint8Array({ maxLength: 600 }), fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff }), fc.boolean(),
      (data, id, seq, six) => {
        const payload = Buffer.from(data);
        const msg = encodeIcmpEcho(payload, { family: six ? 6 : 4, id, seq });
        // Wrap the IPv4 message in a header as the raw socket delivers it.
        const ip = Buffer.from(bytes(...V4_ECHO.slice(0, 10)));
        ip.writeUInt16BE(20 + msg.length, 2);
        const e = expectEcho(six ? decodeIcmpEcho(msg, 6, 'fd00::1') : decodeIcmpEcho(Buffer.concat([ip, msg]), 4, ''));
        assert.deepEqual([e.kind, e.id, e.seq], ['request', id, seq]);
        assert.ok(e.payload.equals(payload));
        if (!six) assert.equal(internetChecksum(msg), 0);
      },
    ), { numRuns: 300 });
  });
});
