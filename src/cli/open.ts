// SPDX-License-Identifier: MIT
// `postern open`: send one SPA packet; with --wait, probe until the service answers.

import { chmodSync, writeFileSync } from 'node:fs';
import { systemClock } from '../platform/clock.ts';
import { canonicalAddress } from '../wire/address.ts';
import { parseTarget } from '../config/load.ts';
import type { NatTarget } from '../spa/message.ts';
import { EXIT_FAIL, EXIT_OK, UsageError, errOut, intOption, out, parseCommandArgs, type Command } from './command.ts';
import { buildPacket, resolveHost, sendDatagram, waitForOpen } from './spa-client.ts';
import { parseServices, profileFor, resolveTarget, type Target } from './target.ts';
import { readIdentity } from './identity.ts';
import type { TechIdentity } from '../spa/asym-keys.ts';
import { FWKNOP_DEFAULT_PORT, buildFwknopPacket, type FwknopOptions } from './fwknop-client.ts';
import { readProfiles, type Profile } from './profiles.ts';
import type { Service } from '../firewall/types.ts';
import { sendIcmpEcho } from './icmp-send.ts';

const USAGE = `usage: postern open HOST [SERVICE ...] (--key CRED | --key-file FILE | --profile NAME
                    | --identity FILE --device-key postern-dev1:... [--passphrase-file F])
                    [--allow-ip auto|ADDR] [--duration S] [--port N] [--wait] [--timeout S]
                    [--forward HOST:PORT] [--close] [--save-packet FILE] [--icmp] [--json]
                    [--fwknop (--fwknop-key B64 --fwknop-hmac-key B64 | --fwknop-key-file F)
                     [--fwknop-hmac-type T]]

  Sends one Single Packet Authorization packet to HOST, asking it to open SERVICEs
  (tcp/22, udp/53, or a bare port meaning tcp) for this machine's address. With no
  SERVICE the device opens everything the key allows. The device never answers; use
  --wait to find out whether the door opened.

  --key CRED        postern1:... credential (visible in ps: prefer --key-file or a profile)
  --key-file FILE   read the credential from FILE
  --profile NAME    use a profile from ~/.config/postern/profiles.json (HOST may name one)
  --identity FILE   asymmetric: sign with this technician identity (postern keygen --asym);
                    the packet is encrypted to the device's own key, which --device-key
                    (or the profile's device_key) gives
  --device-key K    the device's public key, postern-dev1:... (postern device-key prints it)
  --passphrase-file F  the identity's passphrase, if it is encrypted (else
                    $POSTERN_PASSPHRASE, else a prompt on the terminal)
  --allow-ip A      auto (default): the address the packet comes from; or an explicit
                    address (only if the device's key stanza allows it)
  --duration S      seconds to keep the door open (default: the key's default)
  --port N          the device's SPA port (default 62442)
  --wait            probe the first tcp SERVICE until it accepts a connection
  --timeout S       how long --wait tries (default 10)
  --forward T       ask a router to forward to the LAN target T (host:port or [v6]:port)
                    that the key's stanza lists; SERVICE, if given, is the external port
  --close           ask the device to close this key's grants for this address now
  --save-packet F   also write the packet sent, as hex, to F (debugging; it can only be
                    replayed, and the device refuses replays)
  --fwknop          send an fwknop 3.0.0 packet instead (to fwknopd or postern's fwknop
                    port; default port 62201), with --fwknop-key B64 --fwknop-hmac-key B64
                    [--fwknop-hmac-type sha256] or --fwknop-key-file FILE (KEY_BASE64 and
                    HMAC_KEY_BASE64 lines); --allow-ip auto sends 0.0.0.0 (fwknop -s)
  --icmp            carry the packet in an ICMP/ICMPv6 echo request instead of UDP (the
                    device needs spa.icmp; sending needs root or CAP_NET_RAW)
  --json            print the result as JSON`;

const OPTIONS = {
  key: { type: 'string' }, 'key-file': { type: 'string' }, profile: { type: 'string' },
  'allow-ip': { type: 'string' }, duration: { type: 'string' }, port: { type: 'string' },
  wait: { type: 'boolean' }, timeout: { type: 'string' }, close: { type: 'boolean' }, json: { type: 'boolean' },
  'save-packet': { type: 'string' }, forward: { type: 'string' }, icmp: { type: 'boolean' },
  fwknop: { type: 'boolean' }, 'fwknop-key': { type: 'string' }, 'fwknop-hmac-key': { type: 'string' },
  'fwknop-hmac-type': { type: 'string' }, 'fwknop-key-file': { type: 'string' },
  identity: { type: 'string' }, 'device-key': { type: 'string' }, 'passphrase-file': { type: 'string' },
} as const;

