// SPDX-License-Identifier: MIT
// src/wire/address.ts: RFC 5952 vectors, strict-parse refusals, and property tests with
// node:net as the oracle (isIPv4/isIPv6 for parsing, SocketAddress for formatting, BlockList
// for CIDR membership).

import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  canonicalAddress, cidrContains, formatIPv4, formatIPv6, parseAddress, parseCidr, type Cidr,
} from '../../../src/wire/address.ts';

const RUNS = { numRuns: 2000 };

describe('formatIPv6 and canonicalAddress (RFC 5952)', () => {
  const VECTORS: ReadonlyArray<readonly [string, string]> = [
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],    // §4.1 leading zeros dropped
    ['2001:DB8::1', '2001:db8::1'],                                // §4.3 lower case
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],              // §4.2.2 one zero group stays
    ['2001:db8::1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],                       // §4.2.3 longest run
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],                 // §4.2.3 first on a tie
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['fe80:0:0:0:0:0:0:0001', 'fe80::1'],
    ['0:0:0:0:0:ffff:c000:0201', '::ffff:192.0.2.1'],              // §5 IPv4-mapped, mixed notation
    ['::ffff:192.0.2.1', '::ffff:192.0.2.1'],
    ['::192.0.2.1', '::c000:201'],                                 // compatible (deprecated): hex
    ['64:ff9b::192.0.2.1', '64:ff9b::c000:201'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:102:304'],
    ['1::2:3:4:5:6:7', '1:0:2:3:4:5:6:7'],                         // "::" for one group is accepted on input
    ['192.0.2.1', '192.0.2.1'],
    ['0.0.0.0', '0.0.0.0'],
    ['255.255.255.255', '255.255.255.255'],
  ];
  for (const [input, expected] of VECTORS) {
    it(`${input} -> ${expected}`, () => assert.equal(canonicalAddress(input), expected));
  }

  it('formats at an offset and returns "" out of bounds instead of throwing', () => {
    const buf = Buffer.from('ff c0000201 20010db8000000000000000000000001'.replace(/ /g, ''), 'hex');
    assert.equal(formatIPv4(buf, 1), '192.0.2.1');
    assert.equal(formatIPv6(buf, 5), '2001:db8::1');
    for (const off of [-1, 2, 1.5, Number.NaN]) assert.equal(formatIPv4(buf.subarray(0, 5), off), '');
    assert.equal(formatIPv6(buf, 6), '');
    assert.equal(formatIPv6(new Uint8Array(0), 0), '');
  });
});

describe('parseAddress refusals', () => {
  const REFUSED = [
    '', ' 1.2.3.4', '1.2.3.4 ', '01.2.3.4', '1.2.3.04', '1.2.3', '1.2.3.4.5', '256.1.1.1', '1.2.3.-4',
    '0x1.2.3.4', '1..3.4', '1.2.3.4/32', '+1.2.3.4', '१.2.3.4',
    'fe80::1%eth0', '::1%1', ':::', '1:::2', '::1::', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7',
    '1::2:3:4:5:6:7:8', '12345::', 'g::', ':1::', '1::2:', '1.2.3.4::', '::1.2.3.4:1',
    '1:2:3:4:5:6:7:1.2.3.4', '::01.2.3.4', '[::1]', '0000:0000:0000:0000:0000:0000:0000:0000:0',
    'x'.repeat(10_000),
  ];
  for (const text of REFUSED) {
    it(`refuses ${JSON.stringify(text.slice(0, 40))}`, () => {
      assert.deepEqual(parseAddress(text), { ok: false, reason: 'bad_address' });
      assert.equal(canonicalAddress(text), undefined);
    });
  }
});

/** 16 bytes biased towards zero groups and the IPv4-mapped prefix, so compression is exercised. */
const arbV6Bytes = fc.oneof(
  fc.uint8Array({ minLength: 16, maxLength: 16 }),
  fc.array(fc.oneof(fc.constant(0), fc.constant(0), fc.constant(0xffff), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 })
    .map((groups) => new Uint8Array(Buffer.from(groups.flatMap((g) => [g >> 8, g & 0xff])))),
  fc.uint8Array({ minLength: 4, maxLength: 4 }).map((v4) => new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...v4])),
);

