// SPDX-License-Identifier: MIT
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateConfig, type KeyConfig } from '../../../src/config/load.ts';
import { decideForward, decideOpen } from '../../../src/policy/decide.ts';
import { Credential } from '../../../src/spa/credential.ts';
import type { SpaMessage } from '../../../src/spa/message.ts';

function keyWith(extra: Record<string, unknown>): KeyConfig {
  const r = validateConfig({
    device: 'd', guarded: ['tcp/22', 'tcp/443', 'udp/53'],
    keys: [{ name: 'k', credential: new Credential(1, Buffer.alloc(32)).encode(), services: ['tcp/22', 'tcp/443'], ...extra }],
  });
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  return r.config.keys[0]!;
}

const msg = (m: Partial<SpaMessage>): SpaMessage => ({
  type: 'open', timestampMs: 0, nonce: Buffer.alloc(8), durationS: 0, address: undefined, services: [], nat: undefined, ...m,
});

test('empty request opens every key service for the source with the default duration', () => {
  const r = decideOpen(msg({}), keyWith({}), '198.18.0.2');
  assert.deepEqual(r, { ok: true, value: { family: 4, address: '198.18.0.2', durationS: 60,
    services: [{ proto: 'tcp', port: 22 }, { proto: 'tcp', port: 443 }] } });
});

test('services: only allowed ones, duplicates collapse', () => {
  const k = keyWith({});
  assert.deepEqual(decideOpen(msg({ services: [{ proto: 'udp', port: 53 }] }), k, '198.18.0.2'), { ok: false, reason: 'denied_service' });
  const r = decideOpen(msg({ services: [{ proto: 'tcp', port: 22 }, { proto: 'tcp', port: 22 }] }), k, '198.18.0.2');
  assert.ok(r.ok);
  assert.deepEqual(r.value.services, [{ proto: 'tcp', port: 22 }]);
});

test('duration above the key maximum is refused, not clamped', () => {
  const k = keyWith({ max_duration_s: 120 });
  assert.deepEqual(decideOpen(msg({ durationS: 121 }), k, '198.18.0.2'), { ok: false, reason: 'denied_duration' });
  assert.ok(decideOpen(msg({ durationS: 120 }), k, '198.18.0.2').ok);
});

test('explicit addresses: require_source_address forbids others; allowed_addresses bounds them', () => {
  const strict = keyWith({});
  assert.deepEqual(decideOpen(msg({ address: '203.0.113.9' }), strict, '198.18.0.2'), { ok: false, reason: 'denied_address' });
  assert.ok(decideOpen(msg({ address: '198.18.0.2' }), strict, '198.18.0.2').ok, 'explicit == source is fine');
  const loose = keyWith({ require_source_address: false, allowed_addresses: ['203.0.113.0/24', '2001:db8::/32'] });
  const r = decideOpen(msg({ address: '203.0.113.9' }), loose, '198.18.0.2');
  assert.ok(r.ok && r.value.address === '203.0.113.9');
  assert.deepEqual(decideOpen(msg({ address: '192.0.2.1' }), loose, '198.18.0.2'), { ok: false, reason: 'denied_address' });
  assert.deepEqual(decideOpen(msg({}), loose, '198.18.0.2'), { ok: false, reason: 'denied_address' }, 'source must be allowed too');
  const v6 = decideOpen(msg({ address: '2001:db8::5' }), loose, '198.18.0.2');
  assert.ok(v6.ok && v6.value.family === 6);
});

test('forward requests are refused by the open policy', () => {
  assert.deepEqual(decideOpen(msg({ type: 'forward', nat: { address: '198.18.0.9', port: 22 } }), keyWith({}), '198.18.0.2'),
    { ok: false, reason: 'denied_type' });
});

test('forward: only a target the stanza lists, on its external port', () => {
  const k = keyWith({ forwards: [{ to: '198.19.0.10:22', port: 2222 }, { to: '[fd50:7375::10]:8443', proto: 'tcp' }] });
  const fwd = (nat: { address: string; port: number }, services: SpaMessage['services'] = []) =>
    decideForward(msg({ type: 'forward', nat, services }), k, '198.18.0.2');
  assert.deepEqual(fwd({ address: '198.19.0.10', port: 22 }), { ok: true, value: {
    family: 4, address: '198.18.0.2', services: [{ proto: 'tcp', port: 2222 }], durationS: 60, forward: { address: '198.19.0.10', port: 22 } } });
  assert.ok(fwd({ address: '198.19.0.10', port: 22 }, [{ proto: 'tcp', port: 2222 }]).ok);
  assert.deepEqual(fwd({ address: '198.19.0.10', port: 22 }, [{ proto: 'tcp', port: 22 }]), { ok: false, reason: 'denied_forward' });
  assert.deepEqual(fwd({ address: '198.19.0.11', port: 22 }), { ok: false, reason: 'denied_forward' });
  assert.deepEqual(fwd({ address: '198.19.0.10', port: 23 }), { ok: false, reason: 'denied_forward' });
  const v6 = decideForward(msg({ type: 'forward', nat: { address: 'fd50:7375:0::10', port: 8443 } }), k, 'fd50:7374::2');
  assert.ok(v6.ok && v6.value.services[0]?.port === 8443, 'external port defaults to the target port');
  assert.deepEqual(decideOpen(msg({ type: 'forward', nat: { address: '198.19.0.10', port: 22 } }), k, '198.18.0.2'), { ok: false, reason: 'denied_type' });
});

test('ipv6_prefix widens an IPv6 grant to the source network; IPv4 is unaffected', () => {
  const k = keyWith({ ipv6_prefix: 64 });
  const r = decideOpen(msg({}), k, '2001:db8:1:2:a:b:c:d');
  assert.ok(r.ok);
  assert.equal(r.value.address, '2001:db8:1:2::');
  assert.equal(r.value.prefix, 64);
  const v4 = decideOpen(msg({}), k, '198.18.0.2');
  assert.ok(v4.ok && v4.value.prefix === undefined && v4.value.address === '198.18.0.2');
  const host = decideOpen(msg({}), keyWith({}), '2001:db8::5');
  assert.ok(host.ok && host.value.prefix === undefined);
});

test('forward: the target must be of the client\'s family', () => {
  const k = keyWith({ forwards: [{ to: '[fd50:7375::10]:22', port: 2222 }] });
  assert.deepEqual(decideForward(msg({ type: 'forward', nat: { address: 'fd50:7375::10', port: 22 } }), k, '198.18.0.2'),
    { ok: false, reason: 'denied_forward' });
  assert.ok(decideForward(msg({ type: 'forward', nat: { address: 'fd50:7375::10', port: 22 } }), k, 'fd50:7374::2').ok);
});
