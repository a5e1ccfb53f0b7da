// SPDX-License-Identifier: MIT
// Knocks with ordinary sockets, as knockd's `knock` client does (ref/knockd.md section 4):
// a TCP knock is a connect() whose SYN is the knock, abandoned before any answer; a UDP
// knock is one datagram of one zero byte. No raw socket, so no root or CAP_NET_RAW.

import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect } from 'node:net';

export type KnockProto = 'tcp' | 'udp';

export interface Knock {
  readonly port: number;
  readonly proto: KnockProto;
}

export interface KnockTarget {
  readonly address: string;
  readonly family: 4 | 6;
}

/** knock.c sends sendto(sd, "", 1, ...): one byte. */
const UDP_KNOCK = Buffer.alloc(1);

/**
 * One TCP knock. Node issues connect() (which sends the SYN at once) on the tick after
 * net.connect for a literal address; by setImmediate it has happened, and destroying a
 * socket in SYN_SENT sends nothing more. The daemon never answers a knock port, so
 * waiting for an answer would only add the kernel's SYN retransmits (duplicates).
 */
async function knockTcp(to: KnockTarget, port: number): Promise<void> {
  const s = connect({ host: to.address, port, family: to.family });
  let failed: NodeJS.ErrnoException | undefined;
  s.on('error', (err: NodeJS.ErrnoException) => { failed = err; });
  await new Promise<void>((resolve) => setImmediate(resolve));
  s.destroy();
  // connect() itself failed (no route, no such local address, a local firewall's EPERM):
  // no SYN left this machine. A refusal (RST) cannot have arrived yet and would not matter.
  if (failed !== undefined && failed.code !== 'ECONNREFUSED') throw new Error(`tcp knock on port ${port}: ${failed.code ?? failed.message}`);
}

function knockUdp(sock: UdpSocket, to: KnockTarget, port: number): Promise<void> {
  return new Promise((resolve, reject) => sock.send(UDP_KNOCK, port, to.address, (err) => (err ? reject(err) : resolve())));
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The daemon captures TCP and UDP on separate raw sockets, whose queues it may drain in
 *  either order; back-to-back knocks of different protocols could then arrive "swapped"
 *  (docs/config.md "Knock doors"). A short gap where the protocol changes keeps the order. */
export const PROTO_SWITCH_GAP_MS = 25;

/** Send the knocks in order, `delayMs` apart; `onKnock` sees each one as it goes out. */
export async function sendKnocks(to: KnockTarget, knocks: readonly Knock[], delayMs: number, onKnock?: (k: Knock) => void): Promise<void> {
  const udp = knocks.some((k) => k.proto === 'udp') ? createSocket(to.family === 6 ? 'udp6' : 'udp4') : undefined;
  try {
    for (const [i, k] of knocks.entries()) {
      const gap = i > 0 && knocks[i - 1]?.proto !== k.proto ? Math.max(delayMs, PROTO_SWITCH_GAP_MS) : delayMs;
      if (i > 0 && gap > 0) await sleep(gap);
      onKnock?.(k);
      if (k.proto === 'tcp') await knockTcp(to, k.port);
      else if (udp) await knockUdp(udp, to, k.port);
    }
  } finally {
    udp?.close();
  }
}
