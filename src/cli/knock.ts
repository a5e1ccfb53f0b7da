// SPDX-License-Identifier: MIT
// `postern knock`: knockd's `knock` client syntax (ref/knockd.md section 4), plus the
// current time-derived sequence of a profile's door (docs/protocol.md "Time-derived knock
// sequences"). Everything the user typed is checked before the first knock goes out.

import { randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { systemClock } from '../platform/clock.ts';
import { currentStep, deriveSequence, formatDoorKey, parseDoorKey, DOOR_KEY_ERRORS, DOOR_KEY_SIZE } from '../knock/totp.ts';
import { EXIT_OK, UsageError, errOut, intOption, out, parseCommandArgs, type Command } from './command.ts';
import { sendKnocks, type Knock, type KnockProto, type KnockTarget } from './knock-send.ts';
import { profilesPath, profilesTooOpen, readProfiles, type ProfileDoor } from './profiles.ts';

const USAGE = `usage: postern knock HOST PORT[:tcp|udp] ... [-u|--udp] [-d|--delay MS] [-4|-6] [-v]
       postern knock [HOST] --door NAME --profile P [-d|--delay MS] [-4|-6] [-v]
       postern knock --new-key

  Knocks on a device's door: a TCP connection attempt (SYN) or a UDP datagram to each
  port in turn, as knockd's knock client does. Ordinary sockets: no root needed.
  Ports may also be given comma-separated (7000,8000:udp,9000).

  -u, --udp         knock with UDP where a port has no :tcp/:udp (default tcp)
  -d, --delay MS    wait MS milliseconds between knocks (default 0)
  -4, --ipv4        use IPv4 (HOST a name: resolve to IPv4 only)
  -6, --ipv6        use IPv6
  -v, --verbose     print each knock
  --door NAME       knock the current time-derived sequence of door NAME, from the
                    door saved in the profile (postern profile door P NAME ...)
  --profile P       the profile holding the door and the host (HOST overrides the host)
  --new-key         print a new random door key (postern-door1:...) for a totp door`;

const OPTIONS = {
  udp: { type: 'boolean', short: 'u' }, delay: { type: 'string', short: 'd' },
  ipv4: { type: 'boolean', short: '4' }, ipv6: { type: 'boolean', short: '6' }, verbose: { type: 'boolean', short: 'v' },
  door: { type: 'string' }, profile: { type: 'string' }, 'new-key': { type: 'boolean' },
} as const;

const MAX_KNOCKS = 32;
const MAX_DELAY_MS = 60_000;

/** One knock argument: PORT or PORT:tcp / PORT:udp (knock.c; protocol case-insensitive). */
export function parseKnockArg(arg: string, defaultProto: KnockProto): Knock {
  const m = /^([0-9]{1,5})(?::(tcp|udp))?$/i.exec(arg);
  const port = Number(m?.[1]);
  if (!m || port < 1 || port > 65535) throw new UsageError(`not a knock: ${JSON.stringify(arg.slice(0, 24))} (use PORT, PORT:tcp or PORT:udp, port 1-65535)`);
  return { port, proto: m[2] === undefined ? defaultProto : (m[2].toLowerCase() as KnockProto) };
}

export function parseKnockArgs(args: readonly string[], defaultProto: KnockProto): Knock[] {
  const knocks = args.flatMap((a) => a.split(',')).filter((a) => a !== '').map((a) => parseKnockArg(a, defaultProto));
  if (knocks.length === 0) throw new UsageError('no ports to knock');
  if (knocks.length > MAX_KNOCKS) throw new UsageError(`at most ${MAX_KNOCKS} knocks (knockd's limit)`);
  return knocks;
}

function familyOption(v4: boolean | undefined, v6: boolean | undefined): 4 | 6 | undefined {
  if (v4 && v6) throw new UsageError('give -4 or -6, not both');
  return v4 ? 4 : v6 ? 6 : undefined;
}

async function resolveKnockHost(host: string, family: 4 | 6 | undefined): Promise<KnockTarget> {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  const literal = isIP(bare);
  if (literal === 4 || literal === 6) {
    if (family !== undefined && family !== literal) throw new UsageError(`${bare} is an IPv${literal} address, but -${family} was given`);
    return { address: bare, family: literal };
  }
  const r = await lookup(bare, family === undefined ? {} : { family });
  return { address: r.address, family: r.family === 6 ? 6 : 4 };
}

/** The knocks of a door's current step (the daemon also accepts the previous step). */
export function doorKnocks(door: ProfileDoor, nowMs: number): Knock[] {
  const key = parseDoorKey(door.key);
  if (!key.ok) throw new UsageError(`the door's key is not valid: ${DOOR_KEY_ERRORS[key.reason]}`);
  const opts = { length: door.length, portMin: door.port_min, portMax: door.port_max, avoid: new Set<number>() };
  return deriveSequence(key.value, currentStep(nowMs, door.step_s), opts).map((port) => ({ port, proto: door.proto }));
}

interface Plan {
  readonly host: string;
  readonly knocks: readonly Knock[];
}

function profilePlan(hostArg: string | undefined, doorName: string, profileName: string | undefined, rest: readonly string[]): Plan {
  if (rest.length > 0) throw new UsageError('--door computes the sequence: give no ports');
  const name = profileName ?? hostArg;
  if (name === undefined) throw new UsageError('--door needs --profile P');
  const profile = readProfiles()[name];
  if (!profile) throw new UsageError(`no profile ${JSON.stringify(name)} in ${profilesPath()}`);
  if (profilesTooOpen()) errOut(`postern: warning: ${profilesPath()} is readable by others; it holds keys (chmod 600 it)`);
  const door = profile.doors?.[doorName];
  if (!door) throw new UsageError(`profile ${name} has no door ${JSON.stringify(doorName)} (postern profile door ${name} ${doorName} --door-key ...)`);
  const host = hostArg !== undefined && hostArg !== name ? hostArg : profile.host;
  return { host, knocks: doorKnocks(door, systemClock.wallMs()) };
}

function staticPlan(positionals: readonly string[], udp: boolean, profileName: string | undefined): Plan {
  if (profileName !== undefined) throw new UsageError('--profile goes with --door');
  const [host, ...ports] = positionals;
  if (host === undefined) throw new UsageError('which host? give HOST PORT...');
  return { host, knocks: parseKnockArgs(ports, udp ? 'udp' : 'tcp') };
}

async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, OPTIONS);
  if (values.help) {
    out(USAGE);
    return EXIT_OK;
  }
  if (values['new-key']) {
    if (positionals.length > 0 || values.door !== undefined) throw new UsageError('--new-key takes no other arguments');
    out(formatDoorKey(randomBytes(DOOR_KEY_SIZE)));
    return EXIT_OK;
  }
  const family = familyOption(values.ipv4, values.ipv6);
  const delayMs = intOption(values.delay, 'delay', 0, MAX_DELAY_MS) ?? 0;
  if (values.door !== undefined && values.udp) throw new UsageError('--udp does not go with --door: the door sets the protocol');
  const plan = values.door !== undefined
    ? profilePlan(positionals[0], values.door, values.profile, positionals.slice(1))
    : staticPlan(positionals, values.udp === true, values.profile);
  const to = await resolveKnockHost(plan.host, family);
  const show = values.verbose ? (k: Knock) => out(`hitting ${k.proto} ${to.family === 6 ? `[${to.address}]` : to.address}:${k.port}`) : undefined;
  await sendKnocks(to, plan.knocks, delayMs, show);
  return EXIT_OK;
}

export const knockCommand: Command = { name: 'knock', summary: 'Knock a port sequence (knockd syntax) or a profile door\'s time-derived sequence', usage: USAGE, run };
