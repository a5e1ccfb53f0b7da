// SPDX-License-Identifier: MIT
// Wire sizes, offsets and code points for the IP, UDP and TCP headers that postern decodes
// (STYLE.md principle 2: sizes and offsets are named constants in one file). Offsets are
// relative to the start of their own header. Field layouts: IPv4 RFC 791 §3.1, IPv6 RFC 8200
// §3 and §4, UDP RFC 768, TCP RFC 9293 §3.1.

// ---- IPv4 (RFC 791 §3.1) ----
export const IPV4_VERSION = 4;
export const IPV4_MIN_HEADER_LEN = 20;
/** Internet Header Length is counted in 32-bit words; 5 words is the option-less header. */
export const IPV4_MIN_IHL = 5;
export const IPV4_IHL_UNIT = 4;
export const IPV4_OFF_VERSION_IHL = 0;
export const IPV4_OFF_TOTAL_LENGTH = 2;
export const IPV4_OFF_FLAGS_FRAGMENT = 6;
export const IPV4_OFF_PROTOCOL = 9;
export const IPV4_OFF_SRC = 12;
export const IPV4_OFF_DST = 16;
/** More Fragments flag within the 16-bit flags/fragment-offset field. */
export const IPV4_FLAG_MF = 0x2000;
/** Fragment offset (in 8-byte units) within the same field. */
export const IPV4_FRAGMENT_OFFSET_MASK = 0x1fff;
export const IPV4_ADDR_LEN = 4;

// ---- IPv6 (RFC 8200 §3, §4) ----
export const IPV6_VERSION = 6;
export const IPV6_HEADER_LEN = 40;
export const IPV6_OFF_VERSION = 0;
export const IPV6_OFF_PAYLOAD_LENGTH = 4;
export const IPV6_OFF_NEXT_HEADER = 6;
export const IPV6_OFF_SRC = 8;
export const IPV6_OFF_DST = 24;
export const IPV6_ADDR_LEN = 16;
/**
 * Hop-by-Hop, Routing and Destination Options headers share a layout: Next Header (1 byte),
 * Hdr Ext Len (1 byte, in 8-octet units not counting the first 8), then data (RFC 8200 §4.3,
 * §4.4, §4.6). So every one of them is at least 8 bytes long.
 */
export const IPV6_EXT_MIN_LEN = 8;
export const IPV6_EXT_LEN_UNIT = 8;
export const IPV6_EXT_OFF_NEXT_HEADER = 0;
export const IPV6_EXT_OFF_HDR_EXT_LEN = 1;
/**
 * Cap on extension headers walked before the transport header. RFC 8200 §4.1 recommends at
 * most one of each (Destination Options at most twice), so 8 is generous; the cap bounds the
 * work a hostile chain can cost.
 */
export const IPV6_MAX_EXT_HEADERS = 8;

/** Version nibble: high 4 bits of the first byte, in both IPv4 and IPv6. */
export const IP_VERSION_SHIFT = 4;

// ---- IP protocol numbers / IPv6 Next Header values (IANA "Assigned Internet Protocol Numbers") ----
export const IPPROTO_HOPOPTS = 0;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ROUTING = 43;
export const IPPROTO_FRAGMENT = 44;
// ESP, AH and No Next Header are named because frame.ts refuses them (unsupported_proto).
export const IPPROTO_ESP = 50;
export const IPPROTO_AH = 51;
export const IPPROTO_NONE = 59;
export const IPPROTO_DSTOPTS = 60;

// ---- UDP (RFC 768) ----
export const UDP_HEADER_LEN = 8;
export const UDP_OFF_SRC_PORT = 0;
export const UDP_OFF_DST_PORT = 2;
export const UDP_OFF_LENGTH = 4;

// ---- TCP (RFC 9293 §3.1) ----
export const TCP_MIN_HEADER_LEN = 20;
/** Data Offset is counted in 32-bit words; 5 words is the option-less header. */
export const TCP_MIN_DATA_OFFSET = 5;
export const TCP_DATA_OFFSET_UNIT = 4;
export const TCP_DATA_OFFSET_SHIFT = 4;
export const TCP_OFF_SRC_PORT = 0;
export const TCP_OFF_DST_PORT = 2;
export const TCP_OFF_DATA_OFFSET = 12;
export const TCP_OFF_FLAGS = 13;

/** TCP control bits in byte 13 (RFC 9293 §3.1; ECE/CWR from RFC 3168 §23.2). */
export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
export const TCP_URG = 0x20;
export const TCP_ECE = 0x40;
export const TCP_CWR = 0x80;

// ---- ICMP (RFC 792) and ICMPv6 (RFC 4443) echo ----
export const IPPROTO_ICMP = 1;
export const IPPROTO_ICMPV6 = 58;
/** Type, Code, Checksum, Identifier, Sequence Number: the echo header is 8 bytes in both
 *  ICMP (RFC 792 "Echo or Echo Reply Message") and ICMPv6 (RFC 4443 §4.1, §4.2). */
export const ICMP_ECHO_HEADER_LEN = 8;
export const ICMP_OFF_TYPE = 0;
export const ICMP_OFF_CODE = 1;
export const ICMP_OFF_CHECKSUM = 2;
export const ICMP_OFF_ID = 4;
export const ICMP_OFF_SEQ = 6;
export const ICMP_ECHO_REPLY = 0;
export const ICMP_ECHO_REQUEST = 8;
export const ICMPV6_ECHO_REQUEST = 128;
export const ICMPV6_ECHO_REPLY = 129;
