// SPDX-License-Identifier: MIT
// Live grants: one per (key, address, services). Re-authorising the same tuple extends
// the grant instead of adding rules (fwknop #14/#15/#158 are the counter-examples).
// Expiry runs on monotonic timers, so a wall-clock step neither shortens nor extends a
// grant (DESIGN.md fact 8); the wall-clock expiry only goes into rule tags, for
// reconciliation after a crash. Firewall operations run one at a time, in order.
// With a journal (the state store), every grant is saved before the firewall applies it
// and removed when it closes; restore() brings the journal's open grants back at start.

import { randomBytes } from 'node:crypto';
import type { Clock, Cancel } from '../platform/clock.ts';
import type { FirewallBackend, Grant, Service } from '../firewall/types.ts';
import type { GrantPlan } from '../policy/decide.ts';
import type { Logger } from '../log/logger.ts';

export interface GrantEvent {
  readonly grant: Grant;
  readonly extended: boolean;
}

/** Where grants are persisted (src/store via the daemon). Must not throw. */
export interface GrantJournal {
  save(grant: Grant, source: string, durationMs: number): void;
  remove(id: string): void;
}

/** A grant as the journal returned it at start. */
export interface JournalGrant {
  readonly grant: Grant;
  readonly durationMs: number;
}

export interface GrantManagerDeps {
  readonly backend: FirewallBackend;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Live grants at most; a flood of valid packets cannot grow the ruleset without bound. */
  readonly maxGrants: number;
  readonly journal?: GrantJournal;
  /** Told about every grant that closes (expired, closed by client, revoked). */
  readonly onClose?: (grant: Grant, why: string) => void;
}

interface Live {
  grant: Grant;
  expiresMono: number;
  cancel: Cancel;
}

function serviceKey(services: readonly Service[]): string {
  return services.map((s) => `${s.proto}/${s.port}`).sort().join(',');
}

function identity(key: string, plan: Pick<GrantPlan, 'address' | 'prefix' | 'services' | 'forward'>): string {
  const fwd = plan.forward ? `>${plan.forward.address}:${plan.forward.port}` : '';
  return `${key}|${plan.address}/${plan.prefix ?? ''}|${serviceKey(plan.services)}${fwd}`;
}

/** Grant requests waiting for the firewall at most. Every firewall change is one serialised
 *  backend call (tens of ms); a valid key sending faster than that would otherwise grow the
 *  queue, and the expiries waiting behind it, without bound (issue 9 bench). Past the bound a
 *  request is refused like one past maxGrants (grant_limit); the client's retry gets through. */
export const MAX_PENDING_GRANTS = 64;

/** Wall/monotonic disagreement tolerated before a grant's wall-clock expiry is re-anchored. */
const REANCHOR_SLACK_MS = 2000;

export class GrantManager {
  readonly #deps: GrantManagerDeps;
  readonly #live = new Map<string, Live>();
  #queue: Promise<unknown> = Promise.resolve();
  #pending = 0;

  constructor(deps: GrantManagerDeps) {
    this.#deps = deps;
  }

  /** Serialise firewall operations; a failed one does not stop the next. */
  #enqueue<T>(op: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(op, op);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  list(): Grant[] {
    return [...this.#live.values()].map((l) => l.grant);
  }

  get size(): number {
    return this.#live.size;
  }

  /** Open (or extend) a grant. Resolves once the firewall has it. */
  grant(keyName: string, plan: GrantPlan, source: string = plan.address): Promise<GrantEvent | undefined> {
    if (this.#pending >= MAX_PENDING_GRANTS) return Promise.resolve(undefined);
    this.#pending++;
    return this.#enqueue(async () => {
      this.#pending--;
      const id = identity(keyName, plan);
      const prev = this.#live.get(id);
      if (!prev && this.#live.size >= this.#deps.maxGrants) return undefined;
      const { clock } = this.#deps;
      const durationMs = plan.durationS * 1000;
      // Extension never shortens a grant that is already open for longer.
      const expiresMono = Math.max(prev?.expiresMono ?? 0, clock.monoMs() + durationMs);
      const grant: Grant = {
        id: prev?.grant.id ?? randomBytes(6).toString('hex'),
        key: keyName,
        family: plan.family,
        address: plan.address,
        services: plan.services,
        ...(plan.prefix !== undefined && { prefix: plan.prefix }),
        ...(plan.forward && { forward: plan.forward }),
        expiresAtMs: Math.ceil(clock.wallMs() + (expiresMono - clock.monoMs())),
      };
      // Saved first: a crash during apply then restores the grant rather than losing it.
      this.#deps.journal?.save(grant, source, Math.max(durationMs, expiresMono - clock.monoMs()));
      try {
        await this.#deps.backend.applyGrant(grant, prev?.grant);
      } catch (err) {
        if (!prev) this.#deps.journal?.remove(grant.id);
        throw err;
      }
      prev?.cancel();
      this.#track(id, grant, expiresMono);
      return { grant, extended: prev !== undefined };
    });
  }

