// SPDX-License-Identifier: MIT
// Pure, bounds-checked decoding of the packets postern captures (DESIGN.md pipeline, stage
// "frame decode"; STYLE.md principles 1 and 2). Bytes in, a Frame or a named reason out; no
// I/O, no shared state, and no throw on any input: every read is preceded by a length check,
// and reads use Buffer.readUInt* so that a missing check would throw in the fuzz test instead
// of silently reading `undefined`.
//
// Where the bytes come from (DESIGN.md fact 4, raw-socket):
//   - IPv4 raw socket: each buffer starts with the IPv4 header  -> decodeIPv4 / decodeFrame
//   - IPv6 raw socket: the buffer starts at the UDP/TCP header and the source address comes
//     from recvfrom as text                                     -> decodeTransport
//   - pcap/hex replay and tests: whole IPv4 or IPv6 packets      -> decodeFrame
//
// API
//   decodeFrame(buf)      dispatch on the version nibble to decodeIPv4 / decodeIPv6
//   decodeIPv4(buf)       IPv4 header (options skipped) + UDP/TCP
//   decodeIPv6(buf)       40-byte fixed header, extension headers walked, + UDP/TCP
//   decodeTransport(proto, buf, src, dst, family)
//                         header-less UDP/TCP segment; src/dst are canonicalised (libuv's
//                         inet_ntop prints ::102:304 as "::1.2.3.4"), dst '' means unknown.
//                         Five parameters (STYLE.md says ≤ 4): kept because they are exactly
//                         what one recvfrom yields, and capture/ codes against this signature.
//   FRAME_REASON_TEXT     reason -> one-line description, exhaustive (principle 5)
//   decodeIcmpEcho(buf, family, src)
//                         ICMP echo request/reply (IPv4 packet, or header-less ICMPv6 message
//                         + recvfrom source); ICMP_REASON_TEXT is its reason map
//
// Checks run in header order, cheapest first (size, version, header length, IP length,
// fragment, protocol, transport header, and for decodeTransport the address text last), so a
// packet wrong in several ways gets the first reason in that order.
//
// Policy choices, each a refusal with its own reason:
//   - Fragments (IPv4 MF or offset != 0; IPv6 Fragment header) -> 'fragment'. postern never
//     reassembles, so a tiny first fragment can never hide or rewrite a transport header
//     (RFC 1858; tailscale net/packet/packet.go: "Every protocol below MUST check that it has
//     at least one entire transport header in order to protect against fragment confusion").
//   - IPv6 AH (51), ESP (50), No Next Header (59) and every other upper layer that is not UDP
//     or TCP -> 'unsupported_proto'. Only Hop-by-Hop (first only, RFC 8200 §4.1), Routing and
//     Destination Options headers are skipped, at most IPV6_MAX_EXT_HEADERS of them.
//   - IPv6 jumbograms (payload length 0 + Jumbo option, RFC 2675) -> 'bad_ext_header': with a
//     payload length of 0 the Hop-by-Hop header lies outside the packet.
// Checksums are not verified. The IPv4 header checksum was checked by the kernel (ip_rcv)
// before any raw socket saw the packet. UDP/TCP checksums are checked later (udp_rcv,
// tcp_v4_rcv), after raw delivery, and an IPv6 raw socket does not even give us the
// destination address the pseudo-header needs; SPA payloads are authenticated end to end,
// so corruption fails authentication anyway.

