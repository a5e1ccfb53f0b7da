// SPDX-License-Identifier: MIT
// The asymmetric message class: seal/open round trip, each refusal with its reason through
// decideSpa (wrong device, tampered, bad signature, replay, stale, revoked, rate limited),
// the token bucket, and the key strings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateConfig, type TechKeyConfig } from '../../../src/config/load.ts';
import { generateX25519 } from '../../../src/crypto/asym.ts';
import { decideSpa, type SpaContext } from '../../../src/pipeline/spa.ts';
import { KeyBuckets } from '../../../src/pipeline/token-bucket.ts';
import { deviceKeyFromRaw, openAsym, prefilterAsym, sealAsym, type DeviceKey } from '../../../src/spa/asym.ts';
import {
  deviceFingerprint, encodeDevicePublic, generateTechIdentity, parseDevicePublic, parseTechIdentity, parseTechPublic, TechIdentity,
} from '../../../src/spa/asym-keys.ts';
import { ASYM_HINT_OFFSET, MAX_PACKET, MIN_ASYM_PACKET } from '../../../src/spa/constants.ts';
import { buildKeyTable } from '../../../src/spa/packet.ts';
import type { SpaMessage } from '../../../src/spa/message.ts';
import { ReplayGuard } from '../../../src/spa/replay.ts';

const NOW = 1_764_150_000_000;
const SOURCE = '198.18.0.2';

function makeDevice(): DeviceKey {
  const kp = generateX25519();
  return deviceKeyFromRaw(kp.privateKey, kp.publicKey);
}

const msg = (m: Partial<SpaMessage> = {}): SpaMessage => ({
  type: 'open', timestampMs: NOW, nonce: Buffer.from('0102030405060708', 'hex'), durationS: 0, address: undefined,
  services: [{ proto: 'tcp', port: 22 }], nat: undefined, ...m,
});

function techStanza(id: TechIdentity, extra: Record<string, unknown> = {}): TechKeyConfig {
  const r = validateConfig({
    device: 'd', guarded: ['tcp/22'],
    keys: [{ name: 'tech', credential: id.publicKey().encode(), services: ['tcp/22'], ...extra }],
  });
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  assert.equal(r.config.keys.length, 0);
  return r.config.techKeys[0]!;
}

interface Rig { ctx: SpaContext; buckets: KeyBuckets; device: DeviceKey; id: TechIdentity }

function rig(opts: { burst?: number; extra?: Record<string, unknown> } = {}): Rig {
  const id = generateTechIdentity();
  const device = makeDevice();
  const buckets = new KeyBuckets({ burst: opts.burst ?? 100, perSecond: 1 });
  const tech = techStanza(id, opts.extra);
  const ctx: SpaContext = {
    keys: buildKeyTable([]), keyConfigs: new Map(), replay: new ReplayGuard({ capacity: 64, windowMs: 90_000 }),
    windowMs: 90_000, nowMs: NOW, clockTrusted: true,
    asym: { keys: new Map([[tech.keyId, tech]]), device, buckets, monoMs: 0 },
  };
  return { ctx, buckets, device, id };
}

const seal = (r: Rig, over: Partial<SpaMessage> = {}, device = r.device.publicKey, id = r.id) =>
  sealAsym({ identity: id, device, message: msg(over), padding: Buffer.alloc(3, 0xa5) });

test('round trip: a sealed packet opens on its device and grants', () => {
  const r = rig();
  const pkt = seal(r);
  assert.ok(pkt.length >= MIN_ASYM_PACKET && pkt.length <= MAX_PACKET);
  const d = decideSpa(pkt, SOURCE, r.ctx);
  assert.equal(d.kind, 'open', JSON.stringify(d));
  assert.equal(r.buckets.spent, 1, 'one public-key verification');
});

test('the same request sealed twice differs everywhere but the key id (fresh ephemeral key)', () => {
  const r = rig();
  const a = seal(r);
  const b = seal(r);
  assert.deepEqual(a.subarray(0, 4), b.subarray(0, 4));
  assert.notDeepEqual(a.subarray(4, 36), b.subarray(4, 36));
  assert.notDeepEqual(a.subarray(36), b.subarray(36));
});

test('ephemeral top bit is random on the wire and does not matter to the receiver', () => {
  const r = rig();
  const tops = new Set<number>();
  for (let i = 0; i < 40; i++) {
    const pkt = seal(r, { nonce: Buffer.alloc(8, i) });
    tops.add((pkt[35] ?? 0) >> 7);
    assert.equal(decideSpa(pkt, SOURCE, r.ctx).kind, 'open');
  }
  assert.deepEqual([...tops].sort(), [0, 1]);
});

