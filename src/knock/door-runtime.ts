// SPDX-License-Identifier: MIT
// One door's live state shared by all sources: its current sequence(s) and, for a
// time-derived door, the sequences of the current and previous step and the set of steps
// already used (each derived sequence opens once: docs/protocol.md "Time-derived knock
// sequences"). Per-source progress on a door is advanced by stepDoor. Pure.

import type { DoorConfig, TotpSource } from './door.ts';
import { samePort, type KnockPort } from './sequence.ts';
import { currentStep, deriveSequence } from './totp.ts';
import type { SourceTable } from './source-table.ts';

export interface Candidate {
  readonly seq: readonly KnockPort[];
  /** The step a time-derived sequence belongs to. */
  readonly step?: number;
}

const NO_AVOID: ReadonlySet<number> = new Set();
/** Used steps remembered per time-derived door (a few minutes of opens, or a clock jump). */
const USED_STEPS_KEPT = 16;

export class DoorRuntime {
  readonly config: DoorConfig;
  #oneTime: readonly KnockPort[] | undefined;
  #fixed: readonly Candidate[];
  #totpCandidates: { step: number; list: readonly Candidate[] } | undefined;
  readonly #derived = new Map<number, readonly KnockPort[]>();
  readonly #usedSteps = new Set<number>();

  constructor(config: DoorConfig) {
    this.config = config;
    this.#fixed = config.source.kind === 'static' ? [{ seq: config.source.sequence }] : [];
  }

  /** A one-time door's live sequence; undefined = used up (the door opens nothing). */
  setOneTime(seq: readonly KnockPort[] | undefined): void {
    this.#oneTime = seq;
    this.#fixed = seq ? [{ seq }] : [];
  }

  /** Static and one-time sequences in force now (time-derived doors: none). */
  fixedSequence(): readonly KnockPort[] | undefined {
    const s = this.config.source;
    return s.kind === 'static' ? s.sequence : s.kind === 'one_time' ? this.#oneTime : undefined;
  }

  /** The sequences a new attempt may follow now (cached: no allocation per packet). */
  candidates(wallMs: number): readonly Candidate[] {
    const s = this.config.source;
    if (s.kind !== 'totp') return this.#fixed;
    const now = currentStep(wallMs, s.stepS);
    if (this.#totpCandidates?.step !== now) {
      // No step before 0: a wall clock in the first step after the epoch (a board without an
      // RTC, DESIGN.md fact 8) must not make deriveSequence throw on a knock (issue 9 test).
      const steps = now > 0 ? [now, now - 1] : [now];
      this.#totpCandidates = { step: now, list: steps.map((step) => ({ seq: this.#derive(s, step), step })) };
    }
    return this.#totpCandidates.list;
  }

  /** Is `p` one of this door's knocks now (a time-derived door: anywhere in its range)? */
  knows(p: KnockPort, wallMs: number): boolean {
    const s = this.config.source;
    if (s.kind === 'totp') return p.proto === s.proto && p.port >= s.portMin && p.port <= s.portMax;
    return this.candidates(wallMs).some((c) => c.seq.some((q) => samePort(q, p)));
  }

  /** The sequence an attempt begun on `step` follows (fixed doors: the live one). */
  sequenceFor(step: number | undefined): readonly KnockPort[] | undefined {
    const s = this.config.source;
    return s.kind === 'totp' && step !== undefined ? this.#derive(s, step) : this.fixedSequence();
  }

  #derive(s: TotpSource, step: number): readonly KnockPort[] {
    let seq = this.#derived.get(step);
    if (!seq) {
      // The avoid set is empty: config refuses ranges that overlap other capture ports.
      const ports = deriveSequence(s.key, step, { length: s.length, portMin: s.portMin, portMax: s.portMax, avoid: NO_AVOID });
      seq = Object.freeze(ports.map((port) => ({ proto: s.proto, port })));
      this.#derived.set(step, seq);
      // Only the current and previous steps are ever asked for.
      for (const k of this.#derived.keys()) if (k < step - 2) this.#derived.delete(k);
    }
    return seq;
  }

  /** Steps used before a restart or reload (persisted by the daemon): refused as replays. */
  markUsed(steps: readonly number[]): void {
    for (const step of steps) this.#usedSteps.add(step);
  }

