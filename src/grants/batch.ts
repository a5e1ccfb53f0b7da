// SPDX-License-Identifier: MIT
// One batch of grant changes (GrantManager): what queued while the previous firewall call
// was in flight, planned into opens and closes that go to the backend as one applyChanges
// (docs/firewall.md "Batched changes"). Bookkeeping only; the manager owns the live grants.

import type { Grant, GrantChange, Service } from '../firewall/types.ts';
import type { GrantPlan } from '../policy/decide.ts';

export interface GrantEvent {
  readonly grant: Grant;
  readonly extended: boolean;
}

export interface Settle<T> {
  readonly resolve: (value: T) => void;
  readonly reject: (err: unknown) => void;
}

/** A request waiting for the next batch, in arrival order. */
export type Item =
  | { readonly kind: 'grant'; readonly keyName: string; readonly plan: GrantPlan; readonly source: string; readonly done: Settle<GrantEvent | undefined> }
  | { readonly kind: 'expire'; readonly id: string; readonly grantId: string }
  | { readonly kind: 'revokeId'; readonly grantId: string; readonly done: (found: boolean) => void }
  | { readonly kind: 'revokeMatching'; readonly keyName: string; readonly address: string; readonly done: (n: number) => void };

/** A grant to open or extend. Several requests for one tuple in one batch share it: the
 *  later ones extend it (longest expiry wins), as they would one after the other. */
export interface Open {
  readonly id: string;
  grant: Grant;
  expiresMono: number;
  /** The live grant it extends (its rules are replaced with no gap). */
  readonly prev: Grant | undefined;
  readonly waiters: Array<{ readonly extended: boolean; readonly done: Settle<GrantEvent | undefined> }>;
}

export interface Close {
  readonly grant: Grant;
  readonly why: string;
}

export class Batch {
  readonly opens = new Map<string, Open>();
  readonly closes: Close[] = [];
  /** Revocation requests answered once their closes went to the firewall. */
  readonly after: Array<() => void> = [];
  /** Opens of tuples that were not live: they count against maxGrants. */
  added = 0;
  items = 0;

  /** An item that would revoke a grant opened earlier in this batch waits for the next
   *  one: within a batch closes go first, so it would otherwise miss that grant. */
  conflicts(item: Item): boolean {
    switch (item.kind) {
      case 'grant': return false;
      case 'expire': return this.opens.has(item.id);
      case 'revokeId': return [...this.opens.values()].some((o) => o.grant.id === item.grantId);
      case 'revokeMatching': return [...this.opens.values()].some((o) => o.grant.key === item.keyName && o.grant.address === item.address);
    }
  }

  /** Closes first (a tuple closed and opened again in one batch gets a new id), then opens. */
  changes(): GrantChange[] {
    return [
      ...this.closes.map((c): GrantChange => ({ op: 'revoke', grant: c.grant })),
      ...[...this.opens.values()].map((o): GrantChange => (o.prev === undefined ? { op: 'apply', grant: o.grant } : { op: 'apply', grant: o.grant, previous: o.prev })),
    ];
  }
}

function serviceKey(services: readonly Service[]): string {
  return services.map((s) => `${s.proto}/${s.port}`).sort().join(',');
}

/** What makes two grants the same grant: re-authorising it extends instead of adding. */
export function identity(key: string, plan: Pick<GrantPlan, 'address' | 'prefix' | 'services' | 'forward'>): string {
  const fwd = plan.forward ? `>${plan.forward.address}:${plan.forward.port}` : '';
  return `${key}|${plan.address}/${plan.prefix ?? ''}|${serviceKey(plan.services)}${fwd}`;
}
