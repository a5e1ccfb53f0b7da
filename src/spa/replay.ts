// SPDX-License-Identifier: MIT
// Freshness of authenticated SPA packets: time window, replay ring, per-key floors and
// high-water marks (DESIGN.md "Freshness and the replay ring" and fact 8; STYLE.md
// principle 4). Pure: the clock arrives as plain numbers, nothing here does I/O.
//
// INVARIANT (checked after every step by test/unit/spa/replay-property.test.ts):
//   every packet ever accepted for a key that has not been forgotten is either still in the
//   ring, or has tsMs <= floor(its key).
// So a replay is either found in the ring ('replay') or is at/below the floor ('stale'): it is
// never 'fresh', whatever the mode, the clock or the load. The invariant holds because
//   - only commit() adds to the ring, and only for a verdict of 'fresh';
//   - ReplayRing reports every entry that leaves it (eviction when full, prune, shrink on
//     restore) to #onLeave, which raises the key's floor to max(floor, ts);
//   - floors never fall, and snapshot()/restore() carry ring, floors and high-water marks.
//
// Why pruning raises the floor too, not only eviction: a pruned entry is unacceptable under
// the rule that pruned it, now, but not under every rule and at every time to come. A trusted
// prune judges by the clock; a backward clock step (NTP, or a board without RTC rebooting to
// its build date: fact 8) or a switch to untrusted mode (judged by the high-water mark, not the
// clock) can make its ts acceptable again. An untrusted prune judges by the high-water mark,
// which a client with a fast clock can push ahead of real time; a later trusted clock then
// finds those ts inside its window. Without the floor, each of these would reopen a replay.
//
// Verdicts: 'replay' means proven (the tag is in the ring). 'stale' covers non-finite ts,
// outside the window, and at/below the floor: a floor is a lossy summary, so a packet under it
// may be a replay of an evicted entry or a late first delivery; we do not claim which.

import { fail, ok, type Decoded } from '../wire/result.ts';
import { MAX_RING_CAPACITY, MIN_RING_CAPACITY, ReplayRing, TRUNCATED_TAG_SIZE, tagWord } from './replay-ring.ts';

export { MAX_RING_CAPACITY, MIN_RING_CAPACITY, TRUNCATED_TAG_SIZE } from './replay-ring.ts';

/** The pipeline reports 'replay' and 'stale' under the alert reasons of the same names. */
export type Freshness = 'fresh' | 'replay' | 'stale';

export interface ReplayOptions {
  /** Ring entries, MIN_RING_CAPACITY..MAX_RING_CAPACITY. */
  readonly capacity: number;
  /** Freshness window, 1..MAX_WINDOW_MS. */
  readonly windowMs: number;
  /** Index hash seed. Defaults to a random one; verdicts never depend on it. */
  readonly hashSeed?: number;
}

export const DEFAULT_REPLAY_OPTIONS: ReplayOptions = { capacity: 4096, windowMs: 90_000 };
/** A day is far beyond any clock skew worth tolerating. */
export const MAX_WINDOW_MS = 86_400_000;

export class ReplayGuard {
  readonly windowMs: number;
  readonly #ring: ReplayRing;
  readonly #floors = new Map<number, number>();
  readonly #highwaters = new Map<number, number>();

  /** Throws RangeError on out-of-range options: a programmer or config-validation error. */
  constructor(opts: Partial<ReplayOptions> = {}) {
    const { capacity, windowMs } = { ...DEFAULT_REPLAY_OPTIONS, ...opts };
    if (!isCapacity(capacity)) {
      throw new RangeError(`replay capacity must be an integer in ${MIN_RING_CAPACITY}..${MAX_RING_CAPACITY}`);
    }
    if (!isWindow(windowMs)) throw new RangeError(`replay windowMs must be in 1..${MAX_WINDOW_MS}`);
    this.windowMs = windowMs;
    const seed = opts.hashSeed ?? crypto.getRandomValues(new Uint32Array(1))[0] ?? 0;
    this.#ring = new ReplayRing(capacity, seed, (keyId, tsMs) => this.#raiseFloor(keyId, tsMs));
  }

  get size(): number {
    return this.#ring.size;
  }

  get capacity(): number {
    return this.#ring.capacity;
  }

  /** Before authentication: is this (key id, tag) in the ring? O(1), no mutation. A true
   *  answer lets the pipeline drop an exact replay before paying for crypto. */
  peek(keyId: number, tag: Uint8Array): boolean {
    assertIdentity(keyId, tag);
    return this.#ring.has(keyId, tagWord(tag, 0), tagWord(tag, 4));
  }

