// SPDX-License-Identifier: MIT
// Pure iptables/ip6tables rule text: validation, builders for argv and iptables-restore
// scripts, and parsers for `iptables -S` listings (STYLE.md principle 9: backends only
// build argv and parse listings; exec.ts spawns). No I/O, no clock.
//
// Every value that reaches argv or a restore script is validated here again, even though
// config validation happens elsewhere: a port, a proto, a grant id and an address are the
// only variable parts, and each has a closed syntax, so no value can smuggle an extra
// option (or a quote or newline into a restore line). The rule text is written in exactly
// the form `iptables -S` prints it (explicit `-m tcp`, quoted comment), so what we add
// and what we list read the same (checked with iptables 1.8.9 nft and legacy).

import { isIP, SocketAddress } from 'node:net';
import type { Family, Grant, GuardSpec, Service, TaggedRule } from './types.ts';

/** Programmer or configuration error: a value that must never reach iptables. */
export class FirewallValueError extends Error {
  override name = 'FirewallValueError';
}

export interface ChainNames {
  /** Jumped from INPUT position 1: capture accepts, established, grants, guard drops. */
  readonly input: string;
  /** One ACCEPT rule per (grant, service), tagged with the grant id and expiry. */
  readonly grants: string;
  /** Jumped from OUTPUT position 1: silences TCP RSTs from capture ports. */
  readonly output: string;
}

export const DEFAULT_CHAIN_PREFIX = 'POSTERN';
/** Chain names are at most 28 characters (XT_EXTENSION_MAXNAMELEN 29 with the NUL). */
const CHAIN_PREFIX_RE = /^[A-Za-z][A-Za-z0-9_]{0,19}$/;
const GRANT_ID_RE = /^[a-z0-9]{1,16}$/;
/** Our rule tag; fwknop's `_exp_<epoch>` idea with the grant id in front (fw_util_iptables.h). */
const TAG_RE = /^postern:([a-z0-9]{1,16}):exp=([0-9]{1,12})$/;
const MAX_EXPIRY_MS = 1e15; // keeps the tag's epoch seconds within 12 digits
const HOST_PREFIX: Record<Family, string> = { 4: '/32', 6: '/128' };

export function chainNames(prefix: string = DEFAULT_CHAIN_PREFIX): ChainNames {
  if (!CHAIN_PREFIX_RE.test(prefix)) throw new FirewallValueError(`bad chain prefix ${JSON.stringify(prefix)}`);
  return { input: `${prefix}-IN`, grants: `${prefix}-GRANTS`, output: `${prefix}-OUT` };
}

export function checkService(s: Service): void {
  const proto: unknown = s.proto;
  if (proto !== 'tcp' && proto !== 'udp') throw new FirewallValueError(`bad protocol ${JSON.stringify(proto)}`);
  if (!Number.isInteger(s.port) || s.port < 1 || s.port > 65535) {
    throw new FirewallValueError(`bad port ${JSON.stringify(s.port)}`);
  }
}

/** Canonical text only (RFC 5952 for IPv6, as inet_ntop and `ip6tables -S` print it):
 *  a listed rule must compare equal to the grant it came from. */
export function checkAddress(address: string, family: Family): void {
  const canonical = isIP(address) === family
    ? new SocketAddress({ address, family: family === 4 ? 'ipv4' : 'ipv6' }).address
    : undefined;
  if (canonical !== address) throw new FirewallValueError(`bad IPv${family} address ${JSON.stringify(address)}`);
}

/** The parts of a grant that revoking needs: its rules are found by id. */
export function checkGrantId(g: Pick<Grant, 'id' | 'family'>): void {
  if (typeof g.id !== 'string' || !GRANT_ID_RE.test(g.id)) throw new FirewallValueError(`bad grant id ${JSON.stringify(g.id)}`);
  if (g.family !== 4 && g.family !== 6) throw new FirewallValueError(`bad family ${JSON.stringify(g.family)}`);
}

export function checkGrant(g: Grant): void {
  checkGrantId(g);
  checkAddress(g.address, g.family);
  if (g.services.length === 0) throw new FirewallValueError(`grant ${g.id} has no services`);
  g.services.forEach(checkService);
  if (!Number.isFinite(g.expiresAtMs) || g.expiresAtMs < 0 || g.expiresAtMs >= MAX_EXPIRY_MS) {
    throw new FirewallValueError(`bad expiry ${JSON.stringify(g.expiresAtMs)} for grant ${g.id}`);
  }
}

export function checkGuardSpec(spec: GuardSpec): void {
  spec.guarded.forEach(checkService);
  spec.capture.forEach(checkService);
}

/** Rounded up, so a tag never claims an earlier expiry than the grant's: reconcile after a
 *  crash removes the rule at most one second late (DESIGN.md "Firewall model"). */
export function grantTag(id: string, expiresAtMs: number): string {
  return `postern:${id}:exp=${Math.ceil(expiresAtMs / 1000)}`;
}

