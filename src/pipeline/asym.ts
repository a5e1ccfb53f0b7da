// SPDX-License-Identifier: MIT
// The asymmetric class's receive path (issue 10; docs/protocol.md "Asymmetric message
// class", receive order), cheapest rejection first (STYLE.md principle 3):
//   key id (a technician key) -> length -> device hint (one SHA-256) -> replay peek ->
//   token bucket -> X25519 + HKDF + AES-SIV -> Ed25519 -> freshness -> revoked -> policy.
// revoked_key comes only after authentication (admitMessage), so it cannot be forged.
// Everything before the bucket costs no public-key operation, and the bucket caps what
// follows per key id, so a flood with a known key id cannot buy unbounded CPU.

import type { TechKeyConfig } from '../config/load.ts';
import { openAsym, prefilterAsym, type DeviceKey } from '../spa/asym.ts';
import type { KeyBuckets } from './token-bucket.ts';
import { admitMessage, drop, type SpaContext, type SpaDecision } from './spa.ts';

export interface AsymContext {
  readonly keys: ReadonlyMap<number, TechKeyConfig>;
  readonly device: DeviceKey;
  readonly buckets: KeyBuckets;
  /** Monotonic ms for the buckets (a wall-clock step must not refill them). */
  readonly monoMs: number;
}

export function decideAsym(payload: Buffer, source: string, ctx: SpaContext, asym: AsymContext): SpaDecision {
  const tech = asym.keys.get(payload.readUInt32BE(0));
  if (!tech) return drop('unknown_key');
  const env = prefilterAsym(payload, asym.device);
  if (!env.ok) return drop(env.reason, tech.name);
  if (ctx.replay.peek(tech.keyId, env.value.tag)) return drop('replay', tech.name);
  if (!asym.buckets.take(tech.keyId, asym.monoMs)) return drop('rate_limited', tech.name);
  const opened = openAsym(env.value, tech.techKey, asym.device);
  if (!opened.ok) return drop(opened.reason, tech.name);
  return admitMessage(tech, Buffer.from(env.value.tag), opened.value, source, ctx);
}