  /** After authentication: the verdict, without mutation. Never throws on any tsMs or nowMs.
   *  (Five positional parameters rather than STYLE.md's four: this is the per-packet path and
   *  the pipeline already calls it this way.) */
  check(keyId: number, tag: Uint8Array, tsMs: number, nowMs: number, clockTrusted: boolean): Freshness {
    assertIdentity(keyId, tag);
    if (this.#ring.has(keyId, tagWord(tag, 0), tagWord(tag, 4))) return 'replay';
    if (!Number.isFinite(tsMs) || !this.#inWindow(keyId, tsMs, nowMs, clockTrusted)) return 'stale';
    const floor = this.#floors.get(keyId);
    // Written as "not above" so that any comparison with NaN refuses.
    if (floor !== undefined && !(tsMs > floor)) return 'stale';
    return 'fresh';
  }

  /** After authentication: decide and, only if 'fresh', record the packet. Re-deciding here
   *  means a commit can never record a replay, even if state moved since check(). */
  commit(keyId: number, tag: Uint8Array, tsMs: number, nowMs: number, clockTrusted: boolean): Freshness {
    const verdict = this.check(keyId, tag, tsMs, nowMs, clockTrusted);
    if (verdict !== 'fresh') return verdict;
    this.#ring.push(keyId, tagWord(tag, 0), tagWord(tag, 4), tsMs);
    this.#raiseHighwater(keyId, tsMs);
    return 'fresh';
  }

  /** Drop entries that left the window, raising floors (see top of file). Returns how many.
   *  O(capacity): call on a timer, often enough that the ring rarely fills with dead entries. */
  prune(nowMs: number, clockTrusted: boolean): number {
    if (clockTrusted) {
      const oldest = nowMs - this.windowMs;
      return this.#ring.removeWhere((_keyId, ts) => ts < oldest);
    }
    return this.#ring.removeWhere((keyId, ts) => {
      const hw = this.#highwaters.get(keyId);
      return hw !== undefined && ts <= hw - this.windowMs;
    });
  }

  floor(keyId: number): number | undefined {
    return this.#floors.get(keyId);
  }

  highwater(keyId: number): number | undefined {
    return this.#highwaters.get(keyId);
  }

  /** A key was removed from the configuration: drop its entries, floor and high-water mark.
   *  Safe because a removed key can no longer authenticate, so nothing of it reaches check(). */
  forgetKey(keyId: number): void {
    this.#ring.removeWhere((k) => k === keyId);
    this.#floors.delete(keyId);
    this.#highwaters.delete(keyId);
  }

  /** JSON-safe state for persistence: entries oldest first, then per-key marks. */
  snapshot(): ReplayState {
    const entries: { keyId: number; tag: string; tsMs: number }[] = [];
    this.#ring.forEach((keyId, hi, lo, tsMs) => entries.push({ keyId, tag: tagHex(hi, lo), tsMs }));
    const marks = (m: Map<number, number>) => [...m].map(([keyId, tsMs]) => ({ keyId, tsMs }));
    return {
      version: 1,
      capacity: this.capacity,
      windowMs: this.windowMs,
      entries,
      floors: marks(this.#floors),
      highwaters: marks(this.#highwaters),
    };
  }

  /** Rebuild from snapshot() output (e.g. after JSON and SQLite). opts override the stored
   *  capacity and window; a smaller capacity evicts the oldest entries, raising floors, so the
   *  invariant survives. High-water marks are raised to cover every entry and floor. */
  static restore(state: unknown, opts: Partial<ReplayOptions> = {}): Decoded<ReplayGuard, RestoreFailure> {
    const parsed = parseReplayState(state);
    if (!parsed.ok) return parsed;
    const s = parsed.value;
    const guard = new ReplayGuard({ capacity: s.capacity, windowMs: s.windowMs, ...opts });
    for (const f of s.floors) guard.#raiseFloor(f.keyId, f.tsMs);
    for (const h of s.highwaters) guard.#raiseHighwater(h.keyId, h.tsMs);
    for (const f of s.floors) guard.#raiseHighwater(f.keyId, f.tsMs);
    for (const e of s.entries) {
      const [hi, lo] = tagWords(e.tag);
      if (guard.#ring.has(e.keyId, hi, lo)) return fail('malformed_state');
      guard.#ring.push(e.keyId, hi, lo, e.tsMs);
      guard.#raiseHighwater(e.keyId, e.tsMs);
    }
    return ok(guard);
  }

  /** DESIGN.md: trusted clock, |ts - now| <= window; untrusted, ts > highwater(key) - window
   *  (the first packet of a key sets the mark). */
  #inWindow(keyId: number, tsMs: number, nowMs: number, clockTrusted: boolean): boolean {
    if (clockTrusted) return Math.abs(tsMs - nowMs) <= this.windowMs;
    const hw = this.#highwaters.get(keyId);
    return hw === undefined || tsMs > hw - this.windowMs;
  }

  #raiseFloor(keyId: number, tsMs: number): void {
    const floor = this.#floors.get(keyId);
    if (floor === undefined || tsMs > floor) this.#floors.set(keyId, tsMs);
  }

  #raiseHighwater(keyId: number, tsMs: number): void {
    const hw = this.#highwaters.get(keyId);
    if (hw === undefined || tsMs > hw) this.#highwaters.set(keyId, tsMs);
  }
}

