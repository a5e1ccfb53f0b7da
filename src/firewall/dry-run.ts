// SPDX-License-Identifier: MIT
// Dry-run backend (DESIGN.md "Backends"; STYLE.md principle 9 mirrors `fwknopd --test`):
// the real IptablesBackend, driven by a Runner that runs nothing. Each command the
// iptables backend would run is logged at info with its argv (JSON) and restore script,
// and is applied to an in-memory model of the filter table, so listings, reconcile
// reports and the next commands are exactly what they would be on a pristine host.
// The model is also the in-memory twin of iptables for unit tests (principle 7).

import type { Logger } from '../log/logger.ts';
import type { RunResult, Runner } from './exec.ts';
import { DEFAULT_IPTABLES_BINARIES, IptablesBackend } from './iptables.ts';
import type { IptablesBinaries } from './iptables.ts';
import type { Family, FirewallBackend, Grant, GuardSpec, ReconcileReport } from './types.ts';

const BUILTIN = ['INPUT', 'FORWARD', 'OUTPUT'] as const;
const TARGETS = new Set(['ACCEPT', 'DROP', 'RETURN', 'REJECT']);
const ok = (stdout = ''): RunResult => ({ code: 0, stdout, stderr: '' });
const bad = (stderr: string): RunResult => ({ code: 1, stdout: '', stderr });

/** Thrown inside a restore transaction only; becomes an exit status 1 like iptables-restore's. */
class RestoreError extends Error {}

/** The filter table of one family: chain name -> rule specs (text after `-A CHAIN `). */
export class SimulatedTable {
  #chains = new Map<string, string[]>(BUILTIN.map((c) => [c, []]));

