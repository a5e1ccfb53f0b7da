// SPDX-License-Identifier: MIT
// Per-key-id token buckets capping public-key work (issue 10: X25519 + Ed25519 cost tens of
// microseconds, so a flood carrying a known technician key id must not buy unbounded CPU).
// One bucket per configured technician key, created on first use: the map never holds more
// entries than the config has keys, whatever arrives. Time is injected (monotonic ms).

export interface BucketOptions {
  /** Tokens a full bucket holds: a burst of this many packets is verified at once. */
  readonly burst: number;
  /** Tokens added per second. */
  readonly perSecond: number;
}

interface Bucket {
  tokens: number;
  lastMs: number;
}

export class KeyBuckets {
  readonly #opts: BucketOptions;
  readonly #buckets = new Map<number, Bucket>();
  /** Tokens taken so far: the number of public-key verifications the buckets allowed. */
  spent = 0;

  constructor(opts: BucketOptions) {
    if (!(opts.burst >= 1) || !(opts.perSecond > 0)) throw new RangeError('bucket needs burst >= 1 and perSecond > 0');
    this.#opts = opts;
  }

  /** Take one token for `keyId` at monotonic time `nowMs`; false when the bucket is empty. */
  take(keyId: number, nowMs: number): boolean {
    let b = this.#buckets.get(keyId);
    if (b === undefined) {
      b = { tokens: this.#opts.burst, lastMs: nowMs };
      this.#buckets.set(keyId, b);
    }
    // A clock that went backwards refills nothing (monotonic clocks do not, but be safe).
    const elapsed = Math.max(0, nowMs - b.lastMs);
    b.tokens = Math.min(this.#opts.burst, b.tokens + (elapsed * this.#opts.perSecond) / 1000);
    b.lastMs = nowMs;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    this.spent++;
    return true;
  }

  /** Forget buckets of keys no longer configured (after a reload). */
  retain(keyIds: ReadonlySet<number>): void {
    for (const id of this.#buckets.keys()) if (!keyIds.has(id)) this.#buckets.delete(id);
  }

  get size(): number {
    return this.#buckets.size;
  }
}
