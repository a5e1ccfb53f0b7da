// SPDX-License-Identifier: MIT
// docs/protocol.md "Asymmetric message class": its vector is what the code produces, step by step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { hkdfSha256, rawPublicKey, x25519, x25519PrivateKey, x25519PublicKey } from '../../../src/crypto/asym.ts';
import { AesSiv } from '../../../src/crypto/siv.ts';
import { deviceHint, deviceKeyFromRaw, openAsym, prefilterAsym, sealAsym } from '../../../src/spa/asym.ts';
import { parseTechIdentity, parseTechPublic } from '../../../src/spa/asym-keys.ts';
import { encodeMessage } from '../../../src/spa/message.ts';

const doc = readFileSync(new URL('../../../docs/protocol.md', import.meta.url), 'utf8');
const block = /```asym-vector\n([\s\S]*?)```/.exec(doc)?.[1];
const v = JSON.parse(block ?? '{}') as Record<string, string | number>;
const hex = (k: string) => Buffer.from(String(v[k]), 'hex');

const message = {
  type: 'open' as const, timestampMs: 1764150000000, nonce: Buffer.from('0001020304050607', 'hex'), durationS: 0,
  address: undefined, services: [{ proto: 'tcp' as const, port: 22 }], nat: undefined,
};

test('the asymmetric vector: keys, shared secret, K, hint, signature and packet', () => {
  assert.ok(block, 'docs/protocol.md has an asym-vector block');
  const id = parseTechIdentity(String(v['identity']));
  assert.ok(id.ok);
  assert.equal(id.value.publicKey().encode(), v['public']);
  assert.ok(parseTechPublic(String(v['public'])).ok);
  const dev = rawPublicKey(x25519PrivateKey(hex('device_private')));
  assert.deepEqual(dev, hex('device_public'));
  const pkt = sealAsym({
    identity: id.value, device: dev, message, padding: Buffer.from('a5a5a5', 'hex'),
    ephemeral: { privateKey: hex('ephemeral_private'), topBit: v['ephemeral_top_bit'] === 1 ? 1 : 0 },
  });
  assert.equal(pkt.toString('hex'), v['packet']);
  const e = pkt.subarray(4, 36);
  assert.equal((e[31] ?? 0) >> 7, 1, 'bit 255 of E is set on the wire');
  const shared = x25519(x25519PrivateKey(hex('device_private')), x25519PublicKey(e)!);
  assert.equal(shared?.toString('hex'), v['shared']);
  const k = hkdfSha256(shared!, Buffer.concat([e, dev]), Buffer.concat([Buffer.from('postern asym v1 key'), pkt.subarray(0, 4)]), 32);
  assert.equal(k.toString('hex'), v['K']);
  assert.equal(deviceHint(dev, pkt.subarray(0, 4), e).toString('hex'), v['hint']);
  const p = new AesSiv(k).open([pkt.subarray(0, 40)], pkt.subarray(40, 56), pkt.subarray(56));
  assert.ok(p);
  assert.equal(p.subarray(0, 64).toString('hex'), v['signature']);
  assert.equal(p.subarray(64).toString('hex'), v['plaintext']);
  assert.equal(encodeMessage(message, Buffer.from('a5a5a5', 'hex')).toString('hex'), v['plaintext']);
});

test('the documented packet opens on the documented device', () => {
  const device = deviceKeyFromRaw(hex('device_private'), hex('device_public'));
  const tech = parseTechPublic(String(v['public']));
  assert.ok(tech.ok);
  const env = prefilterAsym(hex('packet'), device);
  assert.ok(env.ok);
  const opened = openAsym(env.value, tech.value, device);
  assert.ok(opened.ok);
  assert.deepEqual(opened.value.services, message.services);
});
