// SPDX-License-Identifier: MIT
// Wire sizes, limits and names for fwknop 3.0.0 SPA packets (Rijndael + HMAC), one place for
// every number the codec checks (STYLE.md principle 2). Section numbers refer to
// /work/shared/ref/fwknop.md; upstream names (lib/fko_limits.h, lib/fko.h) are given where
// the value comes from them.

/** FKO_PROTOCOL_VERSION, sent in field 4 (§2); the server does not check it. */
export const FWKNOP_PROTOCOL_VERSION = '3.0.0';

/** base64("Salted__"...) always starts with these 10 characters; the client strips them (§4). */
export const SALTED_PREFIX_B64 = 'U2FsdGVkX1';
export const SALTED_MAGIC = 'Salted__';
export const SALT_LEN = 8;
/** "Salted__" ‖ salt: the OpenSSL enc container header (§1 step 4). */
export const CONTAINER_HEADER_LEN = SALTED_MAGIC.length + SALT_LEN;
export const AES_KEY_LEN = 32;
export const AES_BLOCK_LEN = 16;
/** RIJNDAEL_MAX_KEYSIZE: longer passphrases are refused by libfko (§4). */
export const MAX_PASSPHRASE_LEN = 32;
/** A KEY_BASE64 / HMAC_KEY_BASE64 value as access.conf and fwknop --key-gen write it. */
export const KEY_BASE64_TEXT = /^[A-Za-z0-9+/]+={0,2}$/;
/** MAX_DIGEST_BLOCK_LEN: the longest HMAC key libfko accepts (§5). */
export const MAX_HMAC_KEY_LEN = 136;

/** MIN_SPA_DATA_SIZE / MAX_SPA_PACKET_LEN: fwknopd's capture bounds on the payload (§8, §10). */
export const MIN_WIRE_LEN = 140;
export const MAX_WIRE_LEN = 1500;
/** MIN_GNUPG_MSG_SIZE: C peers take ≥ 400 chars for GPG, so our encoder stays below (§8, §13.7). */
export const MAX_COMPAT_WIRE_LEN = 399;

/** MIN_SPA_ENCODED_MSG_SIZE ≤ plaintext length < MAX_SPA_ENCODED_MSG_SIZE (§8). */
export const MIN_PLAINTEXT_LEN = 36;
export const MAX_PLAINTEXT_LEN = 1499;

/** Field limits (§2, lib/fko_limits.h). Lengths are in characters of the field text. */
export const RANDOM_DIGITS = 16;
export const MAX_USERNAME_B64 = 64;
export const MAX_TIMESTAMP_CHARS = 12;
export const MAX_VERSION_CHARS = 8;
export const MAX_TYPE_CHARS = 2;
export const MAX_MESSAGE_B64 = 256;
export const MAX_NAT_B64 = 256;
export const MAX_SERVER_AUTH_B64 = 256;
export const MAX_NAT_HOST_CHARS = 70;
export const MAX_CLIENT_TIMEOUT = 65536;
export const MAX_CLIENT_TIMEOUT_CHARS = 5;
export const MAX_PORT = 65535;
/** Fields before the digest: random, user, timestamp, version, type, message (MIN_SPA_FIELDS). */
export const MANDATORY_FIELDS = 6;

export type HmacType = 'md5' | 'sha1' | 'sha256' | 'sha384' | 'sha512' | 'sha3_256' | 'sha3_512';
/** Inner digest types (§2 "last"); the same names as HMAC types. */
export type DigestType = HmacType;

export interface HashSpec {
  /** node:crypto algorithm name. */
  readonly alg: string;
  /** HMAC block size in bytes (RFC 2104 B; SHA-3 uses its rate, FIPS 202). */
  readonly block: number;
  /** Length of the base64 text with '=' stripped (§5 lengths). */
  readonly b64Chars: number;
}

export const HASHES = {
  md5: { alg: 'md5', block: 64, b64Chars: 22 },
  sha1: { alg: 'sha1', block: 64, b64Chars: 27 },
  sha256: { alg: 'sha256', block: 64, b64Chars: 43 },
  sha384: { alg: 'sha384', block: 128, b64Chars: 64 },
  sha512: { alg: 'sha512', block: 128, b64Chars: 86 },
  sha3_256: { alg: 'sha3-256', block: 136, b64Chars: 43 },
  sha3_512: { alg: 'sha3-512', block: 72, b64Chars: 86 },
} as const satisfies Record<HmacType, HashSpec>;

export const HMAC_TYPES = Object.keys(HASHES) as HmacType[];

/**
 * Inner digest type from its text length (§2): 43 and 86 are tried as SHA-2 first, then as
 * SHA-3 (pitfall §13.9). Index = length; undefined = not a digest.
 */
export const DIGEST_BY_LENGTH: ReadonlyMap<number, readonly DigestType[]> = new Map([
  [22, ['md5']], [27, ['sha1']], [43, ['sha256', 'sha3_256']], [64, ['sha384']], [86, ['sha512', 'sha3_512']],
]);

/** fko_message_type_t (§7). */
export const MSG_COMMAND = 0;
export const MSG_ACCESS = 1;
export const MSG_NAT_ACCESS = 2;
export const MSG_TIMEOUT_ACCESS = 3;
export const MSG_TIMEOUT_NAT_ACCESS = 4;
export const MSG_LOCAL_NAT_ACCESS = 5;
export const MSG_TIMEOUT_LOCAL_NAT_ACCESS = 6;
export const MAX_MSG_TYPE = 6;

export type FwknopType = 0 | 1 | 2 | 3 | 4 | 5 | 6;

/** Types that carry a NAT field, and types that carry a client timeout (§7 table). */
export function hasNat(type: number): boolean {
  return type === MSG_NAT_ACCESS || type === MSG_TIMEOUT_NAT_ACCESS || type === MSG_LOCAL_NAT_ACCESS || type === MSG_TIMEOUT_LOCAL_NAT_ACCESS;
}
export function hasTimeout(type: number): boolean {
  return type === MSG_TIMEOUT_ACCESS || type === MSG_TIMEOUT_NAT_ACCESS || type === MSG_TIMEOUT_LOCAL_NAT_ACCESS;
}

/** Every rejection the codec can return, with operator text (STYLE.md principle 5). */
export const FWKNOP_REASONS = {
  too_short: 'payload shorter than the smallest fwknop packet (140 chars)',
  too_long: 'payload longer than 1500 chars',
  salted_prefix: 'payload starts with U2FsdGVkX1 (replay of a captured packet with the prefix re-added)',
  bad_container: 'first character cannot follow U2FsdGVkX1 (not an OpenSSL "Salted__" container)',
  bad_chars: 'payload has a character outside the base64 alphabet',
  bad_hmac: 'not authenticated by this key: HMAC mismatch, or a length impossible for its HMAC type',
  bad_decrypt: 'authenticated, but decryption gives no valid plaintext (wrong encryption key?)',
  bad_digest: 'inner digest missing, of unknown length or not matching the fields',
  bad_fields: 'a plaintext field is malformed or out of range',
  bad_type: 'message type is not 0..6',
  command_refused: 'type 0 command message: postern never runs client commands',
  unsupported_proto: 'requested protocol is icmp or none, which postern cannot open',
} as const satisfies Record<string, string>;

export type FwknopReason = keyof typeof FWKNOP_REASONS;
