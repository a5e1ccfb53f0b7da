// SPDX-License-Identifier: MIT
// Broker reachability for `postern doctor` (issue 6): one connect attempt, no retries,
// no subscriptions, and always closed again. probeBroker asks only whether something
// speaking MQTT answers at the URL; probeConfiguredBroker connects the way the daemon
// does (credentials, CA, client certificate), under its own client id and without the
// daemon's will: reusing the daemon's id would disconnect the running daemon.
import { randomBytes } from 'node:crypto';
import type { IClientOptions } from 'mqtt';
import { loadMqtt } from './mqtt-lib.ts';
import { topicPrefix, type RawMqtt } from '../config/mqtt.ts';
import { LEAN, brokerOptions, connectOptions } from './options.ts';

export type ProbeResult = { readonly ok: true } | { readonly ok: false; readonly error: string };

export function probeBroker(url: string, timeoutMs: number): Promise<ProbeResult> {
  return probe(url, {}, timeoutMs);
}

export function probeConfiguredBroker(m: RawMqtt, device: string, timeoutMs: number): Promise<ProbeResult> {
  const o = connectOptions(m, `${topicPrefix(m, device)}/status`, device);
  if (!o.ok) return Promise.resolve({ ok: false, error: o.errors.join('; ') });
  const { will: _will, clientId: _id, ...options } = o.options;
  return probe(m.url, options, timeoutMs);
}

async function probe(url: string, options: IClientOptions, timeoutMs: number): Promise<ProbeResult> {
  if (!URL.canParse(url)) return { ok: false, error: 'not a valid URL' };
  const connect = await loadMqtt();
  return new Promise((resolve) => {
    let settled = false;
    const client = connect({
      ...brokerOptions(url), ...LEAN, ...options, reconnectPeriod: 0, connectTimeout: timeoutMs, clientId: `postern-probe-${randomBytes(4).toString('hex')}`,
    });
    const finish = (r: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.end(true);
      resolve(r);
    };
    const timer = setTimeout(() => finish({ ok: false, error: `no CONNACK within ${timeoutMs} ms` }), timeoutMs);
    client.on('connect', () => finish({ ok: true }));
    client.on('error', (e) => finish({ ok: false, error: e.message }));
    client.on('close', () => finish({ ok: false, error: 'connection closed before CONNACK' }));
  });
}