import { formatAddress, formatIPv4, formatIPv6, parseAddress } from './address.ts';
import {
  IP_VERSION_SHIFT, IPPROTO_DSTOPTS, IPPROTO_FRAGMENT, IPPROTO_HOPOPTS, IPPROTO_ROUTING,
  IPPROTO_TCP, IPPROTO_UDP, IPV4_FLAG_MF, IPV4_FRAGMENT_OFFSET_MASK, IPV4_IHL_UNIT,
  IPV4_MIN_HEADER_LEN, IPV4_OFF_DST, IPV4_OFF_FLAGS_FRAGMENT, IPV4_OFF_PROTOCOL, IPV4_OFF_SRC,
  IPV4_OFF_TOTAL_LENGTH, IPV4_OFF_VERSION_IHL, IPV4_VERSION, IPV6_EXT_LEN_UNIT, IPV6_EXT_MIN_LEN,
  IPV6_EXT_OFF_HDR_EXT_LEN, IPV6_EXT_OFF_NEXT_HEADER, IPV6_HEADER_LEN, IPV6_MAX_EXT_HEADERS,
  IPV6_OFF_DST, IPV6_OFF_NEXT_HEADER, IPV6_OFF_PAYLOAD_LENGTH, IPV6_OFF_SRC, IPV6_OFF_VERSION,
  IPV6_VERSION, ICMP_ECHO_HEADER_LEN, ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, ICMP_OFF_CODE, ICMP_OFF_ID,
  ICMP_OFF_SEQ, ICMP_OFF_TYPE, ICMPV6_ECHO_REPLY, ICMPV6_ECHO_REQUEST, IPPROTO_ICMP, TCP_DATA_OFFSET_SHIFT, TCP_DATA_OFFSET_UNIT, TCP_MIN_HEADER_LEN, TCP_OFF_DATA_OFFSET,
  TCP_OFF_DST_PORT, TCP_OFF_FLAGS, TCP_OFF_SRC_PORT, UDP_HEADER_LEN, UDP_OFF_DST_PORT,
  UDP_OFF_LENGTH, UDP_OFF_SRC_PORT,
} from './constants.ts';
import { fail, ok, type Decoded } from './result.ts';

/** 'icmp' frames (ICMP or ICMPv6 echo, built by capture/ from decodeIcmpEcho) have ports 0. */
export type FrameProto = 'udp' | 'tcp' | 'icmp';

export interface Frame {
  readonly family: 4 | 6;
  /** Canonical text: IPv4 dotted quad; IPv6 RFC 5952 (see address.ts). */
  readonly src: string;
  /** Same form as src; '' when unknown (IPv6 raw socket: no header, no destination). */
  readonly dst: string;
  readonly proto: FrameProto;
  readonly srcPort: number;
  readonly dstPort: number;
  /** 0 for UDP; the TCP flag byte (FIN=1 SYN=2 RST=4 PSH=8 ACK=16 URG=32 ECE=64 CWR=128). */
  readonly tcpFlags: number;
  /** A view into the input (no copy). UDP: exactly (UDP length - 8) bytes. */
  readonly payload: Buffer;
}

export const FRAME_REASON_TEXT = {
  truncated: 'shorter than the fixed header it claims to be',
  bad_version: 'IP version nibble is not the one expected',
  bad_ihl: 'IPv4 header length below 20 bytes or beyond the packet',
  bad_length: 'IP total/payload length disagrees with the bytes received',
  fragment: 'IP fragment (never reassembled)',
  unsupported_proto: 'upper-layer protocol is not UDP or TCP',
  bad_ext_header: 'IPv6 extension header malformed, misplaced, truncated or too many',
  bad_udp_length: 'UDP length below 8 or beyond the bytes received',
  bad_tcp_offset: 'TCP data offset below 5 words or beyond the bytes received',
  bad_address: 'source or destination address text is not an address of the family',
} as const satisfies Record<string, string>;

export type FrameReason = keyof typeof FRAME_REASON_TEXT;
export type FrameResult = Decoded<Frame, FrameReason>;

/** The transport part of a Frame, before addresses are attached. */
interface Segment {
  readonly proto: FrameProto;
  readonly srcPort: number;
  readonly dstPort: number;
  readonly tcpFlags: number;
  readonly payload: Buffer;
}

export function decodeFrame(buf: Buffer): FrameResult {
  if (buf.length < 1) return fail('truncated');
  const version = buf.readUInt8(0) >> IP_VERSION_SHIFT;
  if (version === IPV4_VERSION) return decodeIPv4(buf);
  if (version === IPV6_VERSION) return decodeIPv6(buf);
  return fail('bad_version');
}

