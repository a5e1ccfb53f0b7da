// SPDX-License-Identifier: MIT
// Dry-run backend (DESIGN.md "Backends"; STYLE.md principle 9 mirrors `fwknopd --test`):
// the real IptablesBackend, driven by a Runner that runs nothing. Each command the
// iptables backend would run is logged at info with its argv (JSON) and restore script,
// and is applied to an in-memory model of the filter and nat tables, so listings, reconcile
// reports and the next commands are exactly what they would be on a pristine host.
// The model is also the in-memory twin of iptables for unit tests (principle 7).

import type { Logger } from '../log/logger.ts';
import type { RunResult, Runner } from './exec.ts';
import { DEFAULT_IPTABLES_BINARIES, IptablesBackend } from './iptables.ts';
import type { IptablesBinaries } from './iptables.ts';
import type { TableName } from './iptables-rules.ts';
import type { Family, FirewallBackend, Grant, GrantChange, GuardSpec, PrefilterStatus, ReconcileReport } from './types.ts';

const BUILTIN: Record<TableName, readonly string[]> = {
  filter: ['INPUT', 'FORWARD', 'OUTPUT'],
  nat: ['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING'],
};
const TARGETS: Record<TableName, ReadonlySet<string>> = {
  filter: new Set(['ACCEPT', 'DROP', 'RETURN', 'REJECT']),
  nat: new Set(['ACCEPT', 'RETURN', 'DNAT', 'SNAT', 'MASQUERADE']),
};
const isTable = (t: string): t is TableName => t === 'filter' || t === 'nat';
const ok = (stdout = ''): RunResult => ({ code: 0, stdout, stderr: '' });
const bad = (stderr: string): RunResult => ({ code: 1, stdout: '', stderr });

/** Thrown inside a restore transaction only; becomes an exit status 1 like iptables-restore's. */
class RestoreError extends Error {}

type Chains = Map<string, string[]>;

/** The filter and nat tables of one family: per table, chain name -> rule specs (text after
 *  `-A CHAIN `). */
export class SimulatedTable {
  #tables: Record<TableName, Chains> = {
    filter: new Map(BUILTIN.filter.map((c) => [c, []])),
    nat: new Map(BUILTIN.nat.map((c) => [c, []])),
  };

  /** `iptables [-t table] -S [chain]`, in the format iptables 1.8 prints. */
  list(chain?: string, table: TableName = 'filter'): RunResult {
    const chains = this.#tables[table];
    if (chain !== undefined && !chains.has(chain)) return bad('iptables: No chain/target/match by that name.\n');
    const builtin = BUILTIN[table];
    const user = [...chains.keys()].filter((c) => !builtin.includes(c)).sort();
    const names = chain === undefined ? [...builtin, ...user] : [chain];
    const heads = names.map((c) => (builtin.includes(c) ? `-P ${c} ACCEPT` : `-N ${c}`));
    const rules = names.flatMap((c) => (chains.get(c) ?? []).map((spec) => `-A ${c} ${spec}`));
    return ok([...heads, ...rules].map((l) => `${l}\n`).join(''));
  }

  /** `iptables-restore --noflush`: each `*table ... COMMIT` block all or nothing, in order;
   *  a failing block stops the run and leaves the blocks before it applied (as iptables-restore
   *  does, nft and legacy alike). */
  restore(script: string): RunResult {
    const lines = script.split('\n');
    let table: TableName | undefined;
    let work: Chains = new Map();
    for (const [i, raw] of lines.entries()) {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) continue;
      try {
        if (table === undefined) {
          const name = line.startsWith('*') ? line.slice(1) : '';
          if (!isTable(name)) throw new RestoreError(`expected *filter or *nat, got ${JSON.stringify(line)}`);
          table = name;
          work = new Map([...this.#tables[name]].map(([c, r]) => [c, [...r]]));
        } else if (line === 'COMMIT') {
          this.#tables[table] = work;
          table = undefined;
        } else {
          applyLine(table, work, line);
        }
      } catch (err) {
        const why = err instanceof RestoreError ? err.message : String(err);
        return bad(`iptables-restore: line ${i + 1} failed: ${why}\n`);
      }
    }
    if (table !== undefined) return bad(`iptables-restore: COMMIT expected at line ${lines.length}\n`);
    return ok();
  }
}

function rulesOf(chains: Chains, chain: string): string[] {
  const rules = chains.get(chain);
  if (rules === undefined) throw new RestoreError(`No chain/target/match by that name (${chain})`);
  return rules;
}

