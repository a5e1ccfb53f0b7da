// SPDX-License-Identifier: MIT
// Live grants: one per (key, address, services). Re-authorising the same tuple extends
// the grant instead of adding rules (fwknop #14/#15/#158 are the counter-examples).
// Expiry runs on monotonic timers, so a wall-clock step neither shortens nor extends a
// grant (DESIGN.md fact 8); the wall-clock expiry only goes into rule tags, for
// reconciliation after a crash. Firewall operations run one at a time, in order.

import { randomBytes } from 'node:crypto';
import type { Clock, Cancel } from '../platform/clock.ts';
import type { FirewallBackend, Grant, Service } from '../firewall/types.ts';
import type { GrantPlan } from '../policy/decide.ts';
import type { Logger } from '../log/logger.ts';

export interface GrantEvent {
  readonly grant: Grant;
  readonly extended: boolean;
}

export interface GrantManagerDeps {
  readonly backend: FirewallBackend;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Live grants at most; a flood of valid packets cannot grow the ruleset without bound. */
  readonly maxGrants: number;
}

interface Live {
  grant: Grant;
  expiresMono: number;
  cancel: Cancel;
}

function serviceKey(services: readonly Service[]): string {
  return services.map((s) => `${s.proto}/${s.port}`).sort().join(',');
}

function identity(key: string, plan: GrantPlan): string {
  const fwd = plan.forward ? `>${plan.forward.address}:${plan.forward.port}` : '';
  return `${key}|${plan.address}/${plan.prefix ?? ''}|${serviceKey(plan.services)}${fwd}`;
}

export class GrantManager {
  readonly #deps: GrantManagerDeps;
  readonly #live = new Map<string, Live>();
  #queue: Promise<unknown> = Promise.resolve();

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
  grant(keyName: string, plan: GrantPlan): Promise<GrantEvent | undefined> {
    return this.#enqueue(async () => {
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
      await this.#deps.backend.applyGrant(grant, prev?.grant);
      prev?.cancel();
      const cancel = clock.schedule(expiresMono - clock.monoMs(), () => void this.#expire(id, grant.id));
      this.#live.set(id, { grant, expiresMono, cancel });
      return { grant, extended: prev !== undefined };
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

  /** Make the ruleset match the live grants; removes rules a crashed daemon left. */
  reconcile(): Promise<void> {
    return this.#enqueue(async () => {
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
