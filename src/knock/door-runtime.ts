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
      this.#totpCandidates = { step: now, list: [now, now - 1].map((step) => ({ seq: this.#derive(s, step), step })) };
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

  /** Record that the sequence of `step` opened the door; false if it already had (replay). */
  useStep(step: number): boolean {
    if (this.#usedSteps.has(step)) return false;
    this.#usedSteps.add(step);
    for (const k of this.#usedSteps) if (k < step - 2) this.#usedSteps.delete(k);
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

/**
 * Advance this source's attempt on door `door` (slot in the source table) with one hit.
 * The next expected knock advances; a repeat of the knock just matched is a duplicate
 * (knockd #72/#90/#92) and changes nothing; anything else resets, and the hit may then
 * start the sequence afresh.
 */
export function stepDoor(rt: DoorRuntime, table: SourceTable, at: { slot: number; door: number }, hit: KnockPort, now: { monoMs: number; wallMs: number }): StepResult {
  const { slot, door } = at;
  const stage = table.stage(slot, door);
  if (stage > 0) {
    const step = table.step(slot, door);
    const seq = rt.sequenceFor(step);
    const next = seq?.[stage];
    if (next && samePort(next, hit)) {
      if (stage + 1 < (seq?.length ?? 0)) {
        table.advance(slot, door);
        return ADVANCE;
      }
      table.end(slot, door);
      return { r: 'open', step };
    }
    const last = seq?.[stage - 1];
    if (last && samePort(last, hit)) return DUPLICATE;
    table.end(slot, door);
  }
  for (const c of rt.candidates(now.wallMs)) {
    const first = c.seq[0];
    if (!first || !samePort(first, hit)) continue;
    if (c.seq.length === 1) return { r: 'open', step: c.step };
    table.begin(slot, door, now.monoMs, c.step);
    return ADVANCE;
  }
  // A wrong hit: it broke an attempt, or is one of this door's knocks out of order.
  return stage > 0 || rt.knows(hit, now.wallMs) ? RESET : NOTHING;
}