export function decodeIPv4(buf: Buffer): FrameResult {
  const ip = decodeIPv4Header(buf);
  if (!ip.ok) return ip;
  const seg = decodeSegment(ip.value.proto, ip.value.body);
  if (!seg.ok) return seg;
  return ok(toFrame(IPV4_VERSION, formatIPv4(buf, IPV4_OFF_SRC), formatIPv4(buf, IPV4_OFF_DST), seg.value));
}

/** Refusals of the IPv4 header itself, shared by the UDP/TCP and the ICMP decoders. */
type IPv4Reason = 'truncated' | 'bad_version' | 'bad_ihl' | 'bad_length' | 'fragment';

/** Check an IPv4 header (RFC 791 §3.1) and return its protocol number and the bytes it
 *  carries (bounded by Total Length, so link padding is cut off). */
function decodeIPv4Header(buf: Buffer): Decoded<{ proto: number; body: Buffer }, IPv4Reason> {
  if (buf.length < IPV4_MIN_HEADER_LEN) return fail('truncated');
  const first = buf.readUInt8(IPV4_OFF_VERSION_IHL);
  if (first >> IP_VERSION_SHIFT !== IPV4_VERSION) return fail('bad_version');
  const headerLen = (first & 0x0f) * IPV4_IHL_UNIT;
  if (headerLen < IPV4_MIN_HEADER_LEN) return fail('bad_ihl');
  // The buffer may carry trailing bytes (link padding); the total length bounds the packet.
  const totalLen = buf.readUInt16BE(IPV4_OFF_TOTAL_LENGTH);
  if (totalLen < IPV4_MIN_HEADER_LEN || totalLen > buf.length) return fail('bad_length');
  if (headerLen > totalLen) return fail('bad_ihl');
  const fragField = buf.readUInt16BE(IPV4_OFF_FLAGS_FRAGMENT);
  if ((fragField & IPV4_FLAG_MF) !== 0 || (fragField & IPV4_FRAGMENT_OFFSET_MASK) !== 0) return fail('fragment');
  return ok({ proto: buf.readUInt8(IPV4_OFF_PROTOCOL), body: buf.subarray(headerLen, totalLen) });
}

export function decodeIPv6(buf: Buffer): FrameResult {
  if (buf.length < IPV6_HEADER_LEN) return fail('truncated');
  if (buf.readUInt8(IPV6_OFF_VERSION) >> IP_VERSION_SHIFT !== IPV6_VERSION) return fail('bad_version');
  const end = IPV6_HEADER_LEN + buf.readUInt16BE(IPV6_OFF_PAYLOAD_LENGTH);
  if (end > buf.length) return fail('bad_length');
  const upper = findUpperLayer(buf, end);
  if (!upper.ok) return upper;
  const seg = decodeSegment(upper.value.proto, buf.subarray(upper.value.offset, end));
  if (!seg.ok) return seg;
  return ok(toFrame(IPV6_VERSION, formatIPv6(buf, IPV6_OFF_SRC), formatIPv6(buf, IPV6_OFF_DST), seg.value));
}

/**
 * Walk the extension header chain (RFC 8200 §4) from the fixed header to the UDP/TCP header.
 * `end` is the end of the packet per its payload length, already checked against the buffer.
 */
