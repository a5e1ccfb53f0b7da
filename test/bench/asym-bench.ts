// SPDX-License-Identifier: MIT
// `core` rows for the asymmetric class (issue 10): what a valid technician packet costs
// (X25519 + HKDF + AES-SIV + Ed25519 + replay + policy), and what a flood carrying a known
// technician key id costs per packet on each of its paths: a hint that fails (one SHA-256),
// an empty token bucket (hint passes, refused rate_limited), and a full bucket (the attacker
// knows the device's public key, so the hint passes and the device pays X25519 before
// bad_auth). Packets are built before the clock starts.

import { randomBytes } from 'node:crypto';
import { validateConfig, type TechKeyConfig } from '../../src/config/load.ts';
import { generateX25519 } from '../../src/crypto/asym.ts';
import { decideSpa, type SpaContext } from '../../src/pipeline/spa.ts';
import { KeyBuckets } from '../../src/pipeline/token-bucket.ts';
import { deviceKeyFromRaw, sealAsym, type DeviceKey } from '../../src/spa/asym.ts';
import { generateTechIdentity, type TechIdentity } from '../../src/spa/asym-keys.ts';
import { ASYM_TAG_OFFSET } from '../../src/spa/constants.ts';
import { buildKeyTable } from '../../src/spa/packet.ts';
import { ReplayGuard } from '../../src/spa/replay.ts';
import type { CoreRow } from './core.ts';
import type { Timer } from './fwknop-bench.ts';

const SOURCE = '198.18.0.2';
const RING_CAPACITY = 4096;
const WINDOW_MS = 90_000;
const BODY = 120;

interface Fixture {
  readonly id: TechIdentity;
  readonly device: DeviceKey;
  readonly tech: TechKeyConfig;
}

function fixture(): Fixture {
  const id = generateTechIdentity();
  const kp = generateX25519();
  const v = validateConfig({ device: 'bench', guarded: ['tcp/22'], keys: [{ name: 'tech', credential: id.publicKey().encode(), services: ['tcp/22'] }] });
  if (!v.ok || v.config.techKeys[0] === undefined) throw new Error('bench fixture: technician stanza');
  return { id, device: deviceKeyFromRaw(kp.privateKey, kp.publicKey), tech: v.config.techKeys[0] };
}

function context(f: Fixture, nowMs: number, buckets: KeyBuckets): SpaContext {
  return {
    keys: buildKeyTable([]), keyConfigs: new Map(), replay: new ReplayGuard({ capacity: RING_CAPACITY, windowMs: WINDOW_MS }),
    windowMs: WINDOW_MS, nowMs, clockTrusted: true, asym: { keys: new Map([[f.tech.keyId, f.tech]]), device: f.device, buckets, monoMs: 0 },
  };
}

function seal(f: Fixture, tsMs: number): Buffer {
  return sealAsym({
    identity: f.id, device: f.device.publicKey, padding: randomBytes(8),
    message: { type: 'open', timestampMs: tsMs, nonce: randomBytes(8), durationS: 0, address: undefined, services: [{ proto: 'tcp', port: 22 }], nat: undefined },
  });
}

const reasonOf = (d: ReturnType<typeof decideSpa>) => (d.kind === 'drop' ? d.reason : d.kind);

function validRow(t: Timer, f: Fixture, nowMs: number): CoreRow {
  const plan = { warmup: 300, batch: 50 };
  const n = t.calls(plan);
  // Distinct timestamps, all inside the window (see core.ts freshPackets).
  const pkts = Array.from({ length: n }, (_, i) => seal(f, nowMs - n + i));
  const ctx = context(f, nowMs, new KeyBuckets({ burst: 1e9, perSecond: 1 }));
  return t.measure('asym valid: decideSpa (X25519+Ed25519+policy)', plan, (i) => reasonOf(decideSpa(pkts[i]!, SOURCE, ctx)) === 'open');
}

function floodRows(t: Timer, f: Fixture, nowMs: number): CoreRow[] {
  const head = seal(f, nowMs).subarray(0, ASYM_TAG_OFFSET);
  const junk = (validHint: boolean) => {
    const p = Buffer.concat([head, randomBytes(BODY)]);
    if (!validHint) p[ASYM_TAG_OFFSET - 1]! ^= 1;
    return p;
  };
  const noHint = junk(false);
  const withHint = junk(true);
  const hintCtx = context(f, nowMs, new KeyBuckets({ burst: 1, perSecond: 1e-9 }));
  const emptyCtx = context(f, nowMs, new KeyBuckets({ burst: 1, perSecond: 1e-9 }));
  decideSpa(withHint, SOURCE, emptyCtx); // spends the only token
  const fullCtx = context(f, nowMs, new KeyBuckets({ burst: 1e9, perSecond: 1 }));
  return [
    t.measure('asym known key id, garbage: wrong_device (hint)', { warmup: 20_000, batch: 10_000 },
      () => reasonOf(decideSpa(noHint, SOURCE, hintCtx)) === 'wrong_device'),
    t.measure('asym known key id+hint, garbage: rate_limited', { warmup: 20_000, batch: 10_000 },
      () => reasonOf(decideSpa(withHint, SOURCE, emptyCtx)) === 'rate_limited'),
    t.measure('asym known key id+hint, garbage: bad_auth (X25519)', { warmup: 500, batch: 100 },
      () => reasonOf(decideSpa(withHint, SOURCE, fullCtx)) === 'bad_auth'),
  ];
}

export function asymCoreRows(t: Timer, nowMs: number): CoreRow[] {
  const f = fixture();
  return [validRow(t, f, nowMs), ...floodRows(t, f, nowMs)];
}
