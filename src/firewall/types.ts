// SPDX-License-Identifier: MIT
// The firewall contract shared by every backend (DESIGN.md "Firewall model").

export type Proto = 'tcp' | 'udp';

export interface Service {
  readonly proto: Proto;
  readonly port: number;
}

export type Family = 4 | 6;

/** Where a forwarding grant sends traffic: a LAN host and port behind the router. */
export interface ForwardTarget {
  readonly address: string;
  readonly port: number;
}

/** One grant: exactly these services, for exactly this source address, until expiry.
 *  A forwarding grant has exactly one service, the external (proto, port) on the router,
 *  and `forward`: the router DNATs that source's traffic for it to the target and lets it
 *  through FORWARD (DESIGN.md "Firewall model"). */
export interface Grant {
  /** Stable id, [a-z0-9]{1,16}; appears in every rule the grant owns. */
  readonly id: string;
  /** Key (or door) name that earned it; for logs and status only. */
  readonly key: string;
  readonly family: Family;
  /** Source address, canonical text form (no prefix length). */
  readonly address: string;
  readonly services: readonly Service[];
  /** Source prefix length when the key grants a whole network (IPv6 privacy addresses:
   *  e.g. 64); absent = the single address (/32, /128). `address` is then the network. */
  readonly prefix?: number;
  readonly forward?: ForwardTarget;
  /** Wall-clock expiry in ms since the epoch; written into rule tags so that a restarted
   *  daemon can remove rules a crashed one left behind. Live expiry uses monotonic timers. */
  readonly expiresAtMs: number;
}

/** An inclusive port range, from <= to. */
export interface PortRange {
  readonly from: number;
  readonly to: number;
}

/** One shape a datagram on a prefiltered UDP port may have to reach the daemon: a UDP
 *  payload of minLen..maxLen bytes and, with keyIds, whose first 4 bytes (big-endian) are
 *  one of them (prefilter.ts, docs/firewall.md "Prefilter"). */
export interface SpaShape {
  readonly minLen: number;
  readonly maxLen: number;
  /** Native key ids (uint32); absent: any first bytes (fwknop); empty: matches nothing. */
  readonly keyIds?: readonly number[];
}

/** A UDP capture port whose datagrams the kernel drops (and counts) unless one of the
 *  shapes matches. */
export interface SpaPrefilter {
  readonly port: number;
  readonly shapes: readonly SpaShape[];
}

/** The prefilter as a backend has it: on (rules installed), off (not asked for), or
 *  refused (asked for, but the kernel or the tool refused the rules: guarding without). */
export interface PrefilterStatus {
  readonly state: 'on' | 'off' | 'refused';
  /** Datagrams the kernel dropped since the rules were created (undefined: unreadable). */
  readonly dropped?: number;
  readonly reason?: string;
}

/** What the host must look like while postern guards it. */
export interface GuardSpec {
  /** Dropped for everyone except granted tuples and established/related traffic. */
  readonly guarded: readonly Service[];
  /** Ports postern captures on (SPA, knock): must reach local delivery, stay silent. */
  readonly capture: readonly Service[];
  /** TCP port ranges captured whole (time-derived knock doors): accepted and kept silent
   *  like `capture`. Inclusive bounds. */
  readonly captureTcpRanges?: readonly PortRange[];
  /** Whether forwarding grants may be applied (chains on the nat/forward hooks). */
  readonly forwarding?: boolean;
  /** Kernel-side prefilter for these UDP capture ports (each must be in `capture`). */
  readonly spaPrefilter?: readonly SpaPrefilter[];
}

/** A rule found in the live ruleset that carries a postern tag. */
export interface TaggedRule {
  readonly family: Family;
  readonly grantId: string;
  readonly expiresAtMs: number;
}

export interface ReconcileReport {
  /** Grant ids whose rules were removed because they expired or are unknown. */
  readonly removed: readonly string[];
  /** Grant ids (from `live`) that were missing and were re-added. */
  readonly restored: readonly string[];
}

/** One grant change of a batch: open or extend (`previous`: the rules it replaces, no gap),
 *  or close. GrantManager coalesces the changes that queue while a firewall call is in
 *  flight into one applyChanges (docs/firewall.md "Batched changes"). */
export type GrantChange =
  | { readonly op: 'apply'; readonly grant: Grant; readonly previous?: Grant }
  | { readonly op: 'revoke'; readonly grant: Grant };

export interface FirewallBackend {
  readonly name: string;
  /** Create chains/jumps idempotently and install the guard and capture rules. */
  start(spec: GuardSpec): Promise<void>;
  /** Replace guard/capture rules after a config reload, keeping grants. */
  update(spec: GuardSpec): Promise<void>;
  /** Make the ruleset's grants equal `live` (minus expired ones at nowMs). */
  reconcile(live: readonly Grant[], nowMs: number): Promise<ReconcileReport>;
  /** Add a grant, or replace the rules of a grant with the same id (extension): no gap. */
  applyGrant(grant: Grant, previous?: Grant): Promise<void>;
  /** Remove a grant's rules. Removing an absent grant succeeds. */
  revokeGrant(grant: Grant): Promise<void>;
  /** The prefilter's state and the kernel's drop count (one listing). */
  prefilterStatus(): Promise<PrefilterStatus>;
  /** All these changes, in order, in as few firewall transactions as the backend can (nft:
   *  one). Rejects if any fails; some may then be applied (never a gap for an extension),
   *  and each change is safe to retry alone. Revoked grants are forgotten either way. */
  applyChanges(changes: readonly GrantChange[]): Promise<void>;
  /** Remove everything postern installed, or (keepGuarding) leave guard rules in place
   *  and remove only grants. */
  stop(opts: { readonly keepGuarding: boolean }): Promise<void>;
}