const portMatch = (s: Service): string => `-p ${s.proto} -m ${s.proto} --dport ${s.port}`;

/** Identity of one grant rule: what reconcile compares between the listing and the grants. */
function ruleKey(address: string, proto: string, port: string, tag: string): string {
  return `${address}|${proto}|${port}|${tag}`;
}

/** The grant's rules as `-A <grants> ...` lines, keyed by ruleKey; duplicates collapse. */
export function grantRuleLines(names: ChainNames, g: Grant): Map<string, string> {
  checkGrant(g);
  const tag = grantTag(g.id, g.expiresAtMs);
  const lines = new Map<string, string>();
  for (const s of g.services) {
    const spec = `-s ${g.address}${HOST_PREFIX[g.family]} ${portMatch(s)} -m comment --comment "${tag}" -j ACCEPT`;
    lines.set(ruleKey(g.address, s.proto, String(s.port), tag), `-A ${names.grants} ${spec}`);
  }
  return lines;
}

function uniqueServices(list: readonly Service[]): Service[] {
  const seen = new Map<string, Service>();
  for (const s of list) seen.set(`${s.proto}/${s.port}`, s);
  return [...seen.values()];
}

/** Rules of the input and output chains, in order (header of iptables.ts explains why). */
export function guardRuleLines(names: ChainNames, spec: GuardSpec): string[] {
  checkGuardSpec(spec);
  const capture = uniqueServices(spec.capture);
  const guarded = uniqueServices(spec.guarded);
  const a = (rule: string): string => `-A ${names.input} ${rule}`;
  return [
    // Local processes (a web UI proxied to 127.0.0.1:443, ssh from the console) are not
    // what postern guards against: loopback leaves our chain untouched.
    a('-i lo -j RETURN'),
    ...capture.map((s) => a(`${portMatch(s)} -j ACCEPT`)),
    ...guarded.map((s) => a(`${portMatch(s)} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`)),
    a(`-j ${names.grants}`),
    ...guarded.map((s) => a(`${portMatch(s)} -j DROP`)),
    // UDP capture ports need no ICMP rule: the daemon binds a sink UDP socket on them,
    // so the kernel never sends port unreachable (DESIGN.md fact 1).
    ...capture
      .filter((s) => s.proto === 'tcp')
      .map((s) => `-A ${names.output} -p tcp -m tcp --sport ${s.port} --tcp-flags RST RST -j DROP`),
  ];
}

/** `:CHAIN - [0:0]` under --noflush creates the chain, or flushes it if it exists. */
export const declareChain = (chain: string): string => `:${chain} - [0:0]`;

/** Full iptables-restore input for one table transaction. */
export function restoreScript(lines: readonly string[]): string {
  for (const l of lines) {
    if (/[\r\n]/.test(l)) throw new FirewallValueError(`newline in restore line ${JSON.stringify(l)}`);
  }
  return ['*filter', ...lines, 'COMMIT', ''].join('\n');
}

export const listArgv = (bin: string, chain?: string): string[] =>
  chain === undefined ? [bin, '-w', '-S'] : [bin, '-w', '-S', chain];
export const restoreArgv = (bin: string): string[] => [bin, '-w', '--noflush'];

/** Splits a listed rule into words; double quotes group, backslash escapes (as
 *  xtables_save_string writes them). null for an unterminated quote. */
export function splitRuleWords(line: string): string[] | null {
  const words: string[] = [];
  let cur: string | null = null; // null: between words
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line.charAt(i);
    if (quoted && c === '\\' && i + 1 < line.length) {
      cur = (cur ?? '') + line.charAt(++i);
    } else if (c === '"') {
      quoted = !quoted;
      cur = cur ?? '';
    } else if (!quoted && (c === ' ' || c === '\t')) {
      if (cur !== null) words.push(cur);
      cur = null;
    } else {
      cur = (cur ?? '') + c;
    }
  }
  if (quoted) return null;
  if (cur !== null) words.push(cur);
  return words;
}

export interface GrantRule extends TaggedRule {
  /** ruleKey of the rule, or null when it has a shape postern never writes. */
  readonly key: string | null;
  /** The rule as listed, after `-A <chain> `; `-D <chain> <spec>` deletes it. */
  readonly spec: string;
}

export interface GrantListing {
  readonly rules: readonly GrantRule[];
  /** Rules in the chain without a postern tag: left alone, reported. */
  readonly foreign: readonly string[];
}

const KNOWN_MATCHES = new Set(['tcp', 'udp', 'comment']);
const VALUE_OPTIONS = new Set(['-s', '-p', '--dport', '--comment', '-j']);

/** Reads the options postern writes. Anything else ('!', other matches and options, a
 *  repeated option) is skipped one word at a time and makes the rule not `plain`. */