export interface SentPacket {
  readonly target: Destination;
  readonly address: string;
  readonly family: 4 | 6;
  readonly services: readonly Service[];
  readonly bytes: number;
}

function allowAddress(value: string | undefined): string | undefined {
  if (value === undefined || value === 'auto') return undefined;
  const canon = canonicalAddress(value);
  if (canon === undefined) throw new UsageError(`--allow-ip: not an address: ${JSON.stringify(value)}`);
  return canon;
}

function forwardTarget(value: string | undefined, close: boolean, services: readonly Service[]): NatTarget | undefined {
  if (value === undefined) return undefined;
  if (close) throw new UsageError('--forward and --close do not go together');
  if (services.length > 1) throw new UsageError('--forward takes at most one SERVICE (the external port)');
  const t = parseTarget(value);
  if (!t) throw new UsageError('--forward: expected host:port or [IPv6]:port with a literal address');
  return t;
}

/** Where a packet goes; a postern Target adds the credential. */
export interface Destination {
  readonly host: string;
  readonly port: number;
  readonly profile: Target['profile'];
}

export interface PreparedOpen {
  readonly target: Destination;
  readonly services: readonly Service[];
  readonly packet: Buffer;
}

/** Everything that can fail on user input, before anything is sent (a usage error must
 *  never follow a packet on the wire). Shared with `postern ssh`. */
export function prepareOpen(
  host: string | undefined,
  serviceArgs: readonly string[] | ((t: Destination) => readonly string[]),
  values: Record<string, string | boolean | undefined>,
  identity?: TechIdentity,
): PreparedOpen {
  const fwknopProfile = fwknopProfileFor(host, values['profile'] as string | undefined);
  if (values['fwknop'] || fwknopProfile) return prepareFwknop(host, serviceArgs, values, fwknopProfile);
  const target = resolveTarget(host, values as Parameters<typeof resolveTarget>[1], identity);
  const wanted = typeof serviceArgs === 'function' ? serviceArgs(target) : serviceArgs;
  const services = parseServices(wanted.length > 0 ? wanted : target.profile?.services ?? []);
  const durationS = intOption(values['duration'] as string | undefined, 'duration', 1, 86400) ?? 0;
  const nat = forwardTarget(values['forward'] as string | undefined, values['close'] === true, services);
  const packet = buildPacket({
    credential: target.credential, type: nat ? 'forward' : values['close'] ? 'close' : 'open', services, durationS,
    allowAddress: allowAddress(values['allow-ip'] as string | undefined), nowMs: systemClock.wallMs(), nat,
  });
  return { target, services, packet };
}

/** A profile of kind fwknop named by --profile, or by HOST. */
function fwknopProfileFor(host: string | undefined, name: string | undefined): { name: string; profile: Profile } | undefined {
  const profiles = host !== undefined || name !== undefined ? readProfiles() : {};
  const key = name ?? host;
  const profile = key === undefined ? undefined : profiles[key];
  return profile?.fwknop && key !== undefined ? { name: key, profile } : undefined;
}

/** fwknop mode: no postern credential; the keys are fwknop's (options or a profile). */
function prepareFwknop(
  host: string | undefined,
  serviceArgs: readonly string[] | ((t: Destination) => readonly string[]),
  values: Record<string, string | boolean | undefined>,
  named: { name: string; profile: Profile } | undefined,
): PreparedOpen {
  const profile = named?.profile;
  const to = profile && (host === undefined || host === named?.name) ? profile.host : host;
  if (!to) throw new UsageError('which host?');
  if (values['close']) throw new UsageError('fwknop has no close message');
  const port = intOption(values['port'] as string | undefined, 'port', 1, 65535) ?? profile?.port ?? FWKNOP_DEFAULT_PORT;
  const target: Destination = { host: to, port, profile };
  const wanted = typeof serviceArgs === 'function' ? serviceArgs(target) : serviceArgs;
  const services = parseServices(wanted.length > 0 ? wanted : profile?.services ?? []);
  const keys: FwknopOptions = profile?.fwknop
    ? { 'fwknop-key': profile.fwknop.key_base64, 'fwknop-hmac-key': profile.fwknop.hmac_key_base64, 'fwknop-hmac-type': profile.fwknop.hmac_type }
    : values as FwknopOptions;
  const packet = buildFwknopPacket({
    services, allowIp: allowAddress(values['allow-ip'] as string | undefined),
    durationS: intOption(values['duration'] as string | undefined, 'duration', 1, 86400) ?? 0,
    nat: forwardTarget(values['forward'] as string | undefined, false, services), nowMs: systemClock.wallMs(),
  }, keys);
  return { target, services, packet };
}

