// SPDX-License-Identifier: MIT
// iptables/ip6tables backend (DESIGN.md fact 3, "Firewall model"; STYLE.md principle 9).
//
// Chains, the same in both families (<P> is the chain prefix, POSTERN):
//   filter INPUT position 1: -j <P>-IN     filter OUTPUT position 1: -j <P>-OUT
//   <P>-IN, in order, then fall through (RETURN) to the host's own rules:
//     1. capture ports (SPA, knock) ACCEPT, so their packets reach local delivery and thus
//        the raw socket even when the host's INPUT policy is DROP (DESIGN.md fact 1);
//     2. guarded services with conntrack ESTABLISHED,RELATED ACCEPT: connections made
//        during a grant survive its expiry;
//     3. -j <P>-GRANTS;
//     4. guarded services DROP (never REJECT: the port must look filtered).
//   <P>-GRANTS: one ACCEPT per (grant, service), `-s ADDR/PREFIX -p P --dport N` (/32 or
//     /128 unless the grant names a network), tagged with a comment
//     "postern:<grantId>:exp=<epochSeconds>" (fwknop's `_exp_<epoch>`, fw_util_iptables.h),
//     so a restarted daemon can remove what a crashed one left.
//   <P>-OUT: drops the RSTs the kernel would send from TCP capture ports (knock ports stay
//     silent). UDP capture ports need no rule: the daemon binds a sink socket on them.
// With spec.forwarding (a router with forwarding grants), also:
//   nat PREROUTING position 1: -j <P>-DNAT    filter FORWARD position 1: -j <P>-FWD
//   <P>-DNAT: per forwarding grant `-s SRC -p P --dport EXT ... -j DNAT --to-destination
//     T:PORT`, tagged like grant rules. Granted packets are rewritten before routing, so
//     they are forwarded and never reach INPUT, where the external port is guarded.
//   <P>-FWD: FORWARD_ESTABLISHED first (iptables-rules.ts says why), then per forwarding
//     grant `-s SRC -d T -p P --dport PORT --ctstate DNAT ... -j ACCEPT`, tagged. A
//     forwarding grant has no rule in <P>-GRANTS: that would open the router's own port.
//
// Every change is one `iptables-restore -w --noflush` process with the script on stdin,
// so a new grant costs one spawn whatever its number of services (fwknopd runs iptables
// five times per open). Each `*table ... COMMIT` block is its own transaction (checked
// with nft and legacy), so a script that touches nat and filter is ordered to be safe at
// each boundary: FORWARD accepts are added before their DNATs and removed after them
// (iptables-plan.ts grantSections). Deleting an absent rule fails a whole block, so
// deletions are always built from fresh `iptables -S <chain>` listings; adds come before
// deletes, so an extension has no gap and leaves no duplicate (fwknop #14, PR #15, #158).
// Operations are serialized: a plan is never built from a listing that another operation
// is about to change. applyChanges puts a batch of grant changes (GrantManager coalesces
// them) into at most one listing and one restore per family. The nat table is only ever
// listed or touched when forwarding is on (or its chains are left over), so hosts without
// forwarding never load it.

import { guardLogger } from './guard-log.ts';
import type { Logger } from '../log/logger.ts';
import type { Runner } from './exec.ts';
import { chainNames, checkGrant, checkGrantId, checkGuardSpec, parseGrantListing, TABLE_OF } from './iptables-rules.ts';
import type { ChainNames, GrantChain, GrantRule, TableName } from './iptables-rules.ts';
import {
  guardIntact, listArgv, parseChainState, planGrants, planReconcile, planStart, planStartNat, planStop, planStopNat, planUpdate,
  restoreArgv, restoreSections,
} from './iptables-plan.ts';
import type { ChainRules, ChainState, RestoreSection } from './iptables-plan.ts';
import { parseIptablesCounter } from './prefilter.ts';
import { PrefilterState } from './prefilter-state.ts';
import type { Family, FirewallBackend, Grant, GrantChange, GuardSpec, PrefilterStatus, ReconcileReport } from './types.ts';

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
  /** Chains are <prefix>-IN, -GRANTS, -OUT, -FWD and (nat) -DNAT. Default POSTERN. */
  readonly chainPrefix?: string;
}

const filterOnly = (lines: readonly string[]): RestoreSection[] => [{ table: 'filter', lines }];
const NAT_UNUSABLE = 'nat table unusable; no forwarding grants in this family';

