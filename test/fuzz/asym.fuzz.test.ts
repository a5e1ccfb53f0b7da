// SPDX-License-Identifier: MIT
// fast-check over the asymmetric class's receive path (STYLE.md principle 12b): random
// datagrams and mutations of a valid packet go through decideSpa with a technician key.
// Invariants: nothing throws; only the untouched packet opens; a mutation in the header
// (key id, E, hint) never reaches public-key work unless it kept the hint valid; every
// refusal is one of the reasons the class documents.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { validateConfig } from '../../src/config/load.ts';
import { generateX25519 } from '../../src/crypto/asym.ts';
import { decideSpa, type SpaContext } from '../../src/pipeline/spa.ts';
import { KeyBuckets } from '../../src/pipeline/token-bucket.ts';
import { deviceKeyFromRaw, sealAsym } from '../../src/spa/asym.ts';
import { generateTechIdentity, parseDevicePublic, parseTechIdentity, parseTechPublic } from '../../src/spa/asym-keys.ts';
import { ASYM_TAG_OFFSET, MAX_PACKET } from '../../src/spa/constants.ts';
import { buildKeyTable } from '../../src/spa/packet.ts';
import { ReplayGuard } from '../../src/spa/replay.ts';
import { fuzzRuns } from './runs.ts';

const NOW = 1_764_150_000_000;
const ALLOWED = new Set(['too_short', 'too_long', 'unknown_key', 'wrong_device', 'bad_auth', 'bad_signature', 'bad_payload', 'rate_limited', 'replay', 'stale']);

function setup() {
  const id = generateTechIdentity();
  const kp = generateX25519();
  const device = deviceKeyFromRaw(kp.privateKey, kp.publicKey);
  const v = validateConfig({ device: 'd', guarded: ['tcp/22'], keys: [{ name: 't', credential: id.publicKey().encode(), services: ['tcp/22'] }] });
  assert.ok(v.ok);
  const tech = v.config.techKeys[0]!;
  const buckets = new KeyBuckets({ burst: 1_000_000, perSecond: 1 });
  const ctx = (): SpaContext => ({
    keys: buildKeyTable([]), keyConfigs: new Map(), replay: new ReplayGuard({ capacity: 64, windowMs: 90_000 }), windowMs: 90_000,
    nowMs: NOW, clockTrusted: true, asym: { keys: new Map([[tech.keyId, tech]]), device, buckets, monoMs: 0 },
  });
  const good = sealAsym({
    identity: id, device: kp.publicKey, padding: Buffer.alloc(5, 7),
    message: { type: 'open', timestampMs: NOW, nonce: Buffer.alloc(8, 1), durationS: 0, address: undefined, services: [], nat: undefined },
  });
  return { ctx, good, buckets, keyIdBytes: good.subarray(0, 4) };
}

test('random datagrams, some with a known key id: never throw, never open, documented reasons only', () => {
  const s = setup();
  fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: MAX_PACKET + 8 }), fc.boolean(), (bytes, known) => {
    const buf = Buffer.from(bytes);
    if (known && buf.length >= 4) s.keyIdBytes.copy(buf, 0);
    const d = decideSpa(buf, '198.18.0.2', s.ctx());
    assert.equal(d.kind, 'drop');
    assert.ok(d.kind === 'drop' && ALLOWED.has(d.reason), JSON.stringify(d));
  }), { numRuns: fuzzRuns(3000) });
});

test('mutations of a valid packet: only the original opens; header mutations stop before public-key work', () => {
  const s = setup();
  assert.equal(decideSpa(s.good, '198.18.0.2', s.ctx()).kind, 'open');
  fc.assert(fc.property(
    fc.array(fc.record({ at: fc.nat({ max: s.good.length - 1 }), xor: fc.integer({ min: 1, max: 255 }) }), { minLength: 1, maxLength: 4 }),
    fc.nat({ max: 3 }),
    (flips, cut) => {
      const buf = Buffer.from(s.good.subarray(0, s.good.length - cut));
      for (const f of flips) if (f.at < buf.length) buf[f.at]! ^= f.xor;
      if (buf.equals(s.good)) return;
      const before = s.buckets.spent;
      const d = decideSpa(buf, '198.18.0.2', s.ctx());
      assert.equal(d.kind, 'drop', 'a changed packet never opens');
      assert.ok(d.kind === 'drop' && ALLOWED.has(d.reason), JSON.stringify(d));
      const headerTouched = flips.some((f) => f.at >= 4 && f.at < ASYM_TAG_OFFSET);
      if (headerTouched && d.kind === 'drop' && d.reason === 'wrong_device') assert.equal(s.buckets.spent, before, 'no public-key work');
    },
  ), { numRuns: fuzzRuns(1500) });
});

test('key strings: arbitrary text never throws; prefixed base64url of any bytes parses or fails with a named reason', () => {
  const parsers = [parseTechPublic, parseTechIdentity, parseDevicePublic];
  const prefixes = ['postern-pub1:', 'postern-id1:', 'postern-dev1:', ''];
  fc.assert(fc.property(fc.string({ maxLength: 80 }), fc.uint8Array({ maxLength: 40 }), fc.constantFrom(...prefixes), (text, bytes, prefix) => {
    for (const parse of parsers) {
      for (const input of [text, prefix + Buffer.from(bytes).toString('base64url')]) {
        const r = parse(input);
        if (!r.ok) assert.ok(['missing_prefix', 'bad_characters', 'bad_length', 'bad_key'].includes(r.reason));
      }
    }
  }), { numRuns: fuzzRuns(2000) });
});
