// SPDX-License-Identifier: MIT
// Home Assistant MQTT discovery (ref/mqtt.md 2): one retained config message per entity at
// <prefix>/<component>/<node_id>/<object_id>/config, all sharing one device, with
// availability from postern's retained status topic (plain online/offline, HA's defaults).
// Entities: an `event` for failed attempts and one for grants (payloads carry event_type),
// sensors over the retained stats topic, and a diagnostic binary_sensor for the clock.

import { ALL_DROP_REASONS } from '../pipeline/reasons.ts';
import type { OutboxMessage } from './outbox.ts';

export interface DiscoveryContext {
  readonly haPrefix: string;
  readonly topicPrefix: string;
  readonly device: string;
  readonly version: string;
}

/** HA ids are [a-zA-Z0-9_-] (ref/mqtt.md 2.1). */
export function nodeId(device: string): string {
  return `postern_${device.replace(/[^A-Za-z0-9_-]/g, '_')}`;
}

type Entity = readonly [component: string, objectId: string, config: Record<string, unknown>];

function entities(c: DiscoveryContext): Entity[] {
  const t = c.topicPrefix;
  const stat = (objectId: string, name: string, template: string, extra: Record<string, unknown> = {}): Entity =>
    ['sensor', objectId, { name, state_topic: `${t}/stats`, value_template: template, ...extra }];
  return [
    ['event', 'attempt', {
      name: 'Failed attempt', state_topic: `${t}/alert`, icon: 'mdi:shield-alert',
      event_types: [...ALL_DROP_REASONS, 'outbox_dropped', 'database_memory', 'database_ok'],
    }],
    ['event', 'grant', { name: 'Access', state_topic: `${t}/grant`, icon: 'mdi:door-open', event_types: ['opened', 'extended', 'closed'] }],
    stat('failed', 'Failed attempts', '{{ value_json.failed_total }}', { state_class: 'total_increasing' }),
    stat('accepted', 'Accepted packets', '{{ value_json.counters.accepted }}', { state_class: 'total_increasing' }),
    stat('grants_open', 'Open grants', '{{ value_json.grants_open }}', { state_class: 'measurement' }),
    stat('rss', 'Memory', '{{ value_json.rss_bytes }}', { state_class: 'measurement', device_class: 'data_size', unit_of_measurement: 'B', entity_category: 'diagnostic' }),
    stat('database', 'Database', '{{ value_json.database }}', { entity_category: 'diagnostic' }),
    ['binary_sensor', 'clock', {
      name: 'Clock untrusted', state_topic: `${t}/stats`, value_template: "{{ 'OFF' if value_json.clock_trusted else 'ON' }}",
      device_class: 'problem', entity_category: 'diagnostic',
    }],
  ];
}

/** The retained discovery messages, one per entity. */
export function discoveryMessages(c: DiscoveryContext): OutboxMessage[] {
  const node = nodeId(c.device);
  const device = { identifiers: [node], name: `postern ${c.device}`, manufacturer: 'postern', model: 'postern daemon', sw_version: c.version };
  return entities(c).map(([component, objectId, config]) => ({
    topic: `${c.haPrefix}/${component}/${node}/${objectId}/config`,
    payload: JSON.stringify({
      ...config,
      unique_id: `${node}_${objectId}`,
      availability_topic: `${c.topicPrefix}/status`,
      payload_available: 'online',
      payload_not_available: 'offline',
      device,
      origin: { name: 'postern', sw_version: c.version },
    }),
    qos: 1,
    retain: true,
  }));
}