function findUpperLayer(buf: Buffer, end: number): Decoded<{ proto: number; offset: number }, FrameReason> {
  let next = buf.readUInt8(IPV6_OFF_NEXT_HEADER);
  let offset = IPV6_HEADER_LEN;
  for (let seen = 0; seen <= IPV6_MAX_EXT_HEADERS; seen++) {
    if (next === IPPROTO_UDP || next === IPPROTO_TCP) return ok({ proto: next, offset });
    if (next === IPPROTO_FRAGMENT) return fail('fragment');
    // RFC 8200 §4.1: Hop-by-Hop Options may only follow the fixed header directly.
    if (next === IPPROTO_HOPOPTS && seen > 0) return fail('bad_ext_header');
    if (next !== IPPROTO_HOPOPTS && next !== IPPROTO_ROUTING && next !== IPPROTO_DSTOPTS) {
      return fail('unsupported_proto');
    }
    if (seen === IPV6_MAX_EXT_HEADERS) return fail('bad_ext_header');
    if (offset + IPV6_EXT_MIN_LEN > end) return fail('bad_ext_header');
    const len = (buf.readUInt8(offset + IPV6_EXT_OFF_HDR_EXT_LEN) + 1) * IPV6_EXT_LEN_UNIT;
    if (offset + len > end) return fail('bad_ext_header');
    next = buf.readUInt8(offset + IPV6_EXT_OFF_NEXT_HEADER);
    offset += len;
  }
  return fail('bad_ext_header');
}

export function decodeTransport(
  proto: FrameProto, buf: Buffer, src: string, dst: string, family: 4 | 6,
): FrameResult {
  const seg = decodeSegment(proto === 'udp' ? IPPROTO_UDP : proto === 'tcp' ? IPPROTO_TCP : -1, buf);
  if (!seg.ok) return seg;
  const srcText = canonicalFor(src, family);
  const dstText = dst === '' ? '' : canonicalFor(dst, family);
  if (srcText === undefined || dstText === undefined) return fail('bad_address');
  return ok(toFrame(family, srcText, dstText, seg.value));
}

function canonicalFor(text: string, family: 4 | 6): string | undefined {
  const parsed = parseAddress(text);
  if (!parsed.ok || parsed.value.family !== family) return undefined;
  return formatAddress(parsed.value);
}

function decodeSegment(ipProto: number, seg: Buffer): Decoded<Segment, FrameReason> {
  if (ipProto === IPPROTO_UDP) return decodeUdp(seg);
  if (ipProto === IPPROTO_TCP) return decodeTcp(seg);
  return fail('unsupported_proto');
}

/** RFC 768: Length counts header and data, so it is at least 8. */
function decodeUdp(seg: Buffer): Decoded<Segment, FrameReason> {
  if (seg.length < UDP_HEADER_LEN) return fail('truncated');
  const len = seg.readUInt16BE(UDP_OFF_LENGTH);
  // Longer than what arrived: truncated or lying. Shorter: Linux trims the rest (udp_rcv
  // -> pskb_trim_rcsum), so the datagram is exactly `len` bytes and so is what we hand on.
  if (len < UDP_HEADER_LEN || len > seg.length) return fail('bad_udp_length');
  return ok({
    proto: 'udp',
    srcPort: seg.readUInt16BE(UDP_OFF_SRC_PORT),
    dstPort: seg.readUInt16BE(UDP_OFF_DST_PORT),
    tcpFlags: 0,
    payload: seg.subarray(UDP_HEADER_LEN, len),
  });
}

/** RFC 9293 §3.1: Data Offset counts 32-bit words of header, options included. */
function decodeTcp(seg: Buffer): Decoded<Segment, FrameReason> {
  if (seg.length < TCP_MIN_HEADER_LEN) return fail('truncated');
  const headerLen = (seg.readUInt8(TCP_OFF_DATA_OFFSET) >> TCP_DATA_OFFSET_SHIFT) * TCP_DATA_OFFSET_UNIT;
  if (headerLen < TCP_MIN_HEADER_LEN || headerLen > seg.length) return fail('bad_tcp_offset');
  return ok({
    proto: 'tcp',
    srcPort: seg.readUInt16BE(TCP_OFF_SRC_PORT),
    dstPort: seg.readUInt16BE(TCP_OFF_DST_PORT),
    tcpFlags: seg.readUInt8(TCP_OFF_FLAGS),
    payload: seg.subarray(headerLen),
  });
}

function toFrame(family: 4 | 6, src: string, dst: string, seg: Segment): Frame {
  return {
    family, src, dst, proto: seg.proto, srcPort: seg.srcPort, dstPort: seg.dstPort, tcpFlags: seg.tcpFlags, payload: seg.payload,
  };
}

