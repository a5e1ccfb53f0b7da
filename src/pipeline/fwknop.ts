// SPDX-License-Identifier: MIT
// The fwknop decision for one datagram on the fwknop port (DESIGN.md "fwknop
// compatibility"; validation order from ref/fwknop.md section 10, improved):
//   text prechecks -> stanzas whose SOURCE matches -> replay peek (wire digest) ->
//   HMAC per candidate stanza (no decryption before an HMAC passes) -> decrypt + inner
//   digest -> freshness (the packet's age, fwknopd's labs() window) -> replay commit ->
//   policy (OPEN_PORTS / RESTRICT_PORTS, timeouts, username, allow IP, NAT targets).
// fwknopd walks its replay cache before any HMAC; here junk costs one SHA-256 at most
// before the HMAC, and only authenticated packets enter the replay ring.
// Every authenticated packet with a readable timestamp enters the ring BEFORE any refusal,
// including the codec's by-design refusals (command message, icmp/none access), as the
// native pipeline does (spa.ts admitMessage): a captured copy replayed from spoofed
// addresses is then `replay`, never a policy reason that docs/fail2ban.md bans on.

import { createHash } from 'node:crypto';
import type { FwknopStanzaConfig } from '../config/fwknop.ts';
import type { Service } from '../firewall/types.ts';
import { decodePrechecked, precheckFwknop, type FwknopDecoded, type FwknopKey, type FwknopMessage } from '../fwknop/codec.ts';
import type { GrantPlan } from '../policy/decide.ts';
import type { ReplayGuard } from '../spa/replay.ts';
import { TRUNCATED_TAG_SIZE } from '../spa/replay-ring.ts';
import type { AcceptedPacket } from '../store/replay-store.ts';
import { cidrContains } from '../wire/address.ts';
import type { DropReason } from './reasons.ts';
import type { SpaDecision } from './spa.ts';

export interface FwknopStanza {
  readonly config: FwknopStanzaConfig;
  readonly key: FwknopKey;
  /** Stable replay namespace for this stanza (hash of its name). */
  readonly replayId: number;
}

export interface FwknopContext {
  readonly stanzas: readonly FwknopStanza[];
  /** fwknop's own ring, its window = fwknop.max_age_s (MAX_SPA_PACKET_AGE). */
  readonly replay: ReplayGuard;
  readonly nowMs: number;
  readonly clockTrusted: boolean;
}

