// SPDX-License-Identifier: MIT
// Technician profiles: ~/.config/postern/profiles.json, mode 0600 (it holds credentials).
// Written atomically (temp file + rename) so a crash never leaves half a file.

import { chmodSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseCredential } from '../spa/credential.ts';
import { parseDevicePublic } from '../spa/asym-keys.ts';
import { KEY_BASE64_TEXT } from '../fwknop/constants.ts';
import { parseDoorKey, totpRangeProblem } from '../knock/totp.ts';

/** A profile of kind fwknop: the device runs fwknopd (or postern's fwknop port). */
export interface FwknopProfileKeys {
  readonly key_base64: string;
  readonly hmac_key_base64: string;
  readonly hmac_type?: string;
}

/** A time-derived door (docs/protocol.md): the same fields as the device's door `totp`
 *  block. The daemon refuses a range holding any guarded or capture port, so the
 *  derivation's avoid set is always empty (docs/config.md "Knock doors"). */
export interface ProfileDoor {
  readonly key: string;
  readonly step_s: number;
  readonly length: number;
  readonly port_min: number;
  readonly port_max: number;
  readonly proto: 'tcp' | 'udp';
}

export interface Profile {
  readonly host: string;
  /** postern credential; absent in a profile of kind fwknop. */
  readonly credential?: string;
  readonly fwknop?: FwknopProfileKeys;
  /** SPA port on the device. */
  readonly port?: number;
  /** Services to request; empty or absent = everything the key allows. */
  readonly services?: readonly string[];
  readonly ssh_port?: number;
  readonly ssh_user?: string;
  /** Asymmetric class: path of the technician's identity file (postern keygen --asym). */
  readonly identity?: string;
  /** Asymmetric class: the device's public key (postern device-key) and its fingerprint. */
  readonly device_key?: string;
  readonly device_fingerprint?: string;
  /** Time-derived doors by name, for `postern knock --door NAME`. */
  readonly doors?: Readonly<Record<string, ProfileDoor>>;
}

export type Profiles = Record<string, Profile>;

export function profilesPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env['XDG_CONFIG_HOME'] || join(env['HOME'] || homedir(), '.config');
  return join(base, 'postern', 'profiles.json');
}

export function readProfiles(path = profilesPath()): Profiles {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
  const data: unknown = JSON.parse(text);
  if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new Error(`${path}: not a JSON object`);
  return data as Profiles;
}

/** Warn-worthy: the file is readable by group or others. */
export function profilesTooOpen(path = profilesPath()): boolean {
  try {
    return (statSync(path).mode & 0o077) !== 0;
  } catch {
    return false;
  }
}

export function writeProfiles(profiles: Profiles, path = profilesPath()): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(profiles, null, 2) + '\n', { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

export function validateProfile(name: string, p: Profile): string[] {
  const errors: string[] = [];
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) errors.push(`profile name ${JSON.stringify(name)} must be 1-64 of A-Z a-z 0-9 . _ -`);
  if (!p.host) errors.push('a profile needs a host');
  if (p.fwknop) {
    if (!KEY_BASE64_TEXT.test(p.fwknop.key_base64) || !KEY_BASE64_TEXT.test(p.fwknop.hmac_key_base64)) errors.push('the fwknop keys must be base64');
    if (p.credential !== undefined) errors.push('a profile is either postern (--key) or fwknop (--fwknop-key), not both');
  } else if (p.identity !== undefined) {
    const dev = parseDevicePublic(p.device_key ?? '');
    if (!dev.ok) errors.push('an asymmetric profile needs the device public key (--device-key postern-dev1:...)');
    if (p.credential !== undefined) errors.push('a profile is either symmetric (--key) or asymmetric (--identity), not both');
  } else if (p.credential !== undefined || p.doors === undefined) {
    // A profile of doors only serves a knock-only device: no credential needed.
    if (!parseCredential(p.credential ?? '').ok) errors.push('the credential is not a valid postern1: string');
  }
  for (const [name, door] of Object.entries(p.doors ?? {})) errors.push(...validateDoor(name, door));
  return errors;
}

export function validateDoor(name: string, d: ProfileDoor): string[] {
  const errors: string[] = [];
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) errors.push(`door name ${JSON.stringify(name)} must be 1-64 of A-Z a-z 0-9 . _ -`);
  if (!parseDoorKey(d.key).ok) errors.push(`door ${name}: the key is not a valid postern-door1: string`);
  if (!Number.isInteger(d.step_s) || d.step_s < 5 || d.step_s > 3600) errors.push(`door ${name}: step_s must be 5-3600`);
  if (d.proto !== 'tcp' && d.proto !== 'udp') errors.push(`door ${name}: proto must be tcp or udp`);
  const problem = totpRangeProblem({ length: d.length, portMin: d.port_min, portMax: d.port_max, avoid: new Set<number>() });
  if (problem !== undefined) errors.push(`door ${name}: ${problem}`);
  return errors;
}
