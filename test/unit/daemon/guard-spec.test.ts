// SPDX-License-Identifier: MIT
// Which frames go to the knock engine (src/daemon/guard-spec.ts): never the host's own
// loopback traffic, which the raw TCP socket also sees (a board talking to its own MQTT
// broker must not produce knock_wrong from 127.0.0.1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateConfig } from '../../../src/config/load.ts';
import { guardSpec, isKnockFrame, isLoopbackSource, spaPrefilter } from '../../../src/daemon/guard-spec.ts';
import { MAX_PACKET, MIN_ASYM_PACKET, MIN_PACKET } from '../../../src/spa/constants.ts';
import { generateTechIdentity } from '../../../src/spa/asym-keys.ts';
import { Credential } from '../../../src/spa/credential.ts';
import type { Frame } from '../../../src/wire/frame.ts';

const loaded = validateConfig({
  device: 'edge-1', guarded: ['tcp/22'],
  keys: [{ name: 'alice', credential: new Credential(1, Buffer.alloc(32, 1)).encode(), services: ['tcp/22'] }],
  doors: [{ name: 'ssh', sequence: ['7000', '8000:udp'], services: ['tcp/22'] }],
});
assert.ok(loaded.ok);
const config = loaded.config;

function frame(proto: Frame['proto'], src: string, dstPort: number): Frame {
  const family = src.includes(':') ? 6 : 4;
  return { family, proto, src, dst: '', srcPort: 40000, dstPort, payload: Buffer.alloc(0), tcpFlags: proto === 'tcp' ? 0x02 : 0 };
}

test('loopback sources are never knocks, on either family', () => {
  for (const src of ['127.0.0.1', '127.1.2.3', '::1']) {
    assert.equal(isLoopbackSource(src), true, src);
    assert.equal(isKnockFrame(config, frame('tcp', src, 7000)), false, src);
    assert.equal(isKnockFrame(config, frame('udp', src, 8000)), false, src);
  }
});

test('other sources: TCP and non-SPA UDP go to the knock engine, the SPA port does not', () => {
  for (const src of ['198.18.0.2', 'fd50:7374::2', '12.7.0.1']) {
    assert.equal(isLoopbackSource(src), false, src);
    assert.equal(isKnockFrame(config, frame('tcp', src, 7000)), true, src);
    assert.equal(isKnockFrame(config, frame('udp', src, 8000)), true, src);
    assert.equal(isKnockFrame(config, frame('udp', src, config.raw.spa.port)), false, src);
  }
});

test('the kernel prefilter: native key ids (revoked ones too) at native lengths, technician ids at asym lengths, fwknop by length', () => {
  const tech = generateTechIdentity();
  const full = validateConfig({
    device: 'edge-1', guarded: ['tcp/22'],
    keys: [
      { name: 'alice', credential: new Credential(1, Buffer.alloc(32, 1)).encode(), services: ['tcp/22'] },
      { name: 'old', credential: new Credential(0xfffffffe, Buffer.alloc(32, 2)).encode(), services: ['tcp/22'], revoked: true },
      { name: 'tech', credential: tech.publicKey().encode(), services: ['tcp/22'] },
    ],
    fwknop: { stanzas: [{ name: 'fw', source: ['ANY'], key: 'secret', hmac_key: 'hmac-secret', open_ports: ['tcp/22'] }] },
  });
  assert.ok(full.ok, JSON.stringify(!full.ok && full.errors));
  const spec = guardSpec(full.config);
  assert.deepEqual(spec.spaPrefilter, [
    { port: 62442, shapes: [{ minLen: MIN_PACKET, maxLen: MAX_PACKET, keyIds: [1, 0xfffffffe] }, { minLen: MIN_ASYM_PACKET, maxLen: MAX_PACKET, keyIds: [tech.keyId] }] },
    { port: 62201, shapes: [{ minLen: 140, maxLen: 1500 }] },
  ]);
  assert.deepEqual(spaPrefilter(config), [{ port: 62442, shapes: [{ minLen: MIN_PACKET, maxLen: MAX_PACKET, keyIds: [1] }] }]);
  const off = validateConfig({ ...config.raw, spa: { ...config.raw.spa, prefilter: false } });
  assert.ok(off.ok);
  assert.equal(spaPrefilter(off.config), undefined);
  assert.equal('spaPrefilter' in guardSpec(off.config), false);
});
