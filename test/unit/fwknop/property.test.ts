// SPDX-License-Identifier: MIT
// Round trip for every message type (1-6), HMAC type and digest type with random users,
// ports, allow addresses, NAT targets and timeouts; the independent oracle opens every
// encoder output; any single-character change to a wire string is rejected.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { HMAC_TYPES, MAX_COMPAT_WIRE_LEN } from '../../../src/fwknop/constants.ts';
import { decodeFwknop } from '../../../src/fwknop/codec.ts';
import { buildFwknopPlaintext, encodeFwknop, sealFwknopPlaintext, type FwknopRequest } from '../../../src/fwknop/encode.ts';
import type { FwknopAccessType } from '../../../src/fwknop/fields.ts';
import { prepareFwknopKey } from '../../../src/fwknop/keys.ts';
import { oracleOpen } from './oracle.ts';

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.'));
const port = fc.integer({ min: 1, max: 65535 });
const userChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-@#$%&!~ '.split(''));
const username = fc.array(userChar, { minLength: 1, maxLength: 16 }).map((a) => a.join(''));
const hostname = fc.array(fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789.-_'.split('')), { minLength: 1, maxLength: 24 }).map((a) => a.join(''));
const digestType = fc.constantFrom(...HMAC_TYPES);

const request: fc.Arbitrary<FwknopRequest> = fc.record({
  type: fc.constantFrom<FwknopAccessType>(1, 2, 3, 4, 5, 6),
  username,
  timestampS: fc.integer({ min: 0, max: 999_999_999_999 }),
  allowIp: fc.oneof(ipv4, fc.constant('0.0.0.0')),
  access: fc.array(fc.record({ proto: fc.constantFrom('tcp' as const, 'udp' as const), port }), { minLength: 1, maxLength: 4 }),
  nat: fc.record({ host: fc.oneof(ipv4, hostname), port }),
  clientTimeoutS: fc.integer({ min: 0, max: 65536 }),
  digestType,
}).map(({ nat, clientTimeoutS, ...r }) => JSON.parse(JSON.stringify({ // plain prototypes for deepEqual
  ...r,
  ...([2, 4, 5, 6].includes(r.type) ? { nat } : {}),
  ...([3, 4, 6].includes(r.type) ? { clientTimeoutS } : {}),
})) as FwknopRequest);

const keys = fc.record({
  key: fc.uint8Array({ minLength: 1, maxLength: 32 }).map((u) => Buffer.from(u)),
  hmacKey: fc.uint8Array({ minLength: 33, maxLength: 136 }).map((u) => Buffer.from(u)),
  hmacType: digestType,
});
const rng = fc.record({
  salt: fc.uint8Array({ minLength: 8, maxLength: 8 }).map((u) => Buffer.from(u)),
  random16: fc.array(fc.nat(9), { minLength: 16, maxLength: 16 }).map((d) => d.join('')),
});

describe('fwknop round trip', () => {
  it('decode(seal(plaintext)) gives the request back; the oracle opens it to the same plaintext', () => {
    fc.assert(fc.property(request, keys, rng, (req, k, r) => {
      const key = prepareFwknopKey(k);
      const plaintext = buildFwknopPlaintext(req, r.random16);
      const wire = sealFwknopPlaintext(plaintext, key, r.salt);
      assert.equal(oracleOpen(wire, k), plaintext);
      const got = decodeFwknop(Buffer.from(wire, 'latin1'), key);
      assert.ok(got.ok, JSON.stringify(got));
      assert.deepEqual(got.value, {
        ...req, random: r.random16, version: '3.0.0', digestType: req.digestType, digest: plaintext.slice(plaintext.lastIndexOf(':') + 1),
      });
    }), { numRuns: 400 });
  });

  it('encodeFwknop returns the sealed wire, or throws RangeError exactly when it would reach 400 chars', () => {
    fc.assert(fc.property(request, keys, rng, (req, k, r) => {
      const key = prepareFwknopKey(k);
      const wire = sealFwknopPlaintext(buildFwknopPlaintext(req, r.random16), key, r.salt);
      if (wire.length <= MAX_COMPAT_WIRE_LEN) assert.equal(encodeFwknop(req, key, r), wire);
      else assert.throws(() => encodeFwknop(req, key, r), RangeError);
    }), { numRuns: 200 });
  });

  it('any single-character change is rejected before decryption', () => {
    const k = { key: Buffer.alloc(32, 3), hmacKey: Buffer.alloc(64, 4), hmacType: 'sha256' as const };
    const key = prepareFwknopKey(k);
    fc.assert(fc.property(request, rng, fc.nat(), fc.integer({ min: 0, max: 255 }), (req, r, pos, code) => {
      const wire = sealFwknopPlaintext(buildFwknopPlaintext(req, r.random16), key, r.salt);
      const i = pos % wire.length;
      const c = String.fromCharCode(code);
      fc.pre(c !== wire[i]);
      const got = decodeFwknop(wire.slice(0, i) + c + wire.slice(i + 1), key);
      assert.equal(got.ok, false);
      assert.ok(['bad_hmac', 'bad_chars', 'bad_container'].includes(got.ok ? '' : got.reason), JSON.stringify(got));
    }), { numRuns: 1000 });
  });

  it('encoder refuses invalid requests with RangeError', () => {
    const key = prepareFwknopKey({ key: Buffer.alloc(32, 3), hmacKey: Buffer.alloc(64, 4), hmacType: 'sha256' });
    const r = { salt: Buffer.alloc(8), random16: '1234567890123456' };
    const ok: FwknopRequest = { type: 1, username: 'u', timestampS: 1, allowIp: '192.0.2.1', access: [{ proto: 'tcp', port: 22 }] };
    assert.ok(encodeFwknop(ok, key, r).length > 140);
    const bad: Partial<FwknopRequest>[] = [
      { username: 'a/b' }, { username: '' }, { username: 'x'.repeat(49) }, { timestampS: -1 }, { timestampS: 1.5 },
      { allowIp: '192.0.2.01' }, { allowIp: '::1' }, { access: [] }, { access: [{ proto: 'tcp', port: 0 }] },
      { type: 2 }, { nat: { host: '10.0.0.1', port: 22 } }, { type: 3 }, { clientTimeoutS: 30 }, { version: 'a:b' },
      { access: Array.from({ length: 14 }, () => ({ proto: 'tcp' as const, port: 65535 })) },
    ];
    for (const b of bad) assert.throws(() => encodeFwknop({ ...ok, ...b }, key, r), RangeError, JSON.stringify(b));
    assert.throws(() => encodeFwknop(ok, key, { ...r, random16: '123' }), RangeError);
    assert.throws(() => encodeFwknop(ok, key, { ...r, salt: Buffer.alloc(7) }), RangeError);
  });
});
