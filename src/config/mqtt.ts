// SPDX-License-Identifier: MIT
// The `mqtt` section of the config (issue 6, docs/config.md "MQTT alerts"). Absent means
// alerts are off. Secrets never sit in error messages: password and password_file are
// only checked for presence here; the files are read when the daemon connects.

import { Type, type Static } from '@sinclair/typebox';

const FilePath = Type.String({ minLength: 1, maxLength: 4096 });
/** MQTT topic levels postern writes under; no wildcards, no empty levels (MQTT 3.1.1 4.7). */
const TOPIC_PREFIX = '^[^#+/\\u0000]+(/[^#+/\\u0000]+)*$';
/** HA discovery prefix: one or more levels of [a-zA-Z0-9_-] (ref/mqtt.md 2.1). */
const HA_PREFIX = '^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$';

export const MqttTlsSchema = Type.Object({
  ca: Type.Optional(FilePath),
  cert: Type.Optional(FilePath),
  key: Type.Optional(FilePath),
}, { additionalProperties: false, default: {} });

export const MqttAggregateSchema = Type.Object({
  interval_s: Type.Integer({ minimum: 1, maximum: 3600, default: 10, description: 'repeats of one (kind, source) are summed over this interval' }),
  max_messages_per_s: Type.Integer({ minimum: 1, maximum: 1000, default: 5, description: 'global cap on alert messages' }),
  max_sources: Type.Integer({ minimum: 1, maximum: 10000, default: 64, description: '(kind, source) pairs tracked per interval; the rest are summed into one overflow alert' }),
}, { additionalProperties: false, default: {} });

export const MqttHaSchema = Type.Object({
  enabled: Type.Boolean({ default: false }),
  prefix: Type.String({ pattern: HA_PREFIX, maxLength: 128, default: 'homeassistant' }),
}, { additionalProperties: false, default: {} });

export const MqttSchema = Type.Object({
  url: Type.String({ pattern: '^(mqtts?|wss?)://[^\\s]+$', maxLength: 1024, description: 'mqtt://, mqtts://, ws:// or wss://' }),
  client_id: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  username: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  password: Type.Optional(Type.String({ maxLength: 1024 })),
  password_file: Type.Optional(FilePath),
  tls: MqttTlsSchema,
  topic_prefix: Type.Optional(Type.String({ pattern: TOPIC_PREFIX, maxLength: 256, description: 'default postern/<device>' })),
  qos: Type.Union([Type.Literal(0), Type.Literal(1)], { default: 1 }),
  stats_interval_s: Type.Integer({ minimum: 5, maximum: 86400, default: 60 }),
  ha_discovery: MqttHaSchema,
  aggregate: MqttAggregateSchema,
}, { additionalProperties: false });

export type RawMqtt = Static<typeof MqttSchema>;

/** Cross-field checks the schema cannot express. */
export function mqttErrors(m: RawMqtt | undefined): string[] {
  if (!m) return [];
  const errors: string[] = [];
  if (!URL.canParse(m.url)) errors.push('/mqtt/url: not a valid URL');
  if (m.password !== undefined && m.password_file !== undefined) errors.push('/mqtt: set password or password_file, not both');
  if ((m.password !== undefined || m.password_file !== undefined) && m.username === undefined) errors.push('/mqtt: a password needs a username');
  if ((m.tls.cert === undefined) !== (m.tls.key === undefined)) errors.push('/mqtt/tls: cert and key go together');
  const secure = /^(mqtts|wss):/.test(m.url);
  if (!secure && (m.tls.ca !== undefined || m.tls.cert !== undefined)) errors.push('/mqtt/tls: TLS files need an mqtts:// or wss:// url');
  return errors;
}

/** Topic prefix in force: configured, or postern/<device>. */
export function topicPrefix(m: RawMqtt, device: string): string {
  return m.topic_prefix ?? `postern/${device}`;
}