test('made for device A, sent to device B: wrong_device, with no public-key work', () => {
  const r = rig();
  const other = makeDevice();
  const d = decideSpa(seal(r, {}, other.publicKey), SOURCE, r.ctx);
  assert.deepEqual([d.kind, d.kind === 'drop' && d.reason], ['drop', 'wrong_device']);
  assert.equal(r.buckets.spent, 0);
});

test('a flipped ciphertext bit is bad_auth; a flipped hint or E bit is wrong_device', () => {
  const r = rig();
  const pkt = seal(r);
  const flip = (i: number) => { const p = Buffer.from(pkt); p[i]! ^= 1; return p; };
  const reason = (p: Buffer) => { const d = decideSpa(p, SOURCE, r.ctx); return d.kind === 'drop' ? d.reason : d.kind; };
  assert.equal(reason(flip(pkt.length - 1)), 'bad_auth');
  assert.equal(reason(flip(ASYM_HINT_OFFSET)), 'wrong_device');
  // E feeds the hint too, so only a receiver that recomputed the hint for the new E gets to the crypto.
  assert.equal(reason(flip(10)), 'wrong_device');
});

test('signed by another technician key under this key id: bad_signature', () => {
  const r = rig();
  const forger = new TechIdentity(r.id.keyId, generateTechIdentity().publicKey().publicKey.subarray(0, 32));
  const d = decideSpa(seal(r, {}, r.device.publicKey, forger), SOURCE, r.ctx);
  assert.deepEqual(d.kind === 'drop' && d.reason, 'bad_signature');
});

test('replay (peeked before the bucket) and stale', () => {
  const r = rig();
  const pkt = seal(r);
  assert.equal(decideSpa(pkt, SOURCE, r.ctx).kind, 'open');
  const again = decideSpa(pkt, SOURCE, r.ctx);
  assert.deepEqual(again.kind === 'drop' && again.reason, 'replay');
  assert.equal(r.buckets.spent, 1, 'the replay cost no public-key work');
  const old = decideSpa(seal(r, { timestampMs: NOW - 10 * 60_000 }), SOURCE, r.ctx);
  assert.deepEqual(old.kind === 'drop' && old.reason, 'stale');
});

test('revoked technician key: revoked_key only after authentication; its replay is replay', () => {
  const r = rig({ extra: { revoked: true } });
  const packet = seal(r);
  const d = decideSpa(packet, SOURCE, r.ctx);
  assert.deepEqual(d.kind === 'drop' && d.reason, 'revoked_key');
  // The signature was verified first (one token spent), so a spoofer cannot cause this
  // reason; the packet entered the ring, so a replay of it is a replay, not revoked_key.
  assert.equal(r.buckets.spent, 1);
  const again = decideSpa(packet, SOURCE, r.ctx);
  assert.equal(again.kind === 'drop' && again.reason, 'replay');
});

test('symmetric key with revoked: true is refused as revoked_key', async () => {
  const { Credential } = await import('../../../src/spa/credential.ts');
  const { prepareKey } = await import('../../../src/spa/packet.ts');
  const { buildPacket } = await import('../../../src/cli/spa-client.ts');
  const cred = new Credential(7, Buffer.alloc(32, 1));
  const v = validateConfig({ device: 'd', guarded: ['tcp/22'], keys: [{ name: 's', credential: cred.encode(), services: ['tcp/22'], revoked: true }] });
  assert.ok(v.ok);
  const key = v.config.keys[0]!;
  const ctx: SpaContext = {
    keys: buildKeyTable([prepareKey('s', cred)]), keyConfigs: new Map([[7, key]]), replay: new ReplayGuard(),
    windowMs: 90_000, nowMs: NOW, clockTrusted: true,
  };
  const pkt = buildPacket({ credential: cred, type: 'open', services: [], durationS: 0, allowAddress: undefined, nowMs: NOW });
  const d = decideSpa(pkt, SOURCE, ctx);
  assert.deepEqual(d.kind === 'drop' && d.reason, 'revoked_key');
});

