// SPDX-License-Identifier: MIT
// mqtt.js connect options from the `mqtt` config section: secrets and TLS files are read
// here, once, at start (a missing file refuses the start, with every such error listed).
// The last will makes the broker publish `offline` (retained) when the daemon dies without
// a clean disconnect (ref/mqtt.md 1.3, zigbee2mqtt's bridge/state).

import { readFileSync } from 'node:fs';
import type { IClientOptions } from 'mqtt';
import type { RawMqtt } from '../config/mqtt.ts';

export const STATUS_ONLINE = 'online';
export const STATUS_OFFLINE = 'offline';
/** Fixed retry interval of mqtt.js (no backoff, ref/mqtt.md 4); 5 s spares a small board. */
export const RECONNECT_MS = 5000;

/** Broker URL -> mqtt.js options, parsed with the WHATWG URL parser (mqtt.js would use the
 *  deprecated url.parse, which also prints a DEP0169 warning on every start). */
export function brokerOptions(url: string): IClientOptions {
  const u = new URL(url);
  const protocol = u.protocol.replace(/:$/, '') as NonNullable<IClientOptions['protocol']>;
  return {
    protocol,
    host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
    ...(u.port !== '' && { port: Number(u.port) }),
    ...(protocol.startsWith('ws') && { path: `${u.pathname}${u.search}` }),
    ...(u.username !== '' && { username: decodeURIComponent(u.username) }),
    ...(u.password !== '' && { password: decodeURIComponent(u.password) }),
  };
}

/** mqtt-packet otherwise builds a cache of 65,536 two-byte Buffers on the first publish:
 *  about 8 MB of RSS on the board (measured), to save microseconds per packet at a few
 *  messages per second. Every client postern makes uses this. */
export const LEAN: IClientOptions = { writeCache: false };

export type OptionsResult = { readonly ok: true; readonly options: IClientOptions } | { readonly ok: false; readonly errors: readonly string[] };

function readSecret(path: string, what: string, errors: string[]): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch (err) {
    errors.push(`/mqtt/${what}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    return undefined;
  }
}

export function connectOptions(m: RawMqtt, statusTopic: string, device: string): OptionsResult {
  const errors: string[] = [];
  const password = m.password_file === undefined ? m.password : readSecret(m.password_file, 'password_file', errors)?.toString('utf8').replace(/\r?\n$/, '');
  const ca = m.tls.ca === undefined ? undefined : readSecret(m.tls.ca, 'tls/ca', errors);
  const cert = m.tls.cert === undefined ? undefined : readSecret(m.tls.cert, 'tls/cert', errors);
  const key = m.tls.key === undefined ? undefined : readSecret(m.tls.key, 'tls/key', errors);
  if (errors.length > 0) return { ok: false, errors };
  const options: IClientOptions = {
    clientId: m.client_id ?? `postern-${device}`,
    clean: true,
    reconnectPeriod: RECONNECT_MS,
    connectTimeout: 10_000,
    // mqtt.js queues offline publishes in memory without bound (DESIGN.md fact 7): postern
    // only publishes while connected, and durable messages wait in the outbox instead.
    queueQoSZero: false,
    ...LEAN,
    will: { topic: statusTopic, payload: Buffer.from(STATUS_OFFLINE), qos: 1, retain: true },
    ...(m.username !== undefined && { username: m.username }),
    ...(password !== undefined && { password }),
    ...(ca && { ca }),
    ...(cert && { cert }),
    ...(key && { key }),
  };
  return { ok: true, options };
}
