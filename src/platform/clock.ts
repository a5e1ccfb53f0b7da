// SPDX-License-Identifier: MIT
// The only home of Date.now, performance.now and setTimeout (STYLE.md principle 8).
// Everything else takes a Clock, so tests can drive time.

import { readFileSync } from 'node:fs';

export type Cancel = () => void;

export interface Clock {
  /** Wall-clock milliseconds since the epoch. May jump (NTP, no RTC: DESIGN.md fact 8). */
  wallMs(): number;
  /** Monotonic milliseconds; never jumps. Used for every expiry timer. */
  monoMs(): number;
  /** Run fn after ms (monotonic). The returned function cancels it. */
  schedule(ms: number, fn: () => void): Cancel;
}

/** Test-only hook (issue 9 clock test, test/e2e/clock.test.ts): when this variable names a
 *  file, the wall clock is offset by the integer milliseconds the file holds, re-read at most
 *  every WALL_OFFSET_REREAD_MS, so a test can jump the daemon's wall clock (and only its
 *  wall clock) while it runs. No shipped config, unit, init script or board file sets it;
 *  unset, wallMs() is Date.now() and nothing is read. */
export const WALL_OFFSET_ENV = 'POSTERN_TEST_WALL_OFFSET_FILE';
const WALL_OFFSET_REREAD_MS = 50;

function offsetWall(file: string): () => number {
  let offset = 0;
  let readAt = -Infinity;
  return () => {
    const now = performance.now();
    if (now - readAt >= WALL_OFFSET_REREAD_MS) {
      readAt = now;
      try {
        const n = Number(readFileSync(file, 'utf8').trim());
        offset = Number.isSafeInteger(n) ? n : 0;
      } catch {
        offset = 0; // no file: no offset
      }
    }
    return Date.now() + offset;
  };
}

const testOffsetFile = process.env[WALL_OFFSET_ENV];

export const systemClock: Clock = {
  wallMs: testOffsetFile ? offsetWall(testOffsetFile) : () => Date.now(),
  monoMs: () => performance.now(),
  schedule(ms, fn) {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref();
    return () => clearTimeout(t);
  },
};

/** A manual clock for unit tests of pure logic. */
export class ManualClock implements Clock {
  #wall: number;
  #mono = 0;
  #timers: { at: number; fn: () => void; live: boolean }[] = [];

  constructor(wallMs = 1_700_000_000_000) {
    this.#wall = wallMs;
  }

  wallMs(): number {
    return this.#wall;
  }

  monoMs(): number {
    return this.#mono;
  }

  schedule(ms: number, fn: () => void): Cancel {
    const timer = { at: this.#mono + Math.max(0, ms), fn, live: true };
    this.#timers.push(timer);
    return () => {
      timer.live = false;
    };
  }

  /** Move both clocks forward, firing due timers in order. */
  advance(ms: number): void {
    const end = this.#mono + ms;
    for (;;) {
      const due = this.#timers.filter((t) => t.live && t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.#wall += due.at - this.#mono;
      this.#mono = due.at;
      due.live = false;
      due.fn();
    }
    this.#wall += end - this.#mono;
    this.#mono = end;
    this.#timers = this.#timers.filter((t) => t.live);
  }

  /** Jump the wall clock only (NTP step); monotonic time is unaffected. */
  jumpWall(ms: number): void {
    this.#wall += ms;
  }
}
