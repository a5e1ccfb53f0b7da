// SPDX-License-Identifier: MIT
// SPA v1 plaintext codec: the fields inside the AES-SIV envelope (docs/protocol.md,
// "Plaintext"). Pure: the caller supplies timestamp, nonce and padding, so vectors are
// reproducible and the clock/RNG stay outside. Decoding never throws.

import {
  IPPROTO_TCP, IPPROTO_UDP, MAX_SERVICES, MAX_TIMESTAMP, MESSAGE_TYPES, MIN_PLAINTEXT, NAT4_SIZE,
  NAT6_SIZE, NONCE_SIZE, PROTOCOL_VERSION, PT_ADDR_LEN, PT_DURATION, PT_FIXED_SIZE, PT_NONCE,
  PT_TIMESTAMP, PT_TYPE, PT_VERSION, SERVICE_SIZE, type MessageType,
} from './constants.ts';
import type { Service } from '../firewall/types.ts';
import { formatIPv4, formatIPv6, parseAddress } from '../wire/address.ts';
import { fail, ok, type Decoded } from '../wire/result.ts';

export interface NatTarget {
  readonly address: string;
  readonly port: number;
}

export interface SpaMessage {
  readonly type: MessageType;
  /** Client wall clock, ms since the epoch. */
  readonly timestampMs: number;
  readonly nonce: Buffer;
  /** Requested seconds; 0 asks for the key's default. */
  readonly durationS: number;
  /** Explicit address to open for; undefined = the packet's source address. */
  readonly address: string | undefined;
  /** Requested services; empty = every service the key allows. */
  readonly services: readonly Service[];
  readonly nat: NatTarget | undefined;
}

export type MessageReason =
  | 'bad_version' | 'bad_type' | 'bad_timestamp' | 'bad_address' | 'bad_services' | 'bad_nat' | 'truncated';

const TYPE_BY_CODE = new Map<number, MessageType>(
  Object.entries(MESSAGE_TYPES).map(([name, code]) => [code, name as MessageType]),
);

function protoCode(proto: Service['proto']): number {
  return proto === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP;
}

function addressBytes(text: string | undefined): Buffer {
  if (text === undefined) return Buffer.alloc(0);
  const parsed = parseAddress(text);
  if (!parsed.ok) throw new RangeError('invalid address in SPA message');
  return parsed.value.bytes;
}

/** Encoded size of a message without padding; encoders allocate exactly once. */
export function messageLength(msg: SpaMessage): number {
  const addr = addressBytes(msg.address).length;
  const nat = msg.nat ? addressBytes(msg.nat.address).length + 2 : 0;
  return PT_FIXED_SIZE + addr + 1 + msg.services.length * SERVICE_SIZE + 1 + nat;
}

/** Encode a message followed by `padding`. Throws on programmer error (bad fields). */
export function encodeMessage(msg: SpaMessage, padding: Uint8Array): Buffer {
  if (msg.nonce.length !== NONCE_SIZE) throw new RangeError('nonce must be 8 bytes');
  if (msg.services.length > MAX_SERVICES) throw new RangeError('too many services');
  if (!Number.isSafeInteger(msg.timestampMs) || msg.timestampMs < 0) throw new RangeError('bad timestamp');
  const addr = addressBytes(msg.address);
  const out = Buffer.alloc(messageLength(msg) + padding.length);
  out[PT_VERSION] = PROTOCOL_VERSION;
  out[PT_TYPE] = MESSAGE_TYPES[msg.type];
  out.writeBigUInt64BE(BigInt(msg.timestampMs), PT_TIMESTAMP);
  msg.nonce.copy(out, PT_NONCE);
  out.writeUInt32BE(msg.durationS, PT_DURATION);
  out[PT_ADDR_LEN] = addr.length;
  let off = PT_FIXED_SIZE + addr.copy(out, PT_FIXED_SIZE);
  out[off++] = msg.services.length;
  for (const svc of msg.services) {
    out[off] = protoCode(svc.proto);
    out.writeUInt16BE(svc.port, off + 1);
    off += SERVICE_SIZE;
  }
  off = encodeNat(out, off, msg.nat);
  out.set(padding, off);
  return out;
}

