// SPDX-License-Identifier: MIT
// SPA v1 wire sizes and codes. The byte layout is specified, with annotated vectors,
// in docs/protocol.md; test/unit/spa/protocol-doc.test.ts checks the two agree.

/** Packet = key id || SIV tag || ciphertext (DESIGN.md "SPA protocol v1"). */
export const KEY_ID_SIZE = 4;
export const TAG_SIZE = 16;
export const HEADER_SIZE = KEY_ID_SIZE + TAG_SIZE;
/** 256-bit AES-SIV key: two AES-128 halves (RFC 5297 section 2.2). */
export const SECRET_SIZE = 32;

export const PROTOCOL_VERSION = 1;

/** Plaintext offsets. Fixed part first, then variable fields, then padding. */
export const PT_VERSION = 0;
export const PT_TYPE = 1;
export const PT_TIMESTAMP = 2; // uint64 BE, ms since the epoch
export const PT_NONCE = 10; // 8 random bytes
export const PT_DURATION = 18; // uint32 BE seconds; 0 = the key's default
export const PT_ADDR_LEN = 22; // 0, 4 or 16, then the address bytes
export const PT_FIXED_SIZE = 23;
export const NONCE_SIZE = 8;

/** After the address: service count (0..MAX_SERVICES), then 3 bytes per service. */
export const SERVICE_SIZE = 3; // proto (IANA number) + port uint16 BE
export const MAX_SERVICES = 16;
/** After the services: NAT target length (0, 6 or 18) then address bytes + port uint16 BE. */
export const NAT4_SIZE = 6;
export const NAT6_SIZE = 18;

/** Smallest plaintext: fixed part + no address + zero services + no NAT target. */
export const MIN_PLAINTEXT = PT_FIXED_SIZE + 1 + 1;
export const MIN_PACKET = HEADER_SIZE + MIN_PLAINTEXT;
/** Well under the IPv6 minimum MTU (1280) minus headers, so one datagram never fragments. */
export const MAX_PACKET = 512;
/** Padding is drawn from 0..MAX_PADDING so packet lengths vary (no fixed length to fingerprint). */
export const MAX_PADDING = 64;

export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;

export const MESSAGE_TYPES = { open: 1, forward: 2, close: 3 } as const;
export type MessageType = keyof typeof MESSAGE_TYPES;

/** uint64 timestamps above this cannot be represented exactly in a JS number. */
export const MAX_TIMESTAMP = Number.MAX_SAFE_INTEGER;

/** Asymmetric message class (docs/protocol.md "Asymmetric message class"):
 *  key id (4) || E, ephemeral X25519 public key (32) || device hint (4) || SIV tag (16) || C,
 *  and inside C: Ed25519 signature (64) || the same plaintext as above. */
export const ASYM_EPHEMERAL_SIZE = 32;
export const ASYM_HINT_SIZE = 4;
export const ASYM_EPHEMERAL_OFFSET = KEY_ID_SIZE;
export const ASYM_HINT_OFFSET = ASYM_EPHEMERAL_OFFSET + ASYM_EPHEMERAL_SIZE;
export const ASYM_TAG_OFFSET = ASYM_HINT_OFFSET + ASYM_HINT_SIZE;
export const ASYM_HEADER_SIZE = ASYM_TAG_OFFSET + TAG_SIZE;
export const SIGNATURE_SIZE = 64;
export const MIN_ASYM_PACKET = ASYM_HEADER_SIZE + SIGNATURE_SIZE + MIN_PLAINTEXT;
