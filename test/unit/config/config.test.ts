// SPDX-License-Identifier: MIT
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { validateConfig } from '../../../src/config/load.ts';
import { DEFAULT_SPA_PORT } from '../../../src/config/schema.ts';
import { Credential } from '../../../src/spa/credential.ts';

const cred = (n: number) => new Credential(n, Buffer.alloc(32, n)).encode();

const minimal = {
  device: 'edge-1',
  guarded: ['tcp/22'],
  keys: [{ name: 'alice', credential: cred(1), services: ['tcp/22'] }],
};

test('a minimal config gets the documented defaults', () => {
  const r = validateConfig(minimal);
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  const c = r.config;
  assert.equal(c.raw.spa.port, DEFAULT_SPA_PORT);
  assert.equal(c.raw.spa.window_s, 90);
  assert.equal(c.raw.spa.clock, 'auto');
  assert.equal(c.raw.spa.replay_ring, 4096);
  assert.equal(c.raw.firewall.backend, 'auto');
  const k = c.keys[0]!;
  assert.equal(k.defaultDurationS, 60);
  assert.equal(k.maxDurationS, 600);
  assert.equal(k.requireSourceAddress, true);
  assert.deepEqual(k.services, [{ proto: 'tcp', port: 22 }]);
  assert.ok(Object.isFrozen(c));
});

test('every error is listed, with path and value, and secrets are never quoted', () => {
  const bad = {
    device: 'bad name!',
    guarded: ['tcp/22', 'tcp/99999', 'icmp/1'],
    spa: { port: 70000, window_s: 1, clock: 'sometimes' },
    keys: [
      { name: 'a', credential: 'postern1:short-secret-material', services: ['tcp/443'], default_duration_s: 900, max_duration_s: 60 },
      { name: 'a', credential: cred(2), services: ['tcp/22'], allowed_addresses: ['10.0.0.0/33'] },
      { name: 'b', credential: cred(2), services: ['tcp/22'] },
    ],
    firewall: { backend: 'pf' },
    surprise: true,
  };
  const r = validateConfig(bad);
  assert.ok(!r.ok);
  const text = r.errors.join('\n');
  for (const path of ['/device', '/guarded/2', '/spa/port', '/spa/window_s', '/spa/clock', '/firewall/backend']) {
    assert.ok(r.errors.some((e) => e.startsWith(path)), `missing error for ${path}:\n${text}`);
  }
  assert.ok(r.errors.some((e) => e.includes('surprise')), text);
  assert.ok(r.errors.length >= 7, text);
  assert.ok(!text.includes('short-secret-material'), 'a credential is never echoed');
});

test('cross-field errors are all reported together', () => {
  const r = validateConfig({
    device: 'edge-1', guarded: ['tcp/22', 'tcp/99999', `udp/${DEFAULT_SPA_PORT}`],
    keys: [
      { name: 'a', credential: 'postern1:short-secret-material', services: ['tcp/443'], default_duration_s: 900, max_duration_s: 60 },
      { name: 'a', credential: cred(2), services: ['tcp/22'], allowed_addresses: ['10.0.0.0/33'] },
      { name: 'b', credential: cred(2), services: ['tcp/22'] },
    ],
  });
  assert.ok(!r.ok);
  const text = r.errors.join('\n');
  for (const needle of ['/guarded/1', '/spa/port', '/keys/0/credential', '/keys/0/services/0: tcp/443 is not a guarded service',
    '/keys/0/default_duration_s', '/keys/1/allowed_addresses/0', 'duplicate key name "a"', 'share key id 00000002']) {
    assert.ok(text.includes(needle), `missing ${needle}:\n${text}`);
  }
  assert.ok(!text.includes('short-secret-material'));
});

