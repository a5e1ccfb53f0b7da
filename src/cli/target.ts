// SPDX-License-Identifier: MIT
// Shared by `open` and `ssh`: who to talk to and with which credential. A credential
// can come from --key, --key-file, $POSTERN_KEY, or a profile (--profile NAME, or a HOST
// that names a profile). Command lines are visible in `ps`: --key-file and profiles
// are the better habit, and the help says so.

import { readFileSync } from 'node:fs';
import { DEFAULT_SPA_PORT } from '../config/schema.ts';
import { parseService } from '../config/load.ts';
import type { Service } from '../firewall/types.ts';
import { CREDENTIAL_ERRORS, parseCredential, type Credential } from '../spa/credential.ts';
import { KEY_STRING_ERRORS, deviceFingerprint, parseDevicePublic, type TechIdentity } from '../spa/asym-keys.ts';
import { UsageError, errOut, intOption } from './command.ts';
import { profilesPath, profilesTooOpen, readProfiles, type Profile } from './profiles.ts';

export interface TargetOptions {
  readonly key?: string | undefined;
  readonly 'key-file'?: string | undefined;
  readonly profile?: string | undefined;
  readonly port?: string | undefined;
  readonly 'device-key'?: string | undefined;
}

/** Asymmetric class: the technician's identity and the device's X25519 public key. */
export interface AsymCredential {
  readonly kind: 'asym';
  readonly identity: TechIdentity;
  readonly device: Buffer;
  readonly fingerprint: string;
}

export interface Target {
  readonly host: string;
  readonly port: number;
  readonly credential: Credential | AsymCredential;
  readonly profile: Profile | undefined;
}

function credentialText(opts: TargetOptions, profile: Profile | undefined): string {
  if (opts.key !== undefined && opts['key-file'] !== undefined) throw new UsageError('give --key or --key-file, not both');
  if (opts.key !== undefined) return opts.key;
  if (opts['key-file'] !== undefined) {
    try {
      return readFileSync(opts['key-file'], 'utf8').trim();
    } catch (err) {
      throw new UsageError(`cannot read --key-file: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  }
  if (profile?.credential !== undefined) return profile.credential;
  const env = process.env['POSTERN_KEY'];
  if (env) return env;
  throw new UsageError('no credential: give --key, --key-file, --profile, or set POSTERN_KEY');
}

export function parseServices(list: readonly string[]): Service[] {
  return list.map((s) => {
    const svc = parseService(/^[0-9]+$/.test(s) ? `tcp/${s}` : s);
    if (s.startsWith('postern1:')) throw new UsageError('that looks like a credential, not a service: use --key-file FILE');
    if (!svc) throw new UsageError(`not a service: ${JSON.stringify(s.slice(0, 20))} (use tcp/22, udp/53 or a bare port for tcp)`);
    return svc;
  });
}

/** The device key for an asymmetric open: --device-key, else the profile's. */
function asymCredential(identity: TechIdentity, opts: TargetOptions, profile: Profile | undefined): AsymCredential {
  const text = opts['device-key'] ?? profile?.device_key;
  if (text === undefined) throw new UsageError('an asymmetric open needs the device public key: --device-key postern-dev1:... or a profile with one');
  const dev = parseDevicePublic(text);
  if (!dev.ok) throw new UsageError(`bad device key: ${KEY_STRING_ERRORS[dev.reason]}`);
  const fingerprint = deviceFingerprint(dev.value);
  if (profile?.device_fingerprint !== undefined && opts['device-key'] === undefined && profile.device_fingerprint !== fingerprint) {
    throw new UsageError(`the profile's device key does not match its fingerprint ${profile.device_fingerprint}`);
  }
  return { kind: 'asym', identity, device: dev.value, fingerprint };
}

/** The profile a HOST or --profile names, if any (open reads it before resolveTarget to find an identity). */
export function profileFor(hostArg: string | undefined, profileOpt: string | undefined): Profile | undefined {
  const profiles = profileOpt !== undefined || hostArg !== undefined ? readProfiles() : {};
  const name = profileOpt ?? hostArg;
  return name === undefined ? undefined : profiles[name];
}

export function resolveTarget(hostArg: string | undefined, opts: TargetOptions, identity?: TechIdentity): Target {
  const profiles = opts.profile !== undefined || hostArg !== undefined ? readProfiles() : {};
  const profileName = opts.profile ?? (hostArg !== undefined && profiles[hostArg] ? hostArg : undefined);
  const profile = profileName === undefined ? undefined : profiles[profileName];
  if (profile && profilesTooOpen()) errOut(`postern: warning: ${profilesPath()} is readable by others; it holds credentials (chmod 600 it)`);
  if (profileName !== undefined && !profile) throw new UsageError(`no profile ${JSON.stringify(profileName)} in ${profilesPath()}`);
  const host = profile && hostArg === profileName ? profile.host : hostArg ?? profile?.host;
  if (!host) throw new UsageError('which host? give HOST or --profile');
  const portOpt = intOption(opts.port, 'port', 1, 65535);
  const port = portOpt ?? profile?.port ?? DEFAULT_SPA_PORT;
  if (identity) return { host, port, credential: asymCredential(identity, opts, profile), profile };
  const cred = parseCredential(credentialText(opts, profile));
  if (!cred.ok) throw new UsageError(`bad credential: ${CREDENTIAL_ERRORS[cred.reason]}`);
  return { host, port, credential: cred.value, profile };
}
