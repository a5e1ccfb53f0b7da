// SPDX-License-Identifier: MIT
// In-memory twin of FirewallBackend for unit tests of pure logic (never the proof that
// the firewall works: test/e2e does that against real iptables).
import type { FirewallBackend, Grant, GrantChange, GuardSpec, PrefilterStatus, ReconcileReport } from '../../src/firewall/types.ts';

export class RecordingBackend implements FirewallBackend {
  readonly name = 'recording';
  readonly ops: string[] = [];
  readonly grants = new Map<string, Grant>();
  spec: GuardSpec | undefined;
  failNext = false;
  /** A call holding a change for a matching grant fails whole (a kernel refusal). */
  refuse: (g: Grant) => boolean = () => false;
  /** Changes per applyChanges call, in order. */
  readonly batches: number[] = [];
  /** Set while a call is in flight: the call waits for it (a slow firewall). */
  gate: Promise<void> | undefined;

  async start(spec: GuardSpec): Promise<void> {
    this.spec = spec;
    this.ops.push('start');
  }

  async update(spec: GuardSpec): Promise<void> {
    this.spec = spec;
    this.ops.push('update');
  }

  async reconcile(live: readonly Grant[], nowMs: number): Promise<ReconcileReport> {
    const ids = new Set(live.map((g) => g.id));
    const removed = [...this.grants.values()].filter((g) => !ids.has(g.id) || g.expiresAtMs <= nowMs).map((g) => g.id);
    for (const id of removed) this.grants.delete(id);
    const restored = live.filter((g) => !this.grants.has(g.id) && g.expiresAtMs > nowMs).map((g) => g.id);
    for (const g of live) if (g.expiresAtMs > nowMs) this.grants.set(g.id, g);
    this.ops.push(`reconcile -${removed.length} +${restored.length}`);
    return { removed, restored };
  }

  async applyGrant(grant: Grant, previous?: Grant): Promise<void> {
    if (this.failNext) {
      this.failNext = false;
      throw new Error('iptables-restore: exit 4');
    }
    this.grants.set(grant.id, grant);
    this.ops.push(previous ? `extend ${grant.id}` : `apply ${grant.id}`);
  }

  async revokeGrant(grant: Grant): Promise<void> {
    this.grants.delete(grant.id);
    this.ops.push(`revoke ${grant.id}`);
  }

  async prefilterStatus(): Promise<PrefilterStatus> {
    return { state: 'off' };
  }

  async applyChanges(changes: readonly GrantChange[]): Promise<void> {
    this.batches.push(changes.length);
    await this.gate;
    if (this.failNext || changes.some((c) => this.refuse(c.grant))) {
      this.failNext = false;
      throw new Error('iptables-restore: exit 4');
    }
    for (const c of changes) {
      if (c.op === 'revoke') await this.revokeGrant(c.grant);
      else await this.applyGrant(c.grant, c.previous);
    }
  }

  async stop(opts: { keepGuarding: boolean }): Promise<void> {
    this.grants.clear();
    this.ops.push(opts.keepGuarding ? 'stop keep' : 'stop');
  }
}
