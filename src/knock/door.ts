// SPDX-License-Identifier: MIT
// A knock door as the engine sees it (docs/config.md "Knock doors"), and the capture ports
// the doors need: sequence ports, guard ports and time-derived ranges. Pure.

import type { Service } from '../firewall/types.ts';
import type { Cidr } from '../wire/address.ts';
import type { TotpKey } from './totp.ts';
import type { KnockPort, KnockProto, TcpFlagFilter } from './sequence.ts';

export interface TotpSource {
  readonly kind: 'totp';
  readonly key: TotpKey;
  readonly stepS: number;
  readonly length: number;
  readonly portMin: number;
  readonly portMax: number;
  readonly proto: KnockProto;
}

export type DoorSource =
  | { readonly kind: 'static'; readonly sequence: readonly KnockPort[] }
  /** The live sequence comes from the file (daemon/one-time-file.ts), handed to the engine. */
  | { readonly kind: 'one_time'; readonly path: string }
  | TotpSource;

export interface DoorConfig {
  readonly name: string;
  readonly source: DoorSource;
  readonly seqTimeoutS: number;
  readonly tcpFlags?: TcpFlagFilter;
  /** Canonical IPv4 text: only knocks to this destination count. */
  readonly target?: string;
  /** Action A: a grant of these services (empty: no grant). */
  readonly services: readonly Service[];
  readonly durationS: number;
  readonly allowedAddresses: readonly Cidr[];
  /** Action B: argv templates with %IP%, run without a shell. */
  readonly start?: readonly string[];
  readonly stop?: readonly string[];
  readonly cmdTimeoutS: number;
}

export interface PortRange {
  readonly proto: KnockProto;
  readonly from: number;
  readonly to: number;
}

export interface KnockPorts {
  /** Ports of static and one-time sequences. */
  readonly sequence: readonly KnockPort[];
  /** Ports within guardWidth of a sequence port that are not sequence ports themselves. */
  readonly guard: readonly KnockPort[];
  /** Time-derived doors' ranges: every port of them is captured. */
  readonly ranges: readonly PortRange[];
}

const key = (p: KnockPort): string => `${p.proto}/${p.port}`;

/**
 * Capture ports for the doors. `sequences` are the static and one-time sequences (for a
 * one-time door, every unused line, so that rotating to the next line needs no firewall
 * change). Guard ports: DESIGN.md "Port knocking", sweep resistance.
 */
export function knockPorts(sequences: readonly (readonly KnockPort[])[], totp: readonly TotpSource[], guardWidth: number): KnockPorts {
  const seq = new Map<string, KnockPort>();
  for (const s of sequences) for (const p of s) seq.set(key(p), p);
  const guard = new Map<string, KnockPort>();
  for (const p of seq.values()) {
    for (let d = -guardWidth; d <= guardWidth; d++) {
      const g = { proto: p.proto, port: p.port + d };
      if (d === 0 || g.port < 1 || g.port > 65535 || seq.has(key(g))) continue;
      guard.set(key(g), g);
    }
  }
  return {
    sequence: [...seq.values()],
    guard: [...guard.values()],
    ranges: totp.map((t) => ({ proto: t.proto, from: t.portMin, to: t.portMax })),
  };
}

export const inRange = (r: PortRange, p: KnockPort): boolean => r.proto === p.proto && p.port >= r.from && p.port <= r.to;
