// SPDX-License-Identifier: MIT
// Every payload postern publishes, as TypeBox schemas: one definition gives the TypeScript
// type, the validator the tests run against real published messages, and the JSON Schema
// printed in docs/mqtt.md (`postern alerts --schema`), so the three cannot drift.
// Every payload carries "v": 1; a breaking change bumps it (docs/mqtt.md "Versioning").

import { Type, type Static, type TSchema } from '@sinclair/typebox';

export const PAYLOAD_VERSION = 1;

const V = Type.Literal(PAYLOAD_VERSION, { description: 'payload version' });
const Id = Type.String({ minLength: 1, maxLength: 64, description: 'unique per message: de-duplicates QoS 1 redeliveries' });
const Device = Type.String({ minLength: 1, maxLength: 64 });
const Ms = Type.Integer({ minimum: 0, description: 'wall-clock milliseconds since the epoch (device clock)' });

/** <prefix>/alert: classified, aggregated failures. `event_type` makes it a Home Assistant event. */
export const FailureAlertSchema = Type.Object({
  v: V, id: Id, device: Device,
  event_type: Type.String({ pattern: '^[a-z0-9_]{1,40}$', description: 'the failure kind (a drop reason), also HA\'s event type' }),
  kind: Type.String({ pattern: '^[a-z0-9_]{1,40}$' }),
  source: Type.String({ minLength: 1, maxLength: 45, description: 'source address, or "*" for sources beyond aggregate.max_sources' }),
  key: Type.Optional(Type.String({ minLength: 1, maxLength: 80, description: 'key name, when the packet named or authenticated one' })),
  count: Type.Integer({ minimum: 1, description: 'failures this message stands for' }),
  first_ms: Ms, last_ms: Ms,
}, { additionalProperties: false, $id: 'postern-alert-failure' });

/** <prefix>/alert when the outbox cap dropped undelivered messages. */
export const DroppedAlertSchema = Type.Object({
  v: V, id: Id, device: Device,
  event_type: Type.Literal('outbox_dropped'),
  count: Type.Integer({ minimum: 1, description: 'messages dropped, oldest first' }),
  at_ms: Ms,
}, { additionalProperties: false, $id: 'postern-alert-dropped' });

/** <prefix>/alert when the state database goes memory-only (or comes back). */
export const DatabaseAlertSchema = Type.Object({
  v: V, id: Id, device: Device,
  event_type: Type.Union([Type.Literal('database_memory'), Type.Literal('database_ok')]),
  database: Type.Union([Type.Literal('ok'), Type.Literal('memory')]),
  reason: Type.String({ maxLength: 200, description: 'why (missing, locked, corrupt, read-only, disk full ...)' }),
  at_ms: Ms,
}, { additionalProperties: false, $id: 'postern-alert-database' });

export const AlertSchema = Type.Union([FailureAlertSchema, DroppedAlertSchema, DatabaseAlertSchema], { $id: 'postern-alert' });

/** <prefix>/grant: access opened, extended, closed. */
export const GrantSchema = Type.Object({
  v: V, id: Id, device: Device,
  event_type: Type.Union([Type.Literal('opened'), Type.Literal('extended'), Type.Literal('closed')]),
  grant_id: Type.String({ minLength: 1, maxLength: 64 }),
  key: Type.String({ minLength: 1, maxLength: 80 }),
  source: Type.String({ minLength: 1, maxLength: 45 }),
  address: Type.String({ minLength: 1, maxLength: 49, description: 'the address (or prefix) the grant opens for' }),
  services: Type.Array(Type.String({ pattern: '^(tcp|udp)/[0-9]{1,5}$' }), { maxItems: 64 }),
  expires_ms: Type.Optional(Ms),
  at_ms: Ms,
}, { additionalProperties: false, $id: 'postern-grant' });

/** <prefix>/stats, retained and periodic. */
export const StatsSchema = Type.Object({
  v: V, device: Device, at_ms: Ms,
  version: Type.String({ maxLength: 40 }),
  uptime_s: Type.Integer({ minimum: 0 }),
  counters: Type.Record(Type.String({ pattern: '^[a-z0-9_]{1,40}$' }), Type.Integer({ minimum: 0 }), { description: 'accepted, extended, closed, and one counter per drop reason, since start' }),
  failed_total: Type.Integer({ minimum: 0, description: 'sum of the drop-reason counters except malformed: what the alerts\' counts add up to' }),
  grants_open: Type.Integer({ minimum: 0 }),
  rss_bytes: Type.Integer({ minimum: 0 }),
  database: Type.String({ maxLength: 40, description: 'state of the SQLite store, e.g. ok, memory (degraded)' }),
  clock_trusted: Type.Boolean(),
  outbox: Type.Integer({ minimum: 0, description: 'messages waiting in the outbox' }),
  prefilter_dropped: Type.Optional(Type.Integer({ minimum: 0, description: 'datagrams the kernel prefilter dropped before the daemon read them (spa.prefilter; as of the last reconcile), absent when it is off' })),
}, { additionalProperties: false, $id: 'postern-stats' });

export type FailureAlert = Static<typeof FailureAlertSchema>;
export type DroppedAlert = Static<typeof DroppedAlertSchema>;
export type DatabaseAlert = Static<typeof DatabaseAlertSchema>;
export type GrantPayload = Static<typeof GrantSchema>;
export type StatsPayload = Static<typeof StatsSchema>;

/** Topic suffix -> schema, for docs and for `postern alerts --schema`. */
export const TOPIC_SCHEMAS: readonly (readonly [string, TSchema])[] = [
  ['alert', AlertSchema], ['grant', GrantSchema], ['stats', StatsSchema],
];
