// SPDX-License-Identifier: MIT
// iptables/ip6tables backend (DESIGN.md fact 3, "Firewall model"; STYLE.md principle 9).
//
// Chains, filter table, the same in both families (<P> is the chain prefix, POSTERN):
//   INPUT  position 1: -j <P>-IN          OUTPUT position 1: -j <P>-OUT
//   <P>-IN, in order, then fall through (RETURN) to the host's own rules:
//     1. capture ports (SPA, knock) ACCEPT, so their packets reach local delivery and thus
//        the raw socket even when the host's INPUT policy is DROP (DESIGN.md fact 1);
//     2. guarded services with conntrack ESTABLISHED,RELATED ACCEPT: connections made
//        during a grant survive its expiry;
//     3. -j <P>-GRANTS;
//     4. guarded services DROP (never REJECT: the port must look filtered).
//   <P>-GRANTS: one ACCEPT per (grant, service), `-s ADDR/32|/128 -p P --dport N`, tagged
//     `-m comment --comment "postern:<grantId>:exp=<epochSeconds>"` (fwknop's `_exp_<epoch>`
//     idea, fw_util_iptables.h), so a restarted daemon can remove what a crashed one left.
//   <P>-OUT: drops the RSTs the kernel would send from TCP capture ports (knock ports stay
//     silent). UDP capture ports need no rule: the daemon binds a sink socket on them.
//
// Every change is one `iptables-restore -w --noflush` transaction with the script on stdin,
// so a new grant costs one spawn whatever its number of services (fwknopd runs iptables
// five times per open). Deleting an absent rule fails a whole restore, so deletions are
// always built from a fresh `iptables -S <P>-GRANTS` listing; adds come before deletes in
// the same transaction, so an extension has no gap and leaves no duplicate (fwknop #14,
// PR #15, #158). Operations are serialized: a plan is never built from a listing that
// another operation is about to change.

import type { Logger } from '../log/logger.ts';
import type { Runner } from './exec.ts';
import {
  chainNames, checkGrant, checkGrantId, checkGuardSpec, grantRuleLines, listArgv, parseChainState,
  parseGrantListing, planStart, planStop, planUpdate, restoreArgv, restoreScript,
} from './iptables-rules.ts';
import type { ChainNames, ChainState, GrantListing, GrantRule } from './iptables-rules.ts';
import type { Family, FirewallBackend, Grant, GuardSpec, ReconcileReport } from './types.ts';

export interface IptablesBinaries {
  readonly iptables: string;
  readonly ip6tables: string;
  readonly iptablesRestore: string;
  readonly ip6tablesRestore: string;
}

/** Resolved through PATH; busybox boards set absolute paths in their board file. */
export const DEFAULT_IPTABLES_BINARIES: IptablesBinaries = {
  iptables: 'iptables',
  ip6tables: 'ip6tables',
  iptablesRestore: 'iptables-restore',
  ip6tablesRestore: 'ip6tables-restore',
};

export interface IptablesBackendOptions {
  readonly runner: Runner;
  readonly logger: Logger;
  readonly binaries?: Partial<IptablesBinaries>;
  /** Chains are <prefix>-IN, <prefix>-GRANTS, <prefix>-OUT. Default POSTERN. */
  readonly chainPrefix?: string;
}

export interface GrantPlan {
  /** Adds first, then deletes: one transaction, no gap. */
  readonly lines: readonly string[];
  /** Grant ids that got at least one rule added / deleted. */
  readonly added: ReadonlySet<string>;
  readonly deleted: ReadonlySet<string>;
}

/** Makes the in-scope tagged rules equal exactly the rules of `desired`: missing ones are
 *  added, everything else in scope (stale expiry, unknown id, duplicate) is deleted. */
export function planGrants(
  names: ChainNames, existing: readonly GrantRule[], desired: readonly Grant[], inScope: (r: GrantRule) => boolean,
): GrantPlan {
  const want = new Map<string, { line: string; id: string }>();
  for (const g of desired) for (const [key, line] of grantRuleLines(names, g)) want.set(key, { line, id: g.id });
  const have = new Set<string>();
  const deletes: string[] = [];
  const deleted = new Set<string>();
  for (const r of existing) {
    if (!inScope(r)) continue;
    if (r.key !== null && want.has(r.key) && !have.has(r.key)) have.add(r.key);
    else {
      deletes.push(`-D ${names.grants} ${r.spec}`);
      deleted.add(r.grantId);
    }
  }
  const adds = [...want].filter(([key]) => !have.has(key)).map(([, w]) => w);
  return { lines: [...adds.map((w) => w.line), ...deletes], added: new Set(adds.map((w) => w.id)), deleted };
}

