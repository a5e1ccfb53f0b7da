// SPDX-License-Identifier: MIT
// Broker reachability for `postern doctor` (issue 6): one connect attempt, no retries,
// no subscriptions, and always closed again. TLS files are not loaded here: doctor only
// asks whether something speaking MQTT answers at the URL.
import mqtt from 'mqtt';
import { brokerOptions } from './options.ts';

export type ProbeResult = { readonly ok: true } | { readonly ok: false; readonly error: string };

export function probeBroker(url: string, timeoutMs: number): Promise<ProbeResult> {
  if (!URL.canParse(url)) return Promise.resolve({ ok: false, error: 'not a valid URL' });
  return new Promise((resolve) => {
    let settled = false;
    const client = mqtt.connect({ ...brokerOptions(url), reconnectPeriod: 0, connectTimeout: timeoutMs, clientId: `postern-probe-${process.pid}` });
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