function encodeNat(out: Buffer, off: number, nat: NatTarget | undefined): number {
  if (!nat) {
    out[off] = 0;
    return off + 1;
  }
  const bytes = addressBytes(nat.address);
  out[off] = bytes.length + 2;
  bytes.copy(out, off + 1);
  out.writeUInt16BE(nat.port, off + 1 + bytes.length);
  return off + 1 + bytes.length + 2;
}

/** Read an address of `len` bytes at `off`; len must be 4 or 16 (0 handled by callers). */
function readAddress(buf: Buffer, off: number, len: number): string | undefined {
  if (len === 4) return formatIPv4(buf, off);
  if (len === 16) return formatIPv6(buf, off);
  return undefined;
}

/** Decode an authenticated plaintext. Anything after the last field is padding. */
export function decodeMessage(buf: Buffer): Decoded<SpaMessage, MessageReason> {
  if (buf.length < MIN_PLAINTEXT) return fail('truncated');
  if (buf[PT_VERSION] !== PROTOCOL_VERSION) return fail('bad_version');
  const type = TYPE_BY_CODE.get(buf[PT_TYPE] ?? -1);
  if (type === undefined) return fail('bad_type');
  const ts = buf.readBigUInt64BE(PT_TIMESTAMP);
  if (ts > BigInt(MAX_TIMESTAMP)) return fail('bad_timestamp');
  const addrLen = buf[PT_ADDR_LEN] ?? 0;
  if (addrLen !== 0 && addrLen !== 4 && addrLen !== 16) return fail('bad_address');
  // Fixed part + address + service count byte + NAT length byte must be present.
  if (buf.length < PT_FIXED_SIZE + addrLen + 2) return fail('truncated');
  const address = addrLen === 0 ? undefined : readAddress(buf, PT_FIXED_SIZE, addrLen);
  const svc = decodeServices(buf, PT_FIXED_SIZE + addrLen);
  if (!svc.ok) return svc;
  const nat = decodeNat(buf, svc.value.next);
  if (!nat.ok) return nat;
  if ((nat.value !== undefined) !== (type === 'forward')) return fail('bad_nat');
  return ok({
    type,
    timestampMs: Number(ts),
    nonce: Buffer.from(buf.subarray(PT_NONCE, PT_NONCE + NONCE_SIZE)),
    durationS: buf.readUInt32BE(PT_DURATION),
    address,
    services: svc.value.services,
    nat: nat.value,
  });
}

function decodeServices(
  buf: Buffer, off: number,
): Decoded<{ services: Service[]; next: number }, MessageReason> {
  const count = buf[off] ?? 0;
  if (count > MAX_SERVICES) return fail('bad_services');
  const end = off + 1 + count * SERVICE_SIZE;
  if (buf.length < end + 1) return fail('truncated'); // + the NAT length byte
  const services: Service[] = [];
  for (let p = off + 1; p < end; p += SERVICE_SIZE) {
    const code = buf[p];
    const port = buf.readUInt16BE(p + 1);
    if ((code !== IPPROTO_TCP && code !== IPPROTO_UDP) || port === 0) return fail('bad_services');
    services.push({ proto: code === IPPROTO_TCP ? 'tcp' : 'udp', port });
  }
  return ok({ services, next: end });
}

function decodeNat(buf: Buffer, off: number): Decoded<NatTarget | undefined, MessageReason> {
  const len = buf[off] ?? 0;
  if (len === 0) return ok(undefined);
  if (len !== NAT4_SIZE && len !== NAT6_SIZE) return fail('bad_nat');
  if (buf.length < off + 1 + len) return fail('truncated');
  const address = readAddress(buf, off + 1, len - 2);
  const port = buf.readUInt16BE(off + len - 1);
  if (address === undefined || port === 0) return fail('bad_nat');
  return ok({ address, port });
}
