// SPDX-License-Identifier: MIT
// One replay domain: the in-memory guard and its durable copy. Native SPA keys and fwknop
// stanzas each have one (their windows differ: spa.window_s vs fwknop.max_age_s). If the
// database cannot be used, the domain keeps guarding from memory and says so loudly
// (DESIGN.md "State").

import type { Logger } from '../log/logger.ts';
import { ReplayGuard, type ReplayOptions } from '../spa/replay.ts';
import { ReplayStore, type AcceptedPacket, type ReplayNamespace } from '../store/replay-store.ts';

export class ReplayDomain {
  readonly guard: ReplayGuard;
  #store: ReplayStore | undefined;
  readonly #log: Logger;
  readonly #capacity: number;

  private constructor(guard: ReplayGuard, store: ReplayStore | undefined, log: Logger, capacity: number) {
    this.guard = guard;
    this.#store = store;
    this.#log = log;
    this.#capacity = capacity;
  }

  static open(path: string, ns: ReplayNamespace, opts: ReplayOptions, log: Logger): ReplayDomain {
    let store: ReplayStore | undefined;
    try {
      store = ReplayStore.open(path, ns);
      const restored = ReplayGuard.restore(store.load(opts.capacity, opts.windowMs), opts);
      if (restored.ok) return new ReplayDomain(restored.value, store, log, opts.capacity);
      log.error('stored replay state unreadable; starting empty', { reason: restored.reason, database: path, domain: ns });
    } catch (err) {
      store?.close();
      store = undefined;
      log.error('state database unusable: replay state is memory-only until restart', { database: path, domain: ns, error: String(err) });
    }
    return new ReplayDomain(new ReplayGuard(opts), store, log, opts.capacity);
  }

  /** Persist an accepted packet; called before anything is granted for it. */
  persist(accepted: AcceptedPacket): void {
    if (!this.#store) return;
    try {
      this.#store.recordAccept(accepted, this.#capacity);
    } catch (err) {
      this.#log.error('state database write failed: replay state is memory-only until restart', { error: String(err) });
      this.#store.close();
      this.#store = undefined;
    }
  }

  close(): void {
    this.#store?.close();
    this.#store = undefined;
  }
}
