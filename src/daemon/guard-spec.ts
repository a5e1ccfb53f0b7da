// SPDX-License-Identifier: MIT
// What the daemon asks of the firewall and the capture sockets for a config: capture ports
// (SPA, fwknop, knock), guarded services, forwarding; and which frames go to the knock
// engine. Pure functions of the config (and of the knock ports the knock service read).

import type { Config } from '../config/load.ts';
import type { GuardSpec, SpaPrefilter, SpaShape } from '../firewall/types.ts';
import { MAX_PACKET, MIN_ASYM_PACKET, MIN_PACKET } from '../spa/constants.ts';
import { MAX_WIRE_LEN, MIN_WIRE_LEN } from '../fwknop/constants.ts';
import type { KnockPorts } from '../knock/door.ts';
import type { Frame } from '../wire/frame.ts';

/** The UDP ports postern captures on: the SPA port, and the fwknop port when configured. */
export function capturePorts(config: Config): number[] {
  return config.fwknop.length > 0 ? [config.raw.spa.port, config.raw.fwknop.port] : [config.raw.spa.port];
}

/** The kernel-side prefilter (firewall/prefilter.ts, docs/firewall.md "Prefilter"): on the
 *  SPA port only datagrams of a native length starting with a configured key id (revoked
 *  keys included: their packets must still be authenticated and reported as revoked_key),
 *  on the fwknop port only fwknop lengths. undefined when `spa.prefilter` is off. */
export function spaPrefilter(config: Config): SpaPrefilter[] | undefined {
  if (!config.raw.spa.prefilter) return undefined;
  const shapes = new Map<number, SpaShape[]>();
  const add = (port: number, shape: SpaShape): void => void shapes.set(port, [...(shapes.get(port) ?? []), shape]);
  add(config.raw.spa.port, { minLen: MIN_PACKET, maxLen: MAX_PACKET, keyIds: config.keys.map((k) => k.credential.keyId) });
  if (config.techKeys.length > 0) add(config.raw.spa.port, { minLen: MIN_ASYM_PACKET, maxLen: MAX_PACKET, keyIds: config.techKeys.map((k) => k.techKey.keyId) });
  if (config.fwknop.length > 0) add(config.raw.fwknop.port, { minLen: MIN_WIRE_LEN, maxLen: MAX_WIRE_LEN });
  return [...shapes].map(([port, list]) => ({ port, shapes: list }));
}

/** Knock capture: sequence and guard ports, and time-derived ranges (docs/config.md
 *  "Knock doors"). UDP ones stay silent through sink sockets, TCP ones through the
 *  backends' RST drop (DESIGN.md fact 1). */
export function guardSpec(config: Config, knock?: KnockPorts): GuardSpec {
  // External ports of forwarding targets are guarded too: to everyone without a grant the
  // router is as silent there as on any guarded service (granted traffic is DNATed in
  // prerouting and never reaches the input hook).
  const external = [...config.keys, ...config.techKeys, ...config.fwknop].flatMap((k) => k.forwards.map((f) => ({ proto: f.proto, port: f.externalPort })));
  const seen = new Set(config.guarded.map((s) => `${s.proto}/${s.port}`));
  const extra = external.filter((s) => !seen.has(`${s.proto}/${s.port}`) && seen.add(`${s.proto}/${s.port}`));
  const prefilter = spaPrefilter(config);
  return {
    guarded: [...config.guarded, ...extra],
    capture: [...capturePorts(config).map((port) => ({ proto: 'udp' as const, port })), ...(knock ? [...knock.sequence, ...knock.guard] : [])],
    ...(knock && knock.ranges.length > 0 && { captureTcpRanges: knock.ranges.map((r) => ({ from: r.from, to: r.to })) }),
    forwarding: external.length > 0 || config.fwknop.some((st) => st.localNat),
    ...(prefilter !== undefined && { spaPrefilter: prefilter }),
  };
}

/** The host's own traffic (127.0.0.0/8, ::1) is never a knock: the raw TCP socket also sees
 *  the board's local connections (e.g. to its MQTT broker), which would otherwise count as
 *  wrong knocks from 127.0.0.1 whenever their ports fall in a door's range. */
export function isLoopbackSource(src: string): boolean {
  return src.startsWith('127.') || src === '::1';
}

/** A frame for the knock engine: any TCP segment, and UDP datagrams not for SPA/fwknop,
 *  from anywhere but the host itself. */
export function isKnockFrame(config: Config, frame: Frame): boolean {
  if (isLoopbackSource(frame.src)) return false;
  if (frame.proto === 'tcp') return true;
  return frame.proto === 'udp' && frame.dstPort !== config.raw.spa.port
    && !(config.fwknop.length > 0 && frame.dstPort === config.raw.fwknop.port);
}
