// SPDX-License-Identifier: MIT
// Pure planners for the iptables backend: guard rules, iptables-restore input and argv,
// whole-table listings parsed into ChainState, and the plans that turn listings plus the
// wanted state into restore lines (STYLE.md principle 9). No I/O, no clock: nowMs is a
// parameter. Chain layout and transaction rules are described at the top of iptables.ts;
// rule text, validation and grant-chain listings live in iptables-rules.ts.

import {
  FORWARD_ESTABLISHED, FirewallValueError, GRANT_CHAINS, checkGrant, checkGuardSpec, grantRuleLines, isForwardEstablished,
  portMatch,
} from './iptables-rules.ts';
import type { ChainNames, GrantChain, GrantRule, TableName } from './iptables-rules.ts';
import type { Family, Grant, GuardSpec, ReconcileReport, Service } from './types.ts';
import { iptablesPrefilterRules, prefilterOf } from './prefilter.ts';

function uniqueServices(list: readonly Service[]): Service[] {
  const seen = new Map<string, Service>();
  for (const s of list) seen.set(`${s.proto}/${s.port}`, s);
  return [...seen.values()];
}

/** Rules of the input and output chains, in order (header of iptables.ts explains why). */
export function guardRuleLines(names: ChainNames, spec: GuardSpec, family: Family): string[] {
  checkGuardSpec(spec);
  const capture = uniqueServices(spec.capture);
  const guarded = uniqueServices(spec.guarded);
  const ranges = spec.captureTcpRanges ?? [];
  const a = (rule: string): string => `-A ${names.input} ${rule}`;
  return [
    // Local processes (a web UI proxied to 127.0.0.1:443, ssh from the console) are not
    // what postern guards against: loopback leaves our chain untouched.
    a('-i lo -j RETURN'),
    // Before the capture accept: prefiltered ports accept only their shapes (prefilter.ts).
    ...iptablesPrefilterRules(prefilterOf(spec), family).map(a),
    ...capture.map((s) => a(`${portMatch(s)} -j ACCEPT`)),
    ...ranges.map((r) => a(`-p tcp -m tcp --dport ${r.from}:${r.to} -j ACCEPT`)),
    ...guarded.map((s) => a(`${portMatch(s)} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`)),
    a(`-j ${names.grants}`),
    ...guarded.map((s) => a(`${portMatch(s)} -j DROP`)),
    // UDP capture ports need no ICMP rule: the daemon binds a sink UDP socket on them,
    // so the kernel never sends port unreachable (DESIGN.md fact 1).
    ...capture
      .filter((s) => s.proto === 'tcp')
      .map((s) => `-A ${names.output} -p tcp -m tcp --sport ${s.port} --tcp-flags RST RST -j DROP`),
    ...ranges.map((r) => `-A ${names.output} -p tcp -m tcp --sport ${r.from}:${r.to} --tcp-flags RST RST -j DROP`),
  ];
}

/** `:CHAIN - [0:0]` under --noflush creates the chain, or flushes it if it exists. */
export const declareChain = (chain: string): string => `:${chain} - [0:0]`;

/** One `*table ... COMMIT` block of an iptables-restore input. Each block is its own
 *  kernel transaction (nft and legacy alike, checked): a later block that fails leaves the
 *  earlier ones applied, so callers order blocks to be safe at every boundary. */
export interface RestoreSection {
  readonly table: TableName;
  readonly lines: readonly string[];
}

/** The iptables-restore input for the sections, empty ones left out. */
export function restoreSections(sections: readonly RestoreSection[]): string {
  const out: string[] = [];
  for (const s of sections) {
    if (s.lines.length === 0) continue;
    for (const l of s.lines) {
      if (/[\r\n]/.test(l)) throw new FirewallValueError(`newline in restore line ${JSON.stringify(l)}`);
    }
    out.push(`*${s.table}`, ...s.lines, 'COMMIT');
  }
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}

/** Full iptables-restore input for one filter-table transaction. */
export function restoreScript(lines: readonly string[]): string {
  return restoreSections([{ table: 'filter', lines }]);
}

export const listArgv = (bin: string, chain?: string, table: TableName = 'filter'): string[] => [
  bin, '-w', ...(table === 'filter' ? [] : ['-t', table]), '-S', ...(chain === undefined ? [] : [chain]),
];
export const restoreArgv = (bin: string): string[] => [bin, '-w', '--noflush'];