  /** Record that the sequence of `step` opened the door; false if it already had (replay). */
  useStep(step: number): boolean {
    if (this.#usedSteps.has(step)) return false;
    this.#usedSteps.add(step);
    // Forget the oldest USED (insertion order), not the numerically old: after the wall clock
    // jumps forward and back, a step used before the jump is current again and must still be
    // refused (issue 9 clock test). Only now and now - 1 can be used, so this stays tiny.
    const oldest = this.#usedSteps.values().next().value;
    if (this.#usedSteps.size > USED_STEPS_KEPT && oldest !== undefined) this.#usedSteps.delete(oldest);
    return true;
  }
}

export type StepResult =
  | { readonly r: 'open'; readonly step: number | undefined }
  | { readonly r: 'advance' | 'duplicate' | 'reset' | 'none' };

const ADVANCE: StepResult = { r: 'advance' };
const DUPLICATE: StepResult = { r: 'duplicate' };
const RESET: StepResult = { r: 'reset' };
const NOTHING: StepResult = { r: 'none' };

type Advance =
  | { readonly kind: 'progress'; readonly matched: number; readonly early: number }
  | { readonly kind: 'duplicate' | 'miss' };

const DUP: Advance = { kind: 'duplicate' };
const MISS: Advance = { kind: 'miss' };
const bit = (i: number): number => (1 << i) >>> 0;

/**
 * One hit against an attempt that has matched `matched` knocks in order, with `early` the
 * positions already seen ahead of their turn. TCP and UDP knocks reach the daemon through
 * two raw sockets, i.e. two kernel queues, and the event loop may serve the UDP one first:
 * a client sending 7000:tcp, 8000:udp back to back (knockd's `knock` does) can be seen as
 * 8000:udp, 7000:tcp. So a hit that is the next unseen knock of its own protocol, while the
 * expected knock is of the other protocol, is kept as early instead of breaking the
 * attempt. Order within one protocol (one queue) is never relaxed, so a one-protocol sweep
 * gains nothing.
 */
function advanceAttempt(seq: readonly KnockPort[], matched: number, early: number, hit: KnockPort): Advance {
  const next = seq[matched];
  if (next && samePort(next, hit)) {
    let m = matched + 1;
    let e = early;
    while (m < seq.length && (e & bit(m)) !== 0) {
      e = (e & ~bit(m)) >>> 0;
      m++;
    }
    return { kind: 'progress', matched: m, early: e };
  }
  const last = seq[matched - 1];
  if (last && samePort(last, hit)) return DUP;
  if (!next || next.proto === hit.proto) return MISS;
  for (let j = matched + 1; j < seq.length; j++) {
    const q = seq[j];
    if (!q || q.proto !== hit.proto) continue;
    if ((early & bit(j)) !== 0) {
      if (samePort(q, hit)) return DUP;
      continue;
    }
    return samePort(q, hit) ? { kind: 'progress', matched, early: (early | bit(j)) >>> 0 } : MISS;
  }
  return MISS;
}

/**
 * Advance this source's attempt on door `door` (slot in the source table) with one hit.
 * The next expected knock advances; a repeat of the knock just matched is a duplicate
 * (knockd #72/#90/#92) and changes nothing; a knock of the other protocol may come early
 * (advanceAttempt); anything else resets, and the hit may then start the sequence afresh.
 */
export function stepDoor(rt: DoorRuntime, table: SourceTable, at: { slot: number; door: number }, hit: KnockPort, now: { monoMs: number; wallMs: number }): StepResult {
  const { slot, door } = at;
  const wasActive = table.inAttempt(slot, door);
  if (wasActive) {
    const step = table.step(slot, door);
    const seq = rt.sequenceFor(step) ?? [];
    const r = advanceAttempt(seq, table.matched(slot, door), table.early(slot, door), hit);
    if (r.kind === 'duplicate') return DUPLICATE;
    if (r.kind === 'progress') {
      if (r.matched < seq.length) {
        table.setProgress(slot, door, r.matched, r.early);
        return ADVANCE;
      }
      table.end(slot, door);
      return { r: 'open', step };
    }
    table.end(slot, door);
  }
  for (const c of rt.candidates(now.wallMs)) {
    const r = advanceAttempt(c.seq, 0, 0, hit);
    if (r.kind !== 'progress') continue;
    if (r.matched >= c.seq.length) return { r: 'open', step: c.step };
    table.begin(slot, door, now.monoMs, c.step);
    table.setProgress(slot, door, r.matched, r.early);
    return ADVANCE;
  }
  // A wrong hit: it broke an attempt, or is one of this door's knocks out of order.
  return wasActive || rt.knows(hit, now.wallMs) ? RESET : NOTHING;
}