/** A random valid spelling of `bytes`: any compressible run, leading zeros, case, mixed notation. */
function arbSpelling(bytes: Uint8Array): fc.Arbitrary<string> {
  const groups = Array.from({ length: 8 }, (_, i) => ((bytes[2 * i] ?? 0) << 8) | (bytes[2 * i + 1] ?? 0));
  return fc.record({ pad: fc.boolean(), upper: fc.boolean(), mixed: fc.boolean(), cut: fc.nat(8), len: fc.nat(8) })
    .map(({ pad, upper, mixed, cut, len }) => {
      let parts = groups.map((g) => g.toString(16).padStart(pad ? 4 : 1, '0'));
      if (mixed) parts = [...parts.slice(0, 6), `${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`];
      const start = Math.min(cut, parts.length);
      const end = Math.min(start + len, parts.length);
      const zero = end > start && groups.slice(start, end + (mixed && end === 7 ? 1 : 0)).every((g) => g === 0);
      const text = zero ? `${parts.slice(0, start).join(':')}::${parts.slice(end).join(':')}` : parts.join(':');
      return upper ? text.toUpperCase() : text;
    });
}

/** A single-character edit (insert, delete, replace) from the address alphabet. */
function arbMutation(text: string): fc.Arbitrary<string> {
  return fc.record({ at: fc.nat(text.length), kind: fc.integer({ min: 0, max: 2 }), ch: fc.constantFrom(...'0123456789abcdefABCDEFg:.%/ ') })
    .map(({ at, kind, ch }) => text.slice(0, at) + (kind === 0 ? '' : ch) + text.slice(at + (kind === 2 ? 0 : 1)));
}

function oracleFamily(text: string): 0 | 4 | 6 {
  if (text.includes('%')) return 0; // node accepts zone ids; postern refuses them by design
  return net.isIPv4(text) ? 4 : net.isIPv6(text) ? 6 : 0;
}

describe('address properties', () => {
  it('parse∘format is the identity on random IPv4 and IPv6 bytes', () => {
    fc.assert(fc.property(fc.oneof(fc.uint8Array({ minLength: 4, maxLength: 4 }), arbV6Bytes), (bytes) => {
      const text = bytes.length === 4 ? formatIPv4(bytes, 0) : formatIPv6(bytes, 0);
      const parsed = parseAddress(text);
      assert.ok(parsed.ok, text);
      assert.deepEqual(new Uint8Array(parsed.value.bytes), bytes);
      assert.equal(parsed.value.family, bytes.length === 4 ? 4 : 6);
      assert.equal(canonicalAddress(text), text);
    }), RUNS);
  });

  it('formatIPv6 matches node SocketAddress (libuv inet_ntop) except for its ::a.b.c.d form', () => {
    fc.assert(fc.property(arbV6Bytes, (bytes) => {
      const ours = formatIPv6(bytes, 0);
      const theirs = new net.SocketAddress({ address: ours, family: 'ipv6' }).address;
      if (theirs.includes('.') && !theirs.startsWith('::ffff:')) {
        assert.equal(canonicalAddress(theirs), ours); // libuv prints ::102:304 as ::1.2.3.4
      } else {
        assert.equal(ours, theirs);
      }
    }), RUNS);
  });

  it('every valid spelling parses to the same bytes and agrees with node:net', () => {
    fc.assert(fc.property(arbV6Bytes.chain((b) => fc.tuple(fc.constant(b), arbSpelling(b))), ([bytes, text]) => {
      assert.equal(oracleFamily(text), 6, text);
      const parsed = parseAddress(text);
      assert.ok(parsed.ok, text);
      assert.deepEqual(new Uint8Array(parsed.value.bytes), bytes);
    }), RUNS);
  });

  it('accepts exactly what node:net isIPv4/isIPv6 accept (mutated spellings)', () => {
    const v4Text = fc.uint8Array({ minLength: 4, maxLength: 4 }).map((b) => formatIPv4(b, 0));
    const v6Text = arbV6Bytes.chain(arbSpelling);
    const candidates = fc.oneof(v4Text, v6Text, v4Text.chain(arbMutation), v6Text.chain(arbMutation),
      v6Text.chain(arbMutation).chain(arbMutation), fc.string({ unit: fc.constantFrom(...'0123456789af:.'), maxLength: 20 }));
    fc.assert(fc.property(candidates, (text) => {
      const parsed = parseAddress(text);
      assert.equal(parsed.ok ? parsed.value.family : 0, oracleFamily(text), JSON.stringify(text));
    }), { numRuns: 10_000 });
  });
});

