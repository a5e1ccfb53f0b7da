// SPDX-License-Identifier: MIT
// Home Assistant MQTT discovery format (ref/mqtt.md 2; home-assistant.io mqtt.markdown and
// event.mqtt.markdown): topic shape, ids, required keys per component, availability.
// Shared by the unit test and the end-to-end test that checks what a real broker delivered.
import assert from 'node:assert/strict';

const ID = /^[a-zA-Z0-9_-]+$/;
/** <discovery_prefix>/<component>/[<node_id>/]<object_id>/config (mqtt.markdown). */
const TOPIC = /^([a-zA-Z0-9_-]+(?:\/[a-zA-Z0-9_-]+)*)\/(event|sensor|binary_sensor)\/([a-zA-Z0-9_-]+)\/([a-zA-Z0-9_-]+)\/config$/;
const REQUIRED: Record<string, string[]> = {
  event: ['state_topic', 'event_types'],
  sensor: ['state_topic'],
  binary_sensor: ['state_topic'],
};

/** Checks one discovery message; returns its component and parsed config. */
export function checkDiscovery(topic: string, payload: string, retain: boolean, statusTopic: string): { component: string; node: string; config: Record<string, unknown> } {
  const t = TOPIC.exec(topic);
  assert.ok(t, `discovery topic shape: ${topic}`);
  assert.equal(retain, true, `${topic} is retained`);
  const config = JSON.parse(payload) as Record<string, unknown>;
  const component = t[2]!;
  for (const k of REQUIRED[component]!) assert.ok(k in config, `${topic} lacks ${k}`);
  assert.match(String(config['unique_id']), ID);
  assert.equal(config['availability_topic'], statusTopic);
  assert.equal(config['payload_available'], 'online');
  assert.equal(config['payload_not_available'], 'offline');
  const dev = config['device'] as Record<string, unknown> | undefined;
  assert.ok(Array.isArray(dev?.['identifiers']) && (dev['identifiers'] as unknown[]).length > 0, `${topic}: device.identifiers`);
  if (component === 'event') assert.ok(Array.isArray(config['event_types']) && (config['event_types'] as unknown[]).every((e) => typeof e === 'string'));
  else assert.match(String(config['value_template']), /value_json\./);
  return { component, node: t[3]!, config };
}
