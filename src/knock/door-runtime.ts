// SPDX-License-Identifier: MIT
// One door's live state shared by all sources: its current sequence(s) and, for a
// time-derived door, the sequences of the current and previous step and the set of steps
// already used (each derived sequence opens once: docs/protocol.md "Time-derived knock
// sequences"). Per-source progress on a door is advanced by stepDoor. Pure.

import type { DoorConfig, TotpSource } from './door.ts';
import { samePort, type KnockPort } from './sequence.ts';
import { currentStep, deriveSequence } from './totp.ts';

export interface Candidate {
  readonly seq: readonly KnockPort[];
  /** The step a time-derived sequence belongs to. */
  readonly step?: number;
}

/** One source's progress on one door. */
export interface Progress {
  readonly seq: readonly KnockPort[];
  readonly step: number | undefined;
  stage: number;
  readonly firstMs: number;
}

const NO_AVOID: ReadonlySet<number> = new Set();

export class DoorRuntime {
  readonly config: DoorConfig;
  #oneTime: readonly KnockPort[] | undefined;
  readonly #derived = new Map<number, readonly KnockPort[]>();
  readonly #usedSteps = new Set<number>();

  constructor(config: DoorConfig) {
    this.config = config;
  }

  /** A one-time door's live sequence; undefined = used up (the door opens nothing). */
  setOneTime(seq: readonly KnockPort[] | undefined): void {
    this.#oneTime = seq;
  }

  /** Static and one-time sequences in force now (time-derived doors: none). */
  fixedSequence(): readonly KnockPort[] | undefined {
    const s = this.config.source;
    return s.kind === 'static' ? s.sequence : s.kind === 'one_time' ? this.#oneTime : undefined;
  }

  candidates(wallMs: number): Candidate[] {
    const s = this.config.source;
    if (s.kind !== 'totp') {
      const seq = this.fixedSequence();
      return seq ? [{ seq }] : [];
    }
    const now = currentStep(wallMs, s.stepS);
    return [now, now - 1].map((step) => ({ seq: this.#derive(s, step), step }));
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

/**
 * Advance `progress` (this source on this door) with one hit. The next expected knock
 * advances; a repeat of the knock just matched is a duplicate (knockd #72/#90/#92) and
 * changes nothing; anything else resets, and the hit may then start the sequence afresh.
 */
export function stepDoor(rt: DoorRuntime, all: Map<number, Progress>, idx: number, hit: KnockPort, now: { monoMs: number; wallMs: number }): StepResult {
  const p = all.get(idx);
  if (p) {
    const next = p.seq[p.stage];
    if (next && samePort(next, hit)) {
      p.stage++;
      if (p.stage < p.seq.length) return { r: 'advance' };
      all.delete(idx);
      return { r: 'open', step: p.step };
    }
    const last = p.seq[p.stage - 1];
    if (last && samePort(last, hit)) return { r: 'duplicate' };
    all.delete(idx);
  }
  for (const c of rt.candidates(now.wallMs)) {
    const first = c.seq[0];
    if (!first || !samePort(first, hit)) continue;
    if (c.seq.length === 1) return { r: 'open', step: c.step };
    all.set(idx, { seq: c.seq, step: c.step, stage: 1, firstMs: now.monoMs });
    return { r: 'advance' };
  }
  return { r: p ? 'reset' : 'none' };
}