/** What start and stop need to know from `iptables [-t nat] -S` (a whole table). */
export interface ChainState {
  /** Which of our chains exist (in the listed table). */
  readonly chains: ReadonlySet<string>;
  /** 0-based positions of `-A INPUT -j <input>` among INPUT's rules (likewise OUTPUT,
   *  FORWARD -> <forward>, PREROUTING -> <dnat>). */
  readonly inputJumps: readonly number[];
  readonly outputJumps: readonly number[];
  readonly forwardJumps: readonly number[];
  readonly preroutingJumps: readonly number[];
  /** 0-based positions of FORWARD_ESTABLISHED among <forward>'s rules. */
  readonly forwardEstablished: readonly number[];
  /** Rules listed in <input> and <output>: start compares them with what it would write. */
  readonly inputRules: number;
  readonly outputRules: number;
}

const BUILTINS = ['INPUT', 'OUTPUT', 'FORWARD', 'PREROUTING'] as const;
type Builtin = (typeof BUILTINS)[number];

/** Parses one table's listing; call it once for filter and once for nat (both have an
 *  INPUT and an OUTPUT chain, so the listings must not be mixed). */
export function parseChainState(listing: string, names: ChainNames): ChainState {
  const ours = new Set([names.input, names.grants, names.output, names.forward, names.dnat]);
  const target: Record<Builtin, string> = {
    INPUT: names.input, OUTPUT: names.output, FORWARD: names.forward, PREROUTING: names.dnat,
  };
  const chains = new Set<string>();
  const jumps: Record<Builtin, number[]> = { INPUT: [], OUTPUT: [], FORWARD: [], PREROUTING: [] };
  const seen: Record<Builtin, number> = { INPUT: 0, OUTPUT: 0, FORWARD: 0, PREROUTING: 0 };
  const established: number[] = [];
  let fwdRules = 0;
  let inputRules = 0;
  let outputRules = 0;
  const fwdHead = `-A ${names.forward} `;
  for (const raw of listing.split('\n')) {
    const line = raw.trim();
    if (line.startsWith(`-A ${names.input} `)) inputRules++;
    if (line.startsWith(`-A ${names.output} `)) outputRules++;
    if (line.startsWith('-N ') && ours.has(line.slice(3))) chains.add(line.slice(3));
    if (line.startsWith(fwdHead)) {
      if (isForwardEstablished(line.slice(fwdHead.length))) established.push(fwdRules);
      fwdRules++;
    }
    for (const b of BUILTINS) {
      if (!line.startsWith(`-A ${b} `)) continue;
      if (line === `-A ${b} -j ${target[b]}`) jumps[b].push(seen[b]);
      seen[b]++;
    }
  }
  return {
    chains, inputJumps: jumps.INPUT, outputJumps: jumps.OUTPUT, forwardJumps: jumps.FORWARD,
    preroutingJumps: jumps.PREROUTING, forwardEstablished: established, inputRules, outputRules,
  };
}

/** Whether a start would change nothing in this family: both guard chains hold as many
 *  rules as `spec` makes (the backend knows it wrote this very spec), each jumped to once
 *  from the top, and no forwarding in play. Then the periodic start leaves the chains alone
 *  instead of rebuilding them, which would reset the prefilter's rule counters. */
export function guardIntact(names: ChainNames, spec: GuardSpec, state: ChainState, family: Family): boolean {
  if (spec.forwarding === true || state.chains.has(names.forward) || !state.chains.has(names.grants)) return false;
  const lines = guardRuleLines(names, spec, family);
  const count = (chain: string): number => lines.filter((l) => l.startsWith(`-A ${chain} `)).length;
  return atTopOnly(state.inputJumps) && atTopOnly(state.outputJumps)
    && state.inputRules === count(names.input) && state.outputRules === count(names.output);
}

const atTopOnly = (at: readonly number[]): boolean => at.length === 1 && at[0] === 0;

/** Leaves exactly one `-j chain` in `builtin`, at position 1. */
const jumpFix = (builtin: string, chain: string, at: readonly number[]): string[] =>
  atTopOnly(at) ? [] : [...at.map(() => `-D ${builtin} -j ${chain}`), `-I ${builtin} 1 -j ${chain}`];

