// SPDX-License-Identifier: MIT
// The technician's side of SPA: build one packet and send it, then (optionally) wait for
// the door to open. SPA is one-way by design (the daemon never answers), so `--wait`
// probes the service itself with TCP connects.

import { randomBytes, randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { connect } from 'node:net';
import { isIP } from 'node:net';
import type { Service } from '../firewall/types.ts';
import { MAX_PADDING, NONCE_SIZE, type MessageType } from '../spa/constants.ts';
import type { Credential } from '../spa/credential.ts';
import { prepareKey, sealPacket } from '../spa/packet.ts';

export interface OpenRequest {
  readonly credential: Credential;
  readonly type: MessageType;
  readonly services: readonly Service[];
  readonly durationS: number;
  /** Explicit address to open for; undefined = the packet's source address. */
  readonly allowAddress: string | undefined;
  readonly nowMs: number;
}

/** Seal a request into one SPA datagram with a fresh nonce and random-length padding. */
export function buildPacket(req: OpenRequest): Buffer {
  const key = prepareKey('client', req.credential);
  const padding = randomBytes(randomInt(0, MAX_PADDING + 1));
  return sealPacket(key, {
    type: req.type,
    timestampMs: req.nowMs,
    nonce: randomBytes(NONCE_SIZE),
    durationS: req.durationS,
    address: req.allowAddress,
    services: req.services,
    nat: undefined,
  }, padding);
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

/** One TCP connect attempt: true when the handshake completes within timeoutMs. */
export function tryConnect(address: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: address, port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

const PROBE_TIMEOUT_MS = 300;
const PROBE_GAP_MS = 10;

/** Probe until the port accepts a connection or `totalMs` passes. Returns ms taken, or undefined. */
export async function waitForOpen(address: string, port: number, totalMs: number): Promise<number | undefined> {
  const start = performance.now();
  while (performance.now() - start < totalMs) {
    const left = totalMs - (performance.now() - start);
    if (await tryConnect(address, port, Math.min(PROBE_TIMEOUT_MS, Math.max(1, left)))) {
      return Math.round(performance.now() - start);
    }
    await new Promise((r) => setTimeout(r, PROBE_GAP_MS));
  }
  return undefined;
}