// ---- ICMP / ICMPv6 echo (SPA carried in a ping, DESIGN.md "SPA protocol v1", opt-in) ----

export type IcmpEchoKind = 'request' | 'reply';

export interface IcmpEcho {
  readonly family: 4 | 6;
  /** Canonical text, as in Frame. */
  readonly src: string;
  /** '' for IPv6 (the raw socket gives no header), as in Frame. */
  readonly dst: string;
  readonly kind: IcmpEchoKind;
  readonly id: number;
  readonly seq: number;
  /** A view into the input (no copy): the echo data after the 8-byte header. */
  readonly payload: Buffer;
}

export const ICMP_REASON_TEXT = {
  truncated: 'shorter than the fixed header it claims to be',
  bad_version: 'IP version nibble is not 4',
  bad_ihl: 'IPv4 header length below 20 bytes or beyond the packet',
  bad_length: 'IPv4 total length disagrees with the bytes received',
  fragment: 'IP fragment (never reassembled)',
  unsupported_proto: 'IPv4 protocol is not ICMP',
  not_echo: 'ICMP type is not echo request/reply, or the code is not 0',
  bad_address: 'source address text is not an IPv6 address',
} as const satisfies Record<string, string>;

export type IcmpReason = keyof typeof ICMP_REASON_TEXT;
export type IcmpResult = Decoded<IcmpEcho, IcmpReason>;

/**
 * One echo message as a raw socket delivers it. family 4: `buf` is the whole IPv4 packet
 * (addresses come from its header; `src` is not used). family 6: `buf` starts at the ICMPv6
 * header (RFC 3542 §3) and `src` is recvfrom's address text. Echo replies are decoded too:
 * fwknop's `-P icmp` sends type 0 unless told `--icmp-type 8` (client/config_init.c sets
 * `spa_icmp_type = ICMP_ECHOREPLY`). The ICMP checksum is not verified, for the reason
 * given for UDP above (the payload is authenticated end to end).
 */
export function decodeIcmpEcho(buf: Buffer, family: 4 | 6, src: string): IcmpResult {
  if (family === IPV6_VERSION) {
    const echo = decodeEchoHeader(buf, ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY);
    if (!echo.ok) return echo;
    const srcText = canonicalFor(src, IPV6_VERSION);
    if (srcText === undefined) return fail('bad_address');
    return ok({ family, src: srcText, dst: '', ...echo.value });
  }
  const ip = decodeIPv4Header(buf);
  if (!ip.ok) return ip;
  if (ip.value.proto !== IPPROTO_ICMP) return fail('unsupported_proto');
  const echo = decodeEchoHeader(ip.value.body, ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY);
  if (!echo.ok) return echo;
  return ok({ family: IPV4_VERSION, src: formatIPv4(buf, IPV4_OFF_SRC), dst: formatIPv4(buf, IPV4_OFF_DST), ...echo.value });
}

type EchoPart = Pick<IcmpEcho, 'kind' | 'id' | 'seq' | 'payload'>;

/** RFC 792 / RFC 4443 §4.1-4.2: type, code 0, checksum, identifier, sequence, data. */
function decodeEchoHeader(msg: Buffer, requestType: number, replyType: number): Decoded<EchoPart, IcmpReason> {
  if (msg.length < ICMP_ECHO_HEADER_LEN) return fail('truncated');
  const type = msg.readUInt8(ICMP_OFF_TYPE);
  if ((type !== requestType && type !== replyType) || msg.readUInt8(ICMP_OFF_CODE) !== 0) return fail('not_echo');
  return ok({
    kind: type === requestType ? 'request' : 'reply',
    id: msg.readUInt16BE(ICMP_OFF_ID),
    seq: msg.readUInt16BE(ICMP_OFF_SEQ),
    payload: msg.subarray(ICMP_ECHO_HEADER_LEN),
  });
}
