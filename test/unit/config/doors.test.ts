// SPDX-License-Identifier: MIT
// Door config (src/config/doors.ts, docs/config.md "Knock doors"): defaults, every error
// listed with its path, the door key never quoted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { validateConfig } from '../../../src/config/load.ts';
import { formatDoorKey } from '../../../src/knock/totp.ts';
import { Credential } from '../../../src/spa/credential.ts';

const base = {
  device: 'edge-1', guarded: ['tcp/22'],
  keys: [{ name: 'alice', credential: new Credential(1, Buffer.alloc(32, 1)).encode(), services: ['tcp/22'] }],
};
const KEY = formatDoorKey(Buffer.alloc(32, 9));

test('doors and knock get documented defaults; sequences and flags are parsed', () => {
  const r = validateConfig({ ...base, doors: [
    { name: 'ssh', sequence: ['7000', '8000:udp'], tcpflags: ['syn', '!ack'], services: ['tcp/22'], target: '198.18.0.1' },
    { name: 'otp', totp: { key: KEY, port_min: 20000, port_max: 40000 }, start: ['/bin/true', '%IP%'] },
  ] });
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  assert.deepEqual(r.config.raw.knock, { max_sources: 4096, guard_width: 2, penalty_s: 10 });
  const [ssh, otp] = r.config.doors;
  assert.deepEqual(ssh?.source, { kind: 'static', sequence: [{ proto: 'tcp', port: 7000 }, { proto: 'udp', port: 8000 }] });
  assert.deepEqual(ssh?.tcpFlags, { set: 0x02, clear: 0x10 });
  assert.equal(ssh?.seqTimeoutS, 25);
  assert.equal(ssh?.durationS, 60);
  assert.equal(otp?.source.kind, 'totp');
  assert.equal(otp?.cmdTimeoutS, 10);
  assert.equal(validateConfig(base).ok, true, 'configs without doors stay valid');
});

test('door errors: each listed with its path; the door key never quoted', () => {
  const secret = `${KEY.slice(0, -3)}!!!`;
  const r = validateConfig({ ...base, spa: { port: 8000 }, doors: [
    { name: 'a', sequence: ['7000'], one_time_sequences: '/x', services: ['tcp/22'] },
    { name: 'a', sequence: ['7000'] },
    { name: 'c', sequence: ['70000'], services: ['tcp/443'], stop: ['/bin/x'] },
    { name: 'd', sequence: ['7990', '8000:udp'], target: 'fd00::1', tcpflags: ['syn', '!syn'], start: ['%IP%'], services: ['tcp/22'] },
    { name: 'e', totp: { key: secret, port_min: 1, port_max: 2 }, services: ['tcp/22'] },
    { name: 'f', totp: { key: KEY, port_min: 7000, port_max: 7100 }, services: ['tcp/22'] },
  ] });
  assert.ok(!r.ok);
  const text = r.errors.join('\n');
  // Schema errors come first (and alone): the range is out of bounds.
  assert.ok(text.includes('/doors/4/totp/port_min'), text);
  assert.ok(!text.includes(secret) && !text.includes('!!!'), 'door key quoted');
  const r1 = validateConfig({ ...base, doors: [
    { name: 'a', sequence: ['7000'], one_time_sequences: '/x', services: ['tcp/22'] },
    { name: 'a', sequence: ['7000'] },
    { name: 'd', sequence: ['70000', '8000:udp'], target: 'fd00::1', tcpflags: ['syn', '!syn'], start: ['%IP%'], services: ['tcp/22'] },
  ] });
  assert.ok(!r1.ok);
  const t1 = r1.errors.join('\n');
  for (const needle of ['/doors/0: needs exactly one of', '/doors/1: needs an action', 'duplicate door name "a"',
    '/doors/2/sequence', '/doors/2/target', '/doors/2/tcpflags', '/doors/2/start/0']) {
    assert.ok(t1.includes(needle), `missing ${needle}:\n${t1}`);
  }
  const r2 = validateConfig({ ...base, spa: { port: 8000 }, doors: [
    { name: 'c', sequence: ['7000'], services: ['tcp/443'], stop: ['/bin/x'] },
    { name: 'd', sequence: ['7990', '8000:udp', '22'], target: 'fd00::1', start: ['/bin/x'] },
    { name: 'e', totp: { key: secret, port_min: 20000, port_max: 40000 }, services: ['tcp/22'] },
    { name: 'f', totp: { key: KEY, port_min: 7000, port_max: 7100 }, services: ['tcp/22'] },
  ] });
  assert.ok(!r2.ok);
  const t2 = r2.errors.join('\n');
  for (const needle of ['/doors/0/services/0: tcp/443 is not a guarded service', '/doors/0/stop: only with start', '/doors/1/target',
    'knock or guard port udp/8000 is the SPA port', 'knock or guard port tcp/22 is a guarded service', '/doors/2/totp/key', '/doors/3/totp: range 7000-7100 holds tcp/7000']) {
    assert.ok(t2.includes(needle), `missing ${needle}:\n${t2}`);
  }
  assert.ok(!t2.includes(secret), 'door key quoted');
  const fwd = validateConfig({ ...base, keys: [{ ...base.keys[0], forwards: [{ to: '192.168.1.20:22', port: 2222 }] }],
    doors: [{ name: 'k', sequence: ['2220'], services: ['tcp/22'] }] });
  assert.ok(!fwd.ok && fwd.errors.some((e) => e.includes('tcp/2222 is a forwarding external port')), JSON.stringify(fwd));
});

test('docs/config.md documents every door and knock key', () => {
  const doc = readFileSync(new URL('../../../docs/config.md', import.meta.url), 'utf8');
  for (const k of ['knock.max_sources', 'knock.guard_width', 'knock.penalty_s', 'doors[].sequence', 'doors[].one_time_sequences', 'doors[].totp',
    'doors[].totp.key', 'doors[].totp.step_s', 'doors[].totp.length', 'doors[].totp.proto', 'doors[].seq_timeout_s', 'doors[].tcpflags', 'doors[].target',
    'doors[].services', 'doors[].duration_s', 'doors[].allowed_addresses', 'doors[].start', 'doors[].stop', 'doors[].cmd_timeout_s', 'doors[].totp.port_min', 'port_max']) {
    assert.ok(doc.includes(`\`${k}\``), `docs/config.md documents ${k}`);
  }
});