function applyLine(table: TableName, chains: Chains, line: string): void {
  const declared = /^:(\S+) \S+ \[\d+:\d+\]$/.exec(line)?.[1];
  if (declared !== undefined) {
    // `:CHAIN` under --noflush: a user chain is created, or flushed if it exists.
    if (!BUILTIN[table].includes(declared)) chains.set(declared, []);
    return;
  }
  const m = /^(-[AIDFXN]) (\S+)(?: (.*))?$/.exec(line);
  if (m === null) throw new RestoreError(`cannot parse ${JSON.stringify(line)}`);
  const [, op = '', chain = '', rest = ''] = m;
  if (op === '-N') {
    if (chains.has(chain)) throw new RestoreError('Chain already exists');
    return void chains.set(chain, []);
  }
  if (op === '-F') return void rulesOf(chains, chain).splice(0);
  if (op === '-X') return removeChain(table, chains, chain);
  if (op === '-D') return deleteRule(chains, chain, rest);
  if (op === '-A') return void rulesOf(chains, chain).push(checkTarget(table, chains, rest));
  const at = /^(\d+) (.*)$/.exec(rest);
  const rules = rulesOf(chains, chain);
  const pos = Number(at?.[1] ?? 0);
  if (at === null || pos < 1 || pos > rules.length + 1) throw new RestoreError('Index of insertion too big');
  rules.splice(pos - 1, 0, checkTarget(table, chains, at[2] ?? ''));
}

function removeChain(table: TableName, chains: Chains, chain: string): void {
  if (BUILTIN[table].includes(chain) || rulesOf(chains, chain).length > 0) {
    throw new RestoreError(`Directory not empty (${chain})`);
  }
  const jump = new RegExp(`(^| )-[jg] ${chain.replace(/[^\w-]/g, '\\$&')}( |$)`);
  for (const rules of chains.values()) {
    if (rules.some((r) => jump.test(r))) throw new RestoreError(`Too many links (${chain})`);
  }
  chains.delete(chain);
}

function deleteRule(chains: Chains, chain: string, spec: string): void {
  const rules = rulesOf(chains, chain);
  const i = rules.indexOf(spec);
  if (i < 0) throw new RestoreError('Bad rule (does a matching rule exist in that chain?)');
  rules.splice(i, 1);
}

function checkTarget(table: TableName, chains: Chains, spec: string): string {
  const target = /(?:^| )-j (\S+)/.exec(spec)?.[1];
  if (target !== undefined && !TARGETS[table].has(target) && !chains.has(target)) {
    throw new RestoreError(`Couldn't load target \`${target}'`);
  }
  return spec;
}

/** `-w [-t TABLE] -S [CHAIN]`, the only listings the backend runs. */
function listArgs(args: readonly string[]): { table: TableName; chain: string | undefined } | undefined {
  if (args[0] !== '-w') return undefined;
  const table = args[1] === '-t' ? (args[2] ?? '') : 'filter';
  const rest = args.slice(args[1] === '-t' ? 3 : 1);
  if (!isTable(table) || rest[0] !== '-S' || rest.length > 2) return undefined;
  return { table, chain: rest[1] };
}

export type CommandObserver = (argv: readonly string[], input: string | undefined) => void;

/** A Runner that answers `<iptables> -w [-t nat] -S [chain]` and `<restore> -w --noflush`
 *  from the two families' tables; anything else exits 2. `observe` sees every command first. */
export function simulatedRunner(
  bins: IptablesBinaries, tables: Readonly<Record<Family, SimulatedTable>>, observe?: CommandObserver,
): Runner {
  return async (argv, opts) => {
    observe?.(argv, opts?.input);
    const [bin, ...args] = argv;
    const list = bin === bins.iptables ? tables[4] : bin === bins.ip6tables ? tables[6] : undefined;
    const restore = bin === bins.iptablesRestore ? tables[4] : bin === bins.ip6tablesRestore ? tables[6] : undefined;
    const listing = listArgs(args);
    if (list !== undefined && listing !== undefined) return list.list(listing.chain, listing.table);
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

  prefilterStatus(): Promise<PrefilterStatus> {
    return this.#inner.prefilterStatus();
  }

  revokeGrant(grant: Grant): Promise<void> {
    return this.#inner.revokeGrant(grant);
  }

  applyChanges(changes: readonly GrantChange[]): Promise<void> {
    return this.#inner.applyChanges(changes);
  }

  stop(opts: { readonly keepGuarding: boolean }): Promise<void> {
    return this.#inner.stop(opts);
  }
}
