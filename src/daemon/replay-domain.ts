// SPDX-License-Identifier: MIT
// One replay domain: the in-memory guard and its durable copy in the state store. Native
// SPA keys and fwknop stanzas each have one (their windows differ: spa.window_s vs
// fwknop.max_age_s). If the store is memory-only, the guard alone keeps refusing replays
// until restart (DESIGN.md "State").

import type { Logger } from '../log/logger.ts';
import { ReplayGuard, type ReplayOptions } from '../spa/replay.ts';
import type { AcceptedPacket, ReplayNamespace } from '../store/replay-store.ts';
import type { Store } from '../store/store.ts';

export class ReplayDomain {
  readonly guard: ReplayGuard;
  readonly #store: Store;
  readonly #ns: ReplayNamespace;
  readonly #capacity: number;

  private constructor(guard: ReplayGuard, store: Store, ns: ReplayNamespace, capacity: number) {
    this.guard = guard;
    this.#store = store;
    this.#ns = ns;
    this.#capacity = capacity;
  }

  static open(store: Store, ns: ReplayNamespace, opts: ReplayOptions, log: Logger): ReplayDomain {
    const state = store.loadReplay(ns, opts.capacity, opts.windowMs);
    if (state) {
      const restored = ReplayGuard.restore(state, opts);
      if (restored.ok) return new ReplayDomain(restored.value, store, ns, opts.capacity);
      log.error('stored replay state unreadable; starting empty', { reason: restored.reason, domain: ns });
    }
    return new ReplayDomain(new ReplayGuard(opts), store, ns, opts.capacity);
  }

  /** Persist an accepted packet; called before anything is granted for it. */
  persist(accepted: AcceptedPacket): void {
    this.#store.recordAccept(this.#ns, accepted, this.#capacity);
  }
}
