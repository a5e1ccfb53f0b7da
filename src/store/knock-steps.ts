// SPDX-License-Identifier: MIT
// Durable used steps of time-derived knock doors (docs/protocol.md "Time-derived knock
// sequences": each derived sequence opens once). Written before the door's grant or
// command, like replay state, so a restart (even kill -9) does not let the sequence of
// the current or previous step work a second time. Small: per door only the steps that
// can still be accepted are kept, and the whole table is capped.

import type { Database } from './sqlite.ts';

export interface UsedStep {
  readonly door: string;
  readonly step: number;
}

/** Rows kept at most (3 live steps per door: hundreds of doors; removed doors age out). */
export const KNOCK_STEP_ROWS = 1024;

export class KnockStepTable {
  readonly #db: Database;
  readonly #record: (door: string, step: number, minStep: number) => void;

  constructor(db: Database) {
    this.#db = db;
    const insert = db.prepare('INSERT OR IGNORE INTO knock_steps (door, step) VALUES (?, ?)');
    const prune = db.prepare('DELETE FROM knock_steps WHERE door = ? AND step < ?');
    const cap = db.prepare('DELETE FROM knock_steps WHERE id <= (SELECT max(id) FROM knock_steps) - ?');
    this.#record = db.transaction((door: string, step: number, minStep: number) => {
      insert.run(door, step);
      prune.run(door, minStep);
      cap.run(KNOCK_STEP_ROWS);
    });
  }

  /** Record that `door`'s sequence of `step` was used, dropping its steps below `minStep`.
   *  Synchronous: returns once durable. Throws on I/O errors (the store degrades). */
  record(door: string, step: number, minStep: number): void {
    this.#record(door, step, minStep);
  }

  all(): UsedStep[] {
    return this.#db.prepare('SELECT door, step FROM knock_steps ORDER BY id').all() as UsedStep[];
  }
}