export class IptablesBackend implements FirewallBackend {
  readonly name = 'iptables';
  // Public methods are async so that a validation error is a rejection, never a sync throw.
  readonly #run: Runner;
  readonly #log: Logger;
  readonly #bins: IptablesBinaries;
  readonly #names: ChainNames;
  /** False once start() found ip6tables unusable. */
  #ipv6 = true;
  readonly #prefilter: PrefilterState;
  /** Per family, the spec whose guard rules this process last wrote (JSON): a periodic
   *  start that finds them intact rewrites nothing. */
  readonly #written: Record<Family, string | undefined> = { 4: undefined, 6: undefined };
  readonly #noteGuarding: ReturnType<typeof guardLogger>;
  /** Per family: <P>-FWD and <P>-DNAT are set up, so forwarding grants can be applied. */
  readonly #forwarding: Record<Family, boolean> = { 4: false, 6: false };
  /** Grant ids whose rules this process added or saw; a repeated add takes the listing path. */
  readonly #installed: Record<Family, Set<string>> = { 4: new Set(), 6: new Set() };
  #queue: Promise<unknown> = Promise.resolve();

  constructor(opts: IptablesBackendOptions) {
    this.#run = opts.runner;
    this.#log = opts.logger;
    this.#noteGuarding = guardLogger(opts.logger);
    this.#prefilter = new PrefilterState(opts.logger, 'iptables');
    this.#bins = { ...DEFAULT_IPTABLES_BINARIES, ...opts.binaries };
    this.#names = chainNames(opts.chainPrefix);
  }

  async start(spec: GuardSpec): Promise<void> {
    checkGuardSpec(spec);
    // Refused (no xt_u32 in the kernel, e.g. a board without kmod-ipt-u32): guard without it.
    return this.#serial(() => this.#prefilter.guard(spec, (s) => this.#startAll(s), { retryRefused: false, refused: () => true }));
  }

