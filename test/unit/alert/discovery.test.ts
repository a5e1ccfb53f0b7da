// SPDX-License-Identifier: MIT
// Home Assistant discovery messages against HA's documented format (ref/mqtt.md 2:
// home-assistant.io mqtt.markdown, event.mqtt.markdown).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { discoveryMessages, nodeId } from '../../../src/alert/discovery.ts';
import { ALL_DROP_REASONS } from '../../../src/pipeline/reasons.ts';
import { checkDiscovery } from './ha-format.ts';

test('discovery: one device, retained per-entity configs in HA\'s format, availability from status', () => {
  const msgs = discoveryMessages({ haPrefix: 'homeassistant', topicPrefix: 'postern/rtr 01', device: 'rtr.01', version: '1.2.3' });
  assert.equal(nodeId('rtr.01'), 'postern_rtr_01');
  const uniq = new Set<string>();
  const components = new Set<string>();
  for (const m of msgs) {
    const { component, node, config: c } = checkDiscovery(m.topic, m.payload, m.retain, 'postern/rtr 01/status');
    assert.equal(m.qos, 1);
    components.add(component);
    assert.equal(node, 'postern_rtr_01');
    assert.ok(!uniq.has(String(c['unique_id'])));
    uniq.add(String(c['unique_id']));
    const dev = c['device'] as Record<string, unknown>;
    assert.deepEqual(dev['identifiers'], ['postern_rtr_01']);
    assert.equal(dev['sw_version'], '1.2.3');
    assert.equal((c['origin'] as Record<string, unknown>)['name'], 'postern');
    assert.match(String(c['state_topic']), /^postern\/rtr 01\/(alert|grant|stats)$/);
  }
  assert.deepEqual([...components].sort(), ['binary_sensor', 'event', 'sensor']);
  const events = msgs.map((m) => JSON.parse(m.payload) as Record<string, unknown>).filter((c) => Array.isArray(c['event_types']));
  const attempt = events.find((c) => c['state_topic'] === 'postern/rtr 01/alert');
  const grant = events.find((c) => c['state_topic'] === 'postern/rtr 01/grant');
  // Every failure kind the daemon can alert is a declared event type.
  for (const r of ALL_DROP_REASONS) assert.ok((attempt?.['event_types'] as string[]).includes(r), r);
  assert.deepEqual(grant?.['event_types'], ['opened', 'extended', 'closed']);
});
