// SPDX-License-Identifier: MIT
// The SPA decision for one datagram, cheapest rejection first (STYLE.md principle 3):
//   length -> key id -> replay peek -> AES-SIV -> freshness -> replay commit -> policy.
// Synchronous and pure apart from the replay guard it is given: the caller applies the
// resulting grant. The replay ring is only written after authentication (principle 4),
// and before any grant is made, so a crash between the two cannot reopen a replay.

import type { KeyConfig } from '../config/load.ts';
import type { FwknopStanzaConfig } from '../config/fwknop.ts';
import { decideForward, decideOpen, type GrantPlan } from '../policy/decide.ts';
import type { ReplayGuard } from '../spa/replay.ts';
import { TRUNCATED_TAG_SIZE } from '../spa/replay-ring.ts';
import type { AcceptedPacket } from '../store/replay-store.ts';
import { openEnvelope, splitPacket, type KeyTable } from '../spa/packet.ts';
import type { DropReason } from './reasons.ts';
import { canonicalAddress } from '../wire/address.ts';

export interface SpaContext {
  readonly keys: KeyTable;
  readonly keyConfigs: ReadonlyMap<number, KeyConfig>;
  readonly replay: ReplayGuard;
  readonly windowMs: number;
  readonly nowMs: number;
  readonly clockTrusted: boolean;
}

export type SpaDecision =
  | { readonly kind: 'drop'; readonly reason: DropReason; readonly key?: string; readonly accepted?: AcceptedPacket }
  | { readonly kind: 'open'; readonly key: KeyConfig; readonly plan: GrantPlan; readonly accepted: AcceptedPacket }
  | { readonly kind: 'close'; readonly key: KeyConfig; readonly address: string; readonly accepted: AcceptedPacket }
  | { readonly kind: 'fwknop'; readonly stanza: FwknopStanzaConfig; readonly plans: readonly GrantPlan[]; readonly accepted: AcceptedPacket };

function drop(reason: DropReason, key?: string, accepted?: AcceptedPacket): SpaDecision {
  return { kind: 'drop', reason, ...(key !== undefined && { key }), ...(accepted && { accepted }) };
}

export function decideSpa(payload: Buffer, source: string, ctx: SpaContext): SpaDecision {
  const env = splitPacket(payload, ctx.keys);
  if (!env.ok) return drop(env.reason);
  const { key } = env.value;
  // O(1) read before the crypto: a captured packet sent again costs no AES.
  if (ctx.replay.peek(key.keyId, env.value.tag)) return drop('replay', key.name);
  const opened = openEnvelope(env.value);
  if (!opened.ok) return drop(opened.reason, key.name);
  const { message, tag } = opened.value;
  // After authentication, so a revoked_key refusal cannot be forged by a spoofer who only
  // knows the key id: it is safe to alert (and ban) on.
  if (ctx.keyConfigs.get(key.keyId)?.revoked === true) return drop('revoked_key', key.name);
  // commit() decides freshness and records the packet only when fresh: one pass.
  const fresh = ctx.replay.commit(key.keyId, tag, message.timestampMs, ctx.nowMs, ctx.clockTrusted);
  if (fresh !== 'fresh') return drop(fresh, key.name);
  const accepted: AcceptedPacket = {
    keyId: key.keyId, tag: tag.subarray(0, TRUNCATED_TAG_SIZE).toString('hex'), tsMs: message.timestampMs,
  };
  const keyConfig = ctx.keyConfigs.get(key.keyId);
  if (!keyConfig) return drop('unknown_key', undefined, accepted);
  if (message.type === 'close') {
    const address = message.address === undefined ? source : canonicalAddress(message.address);
    if (address !== source && keyConfig.requireSourceAddress) return drop('denied_address', key.name, accepted);
    return { kind: 'close', key: keyConfig, address: address ?? source, accepted };
  }
  const plan = message.type === 'forward' ? decideForward(message, keyConfig, source) : decideOpen(message, keyConfig, source);
  if (!plan.ok) return drop(plan.reason, key.name, accepted);
  return { kind: 'open', key: keyConfig, plan: plan.value, accepted };
}
