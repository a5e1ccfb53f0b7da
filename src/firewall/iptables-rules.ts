// SPDX-License-Identifier: MIT
// Pure iptables/ip6tables rule text: validation, the rules of a grant (plain, prefix,
// forwarding), and parsers for `iptables [-t nat] -S <chain>` listings of the grant chains
// (STYLE.md principle 9: backends only build argv and parse listings; exec.ts spawns). No
// I/O, no clock. Guard rules, restore scripts, argv and planning live in iptables-plan.ts.
//
// Every value that reaches argv or a restore script is validated here again, even though
// config validation happens elsewhere: a port, a proto, a grant id, an address, a prefix
// length and a forwarding target are the only variable parts, and each has a closed
// syntax, so no value can smuggle an extra option (or a quote or newline into a restore
// line). The rule text is written in exactly the form `iptables -S` prints it (explicit
// `-m tcp`, `/32` on -d, quoted comment, no `-s` for a /0 source), so what we add and what
// we list read the same (checked with iptables 1.8.9 nft and legacy).

import { isIP, SocketAddress } from 'node:net';
import { networkOf } from '../wire/address.ts';
import type { Family, ForwardTarget, Grant, GuardSpec, Service, TaggedRule } from './types.ts';

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
  /** filter, jumped from FORWARD position 1: established DNATed flows, then one ACCEPT per
   *  forwarding grant. */
  readonly forward: string;
  /** nat, jumped from PREROUTING position 1: one DNAT per forwarding grant. */
  readonly dnat: string;
}

/** The chains that hold grant rules; the names double as ChainNames keys. */
export type GrantChain = 'grants' | 'forward' | 'dnat';
export const GRANT_CHAINS: readonly GrantChain[] = ['grants', 'forward', 'dnat'];
export type TableName = 'filter' | 'nat';
export const TABLE_OF: Readonly<Record<GrantChain, TableName>> = { grants: 'filter', forward: 'filter', dnat: 'nat' };

export const DEFAULT_CHAIN_PREFIX = 'POSTERN';
/** Chain names are at most 28 characters (XT_EXTENSION_MAXNAMELEN 29 with the NUL). */
const CHAIN_PREFIX_RE = /^[A-Za-z][A-Za-z0-9_]{0,19}$/;
const GRANT_ID_RE = /^[a-z0-9]{1,16}$/;
/** Our rule tag; fwknop's `_exp_<epoch>` idea with the grant id in front (fw_util_iptables.h). */
const TAG_RE = /^postern:([a-z0-9]{1,16}):exp=([0-9]{1,12})$/;
const MAX_EXPIRY_MS = 1e15; // keeps the tag's epoch seconds within 12 digits
const HOST_BITS: Record<Family, number> = { 4: 32, 6: 128 };
/** `iptables -S` leaves out `-s` when the source is the whole address space. */
const ANY_SOURCE: Record<Family, string> = { 4: '0.0.0.0/0', 6: '::/0' };

/** First rule of <P>-FWD. Why it exists: a forwarded connection opened during a grant must
 *  survive the grant's expiry, exactly like local connections do through the ESTABLISHED
 *  rule of <P>-IN (DESIGN.md "Firewall model"); and the replies of every granted forwarded
 *  flow need it on a router whose FORWARD policy is DROP. `--ctstate DNAT` keeps it to
 *  connections that were destination-NATed, so it never opens plain routed traffic. */
export const FORWARD_ESTABLISHED = '-m conntrack --ctstate ESTABLISHED,RELATED -m conntrack --ctstate DNAT -j ACCEPT';

export function chainNames(prefix: string = DEFAULT_CHAIN_PREFIX): ChainNames {
  if (!CHAIN_PREFIX_RE.test(prefix)) throw new FirewallValueError(`bad chain prefix ${JSON.stringify(prefix)}`);
  return {
    input: `${prefix}-IN`, grants: `${prefix}-GRANTS`, output: `${prefix}-OUT`,
    forward: `${prefix}-FWD`, dnat: `${prefix}-DNAT`,
  };
}

function checkPort(port: unknown, what: string): void {
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new FirewallValueError(`bad ${what} ${JSON.stringify(port)}`);
  }
}