/** <forward> with FORWARD_ESTABLISHED first and grant rules kept, and its FORWARD jump. */
function forwardChainLines(names: ChainNames, state: ChainState): string[] {
  const f = names.forward;
  let established: string[] = [];
  if (!state.chains.has(f)) established = [declareChain(f), `-A ${f} ${FORWARD_ESTABLISHED}`];
  else if (!atTopOnly(state.forwardEstablished)) {
    // -D matches semantically, so the canonical text deletes the listed variant too.
    const deletes = state.forwardEstablished.map(() => `-D ${f} ${FORWARD_ESTABLISHED}`);
    established = [...deletes, `-I ${f} 1 ${FORWARD_ESTABLISHED}`];
  }
  return [...established, ...jumpFix('FORWARD', f, state.forwardJumps)];
}

/** <forward> and its jumps gone (stop, or start without forwarding finding leftovers). */
function removeForwardChain(names: ChainNames, state: ChainState): string[] {
  if (!state.chains.has(names.forward)) return [];
  return [...state.forwardJumps.map(() => `-D FORWARD -j ${names.forward}`), `-F ${names.forward}`, `-X ${names.forward}`];
}

/** Filter-table lines for start: rebuild <P>-IN/<P>-OUT atomically, create <P>-GRANTS only
 *  when missing (its rules belong to reconcile), leave exactly one jump at position 1; with
 *  spec.forwarding likewise <P>-FWD (created once, grant rules kept), without it remove a
 *  <P>-FWD left by an earlier configuration. */
export function planStart(names: ChainNames, spec: GuardSpec, state: ChainState, family: Family): string[] {
  return [
    declareChain(names.input),
    declareChain(names.output),
    ...(state.chains.has(names.grants) ? [] : [declareChain(names.grants)]),
    ...guardRuleLines(names, spec, family),
    ...jumpFix('INPUT', names.input, state.inputJumps),
    ...jumpFix('OUTPUT', names.output, state.outputJumps),
    ...(spec.forwarding === true ? forwardChainLines(names, state) : removeForwardChain(names, state)),
  ];
}

/** Nat-table lines for start with forwarding: <P>-DNAT created once, one PREROUTING jump. */
export function planStartNat(names: ChainNames, nat: ChainState): string[] {
  return [
    ...(nat.chains.has(names.dnat) ? [] : [declareChain(names.dnat)]),
    ...jumpFix('PREROUTING', names.dnat, nat.preroutingJumps),
  ];
}

export function planUpdate(names: ChainNames, spec: GuardSpec, family: Family): string[] {
  return [declareChain(names.input), declareChain(names.output), ...guardRuleLines(names, spec, family)];
}

/** Filter-table lines for stop. keepGuarding removes grant rules only: <P>-FWD keeps its
 *  FORWARD_ESTABLISHED rule, as <P>-IN keeps its established rules. */
export function planStop(names: ChainNames, state: ChainState, keepGuarding: boolean): string[] {
  const fwd = state.chains.has(names.forward);
  if (keepGuarding) {
    return [
      ...(state.chains.has(names.grants) ? [`-F ${names.grants}`] : []),
      ...(fwd ? [`-F ${names.forward}`, `-A ${names.forward} ${FORWARD_ESTABLISHED}`] : []),
    ];
  }
  const ours = [names.input, names.output, names.grants].filter((c) => state.chains.has(c));
  return [
    ...state.inputJumps.map(() => `-D INPUT -j ${names.input}`),
    ...state.outputJumps.map(() => `-D OUTPUT -j ${names.output}`),
    ...ours.map((c) => `-F ${c}`),
    ...ours.map((c) => `-X ${c}`),
    ...removeForwardChain(names, state),
  ];
}

/** Nat-table lines for stop (and for start without forwarding finding leftovers). */
export function planStopNat(names: ChainNames, nat: ChainState, keepGuarding: boolean): string[] {
  if (!nat.chains.has(names.dnat)) return [];
  if (keepGuarding) return [`-F ${names.dnat}`];
  return [...nat.preroutingJumps.map(() => `-D PREROUTING -j ${names.dnat}`), `-F ${names.dnat}`, `-X ${names.dnat}`];
}

/** Listed grant rules per chain; a chain absent here was not listed (holds none in scope). */
export type ChainRules = Partial<Record<GrantChain, readonly GrantRule[]>>;

