// SPDX-License-Identifier: MIT
// The SPA decision for one datagram, cheapest rejection first (STYLE.md principle 3):
//   length -> key id -> replay peek -> AES-SIV -> freshness -> replay commit -> revoked -> policy.
// A key id that names a technician key (asymmetric class) goes to decideAsym (asym.ts),
// which joins this path again at admitMessage (freshness, replay commit, policy).
// Synchronous and pure apart from the replay guard it is given: the caller applies the
// resulting grant. The replay ring is only written after authentication (principle 4),
// and before any grant is made, so a crash between the two cannot reopen a replay.

import type { KeyConfig, KeyPolicy } from '../config/load.ts';
import type { FwknopStanzaConfig } from '../config/fwknop.ts';
import { decideForward, decideOpen, type GrantPlan } from '../policy/decide.ts';
import type { ReplayGuard } from '../spa/replay.ts';
import { TRUNCATED_TAG_SIZE } from '../spa/replay-ring.ts';
import type { AcceptedPacket } from '../store/replay-store.ts';
import { openEnvelope, splitPacket, type KeyTable } from '../spa/packet.ts';
import type { DropReason } from './reasons.ts';
import { decideAsym, type AsymContext } from './asym.ts';
import type { SpaMessage } from '../spa/message.ts';
import { canonicalAddress } from '../wire/address.ts';

export interface SpaContext {
  readonly keys: KeyTable;
  readonly keyConfigs: ReadonlyMap<number, KeyConfig>;
  readonly replay: ReplayGuard;
  readonly windowMs: number;
  readonly nowMs: number;
  readonly clockTrusted: boolean;
  /** Technician keys (asymmetric class, issue 10); absent when none are configured. */
  readonly asym?: AsymContext;
}

export type SpaDecision =
  | { readonly kind: 'drop'; readonly reason: DropReason; readonly key?: string; readonly accepted?: AcceptedPacket }
  | { readonly kind: 'open'; readonly key: KeyPolicy; readonly plan: GrantPlan; readonly accepted: AcceptedPacket }
  | { readonly kind: 'close'; readonly key: KeyPolicy; readonly address: string; readonly accepted: AcceptedPacket }
  | { readonly kind: 'fwknop'; readonly stanza: FwknopStanzaConfig; readonly plans: readonly GrantPlan[]; readonly accepted: AcceptedPacket };

export function drop(reason: DropReason, key?: string, accepted?: AcceptedPacket): SpaDecision {
  return { kind: 'drop', reason, ...(key !== undefined && { key }), ...(accepted && { accepted }) };
}

export function decideSpa(payload: Buffer, source: string, ctx: SpaContext): SpaDecision {
  const env = splitPacket(payload, ctx.keys);
  if (!env.ok) {
    // Symmetric and technician key ids share one space (config refuses duplicates).
    const asym = env.reason === 'unknown_key' ? ctx.asym : undefined;
    return asym?.keys.has(payload.readUInt32BE(0)) ? decideAsym(payload, source, ctx, asym) : drop(env.reason);
  }
  const { key } = env.value;
  const keyConfig = ctx.keyConfigs.get(key.keyId);
  if (!keyConfig) return drop('unknown_key');
  // O(1) read before the crypto: a captured packet sent again costs no AES.
  if (ctx.replay.peek(key.keyId, env.value.tag)) return drop('replay', key.name);
  const opened = openEnvelope(env.value);
  if (!opened.ok) return drop(opened.reason, key.name);
  return admitMessage(keyConfig, opened.value.tag, opened.value.message, source, ctx);
}

/** An authenticated message of either class: freshness + replay commit, then policy. */
export function admitMessage(keyConfig: KeyPolicy, tag: Buffer, message: SpaMessage, source: string, ctx: SpaContext): SpaDecision {
  const name = keyConfig.name;
  // commit() decides freshness and records the packet only when fresh: one pass.
  const fresh = ctx.replay.commit(keyConfig.keyId, tag, message.timestampMs, ctx.nowMs, ctx.clockTrusted);
  if (fresh !== 'fresh') return drop(fresh, name);
  // After authentication and after the replay commit: a spoofer who knows only the key id,
  // or replays a captured packet, gets bad_auth or replay, never revoked_key, so
  // revoked_key is safe to alert and ban on (docs/fail2ban.md).
  if (keyConfig.revoked) return drop('revoked_key', name);
  const accepted: AcceptedPacket = {
    keyId: keyConfig.keyId, tag: tag.subarray(0, TRUNCATED_TAG_SIZE).toString('hex'), tsMs: message.timestampMs,
  };
  if (message.type === 'close') {
    const address = message.address === undefined ? source : canonicalAddress(message.address);
    if (address !== source && keyConfig.requireSourceAddress) return drop('denied_address', name, accepted);
    return { kind: 'close', key: keyConfig, address: address ?? source, accepted };
  }
  const plan = message.type === 'forward' ? decideForward(message, keyConfig, source) : decideOpen(message, keyConfig, source);
  if (!plan.ok) return drop(plan.reason, name, accepted);
  return { kind: 'open', key: keyConfig, plan: plan.value, accepted };
}