/** Key ids are decoded uint32s and tags fixed-size codec output, so a bad one is a bug in the
 *  caller, not hostile input (STYLE.md principle 1: throw only for programmer errors). */
function assertIdentity(keyId: number, tag: Uint8Array): void {
  if (!Number.isInteger(keyId) || keyId < 0 || keyId > 0xffff_ffff || tag.length < TRUNCATED_TAG_SIZE) {
    throw new RangeError('replay guard needs a uint32 key id and a tag of at least 8 bytes');
  }
}

// ---- Persistence format --------------------------------------------------------------------
// Plain JSON-safe data (no -Infinity, no BigInt, tags as hex), so the store can write it as
// JSON or as rows. restore() accepts unknown: it comes back from disk and may be damaged.

export type RestoreFailure = 'malformed_state' | 'unsupported_version';

export interface ReplayEntryState {
  readonly keyId: number;
  /** The truncated tag, 2 * TRUNCATED_TAG_SIZE lowercase hex digits. */
  readonly tag: string;
  readonly tsMs: number;
}

export interface ReplayMarkState {
  readonly keyId: number;
  readonly tsMs: number;
}

export interface ReplayState {
  readonly version: 1;
  readonly capacity: number;
  readonly windowMs: number;
  /** Ring order, oldest first. */
  readonly entries: readonly ReplayEntryState[];
  readonly floors: readonly ReplayMarkState[];
  readonly highwaters: readonly ReplayMarkState[];
}

const TAG_HEX = /^[0-9a-f]{16}$/;

function parseReplayState(x: unknown): Decoded<ReplayState, RestoreFailure> {
  if (!isRecord(x)) return fail('malformed_state');
  if (x['version'] !== 1) return fail('unsupported_version');
  const { capacity, windowMs, entries, floors, highwaters } = x;
  if (!isCapacity(capacity) || !isWindow(windowMs)) return fail('malformed_state');
  if (!isArrayOf(entries, isEntry) || !isArrayOf(floors, isMark) || !isArrayOf(highwaters, isMark)) {
    return fail('malformed_state');
  }
  return ok({ version: 1, capacity, windowMs, entries, floors, highwaters });
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function isArrayOf<T>(x: unknown, item: (v: unknown) => v is T): x is T[] {
  return Array.isArray(x) && x.every(item);
}

function isNumberIn(x: unknown, min: number, max: number): x is number {
  return typeof x === 'number' && x >= min && x <= max;
}

function isKeyId(x: unknown): x is number {
  return isNumberIn(x, 0, 0xffff_ffff) && Number.isInteger(x);
}

function isMark(x: unknown): x is ReplayMarkState {
  return isRecord(x) && isKeyId(x['keyId']) && Number.isFinite(x['tsMs']);
}

function isEntry(x: unknown): x is ReplayEntryState {
  return isMark(x) && isRecord(x) && typeof x['tag'] === 'string' && TAG_HEX.test(x['tag']);
}

function isCapacity(x: unknown): x is number {
  return isNumberIn(x, MIN_RING_CAPACITY, MAX_RING_CAPACITY) && Number.isInteger(x);
}

function isWindow(x: unknown): x is number {
  return isNumberIn(x, 1, MAX_WINDOW_MS);
}

function tagHex(hi: number, lo: number): string {
  return hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
}

function tagWords(hex: string): [number, number] {
  return [Number.parseInt(hex.slice(0, 8), 16), Number.parseInt(hex.slice(8, 16), 16)];
}
