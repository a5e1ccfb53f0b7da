// SPDX-License-Identifier: MIT
// `postern profile door PROFILE DOOR ...`: save a time-derived door in a profile, for
// `postern knock --door DOOR --profile PROFILE`. The fields mirror the device's door
// `totp` block (docs/config.md); defaults are the daemon's defaults.

import { readFileSync } from 'node:fs';
import { UsageError, intOption } from './command.ts';
import type { Profile, ProfileDoor } from './profiles.ts';

export const DOOR_OPTIONS = {
  'door-key': { type: 'string' }, 'door-key-file': { type: 'string' }, step: { type: 'string' }, length: { type: 'string' },
  'port-min': { type: 'string' }, 'port-max': { type: 'string' }, proto: { type: 'string' },
} as const;

export const DOOR_USAGE = `       postern profile door PROFILE DOOR (--door-key KEY | --door-key-file FILE)
                          --port-min N --port-max N [--step S] [--length N]
                          [--proto tcp|udp] [--host HOST]`;

const DEFAULT_STEP_S = 30;
const DEFAULT_LENGTH = 4;

type DoorValues = { readonly [K in keyof typeof DOOR_OPTIONS]?: string | undefined };

function doorKeyText(values: DoorValues): string {
  if (values['door-key'] !== undefined && values['door-key-file'] !== undefined) throw new UsageError('give --door-key or --door-key-file, not both');
  if (values['door-key'] !== undefined) return values['door-key'];
  if (values['door-key-file'] === undefined) throw new UsageError('profile door needs --door-key or --door-key-file');
  try {
    return readFileSync(values['door-key-file'], 'utf8').trim();
  } catch (err) {
    throw new UsageError(`cannot read --door-key-file: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

export function buildDoor(values: DoorValues): ProfileDoor {
  const proto = values.proto ?? 'tcp';
  if (proto !== 'tcp' && proto !== 'udp') throw new UsageError('--proto must be tcp or udp');
  const portMin = intOption(values['port-min'], 'port-min', 1024, 65535);
  const portMax = intOption(values['port-max'], 'port-max', 1024, 65535);
  if (portMin === undefined || portMax === undefined) throw new UsageError('profile door needs --port-min and --port-max (the door\'s totp range)');
  return {
    key: doorKeyText(values), step_s: intOption(values.step, 'step', 5, 3600) ?? DEFAULT_STEP_S,
    length: intOption(values.length, 'length', 1, 32) ?? DEFAULT_LENGTH, port_min: portMin, port_max: portMax, proto,
  };
}

/** The profile with `door` saved under `name`; a new profile needs a host. */
export function withDoor(existing: Profile | undefined, host: string | undefined, name: string, door: ProfileDoor): Profile {
  const base = existing ?? (host ? { host } : undefined);
  if (!base) throw new UsageError('a new profile needs --host');
  return { ...base, ...(host !== undefined && { host }), doors: { ...base.doors, [name]: door } };
}
