// SPDX-License-Identifier: MIT
// nftables backend with kernel-side expiry (DESIGN.md facts 1-2, "Firewall model";
// ref/openwrt.md 4.2-4.4; STYLE.md principle 9).
//
// postern owns `table inet postern` and nothing else (it survives fw4 reloads, which
// rebuild only `table inet fw4`). Contents (<M> is the mark bit, default 0x10000000):
//   sets   guarded, capture   inet_proto . inet_service, rebuilt by start/update
//          grants4            ipv4_addr . inet_proto . inet_service, flags timeout
//          grants6            ipv6_addr . inet_proto . inet_service, flags timeout
//   chain input (hook input, priority filter - 10, policy accept), in order:
//     1. a packet arriving with <M> already set loses it: only this chain may hand fw4
//        (or the operator's accept rule) a marked packet;
//     2. iif lo return: loopback is never guarded;
//     3. capture ports: set <M>, accept (they must reach the raw socket, DESIGN.md fact 1);
//     4. ct established,related to a guarded service: accept, so connections made during
//        a grant outlive it;
//     5. ip/ip6 saddr . l4proto . dport in grants4/grants6: set <M>, accept;
//     6. guarded service: drop (never reject: the port must look filtered).
//   chain output (hook output, priority filter - 10): drop the RSTs the kernel would send
//     from TCP capture ports. UDP capture ports need no rule: the daemon binds a sink UDP
//     socket on them, so no port unreachable is ever sent.
// <M> is set with `meta mark set meta mark | <M>`, so other mark users (mwan3, SQM, VPNs)
// keep their bits. It exists because `accept` ends only our own base chain: a later base
// chain (fw4's input at priority filter, an operator's default-drop chain) still runs and
// may drop (fact 2). fw4 accepts marked packets through the drop-in
// rootfs-overlay/openwrt/usr/share/nftables.d/chain-pre/input/30-postern.nft; other hosts
// with a drop policy add the same one line (docs/firewall.md).
//
// Grants are set elements `addr . proto . port timeout <ms>ms comment "postern:<id>"`: the
// kernel removes them when they time out, so a daemon killed with SIGKILL never leaves a
// port open past its grant. Timeouts are the exact remaining milliseconds from the
// injected clock (never rounded up to seconds). Two grants may cover one tuple; the
// element carries the longest cover (CoverTable in nft-rules.ts) and revoking one grant
// re-adds the tuple for the other. reconcile lists both sets with `nft -j` and rewrites
// whatever differs from the live grants.
//
// Every change is one `nft -f -` transaction with the script on stdin (no shell), so it
// applies atomically or not at all: an extension rewrites its elements with no gap, a
// revoke of an element that already timed out does not fail. Operations are serialized.

import type { Logger } from '../log/logger.ts';
import type { Clock } from '../platform/clock.ts';
import type { RunResult, Runner } from './exec.ts';
import { checkGrant, checkGuardSpec } from './iptables-rules.ts';
import {
  CoverTable, DEFAULT_NFT_MARK, applyArgv, checkMark, elementLines, grantTuples, guardLines, listSetArgv,
  listTableArgv, nftScript, parseGrantSet, planReconcile, recreateLines, stopLines, tupleKey,
} from './nft-rules.ts';
import type { ListedElement, NftTuple } from './nft-rules.ts';
import type { Family, FirewallBackend, Grant, GuardSpec, ReconcileReport } from './types.ts';

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
   *  the fw4 drop-in or the operator's accept rule must test the same bit. */
  readonly mark?: number;
}

export class NftBackend implements FirewallBackend {
  readonly name = 'nft';
  // Public methods are async so that a validation error is a rejection, never a sync throw.
  readonly #run: Runner;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #bin: string;
  readonly #mark: number;
  #covers = new CoverTable();
  #queue: Promise<unknown> = Promise.resolve();

