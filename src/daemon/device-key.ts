// SPDX-License-Identifier: MIT
// The device's own X25519 key (issue 10): made on the device at first start, never in the
// image, stored in state.device_key with mode 0600. Its public half is what technicians
// collect (postern device-key). File format, one line:
//   postern-devkey1:<base64url(X25519 private key, 32 bytes)>
// Written with O_CREAT|O_EXCL, then fsync, so two starters cannot both write one, and a
// power cut never leaves a half key that would silently change the device's identity.
// Made by root (`postern device-key` run with sudo before the daemon's first start), the file
// is given to the owner of its directory: the state directory belongs to the daemon's user
// (systemd StateDirectory=, User=postern), which must be able to read its own key.

import { closeSync, fchownSync, fsyncSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { generateX25519, rawPublicKey, x25519PrivateKey } from '../crypto/asym.ts';
import { deviceKeyFromRaw, type DeviceKey } from '../spa/asym.ts';
import { deviceFingerprint } from '../spa/asym-keys.ts';
import type { Config } from '../config/load.ts';
import type { Logger } from '../log/logger.ts';

export const DEVICE_KEY_PREFIX = 'postern-devkey1:';
const RAW_SIZE = 32;

export class DeviceKeyError extends Error {}

function parseDeviceKeyFile(text: string, path: string): DeviceKey {
  const t = text.trim();
  const raw = t.startsWith(DEVICE_KEY_PREFIX) ? Buffer.from(t.slice(DEVICE_KEY_PREFIX.length), 'base64url') : Buffer.alloc(0);
  if (raw.length !== RAW_SIZE) throw new DeviceKeyError(`${path}: not a postern device key (expected one ${DEVICE_KEY_PREFIX} line)`);
  return deviceKeyFromRaw(raw, rawPublicKey(x25519PrivateKey(raw)));
}

export function readDeviceKey(path: string): DeviceKey | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new DeviceKeyError(`${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  return parseDeviceKeyFile(text, path);
}

/** Read the device key, making it first if it does not exist. `created` says which. */
export function loadOrCreateDeviceKey(path: string): { key: DeviceKey; created: boolean } {
  const existing = readDeviceKey(path);
  if (existing) return { key: existing, created: false };
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const { privateKey } = generateX25519();
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (err) {
    // Another process made it between our read and our create: use theirs.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return { key: parseDeviceKeyFile(readFileSync(path, 'utf8'), path), created: false };
    throw new DeviceKeyError(`${path}: cannot create (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  try {
    if (process.getuid?.() === 0) {
      const dir = statSync(dirname(path));
      fchownSync(fd, dir.uid, dir.gid);
    }
    writeSync(fd, `${DEVICE_KEY_PREFIX}${privateKey.toString('base64url')}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return { key: parseDeviceKeyFile(readFileSync(path, 'utf8'), path), created: true };
}

/** True when group or others may read the key file. */
export function deviceKeyTooOpen(path: string): boolean {
  try {
    return (statSync(path).mode & 0o077) !== 0;
  } catch {
    return false;
  }
}

/** The daemon's device key: made at first start, only when technician keys are configured
 *  (a purely symmetric device never writes one). Throws DeviceKeyError: start fails loudly,
 *  a reload is refused. */
export function deviceKeyFor(config: Config, log: Logger): DeviceKey | undefined {
  if (config.techKeys.length === 0) return undefined;
  const path = config.raw.state.device_key;
  const { key, created } = loadOrCreateDeviceKey(path);
  if (created) log.info('device key created', { path, fingerprint: deviceFingerprint(key.publicKey) });
  if (deviceKeyTooOpen(path)) log.warn('device key file is readable by group or others; chmod 600 it', { path });
  return key;
}