test('docs/config.md: the complete example validates', () => {
  const doc = readFileSync(new URL('../../../docs/config.md', import.meta.url), 'utf8');
  const example = /```json\n([\s\S]*?)```/.exec(doc)?.[1];
  assert.ok(example, 'docs/config.md has a json example');
  const r = validateConfig(JSON.parse(example));
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  // Every top-level and section key the schema knows is documented.
  for (const k of ['device', 'log_level', 'guarded', 'spa', 'keys', 'firewall', 'window_s', 'clock', 'replay_ring',
    'require_source_address', 'allowed_addresses', 'max_duration_s', 'default_duration_s', 'keep_guarding_on_exit', 'reconcile_interval_s', 'database', 'ipv6_prefix', 'forwards', 'enable_ip_forward', 'nft', 'max_age_s', 'stanzas', 'open_ports', 'restrict_ports', 'hmac_digest_type', 'fw_access_timeout_s', 'max_fw_timeout_s', 'require_username', 'local_nat', 'asym_burst', 'asym_rate', 'revoked', 'device_key']) {
    assert.match(doc, new RegExp(`[\`.]${k}[\`.\\[]`), `docs/config.md documents ${k}`);
  }
});

test('forwards: targets parsed, bad targets and guarded external ports refused', () => {
  const ok = validateConfig({ ...minimal, keys: [{ ...minimal.keys[0], forwards: [{ to: '198.19.0.10:22', port: 2222 }, { to: '[fd50::1]:80', proto: 'udp' }] }] });
  assert.ok(ok.ok, JSON.stringify(!ok.ok && ok.errors));
  assert.deepEqual(ok.config.keys[0]!.forwards, [
    { proto: 'tcp', externalPort: 2222, target: { address: '198.19.0.10', port: 22 } },
    { proto: 'udp', externalPort: 80, target: { address: 'fd50::1', port: 80 } },
  ]);
  const bad = validateConfig({ ...minimal, keys: [{ ...minimal.keys[0], forwards: [{ to: 'nas.lan:22' }, { to: '198.19.0.10:22' }] }] });
  assert.ok(!bad.ok);
  assert.ok(bad.errors.some((e) => e.startsWith('/keys/0/forwards/0/to')), bad.errors.join('\n'));
  assert.ok(bad.errors.some((e) => e.includes('/keys/0/forwards/1: external port tcp/22 is a guarded local service')), bad.errors.join('\n'));
});

test('fwknop stanzas: HMAC required, keys checked, never quoted, ports guarded', () => {
  const key = Buffer.alloc(32, 1).toString('base64');
  const hmac = Buffer.alloc(64, 2).toString('base64');
  const base = { name: 's1', key_base64: key, hmac_key_base64: hmac, open_ports: ['tcp/22'] };
  const good = validateConfig({ ...minimal, fwknop: { stanzas: [base] } });
  assert.ok(good.ok, JSON.stringify(!good.ok && good.errors));
  assert.equal(good.config.fwknop[0]!.key.length, 32);
  assert.equal(good.config.fwknop[0]!.sources, undefined, 'ANY');
  const bad = validateConfig({ ...minimal, fwknop: { port: DEFAULT_SPA_PORT, stanzas: [
    { name: 'nohmac', key_base64: key, open_ports: ['tcp/22'] },
    { name: 'same', key: 'secret-text-key', hmac_key: 'secret-text-key', open_ports: ['tcp/443'] },
    { name: 'long', key_base64: Buffer.alloc(40).toString('base64'), hmac_key_base64: hmac, open_ports: ['tcp/22'], source: ['10.0.0.1/8'] },
  ] } });
  assert.ok(!bad.ok);
  const text = bad.errors.join('\n');
  for (const needle of ['/fwknop/port: the same as spa.port', '/fwknop/stanzas/0: needs hmac_key', '/fwknop/stanzas/1: the HMAC key must differ',
    '/fwknop/stanzas/1/open_ports/0: tcp/443 is not a guarded service', '/fwknop/stanzas/2: the key must be 1-32 bytes', '/fwknop/stanzas/2/source/0']) {
    assert.ok(text.includes(needle), `missing ${needle}:\n${text}`);
  }
  assert.ok(!text.includes('secret-text-key') && !text.includes(key), 'keys are never quoted');
});
