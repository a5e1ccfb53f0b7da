// SPDX-License-Identifier: MIT
// The technician's side of SPA: build one packet and send it, then (optionally) wait for
// the door to open. SPA is one-way by design (the daemon never answers), so `--wait`
// probes the service itself with TCP connects.

import { randomBytes, randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { connect, isIP, type Socket } from 'node:net';
import type { Service } from '../firewall/types.ts';
import { MAX_PADDING, NONCE_SIZE, type MessageType } from '../spa/constants.ts';
import type { Credential } from '../spa/credential.ts';
import { prepareKey, sealPacket } from '../spa/packet.ts';
import { sealAsym } from '../spa/asym.ts';
import type { AsymCredential } from './target.ts';
import type { NatTarget } from '../spa/message.ts';

export interface OpenRequest {
  /** A symmetric credential, or a technician identity with the device's public key. */
  readonly credential: Credential | AsymCredential;
  readonly type: MessageType;
  readonly services: readonly Service[];
  readonly durationS: number;
  /** Explicit address to open for; undefined = the packet's source address. */
  readonly allowAddress: string | undefined;
  readonly nowMs: number;
  /** For type 'forward': the LAN target the device's key stanza lists. */
  readonly nat?: NatTarget | undefined;
}

/** Seal a request into one SPA datagram with a fresh nonce and random-length padding. */
export function buildPacket(req: OpenRequest): Buffer {
  const padding = randomBytes(randomInt(0, MAX_PADDING + 1));
  const message = {
    type: req.type,
    timestampMs: req.nowMs,
    nonce: randomBytes(NONCE_SIZE),
    durationS: req.durationS,
    address: req.allowAddress,
    services: req.services,
    nat: req.nat,
  };
  const cred = req.credential;
  if ('kind' in cred) return sealAsym({ identity: cred.identity, device: cred.device, message, padding });
  return sealPacket(prepareKey('client', cred), message, padding);
}

export async function resolveHost(host: string): Promise<{ address: string; family: 4 | 6 }> {
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  const fam = isIP(bare);
  if (fam === 4 || fam === 6) return { address: bare, family: fam };
  const r = await lookup(bare);
  return { address: r.address, family: r.family === 6 ? 6 : 4 };
}

export async function sendDatagram(packet: Buffer, address: string, family: 4 | 6, port: number): Promise<void> {
  const sock = createSocket(family === 6 ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.send(packet, port, address, (err) => (err ? reject(err) : resolve()));
    });
  } finally {
    sock.close();
  }
}

/** A dropped SYN is only retransmitted after the kernel's initial RTO (1 s), so a single
 *  probe waits far longer than the door takes to open. Instead a fresh connect attempt
 *  starts every PROBE_GAP_MS, each living up to PROBE_LIFE_MS (long enough for a slow
 *  path's round trip); the first to connect wins and the rest are closed. */
const PROBE_GAP_MS = 10;
const PROBE_LIFE_MS = 1500;
const MAX_PROBES = 64;

/** SPA is one UDP datagram and may be lost (a flood filling the device's queue, a lossy
 *  link). While waiting, a fresh packet (new nonce and timestamp: not a replay) is sent
 *  at each of RESEND_AFTER_MS (counted from the first); the device extends the one
 *  grant instead of adding rules. */
const RESEND_AFTER_MS = [1000, 2500];

/** Probe until the port accepts a connection or `totalMs` passes. Returns ms taken, or
 *  undefined. `resend`, if given, sends a fresh SPA packet (see RESEND_AFTER_MS). */
export function waitForOpen(
  address: string, port: number, totalMs: number, resend?: () => Promise<unknown>,
): Promise<number | undefined> {
  const start = performance.now();
  const live = new Set<Socket>();
  return new Promise((resolve) => {
    let done = false;
    const resends = resend ? RESEND_AFTER_MS.filter((ms) => ms < totalMs).map((ms) => setTimeout(() => {
      if (!done) resend().catch(() => undefined);
    }, ms)) : [];
    const finish = (ms: number | undefined) => {
      if (done) return;
      done = true;
      for (const r of resends) clearTimeout(r);
      clearInterval(ticker);
      clearTimeout(deadline);
      for (const s of live) s.destroy();
      resolve(ms);
    };
    const attempt = () => {
      if (live.size >= MAX_PROBES) return;
      const s = connect({ host: address, port });
      live.add(s);
      const drop = () => { live.delete(s); s.destroy(); };
      s.setTimeout(PROBE_LIFE_MS, drop);
      s.once('error', drop);
      s.once('connect', () => finish(Math.round(performance.now() - start)));
    };
    const ticker = setInterval(attempt, PROBE_GAP_MS);
    const deadline = setTimeout(() => finish(undefined), totalMs);
    attempt();
  });
}
