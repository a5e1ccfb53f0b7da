// SPDX-License-Identifier: MIT
// Client credentials: one pasteable string per client, `postern1:` + base64url(key id ||
// secret) (DESIGN.md "Credentials"). Parsing failures never echo the input: it is a secret.

import { randomBytes } from 'node:crypto';
import { KEY_ID_SIZE, SECRET_SIZE } from './constants.ts';
import { fail, ok, type Decoded } from '../wire/result.ts';

export const CREDENTIAL_PREFIX = 'postern1:';
const BODY_SIZE = KEY_ID_SIZE + SECRET_SIZE;
/** base64url without padding of 36 bytes is exactly 48 characters. */
const BODY_CHARS = 48;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

const HIDDEN = '(hidden)';

/** Key material. Printing, JSON-encoding or inspecting it never shows the secret. */
export class Credential {
  readonly keyId: number;
  readonly #secret: Buffer;

  constructor(keyId: number, secret: Uint8Array) {
    if (!Number.isInteger(keyId) || keyId < 0 || keyId > 0xffffffff) throw new RangeError('key id must be uint32');
    if (secret.length !== SECRET_SIZE) throw new RangeError(`secret must be ${SECRET_SIZE} bytes`);
    this.keyId = keyId;
    this.#secret = Buffer.from(secret);
  }

  /** The key id as 8 lower-case hex digits, as shown in logs and config. */
  get keyIdHex(): string {
    return keyIdHex(this.keyId);
  }

  /** The raw 32-byte AES-SIV key. Call sites are the crypto setup and `encode`; nothing logs it. */
  revealSecret(): Buffer {
    return Buffer.from(this.#secret);
  }

  encode(): string {
    const body = Buffer.alloc(BODY_SIZE);
    body.writeUInt32BE(this.keyId, 0);
    this.#secret.copy(body, KEY_ID_SIZE);
    return CREDENTIAL_PREFIX + body.toString('base64url');
  }

  toString(): string {
    return `Credential(${this.keyIdHex}, ${HIDDEN})`;
  }

  toJSON(): string {
    return this.toString();
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return this.toString();
  }
}

export function keyIdHex(keyId: number): string {
  return keyId.toString(16).padStart(8, '0');
}

export type CredentialError = 'missing_prefix' | 'bad_characters' | 'bad_length';

export const CREDENTIAL_ERRORS: Record<CredentialError, string> = {
  missing_prefix: `a credential starts with "${CREDENTIAL_PREFIX}"`,
  bad_characters: 'a credential holds only base64url characters (A-Z a-z 0-9 - _) after the prefix',
  bad_length: `a credential holds exactly ${BODY_CHARS} characters after the prefix (was it cut off?)`,
};

export function parseCredential(text: string): Decoded<Credential, CredentialError> {
  const trimmed = text.trim();
  if (!trimmed.startsWith(CREDENTIAL_PREFIX)) return fail('missing_prefix');
  const body = trimmed.slice(CREDENTIAL_PREFIX.length);
  if (!BASE64URL.test(body)) return fail('bad_characters');
  if (body.length !== BODY_CHARS) return fail('bad_length');
  const raw = Buffer.from(body, 'base64url');
  if (raw.length !== BODY_SIZE) return fail('bad_length');
  return ok(new Credential(raw.readUInt32BE(0), raw.subarray(KEY_ID_SIZE)));
}

/** A fresh credential: key id and secret from the kernel CSPRNG. */
export function generateCredential(random: (n: number) => Buffer = randomBytes): Credential {
  return new Credential(random(KEY_ID_SIZE).readUInt32BE(0), random(SECRET_SIZE));
}