export interface GrantPlan {
  readonly sections: readonly RestoreSection[];
  /** Grant ids that got at least one rule added / deleted. */
  readonly added: ReadonlySet<string>;
  readonly deleted: ReadonlySet<string>;
}

type PerChain<T> = Record<GrantChain, T[]>;
const perChain = <T>(): PerChain<T> => ({ grants: [], forward: [], dnat: [] });

/** Adds first, then deletes, in one process; across tables in an order that is safe at
 *  every commit boundary: a FORWARD accept is added before its DNAT and removed after it,
 *  so a DNATed packet never meets a missing accept (an accept without its DNAT matches
 *  nothing: it requires --ctstate DNAT). Without nat changes this is one filter block. */
export function grantSections(adds: PerChain<string>, dels: PerChain<string>): RestoreSection[] {
  const blocks: RestoreSection[] = [
    { table: 'filter', lines: [...adds.forward, ...adds.grants, ...dels.grants] },
    { table: 'nat', lines: [...adds.dnat, ...dels.dnat] },
    { table: 'filter', lines: dels.forward },
  ];
  const out: RestoreSection[] = [];
  for (const b of blocks.filter((s) => s.lines.length > 0)) {
    const last = out.at(-1);
    if (last === undefined || last.table !== b.table) out.push(b);
    else out[out.length - 1] = { table: b.table, lines: [...last.lines, ...b.lines] };
  }
  return out;
}

/** Makes the in-scope tagged rules equal exactly the rules of `desired`: missing ones are
 *  added, everything else in scope (stale expiry, unknown id, duplicate) is deleted. */
export function planGrants(
  names: ChainNames, existing: ChainRules, desired: readonly Grant[], inScope: (r: GrantRule) => boolean,
): GrantPlan {
  const want: PerChain<[string, { line: string; id: string }]> = perChain();
  for (const g of desired) {
    const lines = grantRuleLines(names, g);
    for (const c of GRANT_CHAINS) for (const [key, line] of lines[c]) want[c].push([key, { line, id: g.id }]);
  }
  const adds = perChain<string>();
  const dels = perChain<string>();
  const added = new Set<string>();
  const deleted = new Set<string>();
  for (const c of GRANT_CHAINS) {
    const wanted = new Map(want[c]);
    const have = new Set<string>();
    for (const r of existing[c] ?? []) {
      if (!inScope(r)) continue;
      if (r.key !== null && wanted.has(r.key) && !have.has(r.key)) have.add(r.key);
      else {
        dels[c].push(`-D ${names[c]} ${r.spec}`);
        deleted.add(r.grantId);
      }
    }
    for (const [key, w] of wanted) {
      if (have.has(key)) continue;
      adds[c].push(w.line);
      added.add(w.id);
    }
  }
  return { sections: grantSections(adds, dels), added, deleted };
}

export interface ReconcilePlan extends ReconcileReport {
  readonly sections: readonly RestoreSection[];
  /** Live grants that failed validation: treated as expired (fail closed). */
  readonly invalid: readonly string[];
  /** Live forwarding grants that cannot be placed: no forwarding chains in this family. */
  readonly unplaced: readonly string[];
}

/** Reconcile for one family: the tagged rules in the listed chains become exactly those of
 *  the live grants that have not expired at nowMs. `removed` lists ids that lost all
 *  standing (expired, unknown, invalid); a live grant whose rules carried a stale expiry is
 *  re-added and listed in `restored` only. Untagged rules are out of scope and stay. */
export function planReconcile(
  names: ChainNames, family: Family, existing: ChainRules, live: readonly Grant[], nowMs: number,
): ReconcilePlan {
  const invalid: string[] = [];
  const unplaced: string[] = [];
  const forwarding = existing.forward !== undefined && existing.dnat !== undefined;
  const active = live.filter((g) => {
    if (g.family !== family || g.expiresAtMs <= nowMs) return false;
    try {
      checkGrant(g);
    } catch {
      invalid.push(String(g.id));
      return false;
    }
    if (g.forward !== undefined && !forwarding) unplaced.push(g.id);
    return g.forward === undefined || forwarding;
  });
  const activeIds = new Set(active.map((g) => g.id));
  const plan = planGrants(names, existing, active, () => true);
  const removed = [...plan.deleted].filter((id) => !activeIds.has(id));
  return { sections: plan.sections, removed, restored: [...plan.added], invalid, unplaced };
}