/** FNV-1a: a stable uint32 per stanza name, so replay state survives stanza reordering. */
export function stanzaReplayId(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

function drop(reason: DropReason, key?: string, accepted?: AcceptedPacket): SpaDecision {
  return { kind: 'drop', reason, ...(key !== undefined && { key }), ...(accepted && { accepted }) };
}

function sourceMatches(st: FwknopStanza, source: string): boolean {
  return st.config.sources === undefined || st.config.sources.some((c) => cidrContains(c, source));
}

const same = (a: Service, b: Service) => a.proto === b.proto && a.port === b.port;

function portsAllowed(msg: FwknopMessage, st: FwknopStanzaConfig): boolean {
  return msg.access.length > 0
    && msg.access.every((a) => st.openPorts.some((o) => same(o, a)))
    && !msg.access.some((a) => st.restrictPorts.some((r) => same(r, a)));
}

/** fwknop caps a client timeout at MAX_FW_TIMEOUT instead of refusing it. */
function durationOf(msg: FwknopMessage, st: FwknopStanzaConfig): number {
  return msg.clientTimeoutS !== undefined && msg.clientTimeoutS > 0 ? Math.min(msg.clientTimeoutS, st.maxFwTimeoutS) : st.fwAccessTimeoutS;
}

function natPlan(msg: FwknopMessage, st: FwknopStanzaConfig, who: { family: 4 | 6; address: string }, durationS: number): GrantPlan | DropReason {
  const access = msg.access[0];
  const nat = msg.nat;
  if (!access || !nat || msg.access.length !== 1) return 'denied_forward';
  const fwd = st.forwards.find((f) => f.target.address === nat.host && f.target.port === nat.port
    && f.proto === access.proto && f.externalPort === access.port);
  if (!fwd || (fwd.target.address.includes(':') ? 6 : 4) !== who.family) return 'denied_forward';
  return { ...who, services: [access], durationS, forward: fwd.target };
}

/** Local NAT (types 5 and 6, fwknop --nat-local): the client connects to an external port on
 *  this host and is DNATed to a local service port, as fwknopd's ENABLE_IPT_LOCAL_NAT does:
 *  a forwarding grant to the address the packet arrived on, plus an input grant for the
 *  service port (which the DNATed packets then reach on the input hook). */
function localNatPlans(msg: FwknopMessage, st: FwknopStanzaConfig, who: { family: 4 | 6; address: string }, durationS: number, dest: string): GrantPlan[] | DropReason {
  const access = msg.access[0];
  const nat = msg.nat;
  if (!st.localNat) return 'denied_type';
  if (!access || !nat || msg.access.length !== 1 || dest === '' || who.family !== 4 || dest.includes(':')) return 'denied_forward';
  const local = { proto: access.proto, port: nat.port };
  if (!st.openPorts.some((o) => same(o, local)) || st.restrictPorts.some((r) => same(r, local))) return 'denied_service';
  return [
    { ...who, services: [local], durationS },
    ...(access.port === nat.port ? [] : [{ ...who, services: [access], durationS, forward: { address: dest, port: nat.port } }]),
  ];
}

/** Policy for an authenticated, fresh fwknop message (access.conf semantics). `dest` is the
 *  address the packet arrived on ('' when unknown: IPv6 raw sockets do not say). */
export function fwknopPolicy(msg: FwknopMessage, st: FwknopStanzaConfig, source: string, dest = ''): GrantPlan[] | DropReason {
  if (st.requireUsername !== undefined && msg.username !== st.requireUsername) return 'denied_username';
  // 0.0.0.0 = the packet's source (client -s); REQUIRE_SOURCE_ADDRESS refuses it. An
  // explicit allow IP need not be the source: fwknop allows relayed SPA by design.
  if (msg.allowIp === '0.0.0.0' && st.requireSourceAddress) return 'denied_address';
  const address = msg.allowIp === '0.0.0.0' ? source : msg.allowIp;
  const who = { family: (address.includes(':') ? 6 : 4) as 4 | 6, address };
  const durationS = durationOf(msg, st);
  if (msg.type === 5 || msg.type === 6) return localNatPlans(msg, st, who, durationS, dest);
  if (msg.type === 2 || msg.type === 4) {
    const plan = natPlan(msg, st, who, durationS);
    return typeof plan === 'string' ? plan : [plan];
  }
  if (msg.type !== 1 && msg.type !== 3) return 'denied_type';
  if (!portsAllowed(msg, st)) return 'denied_service';
  return [{ ...who, services: msg.access, durationS }];
}

/** Codec refusals after a passed HMAC, in the daemon's words (the rest: bad_payload). */
const POST_HMAC_REASON: Partial<Record<string, DropReason>> = {
  command_refused: 'fwknop_command',
  unsupported_proto: 'denied_service',
};

function wireTag(payload: Buffer): Buffer {
  // fwknopd's replay key is SHA-256 of the whole wire string (ref/fwknop.md section 10).
  return createHash('sha256').update(payload).digest().subarray(0, 16);
}

export function decideFwknop(payload: Buffer, source: string, ctx: FwknopContext, dest = ''): SpaDecision {
  const pre = precheckFwknop(payload);
  if (!pre.ok) return drop('fwknop_malformed');
  const candidates = ctx.stanzas.filter((st) => sourceMatches(st, source));
  if (candidates.length === 0) return drop('fwknop_no_stanza');
  const tag = wireTag(payload);
  if (candidates.some((st) => ctx.replay.peek(st.replayId, tag))) return drop('replay');
  let refused: SpaDecision | undefined;
  for (const st of candidates) {
    const msg = decodePrechecked(pre.value, st.key);
    if (msg.ok) return admit(msg.value, st, tag, { source, dest }, ctx);
    // Like fwknopd, a stanza whose HMAC passes but whose passphrase does not decrypt the
    // packet hands it on to the next stanza; the first such refusal is reported, and only
    // it is committed, so ring and store agree (the daemon persists what is reported).
    if (msg.reason !== 'bad_hmac') refused ??= refuse(msg, st, tag, ctx);
  }
  return refused ?? drop('bad_auth');
}

/** Freshness + replay commit of an authenticated packet: its AcceptedPacket, or the drop. */
function commit(st: FwknopStanza, tag: Buffer, timestampS: number, ctx: FwknopContext): AcceptedPacket | SpaDecision {
  const tsMs = timestampS * 1000;
  const fresh = ctx.replay.commit(st.replayId, tag, tsMs, ctx.nowMs, ctx.clockTrusted);
  if (fresh !== 'fresh') return drop(fresh, st.config.name);
  return { keyId: st.replayId, tag: tag.subarray(0, TRUNCATED_TAG_SIZE).toString('hex'), tsMs };
}

/** A refusal after the HMAC passed. With a timestamp (FwknopRefusal) the packet is committed
 *  first, so its replays are `replay`; without one (undecryptable, bad digest or fields) there
 *  is no freshness to judge and the reason is bad_payload, which no ban matches. */
function refuse(msg: Exclude<FwknopDecoded, { ok: true }>, st: FwknopStanza, tag: Buffer, ctx: FwknopContext): SpaDecision {
  const reason = POST_HMAC_REASON[msg.reason] ?? 'bad_payload';
  if (!('timestampS' in msg)) return drop(reason, st.config.name);
  const accepted = commit(st, tag, msg.timestampS, ctx);
  return 'kind' in accepted ? accepted : drop(reason, st.config.name, accepted);
}

function admit(msg: FwknopMessage, st: FwknopStanza, tag: Buffer, at: { source: string; dest: string }, ctx: FwknopContext): SpaDecision {
  const accepted = commit(st, tag, msg.timestampS, ctx);
  if ('kind' in accepted) return accepted;
  const plans = fwknopPolicy(msg, st.config, at.source, at.dest);
  if (typeof plans === 'string') return drop(plans, st.config.name, accepted);
  return { kind: 'fwknop', stanza: st.config, plans, accepted };
}