export function checkService(s: Service): void {
  const proto: unknown = s.proto;
  if (proto !== 'tcp' && proto !== 'udp') throw new FirewallValueError(`bad protocol ${JSON.stringify(proto)}`);
  checkPort(s.port, 'port');
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

/** A prefix grant names a network: iptables masks the address it is given, so one with
 *  host bits set would be listed differently from what we wrote (and reconcile would
 *  churn it), and it usually means the caller meant something else. */
function checkPrefix(g: Grant): void {
  if (g.prefix === undefined) return;
  const p: unknown = g.prefix;
  if (typeof p !== 'number' || !Number.isInteger(p) || p < 0 || p > HOST_BITS[g.family]) {
    throw new FirewallValueError(`bad IPv${g.family} prefix length ${JSON.stringify(p)} for grant ${g.id}`);
  }
  // Both sides through the same formatter: only the masking may differ.
  if (networkOf(g.address, p) !== networkOf(g.address, HOST_BITS[g.family])) {
    throw new FirewallValueError(`${g.address}/${p} has host bits set (grant ${g.id})`);
  }
}

/** The target is in the grant's family (no NAT64) and the grant opens exactly one
 *  external service (types.ts `Grant`). */
function checkForward(g: Grant, fwd: ForwardTarget): void {
  checkAddress(fwd.address, g.family);
  checkPort(fwd.port, 'forwarding port');
  if (g.services.length !== 1) throw new FirewallValueError(`forwarding grant ${g.id} must have exactly one service`);
}

export function checkGrant(g: Grant): void {
  checkGrantId(g);
  checkAddress(g.address, g.family);
  if (g.services.length === 0) throw new FirewallValueError(`grant ${g.id} has no services`);
  g.services.forEach(checkService);
  checkPrefix(g);
  if (g.forward !== undefined) checkForward(g, g.forward);
  if (!Number.isFinite(g.expiresAtMs) || g.expiresAtMs < 0 || g.expiresAtMs >= MAX_EXPIRY_MS) {
    throw new FirewallValueError(`bad expiry ${JSON.stringify(g.expiresAtMs)} for grant ${g.id}`);
  }
}

export function checkGuardSpec(spec: GuardSpec): void {
  spec.guarded.forEach(checkService);
  spec.capture.forEach(checkService);
  for (const r of spec.captureTcpRanges ?? []) {
    checkPort(r.from, 'port');
    checkPort(r.to, 'port');
    if (r.from > r.to) throw new FirewallValueError(`bad port range ${r.from}-${r.to}`);
  }
}

/** Rounded up, so a tag never claims an earlier expiry than the grant's: reconcile after a
 *  crash removes the rule at most one second late (DESIGN.md "Firewall model"). */
export function grantTag(id: string, expiresAtMs: number): string {
  return `postern:${id}:exp=${Math.ceil(expiresAtMs / 1000)}`;
}

export const portMatch = (s: Service): string => `-p ${s.proto} -m ${s.proto} --dport ${s.port}`;
const sourceMatch = (source: string): string => (source.endsWith('/0') ? '' : `-s ${source} `);
/** `--to-destination` as iptables prints it: IPv6 addresses in brackets. */
const toDestination = (f: Family, t: ForwardTarget): string =>
  f === 4 ? `${t.address}:${t.port}` : `[${t.address}]:${t.port}`;

/** Identity of one grant rule: what reconcile compares between the listing and the
 *  grants. `dest` is the DNAT target (`--to-destination`) or the FORWARD `-d`. */
function ruleKey(source: string, proto: string, port: string, tag: string, dest = ''): string {
  return [source, proto, port, tag, ...(dest === '' ? [] : [dest])].join('|');
}

/** A grant's rules as `-A <chain> ...` lines per chain, keyed by ruleKey; duplicates
 *  collapse. A plain grant has rules in <P>-GRANTS only; a forwarding grant one DNAT in
 *  <P>-DNAT and one ACCEPT in <P>-FWD, and none in <P>-GRANTS: an INPUT accept there would
 *  open the router's own port. */
export function grantRuleLines(names: ChainNames, g: Grant): Record<GrantChain, Map<string, string>> {
  checkGrant(g);
  const tag = grantTag(g.id, g.expiresAtMs);
  const comment = `-m comment --comment "${tag}"`;
  const source = `${g.address}/${g.prefix ?? HOST_BITS[g.family]}`;
  const s = sourceMatch(source);
  const out = { grants: new Map<string, string>(), forward: new Map<string, string>(), dnat: new Map<string, string>() };
  const [external] = g.services;
  if (g.forward === undefined || external === undefined) {
    for (const svc of g.services) {
      const line = `-A ${names.grants} ${s}${portMatch(svc)} ${comment} -j ACCEPT`;
      out.grants.set(ruleKey(source, svc.proto, String(svc.port), tag), line);
    }
    return out;
  }
  const to = toDestination(g.family, g.forward);
  const dest = `${g.forward.address}/${HOST_BITS[g.family]}`;
  const inner: Service = { proto: external.proto, port: g.forward.port };
  out.dnat.set(
    ruleKey(source, external.proto, String(external.port), tag, to),
    `-A ${names.dnat} ${s}${portMatch(external)} ${comment} -j DNAT --to-destination ${to}`,
  );
  out.forward.set(
    ruleKey(source, inner.proto, String(inner.port), tag, dest),
    `-A ${names.forward} ${s}-d ${dest} ${portMatch(inner)} -m conntrack --ctstate DNAT ${comment} -j ACCEPT`,
  );
  return out;
}

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

/** What each grant chain's rules look like: the options besides `-s` (which is absent for
 *  a /0 source), the matches besides the protocol's, and the target. */
const SHAPES: Record<GrantChain, { options: string; matches: string; target: string }> = {
  grants: { options: '--comment --dport -j -p', matches: 'comment', target: 'ACCEPT' },
  dnat: { options: '--comment --dport --to-destination -j -p', matches: 'comment', target: 'DNAT' },
  forward: { options: '--comment --ctstate --dport -d -j -p', matches: 'comment conntrack', target: 'ACCEPT' },
};
const KNOWN_MATCHES = new Set(['tcp', 'udp', 'comment', 'conntrack']);
const VALUE_OPTIONS = new Set(['-s', '-d', '-p', '--dport', '--comment', '--ctstate', '-j', '--to-destination']);
const SOURCE_RE = /^[0-9a-f:.]+\/[0-9]{1,3}$/;

/** Reads the options postern writes. Anything else ('!', other options, a repeated option
 *  or match) is skipped one word at a time and makes the rule not `plain`. */
function readRule(words: readonly string[]): { values: Map<string, string>; matches: string[]; plain: boolean } {
  const values = new Map<string, string>();
  const matches: string[] = [];
  let plain = true;
  for (let i = 0; i < words.length; i++) {
    const w = words[i] ?? '';
    const next = words[i + 1];
    if (w === '-m' && next !== undefined) {
      plain = plain && KNOWN_MATCHES.has(next) && !matches.includes(next);
      matches.push(next);
      i++;
    } else if (VALUE_OPTIONS.has(w) && next !== undefined && !values.has(w)) {
      values.set(w, next);
      i++;
    } else {
      plain = false;
    }
  }
  return { values, matches, plain };
}

/** The ruleKey of a listed rule of exactly our shape for `kind`, else null. */
function shapedKey(kind: GrantChain, family: Family, words: readonly string[], tag: string): string | null {
  const { values, matches, plain } = readRule(words);
  const shape = SHAPES[kind];
  const proto = values.get('-p') ?? '';
  const options = [...values.keys()].filter((k) => k !== '-s').sort().join(' ');
  const others = matches.filter((m) => m !== proto).sort().join(' ');
  const source = values.get('-s') ?? ANY_SOURCE[family];
  const shaped = plain && options === shape.options && matches.includes(proto) && others === shape.matches
    && values.get('-j') === shape.target && SOURCE_RE.test(source)
    && (kind !== 'forward' || values.get('--ctstate') === 'DNAT');
  if (!shaped) return null;
  const dest = kind === 'dnat' ? values.get('--to-destination') : values.get('-d');
  return ruleKey(source, proto, values.get('--dport') ?? '', tag, dest ?? '');
}

function parseGrantLine(spec: string, family: Family, kind: GrantChain): GrantRule | null {
  const words = splitRuleWords(spec);
  if (words === null) return null;
  const comment = words[words.indexOf('--comment') + 1] ?? '';
  const tag = words.includes('--comment') ? TAG_RE.exec(comment) : null;
  if (tag === null) return null;
  const [, grantId = '', exp = ''] = tag;
  return { family, grantId, expiresAtMs: Number(exp) * 1000, key: shapedKey(kind, family, words, tag[0]), spec };
}

/** Whether a listed <P>-FWD rule is FORWARD_ESTABLISHED (iptables prints the states in
 *  its own order). */
export function isForwardEstablished(spec: string): boolean {
  return spec.replace('--ctstate RELATED,ESTABLISHED ', '--ctstate ESTABLISHED,RELATED ') === FORWARD_ESTABLISHED;
}

/** Parses `iptables [-t nat] -S <chain>` output for one grant chain. Never throws: lines
 *  it cannot read are foreign. The static FORWARD_ESTABLISHED rule is neither. */
export function parseGrantListing(listing: string, family: Family, chain: string, kind: GrantChain = 'grants'): GrantListing {
  const rules: GrantRule[] = [];
  const foreign: string[] = [];
  const head = `-A ${chain} `;
  for (const raw of listing.split('\n')) {
    const line = raw.trim();
    if (line === '' || line === `-N ${chain}`) continue;
    const spec = line.startsWith(head) ? line.slice(head.length) : null;
    if (spec !== null && kind === 'forward' && isForwardEstablished(spec)) continue;
    const rule = spec === null ? null : parseGrantLine(spec, family, kind);
    if (rule === null) foreign.push(line);
    else rules.push(rule);
  }
  return { rules, foreign };
}

export function parseGrantRules(
  listing: string, family: Family, chain = chainNames().grants, kind: GrantChain = 'grants',
): GrantRule[] {
  return [...parseGrantListing(listing, family, chain, kind).rules];
}
