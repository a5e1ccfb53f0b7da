// SPDX-License-Identifier: MIT
// What both backends remember about the kernel prefilter (prefilter.ts; docs/firewall.md
// "Prefilter"): whether it is on, off or refused, and the drops counted by rules that a
// rebuild has since replaced. No I/O: the backend passes its guard transaction and counts in.

import type { Logger } from '../log/logger.ts';
import type { GuardSpec, PrefilterStatus } from './types.ts';

export interface PrefilterGuardOptions {
  /** An operator's reload (update) tries a refused prefilter again; the periodic start does
   *  not: it would fail, and log, every interval. */
  readonly retryRefused: boolean;
  /** Whether this failure is the firewall refusing the rules (not, say, a missing binary,
   *  which fails the same way without them). */
  readonly refused: (err: unknown) => boolean;
}

const withoutPrefilter = (spec: GuardSpec): GuardSpec => {
  const { spaPrefilter: _, ...rest } = spec;
  return rest;
};

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export class PrefilterState {
  #status: PrefilterStatus = { state: 'off' };
  /** Drops counted by rules that were since rebuilt (iptables resets rule counters). */
  #base = 0;
  readonly #log: Logger;
  readonly #tool: string;

  constructor(log: Logger, tool: string) {
    this.#log = log;
    this.#tool = tool;
  }

  get state(): PrefilterStatus['state'] {
    return this.#status.state;
  }

  /** Runs a guard transaction with the prefilter; if the firewall refuses it, the same
   *  without it: guarding matters more than the prefilter, and status says why it is off. */
  async guard(spec: GuardSpec, op: (s: GuardSpec) => Promise<void>, opts: PrefilterGuardOptions): Promise<void> {
    if (spec.spaPrefilter === undefined) {
      await op(spec);
      this.#status = { state: 'off' };
      return;
    }
    if (this.#status.state === 'refused' && !opts.retryRefused) return op(withoutPrefilter(spec));
    try {
      await op(spec);
      this.#status = { state: 'on' };
    } catch (err) {
      if (!opts.refused(err)) throw err;
      this.#log.error(`${this.#tool} refused the SPA prefilter; guarding without it`, { error: errorText(err) });
      await op(withoutPrefilter(spec));
      this.#status = { state: 'refused', reason: errorText(err) };
    }
  }

  /** Before the rules are rebuilt: keep what their counters had counted. */
  keep(counted: number | undefined): void {
    if (this.#status.state === 'on') this.#base += counted ?? 0;
  }

  /** The status with `counted`, what the live rules count now (undefined: unreadable). */
  report(counted: number | undefined): PrefilterStatus {
    if (this.#status.state !== 'on' || counted === undefined) return this.#status;
    return { ...this.#status, dropped: this.#base + counted };
  }
}
