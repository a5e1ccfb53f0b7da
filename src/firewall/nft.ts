// SPDX-License-Identifier: MIT
// nftables backend with kernel-side expiry (DESIGN.md facts 1-2, "Firewall model";
// ref/openwrt.md 4.2-4.4; STYLE.md principle 9).
//
// postern owns `table inet postern` and nothing else (it survives fw4 reloads, which
// rebuild only `table inet fw4`). Contents (<M> is the mark bit, default 0x10000000; <f>
// is 4 or 6):
//   sets   guarded, capture   inet_proto . inet_service, rebuilt by start/update
//          grants<f>          addr . inet_proto . inet_service, flags timeout (hash: hosts)
//          grants<f>net       the same with flags interval, timeout (networks, prefix grants)
//   chain input (hook input, priority filter - 10, policy accept), in order:
//     1. a packet arriving with <M> already set loses it: only this chain may hand fw4
//        (or the operator's accept rule) a marked packet;
//     2. iif lo return: loopback is never guarded;
//     3. capture ports: set <M>, accept (they must reach the raw socket, DESIGN.md fact 1);
//     4. ct established,related to a guarded service: accept, so connections made during
//        a grant outlive it;
//     5. saddr . l4proto . dport in grants4, grants6, grants4net, grants6net: set <M>, accept;
//     6. guarded service: drop (never reject: the port must look filtered).
//   chain output (hook output, priority filter - 10): drop the RSTs the kernel would send
//     from TCP capture ports. UDP capture ports need no rule: the daemon binds a sink UDP
//     socket on them, so no port unreachable is ever sent.
// With GuardSpec.forwarding (a router with forwarding grants), also:
//   maps   dnat<f>[net]   saddr . inet_proto . inet_service : addr . inet_service, timeout
//   sets   fwd<f>[net]    saddr . daddr . inet_proto . inet_service, timeout
//   chain prerouting (type nat, hook prerouting, priority dstnat - 10): DNAT through the
//     maps (`dnat ip to ip saddr . meta l4proto . th dport map @dnat4`), so granted packets
//     are rewritten before routing, forwarded, and never reach input, where the external
//     port is guarded. It runs before fw4's dstnat (priority dstnat), and the first NAT
//     chain that binds a connection decides it.
//   chain forward (hook forward, priority filter - 10, policy accept):
//     1. <M> cleared on arrival, as in input;
//     2. ct established,related with ct status dnat: set <M>, accept, so a forwarded
//        connection survives its grant like a local one (iptables FORWARD_ESTABLISHED);
//     3. ct status dnat and saddr . daddr . l4proto . dport in fwd4/fwd6/fwd4net/fwd6net:
//        set <M>, accept: new connections of live forwarding grants.
//   A map element and its fwd element carry the same id and timeout: the kernel closes a
//   forwarding grant by itself too. Without forwarding none of this exists (start and
//   update remove what a run with forwarding left; no nat chain is ever created).
// <M> is set with `meta mark set meta mark | <M>`, so other mark users (mwan3, SQM, VPNs)
// keep their bits. It exists because `accept` ends only our own base chain: a later base
// chain (fw4's input or forward at priority filter, an operator's default-drop chain)
// still runs and may drop (fact 2). fw4 accepts marked packets through the drop-ins
// rootfs-overlay/openwrt/usr/share/nftables.d/chain-pre/{input,forward}/30-postern.nft;
// other hosts with a drop policy add the same lines (docs/firewall.md).
//
// Grants are set elements `src . ... timeout <ms>ms comment "postern:<id>"`: the kernel
// removes them when they time out, so a daemon killed with SIGKILL never leaves a port
// open past its grant. Timeouts are the exact remaining milliseconds from the injected
// clock. Which grant each element carries is nft-covers.ts (several grants may cover one
// source; a network inside another is cut into disjoint pieces); the element recipes
// (plain `add` for a new key, remove-then-add for a changed one) are nft-elements.ts.
//
// Why separate network sets, not interval sets for everything: host grants (all of IPv4,
// most of IPv6) stay in hash sets, whose cost does not grow with the set and which have no
// overlap rule (an interval set refuses overlapping elements: checked, Linux 6.x); only
// network grants depend on pipapo (concatenated ranges with timeouts, Linux >= 5.6). A
// host and a network grant for one service live side by side; either one matches.
// Why not simpler shapes: rules per port or grant grow the chains, a set lookup does not;
// a set per grant needs set creation on the open path; a DNAT rule per grant would lose
// kernel-side expiry.
//
// Every change is one `nft -f -` transaction with the script on stdin (no shell), so it
// applies atomically or not at all. Operations are serialized; applyChanges puts a whole
// batch of grant changes (GrantManager coalesces them) into one transaction.

