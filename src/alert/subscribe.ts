// SPDX-License-Identifier: MIT
// The technician's side of alerts (`postern alerts`): subscribe to <prefix>/<device>/alert
// and /grant across a fleet (device `+` = every device) and hand each message on. QoS 1
// subscriptions; reconnects are mqtt.js's (ref/mqtt.md 4).

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IClientOptions } from 'mqtt';
import { loadMqtt } from './mqtt-lib.ts';
import { LEAN, brokerOptions } from './options.ts';

export interface SubscribeOptions {
  readonly url: string;
  readonly prefix: string;
  readonly device: string;
  readonly username?: string | undefined;
  readonly passwordFile?: string | undefined;
  readonly ca?: string | undefined;
  readonly cert?: string | undefined;
  readonly key?: string | undefined;
}

export interface Subscription {
  /** Resolves when subscribed; rejects on a connection or subscription error. */
  readonly ready: Promise<void>;
  close(): Promise<void>;
}

export function alertTopics(prefix: string, device: string): string[] {
  return [`${prefix}/${device}/alert`, `${prefix}/${device}/grant`];
}

function clientOptions(o: SubscribeOptions): IClientOptions {
  const file = (p: string | undefined) => (p === undefined ? undefined : readFileSync(p));
  const password = o.passwordFile === undefined ? undefined : readFileSync(o.passwordFile, 'utf8').replace(/\r?\n$/, '');
  const ca = file(o.ca);
  const cert = file(o.cert);
  const key = file(o.key);
  return {
    // Random: two watchers with one id would keep disconnecting each other (MQTT 3.1.1 3.1.4).
    clientId: `postern-alerts-${randomBytes(4).toString('hex')}`, reconnectPeriod: 2000, connectTimeout: 10_000,
    ...(o.username !== undefined && { username: o.username }), ...(password !== undefined && { password }),
    ...(ca && { ca }), ...(cert && { cert }), ...(key && { key }),
  };
}

export async function subscribeAlerts(o: SubscribeOptions, onMessage: (topic: string, payload: Buffer) => void): Promise<Subscription> {
  const options = { ...brokerOptions(o.url), ...LEAN, ...clientOptions(o) };
  const client = (await loadMqtt())(options);
  const ready = new Promise<void>((resolve, reject) => {
    let first = true;
    client.on('connect', () => {
      client.subscribe(alertTopics(o.prefix, o.device), { qos: 1 }, (err) => {
        if (!first) return;
        first = false;
        if (err) reject(err);
        else resolve();
      });
    });
    const fail = (e: Error): void => {
      if (!first) return;
      first = false;
      void client.endAsync(true);
      reject(e);
    };
    client.on('error', fail);
    // Before the first CONNACK, a closed connection is a failure: do not retry silently.
    client.on('close', () => fail(new Error('connection closed before the broker accepted it')));
  });
  client.on('message', (topic, payload) => onMessage(topic, payload));
  return { ready, close: () => client.endAsync() };
}
