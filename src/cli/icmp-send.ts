// SPDX-License-Identifier: MIT
// The technician's ICMP transport (`postern open --icmp`): the SPA packet rides as the data
// of one ICMP / ICMPv6 echo request (DESIGN.md "SPA protocol v1", opt-in on the device with
// `spa.icmp`). The device's kernel answers it like any ping; postern only reads it. Sending
// needs a raw socket, so root or CAP_NET_RAW (the unprivileged ping socket, IPPROTO_ICMP
// with SOCK_DGRAM, would do too, but raw-socket only opens SOCK_RAW).

import { randomInt } from 'node:crypto';
import { sendIcmpMessage } from '../capture/raw.ts';
import {
  ICMP_ECHO_HEADER_LEN, ICMP_ECHO_REQUEST, ICMP_OFF_CHECKSUM, ICMP_OFF_CODE, ICMP_OFF_ID, ICMP_OFF_SEQ, ICMP_OFF_TYPE,
  ICMPV6_ECHO_REQUEST,
} from '../wire/constants.ts';

export interface EchoFields {
  readonly family: 4 | 6;
  readonly id: number;
  readonly seq: number;
}

/** RFC 1071 Internet checksum: one's complement of the one's complement sum of 16-bit
 *  words, an odd last byte padded with zero. */
export function internetChecksum(buf: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < buf.length; i += 2) sum += buf.readUInt16BE(i);
  if (buf.length % 2 === 1) sum += buf.readUInt8(buf.length - 1) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/**
 * One echo request (RFC 792; RFC 4443 §4.1) carrying `payload` as its data. IPv4: the
 * checksum is computed here. IPv6: left 0, because the kernel computes the ICMPv6 checksum
 * (it covers a pseudo-header with addresses only the kernel picks; RFC 3542 §3.1).
 */
export function encodeIcmpEcho(payload: Buffer, f: EchoFields): Buffer {
  const msg = Buffer.alloc(ICMP_ECHO_HEADER_LEN + payload.length);
  msg.writeUInt8(f.family === 6 ? ICMPV6_ECHO_REQUEST : ICMP_ECHO_REQUEST, ICMP_OFF_TYPE);
  msg.writeUInt8(0, ICMP_OFF_CODE);
  msg.writeUInt16BE(f.id, ICMP_OFF_ID);
  msg.writeUInt16BE(f.seq, ICMP_OFF_SEQ);
  payload.copy(msg, ICMP_ECHO_HEADER_LEN);
  if (f.family === 4) msg.writeUInt16BE(internetChecksum(msg), ICMP_OFF_CHECKSUM);
  return msg;
}

/** Send `packet` to `address` in one echo request (random identifier, sequence 1, like a
 *  first ping). Rejects with a message that names the privilege needed. */
export async function sendIcmpEcho(packet: Buffer, address: string, family: 4 | 6): Promise<void> {
  const msg = encodeIcmpEcho(packet, { family, id: randomInt(0, 0x10000), seq: 1 });
  try {
    await sendIcmpMessage(msg, address, family);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(`cannot send ICMP${family === 6 ? 'v6' : ''} echo to ${address}: ${why} (--icmp needs root or CAP_NET_RAW)`);
  }
}