test('token bucket: garbage with a known key id and a valid hint costs at most burst + rate public-key operations', () => {
  const r = rig({ burst: 5 });
  const good = seal(r);
  let limited = 0;
  for (let i = 0; i < 200; i++) {
    const junk = Buffer.from(good);
    junk.fill(i, ASYM_HINT_OFFSET + 4); // keep key id, E and hint (an attacker knows the device key): garbage after
    const d = decideSpa(junk, SOURCE, { ...r.ctx, asym: { ...r.ctx.asym!, monoMs: i * 10 } });
    if (d.kind === 'drop' && d.reason === 'rate_limited') limited++;
  }
  // 2 s at 1 token/s on top of a burst of 5.
  assert.ok(r.buckets.spent <= 5 + 2, `spent ${r.buckets.spent}`);
  assert.equal(limited, 200 - r.buckets.spent);
});

test('KeyBuckets: refill, cap, per key, retain', () => {
  const b = new KeyBuckets({ burst: 2, perSecond: 2 });
  assert.deepEqual([b.take(1, 0), b.take(1, 0), b.take(1, 0)], [true, true, false]);
  assert.equal(b.take(2, 0), true, 'another key has its own bucket');
  assert.equal(b.take(1, 499), false);
  assert.equal(b.take(1, 500), true);
  assert.deepEqual([b.take(1, 100_000), b.take(1, 100_000), b.take(1, 100_000)], [true, true, false], 'capped at burst');
  b.retain(new Set([2]));
  assert.equal(b.size, 1);
});

test('prefilter: lengths', () => {
  const r = rig();
  assert.deepEqual(prefilterAsym(Buffer.alloc(MIN_ASYM_PACKET - 1), r.device), { ok: false, reason: 'too_short' });
  assert.deepEqual(prefilterAsym(Buffer.alloc(MAX_PACKET + 1), r.device), { ok: false, reason: 'too_long' });
  const env = prefilterAsym(seal(r), r.device);
  assert.ok(env.ok);
  const opened = openAsym(env.value, techStanza(r.id).techKey, r.device);
  assert.ok(opened.ok);
  assert.deepEqual(opened.value.services, [{ proto: 'tcp', port: 22 }]);
});

test('key strings round-trip; the identity never prints its seed; config refuses an identity', () => {
  const id = generateTechIdentity();
  const pub = parseTechPublic(id.publicKey().encode());
  assert.ok(pub.ok);
  assert.equal(pub.value.keyId, id.keyId);
  const back = parseTechIdentity(id.encodeSecret());
  assert.ok(back.ok);
  assert.deepEqual(back.value.publicKey().publicKey, id.publicKey().publicKey);
  assert.doesNotMatch(`${id} ${JSON.stringify({ id })}`, /postern-id1/);
  const dev = generateX25519().publicKey;
  const parsed = parseDevicePublic(encodeDevicePublic(dev));
  assert.ok(parsed.ok);
  assert.deepEqual(parsed.value, dev);
  assert.match(deviceFingerprint(dev), /^[0-9a-f]{4}(-[0-9a-f]{4}){4}$/);
  assert.deepEqual(parseTechPublic('postern-pub1:abc'), { ok: false, reason: 'bad_length' });
  const v = validateConfig({ device: 'd', guarded: ['tcp/22'], keys: [{ name: 't', credential: id.encodeSecret(), services: ['tcp/22'] }] });
  assert.ok(!v.ok);
  assert.match(v.errors.join('\n'), /private identity/);
  assert.doesNotMatch(v.errors.join('\n'), /postern-id1:/);
});

test('config: a symmetric and a technician key may not share a key id', async () => {
  const { Credential } = await import('../../../src/spa/credential.ts');
  const id = generateTechIdentity();
  const v = validateConfig({ device: 'd', guarded: ['tcp/22'], keys: [
    { name: 't', credential: id.publicKey().encode(), services: ['tcp/22'] },
    { name: 's', credential: new Credential(id.keyId, Buffer.alloc(32)).encode(), services: ['tcp/22'] },
  ] });
  assert.ok(!v.ok);
  assert.match(v.errors.join('\n'), /share key id/);
});

test('config: a sealed identity in a stanza is refused and never quoted', () => {
  const sealedLike = 'postern-idenc1:' + 'A'.repeat(107);
  const v = validateConfig({ device: 'd', guarded: ['tcp/22'], keys: [{ name: 't', credential: sealedLike, services: ['tcp/22'] }], typo: sealedLike });
  assert.ok(!v.ok);
  assert.doesNotMatch(v.errors.join('\n'), /postern-idenc1:/);
  const cross = validateConfig({ device: 'd', guarded: ['tcp/22'], keys: [{ name: 't', credential: sealedLike, services: ['tcp/22'] }] });
  assert.ok(!cross.ok);
  assert.match(cross.errors.join('\n'), /private identity/);
  assert.doesNotMatch(cross.errors.join('\n'), /postern-idenc1:/);
});