  constructor(opts: NftBackendOptions) {
    this.#run = opts.runner;
    this.#log = opts.logger;
    this.#clock = opts.clock;
    this.#bin = opts.nft ?? 'nft';
    this.#mark = opts.mark ?? DEFAULT_NFT_MARK;
    checkMark(this.#mark); // a configuration error: refused before anything runs
  }

  async start(spec: GuardSpec): Promise<void> {
    checkGuardSpec(spec);
    return this.#serial(async () => {
      try {
        await this.#apply(guardLines(spec, this.#mark));
      } catch (err) {
        // A table of another shape (set type, chain priority) cannot be amended in place.
        // A missing binary is not that: it fails the same way twice.
        if (!(err instanceof NftCommandError)) throw err;
        this.#log.warn('cannot amend table inet postern; replacing it (grants in it are lost)', { error: errorText(err) });
        this.#covers.clear();
        await this.#apply(recreateLines(spec, this.#mark));
      }
      this.#log.info('guarding', { guarded: spec.guarded.length, capture: spec.capture.length, mark: `0x${this.#mark.toString(16)}` });
    });
  }

  async update(spec: GuardSpec): Promise<void> {
    checkGuardSpec(spec);
    return this.#serial(() => this.#apply(guardLines(spec, this.#mark)));
  }

  reconcile(live: readonly Grant[], nowMs: number): Promise<ReconcileReport> {
    return this.#serial(async () => {
      // One plan over both families: an id listed in both is reported once.
      const existing = [...(await this.#listGrants(4)), ...(await this.#listGrants(6))];
      const plan = planReconcile(existing, live, nowMs);
      await this.#apply(plan.lines);
      this.#covers = plan.covers;
      if (plan.invalid.length > 0) this.#log.error('invalid live grants removed', { ids: plan.invalid.join(',') });
      if (plan.untagged > 0) this.#log.warn('elements without a postern id removed from the grant sets', { count: plan.untagged });
      if (plan.removed.length + plan.restored.length > 0) {
        this.#log.info('reconciled', { removed: plan.removed.join(','), restored: plan.restored.join(',') });
      }
      return { removed: plan.removed, restored: plan.restored };
    });
  }

  async applyGrant(grant: Grant, previous?: Grant): Promise<void> {
    checkGrant(grant);
    if (previous !== undefined) checkGrant(previous);
    return this.#serial(async () => {
      const touched = unionTuples(grant, previous);
      const undo = this.#covers.save(touched);
      if (previous !== undefined) this.#covers.remove(previous);
      this.#covers.add(grant);
      try {
        await this.#apply(this.#elementLines(touched));
      } catch (err) {
        undo(); // the grant is not in the kernel: it must not become anyone's cover
        throw err;
      }
    });
  }

  async revokeGrant(grant: Grant): Promise<void> {
    checkGrant(grant);
    return this.#serial(async () => {
      // Memory forgets the grant even if the transaction fails: reconcile retries.
      this.#covers.remove(grant);
      await this.#apply(this.#elementLines(grantTuples(grant)));
    });
  }

  stop(opts: { readonly keepGuarding: boolean }): Promise<void> {
    return this.#serial(async () => {
      this.#covers.clear();
      try {
        await this.#apply(stopLines(opts.keepGuarding));
      } catch (err) {
        // Flushing the grant sets of a table that does not exist has nothing to remove.
        if (!opts.keepGuarding || (await this.#tableExists())) throw err;
      }
      this.#log.info(opts.keepGuarding ? 'grants removed, still guarding' : 'table inet postern removed');
    });
  }

  /** Each tuple ends with the element its best live cover asks for, or none. */
  #elementLines(tuples: readonly NftTuple[]): string[] {
    const now = this.#clock.wallMs();
    return tuples.flatMap((t) => elementLines(t, this.#covers.best(t, now)));
  }

  #serial<T>(op: () => Promise<T>): Promise<T> {
    const result = this.#queue.then(op, op);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  async #listGrants(f: Family): Promise<ListedElement[]> {
    const argv = listSetArgv(this.#bin, f);
    const r = await this.#exec(argv);
    if (r.code !== 0) throw new Error(`${argv.join(' ')} failed (exit ${r.code}): ${r.stderr.trim()}`);
    const parsed = parseGrantSet(r.stdout, f);
    if (!parsed.ok) throw new Error(`${argv.join(' ')}: unreadable listing (${parsed.reason})`);
    if (parsed.value.foreign > 0) this.#log.warn('unreadable elements in a grant set left alone', { family: f, count: parsed.value.foreign });
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

function unionTuples(grant: Grant, previous: Grant | undefined): NftTuple[] {
  const all = [...grantTuples(grant), ...(previous === undefined ? [] : grantTuples(previous))];
  return [...new Map(all.map((t) => [tupleKey(t), t])).values()];
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
