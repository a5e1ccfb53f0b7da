// SPDX-License-Identifier: MIT
// Used steps of time-derived knock doors, kept for the daemon's whole life (reloads make
// new knock services) and written through to the state store (store/knock-steps.ts), so
// neither a reload nor a restart lets a derived sequence open its door twice. With the
// database unusable the memory copy still covers reloads.

import type { Store } from '../store/store.ts';

export interface KnockSteps {
  /** Steps of `door` already used (at least those >= the given minimum). */
  steps(door: string, minStep: number): readonly number[];
  /** Durable (when the store works) before it returns: the grant and commands come after. */
  record(door: string, step: number, minStep: number): void;
}

export class KnockStepLedger implements KnockSteps {
  readonly #store: () => Store | undefined;
  #byDoor: Map<string, Set<number>> | undefined;

  /** `store` is read lazily: the daemon opens it after building its knock service. */
  constructor(store: () => Store | undefined) {
    this.#store = store;
  }

  #doors(): Map<string, Set<number>> {
    if (this.#byDoor) return this.#byDoor;
    const byDoor = new Map<string, Set<number>>();
    for (const r of this.#store()?.loadKnockSteps() ?? []) {
      const set = byDoor.get(r.door) ?? new Set<number>();
      set.add(r.step);
      byDoor.set(r.door, set);
    }
    this.#byDoor = byDoor;
    return byDoor;
  }

  steps(door: string, minStep: number): readonly number[] {
    return [...(this.#doors().get(door) ?? [])].filter((s) => s >= minStep);
  }

  record(door: string, step: number, minStep: number): void {
    const doors = this.#doors();
    const set = doors.get(door) ?? new Set<number>();
    set.add(step);
    for (const s of set) if (s < minStep) set.delete(s);
    doors.set(door, set);
    this.#store()?.recordKnockStep(door, step, minStep);
  }
}
