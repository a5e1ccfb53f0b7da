// SPDX-License-Identifier: MIT
// `postern open --fwknop`: build an fwknop 3.0.0 packet (Rijndael + HMAC) that an
// unmodified fwknopd accepts, from the technician's fwknop keys (ref/fwknop.md 1-7).

import { randomBytes, randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import type { Service } from '../firewall/types.ts';
import { HMAC_TYPES, type HmacType } from '../fwknop/constants.ts';
import { encodeFwknop, type FwknopRequest } from '../fwknop/encode.ts';
import { prepareFwknopKey } from '../fwknop/keys.ts';
import { UsageError } from './command.ts';
import { KEY_BASE64_TEXT, MAX_PASSPHRASE_LEN } from '../fwknop/constants.ts';

export const FWKNOP_DEFAULT_PORT = 62201;

export interface FwknopOptions {
  readonly 'fwknop-key'?: string | undefined;
  readonly 'fwknop-key-file'?: string | undefined;
  readonly 'fwknop-hmac-key'?: string | undefined;
  readonly 'fwknop-hmac-type'?: string | undefined;
}


function b64Option(value: string | undefined, name: string): Buffer {
  if (value === undefined) throw new UsageError(`--fwknop needs --${name} (base64, as KEY_BASE64 / HMAC_KEY_BASE64 in access.conf)`);
  if (!KEY_BASE64_TEXT.test(value)) throw new UsageError(`--${name} is not base64`);
  return Buffer.from(value, 'base64');
}

/** The fwknop keys from options: --fwknop-key-file holds the two lines KEY_BASE64 and HMAC_KEY_BASE64. */
function keys(opts: FwknopOptions): { key: Buffer; hmacKey: Buffer; hmacType: HmacType } {
  let keyText = opts['fwknop-key'];
  let hmacText = opts['fwknop-hmac-key'];
  if (opts['fwknop-key-file'] !== undefined) {
    const text = readFileSync(opts['fwknop-key-file'], 'utf8');
    keyText = /^\s*KEY_BASE64\s+(\S+)/m.exec(text)?.[1];
    hmacText = /^\s*HMAC_KEY_BASE64\s+(\S+)/m.exec(text)?.[1];
  }
  const hmacType = (opts['fwknop-hmac-type'] ?? 'sha256').toLowerCase() as HmacType;
  if (!HMAC_TYPES.includes(hmacType)) throw new UsageError(`--fwknop-hmac-type must be one of ${HMAC_TYPES.join(', ')}`);
  const key = b64Option(keyText, 'fwknop-key');
  if (key.length < 1 || key.length > MAX_PASSPHRASE_LEN) throw new UsageError('the fwknop key must be 1-32 bytes (fwknop\'s AES passphrase limit)');
  return { key, hmacKey: b64Option(hmacText, 'fwknop-hmac-key'), hmacType };
}

export interface FwknopPacketRequest {
  readonly services: readonly Service[];
  /** undefined = 0.0.0.0: fwknopd uses the packet's source (client -s). */
  readonly allowIp: string | undefined;
  readonly durationS: number;
  readonly nat: { readonly address: string; readonly port: number } | undefined;
  readonly nowMs: number;
}

function username(): string {
  const name = process.env['USER'] ?? (() => { try { return userInfo().username; } catch { return ''; } })();
  return /^[A-Za-z0-9._-]{1,32}$/.test(name) ? name : 'postern';
}

export function buildFwknopPacket(req: FwknopPacketRequest, opts: FwknopOptions): Buffer {
  if (req.services.length === 0) throw new UsageError('--fwknop needs at least one SERVICE (fwknop -A)');
  if (req.allowIp !== undefined && req.allowIp.includes(':')) throw new UsageError('fwknop carries an IPv4 allow address only');
  if (req.nat && req.services.length !== 1) throw new UsageError('--forward with --fwknop takes exactly one SERVICE (the external port)');
  const timeout = req.durationS > 0 ? req.durationS : undefined;
  const type = req.nat ? (timeout ? 4 : 2) : timeout ? 3 : 1;
  const fwReq: FwknopRequest = {
    username: username(), timestampS: Math.floor(req.nowMs / 1000), type, allowIp: req.allowIp ?? '0.0.0.0',
    access: req.services.map((s) => ({ proto: s.proto, port: s.port })),
    ...(req.nat && { nat: { host: req.nat.address, port: req.nat.port } }),
    ...(timeout !== undefined && { clientTimeoutS: timeout }),
  };
  const key = prepareFwknopKey(keys(opts));
  const random16 = Array.from({ length: 16 }, () => randomInt(10)).join('');
  return Buffer.from(encodeFwknop(fwReq, key, { salt: randomBytes(8), random16 }), 'ascii');
}