import { guardLogger } from './guard-log.ts';
import type { Logger } from '../log/logger.ts';
import type { Clock } from '../platform/clock.ts';
import type { RunResult, Runner } from './exec.ts';
import { checkGrant, checkGuardSpec } from './iptables-rules.ts';
import { CoverTable, byLane, grantLanes, planReconcile, sameElement } from './nft-covers.ts';
import { FORWARD_SET_IDS, GRANT_SET_IDS, diffElements } from './nft-elements.ts';
import type { Desired, SetId, SetKind } from './nft-elements.ts';
import { parseListing } from './nft-listing.ts';
import type { ListedElement } from './nft-listing.ts';
import { DEFAULT_NFT_MARK, applyArgv, checkMark, guardAttempts, listTableArgv, nftScript, stopLines } from './nft-rules.ts';
import { NFT_PREFILTER_COUNTER, parseNftCounter } from './prefilter.ts';
import { PrefilterState } from './prefilter-state.ts';
import type { FirewallBackend, Grant, GrantChange, GuardSpec, PrefilterStatus, ReconcileReport } from './types.ts';

export { DEFAULT_NFT_MARK } from './nft-rules.ts';

/** nft ran and refused the transaction (nothing of it was applied). */
export class NftCommandError extends Error {
  override name = 'NftCommandError';
}

export interface NftBackendOptions {
  readonly runner: Runner;
  readonly logger: Logger;
  /** Wall clock: element timeouts are grant.expiresAtMs - wallMs() (STYLE.md principle 8). */
  readonly clock: Clock;
  /** The nft binary; busybox boards set an absolute path in their board file. Default 'nft'. */
  readonly nft?: string;
  /** The mark bit (one bit, 0x1 .. 0x80000000). Default DEFAULT_NFT_MARK; whatever it is,
   *  the fw4 drop-ins or the operator's accept rules must test the same bit. */
  readonly mark?: number;
}

const FORWARD_KINDS: readonly SetKind[] = ['dnat', 'fwd'];


export class NftBackend implements FirewallBackend {
  readonly name = 'nft';
  // Public methods are async so that a validation error is a rejection, never a sync throw.
  readonly #run: Runner;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #bin: string;
  readonly #mark: number;
  #covers = new CoverTable();
  readonly #noteGuarding: ReturnType<typeof guardLogger>;
  /** Per lane, the elements as last written (some may have timed out since). */
  #installed = new Map<string, Desired[]>();
  #forwarding = false;
  /** nft refused the forwarding chains once: start goes on without them. */
  #natRefused = false;
  readonly #prefilter: PrefilterState;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(opts: NftBackendOptions) {
    this.#run = opts.runner;
    this.#log = opts.logger;
    this.#noteGuarding = guardLogger(opts.logger);
    this.#prefilter = new PrefilterState(opts.logger, 'nft');
    this.#clock = opts.clock;
    this.#bin = opts.nft ?? 'nft';
    this.#mark = opts.mark ?? DEFAULT_NFT_MARK;
    checkMark(this.#mark); // a configuration error: refused before anything runs
  }

  /** Forwarding grants can be applied: start/update asked for it and nft took its chains. */
  get forwarding(): boolean {
    return this.#forwarding;
  }