export async function sendOpen(prep: PreparedOpen, savePath?: string, icmp = false): Promise<SentPacket> {
  const { address, family } = await resolveHost(prep.target.host);
  if (icmp) await sendIcmpEcho(prep.packet, address, family);
  else await sendDatagram(prep.packet, address, family, prep.target.port);
  if (savePath !== undefined) {
    writeFileSync(savePath, prep.packet.toString('hex') + '\n', { mode: 0o600 });
    chmodSync(savePath, 0o600);
  }
  return { target: prep.target, address, family, services: prep.services, bytes: prep.packet.length };
}

function probeFor(prep: PreparedOpen): Service | undefined {
  const ssh = prep.target.profile?.ssh_port;
  return prep.services.find((s) => s.proto === 'tcp') ?? (ssh ? { proto: 'tcp', port: ssh } : undefined);
}

async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, OPTIONS);
  if (values.help) {
    out(USAGE);
    return EXIT_OK;
  }
  const [host, ...serviceArgs] = positionals;
  const timeoutS = intOption(values.timeout, 'timeout', 1, 600) ?? 10;
  const identity = await identityFor(host, values);
  const prep = prepareOpen(host, serviceArgs, values, identity);
  const probe = values.wait && !values.close ? probeFor(prep) : undefined;
  if (values.wait && !values.close && !probe) throw new UsageError('--wait needs a tcp SERVICE to probe');
  const icmp = values.icmp === true;
  const sent = await sendOpen(prep, values['save-packet'], icmp);
  const report: Record<string, unknown> = { sent: true, host: sent.address, spa_port: sent.target.port, bytes: sent.bytes, ...(icmp && { transport: 'icmp' }) };
  let code = EXIT_OK;
  if (probe) {
    const resend = () => sendOpen(prepareOpen(host, serviceArgs, values, identity), undefined, icmp);
    const ms = await waitForOpen(sent.address, probe.port, timeoutS * 1000, resend);
    Object.assign(report, { probe: `tcp/${probe.port}`, open: ms !== undefined, ms });
    if (ms === undefined) code = EXIT_FAIL;
  }
  if (values.json) out(JSON.stringify(report));
  else printHuman(report, values.close === true);
  return code;
}

/** The technician identity for an asymmetric open (--identity, or the profile's), read once
 *  before anything is sent: a passphrase prompt must not sit between two packets. */
export async function identityFor(host: string | undefined, values: Record<string, string | boolean | undefined>): Promise<TechIdentity | undefined> {
  const opt = values['identity'] as string | undefined;
  const path = opt ?? profileFor(host, values['profile'] as string | undefined)?.identity;
  if (path === undefined) {
    if (values['device-key'] !== undefined) throw new UsageError('--device-key goes with --identity FILE (or a profile with an identity)');
    return undefined;
  }
  if (values['key'] !== undefined || values['key-file'] !== undefined || values['fwknop']) throw new UsageError('--identity and a symmetric or fwknop key do not go together');
  try {
    return await readIdentity(path, { passphraseFile: values['passphrase-file'] as string | undefined });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
}

function printHuman(r: Record<string, unknown>, close: boolean): void {
  const via = r['transport'] === 'icmp' ? 'in an ICMP echo request' : `udp/${String(r['spa_port'])}`;
  out(`sent ${close ? 'close' : 'open'} request to ${String(r['host'])} ${via} (${String(r['bytes'])} bytes)`);
  if (r['probe'] === undefined) return;
  if (r['open']) out(`${String(r['probe'])} is open (after ${String(r['ms'])} ms)`);
  else errOut(`${String(r['probe'])} did not open before the timeout: the device refused the packet or cannot be reached (the device's log says why)`);
}

export const openCommand: Command = { name: 'open', summary: 'Send one SPA packet to open services on a device', usage: USAGE, run };
