// SPDX-License-Identifier: MIT
// `postern alerts` output: one readable line, or one JSON line, per event received. Payloads
// come from a broker anyone on the fleet may publish to: they are parsed without throwing,
// checked against the published schemas, and control characters never reach the terminal.

import { Value } from '@sinclair/typebox/value';
import { AlertSchema, GrantSchema, type DatabaseAlert, type DroppedAlert, type FailureAlert, type GrantPayload } from './payloads.ts';

export type Received =
  | { readonly ok: true; readonly device: string; readonly kind: 'alert' | 'grant'; readonly payload: FailureAlert | DroppedAlert | DatabaseAlert | GrantPayload }
  | { readonly ok: false; readonly topic: string; readonly error: string };

/** Longest payload accepted; postern's own are a few hundred bytes. */
const MAX_PAYLOAD = 16 * 1024;

/** <prefix>/<device>/<alert|grant>: the device is the level after the prefix. */
export function parseReceived(prefix: string, topic: string, payload: Buffer): Received {
  const rest = topic.startsWith(`${prefix}/`) ? topic.slice(prefix.length + 1).split('/') : [];
  const [device, kind] = rest;
  if (rest.length !== 2 || !device || (kind !== 'alert' && kind !== 'grant')) return { ok: false, topic, error: 'unexpected topic' };
  if (payload.length > MAX_PAYLOAD) return { ok: false, topic, error: 'payload too large' };
  let json: unknown;
  try {
    json = JSON.parse(payload.toString('utf8'));
  } catch {
    return { ok: false, topic, error: 'payload is not JSON' };
  }
  if (kind === 'grant') return Value.Check(GrantSchema, json) ? { ok: true, device, kind, payload: json } : { ok: false, topic, error: 'not a v1 grant payload' };
  return Value.Check(AlertSchema, json) ? { ok: true, device, kind, payload: json } : { ok: false, topic, error: 'not a v1 alert payload' };
}

/** Printable: control characters (terminal escapes) become '?'. */
export function clean(s: string): string {
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

/** ECMAScript's Date range (ECMA-262 §21.4.1.22: ±8.64e15 ms); the payload schemas only
 *  bound times below, so a hostile broker can send one past it, where toISOString throws. */
const MAX_DATE_MS = 8.64e15;

function time(ms: number): string {
  if (!(Math.abs(ms) <= MAX_DATE_MS)) return `(time ${ms} out of range)`;
  return new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
}

export function formatLine(r: Extract<Received, { ok: true }>): string {
  const p = r.payload;
  const dev = clean(r.device);
  if (r.kind === 'grant' && 'grant_id' in p) {
    const until = p.expires_ms === undefined ? '' : ` until ${time(p.expires_ms)}`;
    return clean(`${time(p.at_ms)} ${dev} grant ${p.event_type} key=${p.key} source=${p.source} address=${p.address} services=${p.services.join(',') || '-'}${until} id=${p.grant_id}`);
  }
  if ('kind' in p) {
    const key = p.key === undefined ? '' : ` key=${p.key}`;
    const span = p.count > 1 ? ` (${time(p.first_ms)} .. ${time(p.last_ms)})` : '';
    return clean(`${time(p.last_ms)} ${dev} alert ${p.kind} x${p.count} source=${p.source}${key}${span}`);
  }
  if ('database' in p) return clean(`${time(p.at_ms)} ${dev} alert ${p.event_type} database=${p.database} reason=${JSON.stringify(p.reason)}`);
  if (p.event_type === 'outbox_dropped') return clean(`${time(p.at_ms)} ${dev} alert outbox_dropped x${p.count} (undelivered alerts lost to the outbox cap)`);
  return clean(`${dev} ${JSON.stringify(p)}`);
}

export function formatJson(r: Extract<Received, { ok: true }>): string {
  // The device named by the topic wins over the payload's claim (docs/mqtt.md, ACLs bind topics).
  return JSON.stringify({ ...r.payload, device: r.device, topic: r.kind });
}