function readRule(words: readonly string[]): { values: Map<string, string>; plain: boolean } {
  const values = new Map<string, string>();
  let plain = true;
  for (let i = 0; i < words.length; i++) {
    const w = words[i] ?? '';
    const next = words[i + 1];
    if (w === '-m' && next !== undefined) {
      plain = plain && KNOWN_MATCHES.has(next);
      i++;
    } else if (VALUE_OPTIONS.has(w) && next !== undefined && !values.has(w)) {
      values.set(w, next);
      i++;
    } else {
      plain = false;
    }
  }
  return { values, plain };
}

function parseGrantLine(spec: string, family: Family): GrantRule | null {
  const words = splitRuleWords(spec);
  if (words === null) return null;
  const { values, plain } = readRule(words);
  const tag = TAG_RE.exec(values.get('--comment') ?? '');
  if (tag === null) return null;
  const [, grantId = '', exp = ''] = tag;
  const src = values.get('-s') ?? '';
  const shaped = plain && src.endsWith(HOST_PREFIX[family]) && values.get('-j') === 'ACCEPT';
  const address = src.slice(0, src.length - HOST_PREFIX[family].length);
  const key = shaped ? ruleKey(address, values.get('-p') ?? '', values.get('--dport') ?? '', tag[0]) : null;
  return { family, grantId, expiresAtMs: Number(exp) * 1000, key, spec };
}

/** Parses `iptables -S <chain>` output. Never throws: lines it cannot read are foreign. */
export function parseGrantListing(listing: string, family: Family, chain: string): GrantListing {
  const rules: GrantRule[] = [];
  const foreign: string[] = [];
  const head = `-A ${chain} `;
  for (const raw of listing.split('\n')) {
    const line = raw.trim();
    if (line === '' || line === `-N ${chain}`) continue;
    const rule = line.startsWith(head) ? parseGrantLine(line.slice(head.length), family) : null;
    if (rule === null) foreign.push(line);
    else rules.push(rule);
  }
  return { rules, foreign };
}

export function parseGrantRules(listing: string, family: Family, chain = chainNames().grants): GrantRule[] {
  return [...parseGrantListing(listing, family, chain).rules];
}

/** What start and stop need to know from `iptables -S` (whole filter table). */
export interface ChainState {
  /** Which of our chains exist. */
  readonly chains: ReadonlySet<string>;
  /** 0-based positions of `-A INPUT -j <input>` among INPUT's rules (likewise OUTPUT). */
  readonly inputJumps: readonly number[];
  readonly outputJumps: readonly number[];
}

export function parseChainState(listing: string, names: ChainNames): ChainState {
  const ours = new Set([names.input, names.grants, names.output]);
  const chains = new Set<string>();
  const jumps = { INPUT: [] as number[], OUTPUT: [] as number[] };
  const seen = { INPUT: 0, OUTPUT: 0 };
  const target = { INPUT: names.input, OUTPUT: names.output };
  for (const raw of listing.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('-N ') && ours.has(line.slice(3))) chains.add(line.slice(3));
    for (const b of ['INPUT', 'OUTPUT'] as const) {
      if (!line.startsWith(`-A ${b} `)) continue;
      if (line === `-A ${b} -j ${target[b]}`) jumps[b].push(seen[b]);
      seen[b]++;
    }
  }
  return { chains, inputJumps: jumps.INPUT, outputJumps: jumps.OUTPUT };
}

const jumpFix = (builtin: string, chain: string, at: readonly number[]): string[] =>
  at.length === 1 && at[0] === 0
    ? []
    : [...at.map(() => `-D ${builtin} -j ${chain}`), `-I ${builtin} 1 -j ${chain}`];

/** Restore lines for start: rebuild <P>-IN/<P>-OUT atomically, create <P>-GRANTS only when
 *  missing (its rules belong to reconcile), and leave exactly one jump at position 1. */
export function planStart(names: ChainNames, spec: GuardSpec, state: ChainState): string[] {
  return [
    declareChain(names.input),
    declareChain(names.output),
    ...(state.chains.has(names.grants) ? [] : [declareChain(names.grants)]),
    ...guardRuleLines(names, spec),
    ...jumpFix('INPUT', names.input, state.inputJumps),
    ...jumpFix('OUTPUT', names.output, state.outputJumps),
  ];
}

export function planUpdate(names: ChainNames, spec: GuardSpec): string[] {
  return [declareChain(names.input), declareChain(names.output), ...guardRuleLines(names, spec)];
}

export function planStop(names: ChainNames, state: ChainState, keepGuarding: boolean): string[] {
  if (keepGuarding) return state.chains.has(names.grants) ? [`-F ${names.grants}`] : [];
  const ours = [names.input, names.output, names.grants].filter((c) => state.chains.has(c));
  return [
    ...state.inputJumps.map(() => `-D INPUT -j ${names.input}`),
    ...state.outputJumps.map(() => `-D OUTPUT -j ${names.output}`),
    ...ours.map((c) => `-F ${c}`),
    ...ours.map((c) => `-X ${c}`),
  ];
}