export interface ReconcilePlan extends ReconcileReport {
  readonly lines: readonly string[];
  /** Live grants that failed validation: treated as expired (fail closed). */
  readonly invalid: readonly string[];
}

/** Reconcile for one family: the tagged rules become exactly those of the live grants that
 *  have not expired at nowMs. `removed` lists ids that lost all standing (expired, unknown,
 *  invalid); a live grant whose rules carried a stale expiry is re-added and listed in
 *  `restored` only. Untagged rules are out of scope and stay. */
export function planReconcile(
  names: ChainNames, family: Family, existing: readonly GrantRule[], live: readonly Grant[], nowMs: number,
): ReconcilePlan {
  const invalid: string[] = [];
  const active = live.filter((g) => {
    if (g.family !== family || g.expiresAtMs <= nowMs) return false;
    try {
      checkGrant(g);
      return true;
    } catch {
      invalid.push(String(g.id));
      return false;
    }
  });
  const activeIds = new Set(active.map((g) => g.id));
  const plan = planGrants(names, existing, active, () => true);
  const removed = [...plan.deleted].filter((id) => !activeIds.has(id));
  return { lines: plan.lines, removed, restored: [...plan.added], invalid };
}

export class IptablesBackend implements FirewallBackend {
  readonly name = 'iptables';
  // Public methods are async so that a validation error is a rejection, never a sync throw.
  readonly #run: Runner;
  readonly #log: Logger;
  readonly #bins: IptablesBinaries;
  readonly #names: ChainNames;
  /** False once start() found ip6tables unusable. */
  #ipv6 = true;
  /** Grant ids whose rules this process added or saw; a repeated add takes the listing path. */
  readonly #installed: Record<Family, Set<string>> = { 4: new Set(), 6: new Set() };
  #queue: Promise<unknown> = Promise.resolve();

  constructor(opts: IptablesBackendOptions) {
    this.#run = opts.runner;
    this.#log = opts.logger;
    this.#bins = { ...DEFAULT_IPTABLES_BINARIES, ...opts.binaries };
    this.#names = chainNames(opts.chainPrefix);
  }