  #track(id: string, grant: Grant, expiresMono: number): void {
    const { clock } = this.#deps;
    const cancel = clock.schedule(expiresMono - clock.monoMs(), () => void this.#expire(id, grant.id));
    this.#live.set(id, { grant, expiresMono, cancel });
  }

  /** At start, before reconcile(): journal grants still open come back with the time they
   *  have left by the wall clock, never more than their full duration (a clock stepped back
   *  cannot lengthen them); expired ones, and any superseded by a later grant for the same
   *  tuple, leave the journal. reconcile() then re-adds missing rules and removes every
   *  other rule. Returns the restored and the dropped grants. */
  restore(stored: readonly JournalGrant[]): Promise<{ restored: Grant[]; expired: Grant[] }> {
    return this.#enqueue(async () => {
      const { clock } = this.#deps;
      const restored: Grant[] = [];
      const expired: Grant[] = [];
      // Latest expiry first: of two rows for one tuple, the longer one is kept.
      for (const s of [...stored].sort((a, b) => b.grant.expiresAtMs - a.grant.expiresAtMs)) {
        const left = Math.min(s.grant.expiresAtMs - clock.wallMs(), s.durationMs);
        if (left <= 0 || this.#live.size >= this.#deps.maxGrants || this.#live.has(identity(s.grant.key, s.grant))) {
          this.#deps.journal?.remove(s.grant.id);
          expired.push(s.grant);
          continue;
        }
        const grant: Grant = { ...s.grant, expiresAtMs: Math.ceil(clock.wallMs() + left) };
        this.#track(identity(grant.key, grant), grant, clock.monoMs() + left);
        restored.push(grant);
      }
      return { restored, expired };
    });
  }

  /** Close one grant by id (postern grants revoke ID). Resolves false when no such grant. */
  revokeById(grantId: string): Promise<boolean> {
    return this.#enqueue(async () => {
      for (const [id, live] of this.#live) {
        if (live.grant.id !== grantId) continue;
        live.cancel();
        this.#live.delete(id);
        await this.#revoke(live.grant, 'revoked');
        return true;
      }
      return false;
    });
  }

  #expire(id: string, grantId: string): Promise<void> {
    return this.#enqueue(async () => {
      const live = this.#live.get(id);
      if (!live || live.grant.id !== grantId || live.expiresMono > this.#deps.clock.monoMs() + 1) return;
      this.#live.delete(id);
      await this.#revoke(live.grant, 'expired');
    });
  }

  async #revoke(grant: Grant, why: string): Promise<void> {
    this.#deps.journal?.remove(grant.id);
    this.#deps.onClose?.(grant, why);
    try {
      await this.#deps.backend.revokeGrant(grant);
      this.#deps.logger.info('grant closed', { grant: grant.id, key: grant.key, address: grant.address, why });
    } catch (err) {
      // The rule carries its expiry; the periodic reconcile removes it.
      this.#deps.logger.error('grant removal failed; reconcile will retry', { grant: grant.id, error: String(err) });
    }
  }

  /** Close every grant of `keyName` for `address` early (SPA "close" message). */
  revokeMatching(keyName: string, address: string): Promise<number> {
    return this.#enqueue(async () => {
      let n = 0;
      for (const [id, live] of this.#live) {
        if (live.grant.key !== keyName || live.grant.address !== address) continue;
        live.cancel();
        this.#live.delete(id);
        await this.#revoke(live.grant, 'closed by client');
        n++;
      }
      return n;
    });
  }

  /** Re-anchor each live grant's wall-clock expiry to now from its monotonic one, the truth:
   *  after a wall-clock jump (NTP step, no RTC: DESIGN.md fact 8) the backends, which compare
   *  expiresAtMs with wall time, would otherwise drop a grant early (+1 h) or give the kernel
   *  a timeout past the grant (-1 year), found by test/e2e/clock.test.ts. Within the slack
   *  nothing changes, so ordinary drift never rewrites rules (fwknop #270). */
  #reanchor(): void {
    const { clock } = this.#deps;
    const wall = clock.wallMs();
    const mono = clock.monoMs();
    for (const live of this.#live.values()) {
      const expiresAtMs = Math.ceil(wall + (live.expiresMono - mono));
      if (Math.abs(expiresAtMs - live.grant.expiresAtMs) > REANCHOR_SLACK_MS) live.grant = { ...live.grant, expiresAtMs };
    }
  }

  /** Make the ruleset match the live grants; removes rules a crashed daemon left. */
  reconcile(): Promise<void> {
    return this.#enqueue(async () => {
      this.#reanchor();
      const report = await this.#deps.backend.reconcile(this.list(), this.#deps.clock.wallMs());
      if (report.removed.length + report.restored.length > 0) {
        this.#deps.logger.info('firewall reconciled', {
          removed: report.removed.join(',') || undefined,
          restored: report.restored.join(',') || undefined,
        });
      }
    });
  }

  /** Cancel timers (the firewall backend's stop() removes rules). */
  stop(): Promise<void> {
    return this.#enqueue(async () => {
      for (const live of this.#live.values()) live.cancel();
      this.#live.clear();
    });
  }
}