describe('parseCidr', () => {
  const ACCEPTED: ReadonlyArray<readonly [string, string]> = [
    ['10.0.0.0/8', '10.0.0.0/8'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['192.0.2.1', '192.0.2.1/32'],      // bare address: host prefix
    ['192.0.2.1/32', '192.0.2.1/32'],
    ['::/0', '::/0'],
    ['2001:DB8::/32', '2001:db8::/32'],
    ['2001:db8::1', '2001:db8::1/128'],
    ['::ffff:0.0.0.0/96', '::ffff:0.0.0.0/96'],
    ['10.128.0.0/9', '10.128.0.0/9'],
  ];
  for (const [input, text] of ACCEPTED) {
    it(`accepts ${input} as ${text}`, () => {
      const r = parseCidr(input);
      assert.ok(r.ok);
      assert.equal(r.value.text, text);
      assert.equal(r.value.family, input.includes(':') ? 6 : 4);
    });
  }
  const REFUSED = ['', '/8', '10.0.0.0/', '10.0.0.0/33', '::/129', '10.0.0.0/08', '10.0.0.0/8/8', '10.0.0.0/-1',
    '10.0.0.1/8', '10.192.0.0/9', '2001:db8::1/64', 'fe80::/10%eth0', '10.0.0.0/ 8', 'nonsense/8', '10.0.0.0/1e1'];
  for (const input of REFUSED) {
    it(`refuses ${JSON.stringify(input)}`, () => assert.deepEqual(parseCidr(input), { ok: false, reason: 'bad_cidr' }));
  }
});

function mustCidr(text: string): Cidr {
  const r = parseCidr(text);
  assert.ok(r.ok, text);
  return r.value;
}

describe('cidrContains', () => {
  it('never matches across families or on junk', () => {
    assert.equal(cidrContains(mustCidr('0.0.0.0/0'), '::ffff:1.2.3.4'), false);
    assert.equal(cidrContains(mustCidr('::/0'), '1.2.3.4'), false);
    assert.equal(cidrContains(mustCidr('::/0'), 'nonsense'), false);
    assert.equal(cidrContains(mustCidr('::/0'), '::1'), true);
    assert.equal(cidrContains(mustCidr('10.0.0.0/8'), '10.255.255.255'), true);
    assert.equal(cidrContains(mustCidr('10.0.0.0/8'), '11.0.0.0'), false);
  });

  /** Network, prefix and a probe that shares a random number of leading bits with it. */
  const arbCase = (len: 4 | 16) => fc.record({
    base: fc.uint8Array({ minLength: len, maxLength: len }),
    other: fc.uint8Array({ minLength: len, maxLength: len }),
    prefix: fc.integer({ min: 0, max: len * 8 }),
    shared: fc.integer({ min: 0, max: len * 8 }),
  });

  for (const len of [4, 16] as const) {
    it(`agrees with net.BlockList on random IPv${len === 4 ? 4 : 6} networks and probes`, () => {
      const fmt = len === 4 ? formatIPv4 : formatIPv6;
      const type = len === 4 ? 'ipv4' : 'ipv6';
      fc.assert(fc.property(arbCase(len), ({ base, other, prefix, shared }) => {
        const network = maskBits(base, prefix, new Uint8Array(len));
        const probe = maskBits(base, shared, other);
        const cidr = mustCidr(`${fmt(network, 0)}/${prefix}`);
        const list = new net.BlockList();
        list.addSubnet(fmt(network, 0), prefix, type);
        assert.equal(cidrContains(cidr, fmt(probe, 0)), list.check(fmt(probe, 0), type));
      }), RUNS);
    });
  }
});

/** The first `bits` bits of `keep`, then the rest of `rest`. */
function maskBits(keep: Uint8Array, bits: number, rest: Uint8Array): Uint8Array {
  return keep.map((b, i) => {
    const n = Math.min(Math.max(bits - i * 8, 0), 8);
    const mask = (0xff << (8 - n)) & 0xff;
    return (b & mask) | ((rest[i] ?? 0) & ~mask & 0xff);
  });
}