  async start(spec: GuardSpec): Promise<void> {
    checkGuardSpec(spec);
    return this.#serial(async () => {
      for (const f of [4, 6] as const) {
        const state = await this.#readState(f, f === 6);
        if (state !== null) await this.#restore(f, planStart(this.#names, spec, state));
      }
      this.#log.info('guarding', { guarded: spec.guarded.length, capture: spec.capture.length, ipv6: this.#ipv6 });
    });
  }

  async update(spec: GuardSpec): Promise<void> {
    checkGuardSpec(spec);
    return this.#serial(async () => {
      for (const f of this.#families()) await this.#restore(f, planUpdate(this.#names, spec));
    });
  }

  reconcile(live: readonly Grant[], nowMs: number): Promise<ReconcileReport> {
    return this.#serial(async () => {
      // Sets: an unknown id can have rules in both families; report it once.
      const removed = new Set<string>();
      const restored = new Set<string>();
      for (const f of this.#families()) {
        const listing = await this.#listGrants(f);
        if (listing.foreign.length > 0) {
          this.#log.warn('untagged rules in grants chain left alone', { family: f, count: listing.foreign.length });
        }
        const plan = planReconcile(this.#names, f, listing.rules, live, nowMs);
        await this.#restore(f, plan.lines);
        if (plan.invalid.length > 0) this.#log.error('invalid live grants removed', { ids: plan.invalid.join(',') });
        const kept = live.filter((g) => g.family === f && g.expiresAtMs > nowMs && !plan.invalid.includes(g.id));
        this.#installed[f] = new Set(kept.map((g) => g.id));
        plan.removed.forEach((id) => removed.add(id));
        plan.restored.forEach((id) => restored.add(id));
      }
      const lost = live.filter((g) => g.family === 6 && g.expiresAtMs > nowMs && !this.#ipv6).length;
      if (lost > 0) this.#log.warn('IPv6 grants not applied: ip6tables unusable', { count: lost });
      if (removed.size + restored.size > 0) {
        this.#log.info('reconciled', { removed: [...removed].join(','), restored: [...restored].join(',') });
      }
      return { removed: [...removed], restored: [...restored] };
    });
  }

  async applyGrant(grant: Grant, previous?: Grant): Promise<void> {
    checkGrant(grant);
    if (previous !== undefined) checkGrant(previous);
    return this.#serial(async () => {
      this.#requireFamily(grant.family);
      if (previous === undefined && !this.#installed[grant.family].has(grant.id)) {
        // A new id has no rules yet: one spawn, no listing (the time-to-open path).
        await this.#restore(grant.family, [...grantRuleLines(this.#names, grant).values()]);
      } else {
        await this.#replace(grant, previous ?? grant);
      }
      this.#installed[grant.family].add(grant.id);
    });
  }

  async revokeGrant(grant: Grant): Promise<void> {
    checkGrantId(grant);
    return this.#serial(async () => {
      if (grant.family === 6 && !this.#ipv6) return;
      const { rules } = await this.#listGrants(grant.family);
      const plan = planGrants(this.#names, rules, [], (r) => r.grantId === grant.id);
      await this.#restore(grant.family, plan.lines);
      this.#installed[grant.family].delete(grant.id);
    });
  }

  stop(opts: { readonly keepGuarding: boolean }): Promise<void> {
    return this.#serial(async () => {
      for (const f of this.#families()) {
        const state = await this.#readState(f, false);
        if (state !== null) await this.#stopFamily(f, state, opts.keepGuarding);
        this.#installed[f].clear();
      }
      this.#log.info(opts.keepGuarding ? 'grants removed, still guarding' : 'rules removed');
    });
  }

  async #replace(grant: Grant, previous: Grant): Promise<void> {
    const ids = new Set([grant.id, previous.id]);
    for (const f of new Set([grant.family, previous.family])) {
      if (f === 6 && !this.#ipv6) continue; // no IPv6 rules can exist
      const desired = f === grant.family ? [grant] : [];
      const { rules } = await this.#listGrants(f);
      const plan = planGrants(this.#names, rules, desired, (r) => ids.has(r.grantId));
      await this.#restore(f, plan.lines);
    }
    if (previous.id !== grant.id) this.#installed[previous.family].delete(previous.id);
  }

  async #stopFamily(f: Family, state: ChainState, keepGuarding: boolean): Promise<void> {
    try {
      await this.#restore(f, planStop(this.#names, state, keepGuarding));
    } catch (err) {
      // Removal failed as a whole (e.g. a foreign rule still jumps to our chains): at
      // least take the grants away, so a failed stop never leaves access open.
      if (!keepGuarding && state.chains.has(this.#names.grants)) {
        await this.#restore(f, [`-F ${this.#names.grants}`]).catch(() => undefined);
      }
      throw err;
    }
  }

  #serial<T>(op: () => Promise<T>): Promise<T> {
    const result = this.#queue.then(op, op);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  #families(): Family[] {
    return this.#ipv6 ? [4, 6] : [4];
  }

  #requireFamily(f: Family): void {
    if (f === 6 && !this.#ipv6) throw new Error('ip6tables is unusable (see the warning at start): no IPv6 grants');
  }

  #bin(f: Family): { list: string; restore: string } {
    const b = this.#bins;
    return f === 4 ? { list: b.iptables, restore: b.iptablesRestore } : { list: b.ip6tables, restore: b.ip6tablesRestore };
  }

  /** Whole filter table listing. With `optional` (IPv6 at start) failure disables the family. */
  async #readState(f: Family, optional: boolean): Promise<ChainState | null> {
    const argv = listArgv(this.#bin(f).list);
    let failure: string;
    try {
      const r = await this.#exec(argv);
      if (r.code === 0) {
        if (optional) this.#ipv6 = true;
        return parseChainState(r.stdout, this.#names);
      }
      failure = `${argv.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`;
    } catch (err) {
      failure = err instanceof Error ? err.message : String(err);
    }
    if (!optional) throw new Error(failure);
    this.#ipv6 = false;
    this.#log.warn('ip6tables unusable; IPv6 is NOT guarded by postern', { error: failure });
    return null;
  }

  async #listGrants(f: Family): Promise<GrantListing> {
    const argv = listArgv(this.#bin(f).list, this.#names.grants);
    const r = await this.#exec(argv);
    if (r.code !== 0) throw new Error(`${argv.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`);
    return parseGrantListing(r.stdout, f, this.#names.grants);
  }

  async #restore(f: Family, lines: readonly string[]): Promise<void> {
    if (lines.length === 0) return;
    const argv = restoreArgv(this.#bin(f).restore);
    const r = await this.#exec(argv, restoreScript(lines));
    if (r.code !== 0) throw new Error(`${argv.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`);
  }

  #exec(argv: readonly string[], input?: string): ReturnType<Runner> {
    this.#log.debug('run', () => ({ argv: JSON.stringify(argv), ...(input === undefined ? {} : { stdin: input }) }));
    return input === undefined ? this.#run(argv) : this.#run(argv, { input });
  }
}