  async #startAll(spec: GuardSpec): Promise<void> {
    for (const f of [4, 6] as const) {
      const state = f === 4
        ? await this.#readTable(4, 'filter')
        : await this.#tryRead(6, 'filter', 'ip6tables unusable; IPv6 is NOT guarded by postern');
      if (f === 6) this.#ipv6 = state !== null;
      if (state !== null) await this.#startFamily(f, spec, state);
    }
    const forwarding = this.#families().filter((f) => this.#forwarding[f]).map((f) => `ipv${f}`).join(',');
    this.#noteGuarding({ guarded: spec.guarded.length, capture: spec.capture.length, ipv6: this.#ipv6, forwarding: forwarding || 'off' });
  }

  async update(spec: GuardSpec): Promise<void> {
    checkGuardSpec(spec);
    return this.#serial(() => this.#prefilter.guard(spec, (s) => this.#updateAll(s), { retryRefused: true, refused: () => true }));
  }

  /** Serialised with start/update, so a rebuild never runs between reading the counters and
   *  adding the kept count (which would count a rebuilt chain's packets twice). */
  prefilterStatus(): Promise<PrefilterStatus> {
    return this.#serial(async () => this.#prefilter.report(this.#prefilter.state === 'on' ? await this.#prefilterCount() : undefined));
  }

  /** The tagged drop rules' packet counters in <P>-IN, both families added up. */
  async #prefilterCount(): Promise<number | undefined> {
    let dropped: number | undefined;
    for (const f of this.#families()) {
      const n = await this.#prefilterCountOf(f);
      if (n !== undefined) dropped = (dropped ?? 0) + n;
    }
    return dropped;
  }

  async #prefilterCountOf(f: Family): Promise<number | undefined> {
    const r = await this.#exec([this.#bin(f).list, '-w', '-v', '-S', this.#names.input]);
    return r.code === 0 ? parseIptablesCounter(r.stdout) : undefined;
  }

  /** Before <P>-IN is rebuilt, which resets its rule counters: keep what they counted. */
  async #keepPrefilterCount(f: Family): Promise<void> {
    if (this.#prefilter.state === 'on') this.#prefilter.keep(await this.#prefilterCountOf(f));
  }

  async #updateAll(spec: GuardSpec): Promise<void> {
    for (const f of this.#families()) {
      // Forwarding switched on by a config reload: set its chains up as start does. Switched
      // off, the chains stay (their grants expire as usual) until stop or the next start.
      if (spec.forwarding === true && !this.#forwarding[f]) {
        await this.#startFamily(f, spec, await this.#readTable(f, 'filter'));
      } else {
        this.#written[f] = undefined;
        await this.#keepPrefilterCount(f);
        await this.#restore(f, filterOnly(planUpdate(this.#names, spec, f)));
        this.#written[f] = JSON.stringify(spec);
      }
    }
  }

  reconcile(live: readonly Grant[], nowMs: number): Promise<ReconcileReport> {
    return this.#serial(async () => {
      // Sets: an unknown id can have rules in both families; report it once.
      const removed = new Set<string>();
      const restored = new Set<string>();
      for (const f of this.#families()) {
        const existing = await this.#listChains(f, this.#chainsIn(f), true);
        const plan = planReconcile(this.#names, f, existing, live, nowMs);
        await this.#restore(f, plan.sections);
        if (plan.invalid.length > 0) this.#log.error('invalid live grants removed', { ids: plan.invalid.join(',') });
        if (plan.unplaced.length > 0) {
          this.#log.warn('forwarding grants not applied: no forwarding chains', { family: f, ids: plan.unplaced.join(',') });
        }
        const skip = new Set([...plan.invalid, ...plan.unplaced]);
        const kept = live.filter((g) => g.family === f && g.expiresAtMs > nowMs && !skip.has(g.id));
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

  applyGrant(grant: Grant, previous?: Grant): Promise<void> {
    return this.applyChanges([previous === undefined ? { op: 'apply', grant } : { op: 'apply', grant, previous }]);
  }

  revokeGrant(grant: Grant): Promise<void> {
    return this.applyChanges([{ op: 'revoke', grant }]);
  }

  /** Per family, one iptables-restore for the whole batch (GrantManager coalesces changes):
   *  only new grants take it alone, with no listing (the time-to-open path); anything else
   *  lists the grant chains once and plans every change from that listing. */
  async applyChanges(changes: readonly GrantChange[]): Promise<void> {
    for (const c of changes) {
      if (c.op === 'revoke') checkGrantId(c.grant);
      else {
        checkGrant(c.grant);
        if (c.previous !== undefined) checkGrant(c.previous);
      }
    }
    return this.#serial(async () => {
      for (const c of changes) if (c.op === 'apply') this.#checkPlaceable(c.grant);
      for (const f of this.#families()) {
        const mine = changes.filter((c) => c.grant.family === f || (c.op === 'apply' && c.previous?.family === f));
        if (mine.length > 0) await this.#applyFamily(f, mine);
      }
    });
  }

  #checkPlaceable(grant: Grant): void {
    const f = grant.family;
    this.#requireFamily(f);
    if (grant.forward !== undefined && !this.#forwarding[f]) {
      throw new Error(`no IPv${f} forwarding chains (start without forwarding, or nat unusable): grant ${grant.id}`);
    }
  }

  async #applyFamily(f: Family, changes: readonly GrantChange[]): Promise<void> {
    const installed = this.#installed[f];
    const desired = changes.flatMap((c) => (c.op === 'apply' && c.grant.family === f ? [c.grant] : []));
    if (desired.length === changes.length && changes.every((c) => c.op === 'apply' && c.previous === undefined && !installed.has(c.grant.id))) {
      // New ids have no rules yet: one spawn, no listing. Marked first: a restore whose
      // later block fails leaves the earlier ones applied, so a retry must take the
      // listing path rather than add duplicates.
      for (const g of desired) installed.add(g.id);
      await this.#restore(f, planGrants(this.#names, {}, desired, () => false).sections);
      return;
    }
    // Found by id in every grant chain there is: a revocation needs nothing else of the grant.
    const ids = new Set(changes.flatMap((c) => (c.op === 'apply' && c.previous !== undefined ? [c.grant.id, c.previous.id] : [c.grant.id])));
    const involved = changes.flatMap((c) => (c.op === 'apply' && c.previous !== undefined ? [c.grant, c.previous] : [c.grant]));
    const chains = changes.some((c) => c.op === 'revoke') ? this.#chainsIn(f) : this.#chainsFor(f, involved);
    const existing = await this.#listChains(f, chains);
    await this.#restore(f, planGrants(this.#names, existing, desired, (r) => ids.has(r.grantId)).sections);
    for (const id of ids) installed.delete(id);
    for (const g of desired) installed.add(g.id);
  }

  stop(opts: { readonly keepGuarding: boolean }): Promise<void> {
    return this.#serial(async () => {
      for (const f of this.#families()) {
        const state = await this.#readTable(f, 'filter');
        const fwd = this.#forwarding[f] || state.chains.has(this.#names.forward);
        const nat = fwd ? await this.#tryRead(f, 'nat', NAT_UNUSABLE) : null;
        this.#written[f] = undefined;
        await this.#stopFamily(f, state, nat, opts.keepGuarding);
        this.#installed[f].clear();
        if (!opts.keepGuarding) this.#forwarding[f] = false;
      }
      this.#log.info(opts.keepGuarding ? 'grants removed, still guarding' : 'rules removed');
    });
  }

  /** One family's start. The nat table is read only when forwarding is wanted (required
   *  for IPv4; IPv6 nat may be missing on a board: then no IPv6 forwarding, loudly) or
   *  when a <P>-FWD left by an earlier configuration must go. */
  async #startFamily(f: Family, spec: GuardSpec, state: ChainState): Promise<void> {
    const key = JSON.stringify(spec);
    if (this.#written[f] === key && guardIntact(this.#names, spec, state, f)) return;
    this.#written[f] = undefined;
    await this.#keepPrefilterCount(f);
    const want = spec.forwarding === true;
    let nat: ChainState | null = null;
    if (want && f === 4) nat = await this.#readTable(4, 'nat');
    else if (want || state.chains.has(this.#names.forward)) nat = await this.#tryRead(f, 'nat', NAT_UNUSABLE);
    const forwarding = want && nat !== null;
    const filter: RestoreSection = { table: 'filter', lines: planStart(this.#names, { ...spec, forwarding }, state, f) };
    // Set-up: <P>-FWD exists before <P>-DNAT can send it anything. Removal: DNATs go first.
    await this.#restore(f, nat !== null && forwarding
      ? [filter, { table: 'nat', lines: planStartNat(this.#names, nat) }]
      : [{ table: 'nat', lines: nat === null ? [] : planStopNat(this.#names, nat, false) }, filter]);
    this.#forwarding[f] = forwarding;
    this.#written[f] = key;
  }

  async #stopFamily(f: Family, state: ChainState, nat: ChainState | null, keepGuarding: boolean): Promise<void> {
    const sections = (keep: boolean): RestoreSection[] => [
      { table: 'nat', lines: nat === null ? [] : planStopNat(this.#names, nat, keep) }, // DNATs before their accepts
      { table: 'filter', lines: planStop(this.#names, state, keep) },
    ];
    try {
      await this.#restore(f, sections(keepGuarding));
    } catch (err) {
      // Removal failed (e.g. a foreign rule still jumps to our chains): at least take the
      // grants away, so a failed stop never leaves access open. Block by block: one that
      // fails (its table was already changed) must not keep the other from running.
      if (!keepGuarding) for (const s of sections(true)) await this.#restore(f, [s]).catch(() => undefined);
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

  /** Every grant chain that exists in the family. */
  #chainsIn(f: Family): GrantChain[] {
    return this.#forwarding[f] ? ['grants', 'forward', 'dnat'] : ['grants'];
  }

  /** The chains that can hold rules of these grants (all of them known: opens and
   *  extensions; a revocation knows only the id and lists every chain). */
  #chainsFor(f: Family, grants: readonly Grant[]): GrantChain[] {
    const plain = grants.some((g) => g.forward === undefined);
    const forwarding = this.#forwarding[f] && grants.some((g) => g.forward !== undefined);
    return this.#chainsIn(f).filter((c) => (c === 'grants' ? plain : forwarding));
  }

  #bin(f: Family): { list: string; restore: string } {
    const b = this.#bins;
    return f === 4 ? { list: b.iptables, restore: b.iptablesRestore } : { list: b.ip6tables, restore: b.ip6tablesRestore };
  }

  /** A whole table, or null with a warning when it cannot be listed (IPv6 at start; nat
   *  where forwarding is optional): the caller then goes on without that part. */
  async #tryRead(f: Family, table: TableName, warning: string): Promise<ChainState | null> {
    try {
      return await this.#readTable(f, table);
    } catch (err) {
      this.#log.warn(warning, { family: f, error: err instanceof Error ? err.message : String(err) });
      return null;
    }
  }

  async #readTable(f: Family, table: TableName): Promise<ChainState> {
    return parseChainState(await this.#list(listArgv(this.#bin(f).list, undefined, table)), this.#names);
  }

  async #listChains(f: Family, chains: readonly GrantChain[], warnForeign = false): Promise<ChainRules> {
    const out: Partial<Record<GrantChain, readonly GrantRule[]>> = {};
    for (const c of chains) {
      const chain = this.#names[c];
      const stdout = await this.#list(listArgv(this.#bin(f).list, chain, TABLE_OF[c]));
      const { rules, foreign } = parseGrantListing(stdout, f, chain, c);
      if (warnForeign && foreign.length > 0) {
        this.#log.warn('untagged rules in grants chain left alone', { family: f, chain, count: foreign.length });
      }
      out[c] = rules;
    }
    return out;
  }

  async #list(argv: readonly string[]): Promise<string> {
    const r = await this.#exec(argv);
    if (r.code !== 0) throw new Error(`${argv.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`);
    return r.stdout;
  }

  async #restore(f: Family, sections: readonly RestoreSection[]): Promise<void> {
    const script = restoreSections(sections);
    if (script === '') return;
    const argv = restoreArgv(this.#bin(f).restore);
    const r = await this.#exec(argv, script);
    if (r.code !== 0) throw new Error(`${argv.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`);
  }

  #exec(argv: readonly string[], input?: string): ReturnType<Runner> {
    this.#log.debug('run', () => ({ argv: JSON.stringify(argv), ...(input === undefined ? {} : { stdin: input }) }));
    return input === undefined ? this.#run(argv) : this.#run(argv, { input });
  }
}