  async start(spec: GuardSpec): Promise<void> {
    checkGuardSpec(spec);
    return this.#serial(async () => {
      await this.#guard(spec, true);
      this.#noteGuarding({ guarded: spec.guarded.length, capture: spec.capture.length, mark: `0x${this.#mark.toString(16)}`, forwarding: this.#forwarding });
    });
  }

  async update(spec: GuardSpec): Promise<void> {
    checkGuardSpec(spec);
    return this.#serial(() => {
      this.#natRefused = false;
      return this.#guard(spec, false);
    });
  }

  reconcile(live: readonly Grant[], nowMs: number): Promise<ReconcileReport> {
    return this.#serial(async () => {
      const existing = await this.#list([...GRANT_SET_IDS, ...(this.#forwarding ? FORWARD_SET_IDS : [])]);
      const plan = planReconcile(existing, live, nowMs, this.#forwarding);
      await this.#apply(plan.lines);
      this.#covers = plan.covers;
      this.#installed = plan.installed;
      if (plan.invalid.length > 0) this.#log.error('live grants this backend cannot apply left out', { ids: plan.invalid.join(',') });
      if (plan.unplaced.length > 0) this.#log.warn('forwarding grants not applied: forwarding is off', { ids: plan.unplaced.join(',') });
      if (plan.untagged > 0) this.#log.warn('elements without a postern id removed from the grant sets', { count: plan.untagged });
      if (plan.removed.length + plan.restored.length > 0) {
        this.#log.info('reconciled', { removed: plan.removed.join(','), restored: plan.restored.join(',') });
      }
      return { removed: plan.removed, restored: plan.restored };
    });
  }

  applyGrant(grant: Grant, previous?: Grant): Promise<void> {
    return this.applyChanges([previous === undefined ? { op: 'apply', grant } : { op: 'apply', grant, previous }]);
  }

  revokeGrant(grant: Grant): Promise<void> {
    return this.applyChanges([{ op: 'revoke', grant }]);
  }

  /** Every change in one `nft -f -` transaction: the covers of all touched lanes are
   *  updated in order, then those lanes are written once (a batch of 1,000 opens is one
   *  spawn, not 1,000). All or nothing: on failure no open becomes anyone's cover. */
  async applyChanges(changes: readonly GrantChange[]): Promise<void> {
    for (const c of changes) {
      checkGrant(c.grant);
      if (c.op === 'apply' && c.previous !== undefined) checkGrant(c.previous);
    }
    return this.#serial(async () => {
      const refused = changes.find((c) => c.op === 'apply' && (c.grant.forward ?? c.previous?.forward) !== undefined && !this.#forwarding);
      if (refused !== undefined) throw new Error(`forwarding is off (no forwarding chains): grant ${refused.grant.id}`);
      const touched = new Set<string>();
      for (const c of changes) {
        // A forwarding grant revoked while forwarding is off was refused: nothing in the kernel.
        if (c.op === 'revoke' && c.grant.forward !== undefined && !this.#forwarding) continue;
        for (const g of c.op === 'apply' && c.previous !== undefined ? [c.grant, c.previous] : [c.grant]) grantLanes(g).forEach((l) => touched.add(l));
      }
      const undo = this.#covers.save([...touched]);
      for (const c of changes) {
        if (c.op === 'revoke') this.#covers.remove(c.grant);
        else {
          if (c.previous !== undefined) this.#covers.remove(c.previous);
          this.#covers.add(c.grant);
        }
      }
      try {
        await this.#write([...touched]);
      } catch (err) {
        // No open is in the kernel: none may become anyone's cover. Revoked grants stay
        // forgotten: their elements stay listed as written, so the next change in their
        // lanes (or reconcile) removes them.
        undo();
        for (const c of changes) if (c.op === 'revoke') this.#covers.remove(c.grant);
        throw err;
      }
    });
  }

  stop(opts: { readonly keepGuarding: boolean }): Promise<void> {
    return this.#serial(async () => {
      this.#covers.clear();
      this.#installed.clear();
      try {
        await this.#apply(stopLines(opts.keepGuarding, this.#forwarding));
      } catch (err) {
        // Flushing the grant sets of a table that does not exist has nothing to remove.
        if (!opts.keepGuarding || (await this.#tableExists())) throw err;
      }
      if (!opts.keepGuarding) this.#forwarding = false;
      this.#log.info(opts.keepGuarding ? 'grants removed, still guarding' : 'table inet postern removed');
    });
  }

  /** The guard transaction, with the prefilter if nft takes it (prefilter-state.ts). */
  #guard(spec: GuardSpec, mayRecreate: boolean): Promise<void> {
    return this.#prefilter.guard(spec, (s) => this.#guardOnce(s, mayRecreate), {
      retryRefused: !mayRecreate, refused: (err) => err instanceof NftCommandError,
    });
  }

  async prefilterStatus(): Promise<PrefilterStatus> {
    if (this.#prefilter.state !== 'on') return this.#prefilter.report(undefined);
    const r = await this.#exec([this.#bin, '-j', 'list', 'counter', 'inet', 'postern', NFT_PREFILTER_COUNTER]);
    return this.#prefilter.report(r.code === 0 ? parseNftCounter(r.stdout) : undefined);
  }

  /** The guard transaction: amend the table; at start, replace it if it cannot be amended
   *  (another shape); if nft refuses the forwarding chains (no nat support), the same
   *  without forwarding, remembered so that the periodic start does not retry it (update,
   *  an operator's config reload, does). */
  async #guardOnce(spec: GuardSpec, mayRecreate: boolean): Promise<void> {
    let failure: unknown;
    for (const a of guardAttempts(spec, this.#mark, { mayRecreate, natRefused: this.#natRefused })) {
      if (failure !== undefined) this.#log.warn(a.note, { error: errorText(failure) });
      try {
        await this.#apply(a.lines);
      } catch (err) {
        // A missing binary is not a refusal: it fails the same way every time.
        if (!(err instanceof NftCommandError)) throw err;
        failure = err;
        continue;
      }
      if (a.recreate) this.#resetMemory();
      if (spec.forwarding === true && !a.forwarding && !this.#natRefused) {
        this.#natRefused = true;
        this.#log.error('nft refused the forwarding chains (nat support missing?); forwarding grants will be refused until a config reload');
      }
      this.#setForwarding(a.forwarding);
      return;
    }
    throw failure;
  }

  #setForwarding(on: boolean): void {
    if (!on) {
      this.#covers.removeKinds(FORWARD_KINDS);
      for (const [lane, els] of this.#installed) if (els.some((e) => FORWARD_KINDS.includes(e.set.kind))) this.#installed.delete(lane);
    }
    this.#forwarding = on;
  }

  #resetMemory(): void {
    this.#covers.clear();
    this.#installed.clear();
  }

  /** Brings these lanes from what was written to what their covers ask for now. */
  async #write(lanes: readonly string[]): Promise<void> {
    const now = this.#clock.wallMs();
    const want = lanes.flatMap((l) => this.#covers.desired(l, now));
    const have = lanes.flatMap((l) => this.#installed.get(l) ?? []);
    await this.#apply(diffElements(have, want, sameElement, now).lines);
    for (const l of lanes) this.#installed.delete(l);
    for (const [l, els] of byLane(want)) this.#installed.set(l, els);
  }

  #serial<T>(op: () => Promise<T>): Promise<T> {
    const result = this.#queue.then(op, op);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  async #list(sets: readonly SetId[]): Promise<ListedElement[]> {
    const argv = listTableArgv(this.#bin);
    const r = await this.#exec(argv);
    if (r.code !== 0) throw new Error(`${argv.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`);
    const parsed = parseListing(r.stdout, sets);
    if (!parsed.ok) throw new Error(`${argv.join(' ')}: unreadable listing (${parsed.reason})`);
    if (parsed.value.foreign > 0) this.#log.warn('unreadable elements in a grant set left alone', { count: parsed.value.foreign });
    return [...parsed.value.elements];
  }

  async #tableExists(): Promise<boolean> {
    return (await this.#exec(listTableArgv(this.#bin))).code === 0;
  }

  async #apply(lines: readonly string[]): Promise<void> {
    if (lines.length === 0) return;
    const argv = applyArgv(this.#bin);
    const r = await this.#exec(argv, nftScript(lines));
    if (r.code !== 0) throw new NftCommandError(`${argv.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`);
  }

  #exec(argv: readonly string[], input?: string): Promise<RunResult> {
    this.#log.debug('run', () => ({ argv: JSON.stringify(argv), ...(input === undefined ? {} : { stdin: input }) }));
    return input === undefined ? this.#run(argv) : this.#run(argv, { input });
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