  /** `iptables -S [chain]`, in the format iptables 1.8 prints. */
  list(chain?: string): RunResult {
    if (chain !== undefined && !this.#chains.has(chain)) return bad('iptables: No chain/target/match by that name.\n');
    const names = chain === undefined ? this.#ordered() : [chain];
    const heads = names.map((c) => (this.#isBuiltin(c) ? `-P ${c} ACCEPT` : `-N ${c}`));
    const rules = names.flatMap((c) => (this.#chains.get(c) ?? []).map((spec) => `-A ${c} ${spec}`));
    return ok([...heads, ...rules].map((l) => `${l}\n`).join(''));
  }

  /** `iptables-restore --noflush` of one `*filter` transaction: all or nothing. */
  restore(script: string): RunResult {
    const lines = script.split('\n').filter((l) => l.trim() !== '');
    if (lines[0] !== '*filter' || lines.at(-1) !== 'COMMIT') return bad('iptables-restore: expected *filter ... COMMIT\n');
    const saved = new Map([...this.#chains].map(([c, r]) => [c, [...r]]));
    for (const [i, line] of lines.slice(1, -1).entries()) {
      try {
        this.#apply(line);
      } catch (err) {
        this.#chains = saved;
        const why = err instanceof RestoreError ? err.message : String(err);
        return bad(`iptables-restore: line ${i + 2} failed: ${why}\n`);
      }
    }
    return ok();
  }

  #ordered(): string[] {
    const user = [...this.#chains.keys()].filter((c) => !this.#isBuiltin(c)).sort();
    return [...BUILTIN, ...user];
  }

  #isBuiltin(c: string): boolean {
    return (BUILTIN as readonly string[]).includes(c);
  }

  #rules(chain: string): string[] {
    const rules = this.#chains.get(chain);
    if (rules === undefined) throw new RestoreError(`No chain/target/match by that name (${chain})`);
    return rules;
  }

  #apply(line: string): void {
    const declared = /^:(\S+) \S+ \[\d+:\d+\]$/.exec(line);
    if (declared !== null) return this.#declare(declared[1] ?? '');
    const m = /^(-[AIDFXN]) (\S+)(?: (.*))?$/.exec(line);
    if (m === null) throw new RestoreError(`cannot parse ${JSON.stringify(line)}`);
    const [, op = '', chain = '', rest = ''] = m;
    if (op === '-N') return this.#create(chain);
    if (op === '-F') return void this.#rules(chain).splice(0);
    if (op === '-X') return this.#remove(chain);
    if (op === '-D') return this.#delete(chain, rest);
    if (op === '-A') return void this.#rules(chain).push(this.#checkTarget(rest));
    const at = /^(\d+) (.*)$/.exec(rest);
    const rules = this.#rules(chain);
    const pos = Number(at?.[1] ?? 0);
    if (at === null || pos < 1 || pos > rules.length + 1) throw new RestoreError('Index of insertion too big');
    rules.splice(pos - 1, 0, this.#checkTarget(at[2] ?? ''));
  }

  /** `:CHAIN` under --noflush: a user chain is created, or flushed if it exists. */
  #declare(chain: string): void {
    if (this.#isBuiltin(chain)) return;
    this.#chains.set(chain, []);
  }

  #create(chain: string): void {
    if (this.#chains.has(chain)) throw new RestoreError('Chain already exists');
    this.#chains.set(chain, []);
  }

  #remove(chain: string): void {
    if (this.#isBuiltin(chain) || this.#rules(chain).length > 0) throw new RestoreError(`Directory not empty (${chain})`);
    const jump = new RegExp(`(^| )-[jg] ${chain.replace(/[^\w-]/g, '\\$&')}( |$)`);
    for (const rules of this.#chains.values()) {
      if (rules.some((r) => jump.test(r))) throw new RestoreError(`Too many links (${chain})`);
    }
    this.#chains.delete(chain);
  }

  #delete(chain: string, spec: string): void {
    const rules = this.#rules(chain);
    const i = rules.indexOf(spec);
    if (i < 0) throw new RestoreError('Bad rule (does a matching rule exist in that chain?)');
    rules.splice(i, 1);
  }

  #checkTarget(spec: string): string {
    const target = /(?:^| )-j (\S+)/.exec(spec)?.[1];
    if (target !== undefined && !TARGETS.has(target) && !this.#chains.has(target)) {
      throw new RestoreError(`Couldn't load target \`${target}'`);
    }
    return spec;
  }
}

export type CommandObserver = (argv: readonly string[], input: string | undefined) => void;

/** A Runner that answers `<iptables> -w -S [chain]` and `<restore> -w --noflush` from
 *  the two tables; anything else exits 2. `observe` sees every command first. */
export function simulatedRunner(
  bins: IptablesBinaries, tables: Readonly<Record<Family, SimulatedTable>>, observe?: CommandObserver,
): Runner {
  return async (argv, opts) => {
    observe?.(argv, opts?.input);
    const [bin, ...args] = argv;
    const list = bin === bins.iptables ? tables[4] : bin === bins.ip6tables ? tables[6] : undefined;
    const restore = bin === bins.iptablesRestore ? tables[4] : bin === bins.ip6tablesRestore ? tables[6] : undefined;
    if (list !== undefined && args[0] === '-w' && args[1] === '-S' && args.length <= 3) return list.list(args[2]);
    if (restore !== undefined && args.join(' ') === '-w --noflush') return restore.restore(opts?.input ?? '');
    return { code: 2, stdout: '', stderr: `dry-run: unsupported command ${JSON.stringify(argv)}\n` };
  };
}

export interface DryRunBackendOptions {
  readonly logger: Logger;
  readonly binaries?: Partial<IptablesBinaries>;
  readonly chainPrefix?: string;
}

export class DryRunBackend implements FirewallBackend {
  readonly name = 'dry-run';
  /** The simulated host ruleset, per family; for tests and `postern doctor`-style dumps. */
  readonly tables: Readonly<Record<Family, SimulatedTable>> = { 4: new SimulatedTable(), 6: new SimulatedTable() };
  readonly #inner: IptablesBackend;

  constructor(opts: DryRunBackendOptions) {
    const binaries = { ...DEFAULT_IPTABLES_BINARIES, ...opts.binaries };
    const log = (argv: readonly string[], input: string | undefined): void =>
      opts.logger.info('would run', { argv: JSON.stringify(argv), stdin: input });
    const runner = simulatedRunner(binaries, this.tables, log);
    const inner = { runner, logger: opts.logger, binaries };
    this.#inner = new IptablesBackend(opts.chainPrefix === undefined ? inner : { ...inner, chainPrefix: opts.chainPrefix });
  }

  start(spec: GuardSpec): Promise<void> {
    return this.#inner.start(spec);
  }

  update(spec: GuardSpec): Promise<void> {
    return this.#inner.update(spec);
  }

  reconcile(live: readonly Grant[], nowMs: number): Promise<ReconcileReport> {
    return this.#inner.reconcile(live, nowMs);
  }

  applyGrant(grant: Grant, previous?: Grant): Promise<void> {
    return this.#inner.applyGrant(grant, previous);
  }

  revokeGrant(grant: Grant): Promise<void> {
    return this.#inner.revokeGrant(grant);
  }

  stop(opts: { readonly keepGuarding: boolean }): Promise<void> {
    return this.#inner.stop(opts);
  }
}
