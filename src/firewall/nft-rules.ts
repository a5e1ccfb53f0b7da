// SPDX-License-Identifier: MIT
// Pure nftables text for the nft backend (nft.ts; DESIGN.md fact 2, "Firewall model";
// STYLE.md principle 9): the table, its chains and rules, stop, and argv. Elements are in
// nft-elements.ts, which grant owns them in nft-covers.ts, listings in nft-listing.ts.
//
// Every variable part of a script (port, protocol, mark) is validated, with the same checks
// as iptables-rules.ts. Syntax checked with nft 1.0.6 (Debian 12) on Linux 6.x. OpenWrt
// 22.03 ships nft 1.0.2, newer than `th` (0.9.3), concatenations, element comments,
// concatenated ranges (0.9.4, kernel 5.6) and concatenated NAT map data (0.9.4), so the
// same text should load there; not yet run on a device.

import { FirewallValueError, checkGuardSpec } from './iptables-rules.ts';
import { FORWARD_SET_IDS, GRANT_SET_IDS, NFT_TABLE, setDeclaration, setName } from './nft-elements.ts';
import type { SetId } from './nft-elements.ts';
import { nftPrefilterDeclarations, nftPrefilterRules, prefilterOf } from './prefilter.ts';
import type { Family, GuardSpec, Service } from './types.ts';

export { NFT_TABLE } from './nft-elements.ts';
/** The one packet-mark bit postern sets on packets it accepts (capture, grants, forwards). */
export const DEFAULT_NFT_MARK = 0x10000000;

const IP: Readonly<Record<Family, string>> = { 4: 'ip', 6: 'ip6' };

export function checkMark(mark: number): void {
  if (!Number.isInteger(mark) || mark < 1 || mark > 0x80000000 || !Number.isInteger(Math.log2(mark))) {
    throw new FirewallValueError(`bad mark ${JSON.stringify(mark)}: want a single bit, 0x1 .. 0x80000000`);
  }
}

export const hexMark = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;

function elements(set: string, services: readonly Service[]): string[] {
  const unique = [...new Set(services.map((s) => `${s.proto} . ${s.port}`))];
  return unique.length === 0 ? [] : [`add element ${NFT_TABLE} ${set} { ${unique.join(', ')} }`];
}

const rule = (chain: string, text: string): string => `add rule ${NFT_TABLE} ${chain} ${text}`;
const setOrMap = (s: SetId): string => (s.kind === 'dnat' ? 'map' : 'set');

/** Chains and sets for forwarding grants (nft.ts header). Host maps come before network
 *  maps: an address with both a host and a network grant goes where its host grant says. */
function forwardingLines(m: string, clear: string): string[] {
  const dnat = FORWARD_SET_IDS.filter((s) => s.kind === 'dnat');
  const fwd = FORWARD_SET_IDS.filter((s) => s.kind === 'fwd');
  return [
    ...FORWARD_SET_IDS.map(setDeclaration),
    `add chain ${NFT_TABLE} prerouting { type nat hook prerouting priority dstnat - 10; policy accept; }`,
    `add chain ${NFT_TABLE} forward { type filter hook forward priority filter - 10; policy accept; }`,
    `flush chain ${NFT_TABLE} prerouting`,
    `flush chain ${NFT_TABLE} forward`,
    // `th dport` in a NAT mapping needs a transport protocol match first.
    ...dnat.map((s) => rule('prerouting', `meta l4proto { tcp, udp } dnat ${IP[s.family]} to ${IP[s.family]} saddr . meta l4proto . th dport map @${setName(s)}`)),
    rule('forward', `meta mark & ${m} == ${m} meta mark set meta mark & ${clear}`),
    rule('forward', `ct state established,related ct status dnat meta mark set meta mark | ${m} accept`),
    ...fwd.map((s) => rule('forward', `ct status dnat ${IP[s.family]} saddr . ${IP[s.family]} daddr . meta l4proto . th dport @${setName(s)} meta mark set meta mark | ${m} accept`)),
  ];
}

/** Removes whatever a run with forwarding left, idempotently (`add` first: each exists
 *  afterwards) and without the nat module: a chain added without a type is a plain chain,
 *  and an existing base chain is left as it is until its delete. */
export function dropForwardingLines(): string[] {
  return [
    ...['prerouting', 'forward'].flatMap((c) => [`add chain ${NFT_TABLE} ${c}`, `flush chain ${NFT_TABLE} ${c}`, `delete chain ${NFT_TABLE} ${c}`]),
    ...FORWARD_SET_IDS.flatMap((s) => [setDeclaration(s), `delete ${setOrMap(s)} ${NFT_TABLE} ${setName(s)}`]),
  ];
}

/** start and update: create what is missing, rebuild chains and the constant sets in one
 *  transaction, and never touch the grant sets (reconcile owns them). With
 *  spec.forwarding the forwarding chains and sets too; without it they are removed. Rule
 *  order is explained in the header of nft.ts. */
export function guardLines(spec: GuardSpec, mark: number): string[] {
  checkGuardSpec(spec);
  checkMark(mark);
  const m = hexMark(mark);
  const clear = hexMark(0xffffffff - mark);
  return [
    `add table ${NFT_TABLE}`,
    `add set ${NFT_TABLE} guarded { type inet_proto . inet_service; }`,
    `add set ${NFT_TABLE} capture { type inet_proto . inet_service; }`,
    ...GRANT_SET_IDS.map(setDeclaration),
    ...(spec.spaPrefilter === undefined ? [] : nftPrefilterDeclarations(NFT_TABLE)),
    `add chain ${NFT_TABLE} input { type filter hook input priority filter - 10; policy accept; }`,
    `add chain ${NFT_TABLE} output { type filter hook output priority filter - 10; policy accept; }`,
    `flush chain ${NFT_TABLE} input`,
    `flush chain ${NFT_TABLE} output`,
    `flush set ${NFT_TABLE} guarded`,
    `flush set ${NFT_TABLE} capture`,
    ...elements('guarded', spec.guarded),
    ...elements('capture', spec.capture),
    rule('input', `meta mark & ${m} == ${m} meta mark set meta mark & ${clear}`),
    rule('input', 'iif "lo" return'),
    // Before the capture accept: prefiltered ports accept only their shapes (prefilter.ts).
    ...nftPrefilterRules(prefilterOf(spec), `meta mark set meta mark | ${m} accept`).map((r) => rule('input', r)),
    rule('input', `meta l4proto . th dport @capture meta mark set meta mark | ${m} accept`),
    ...(spec.captureTcpRanges ?? []).map((r) => rule('input', `tcp dport ${r.from}-${r.to} meta mark set meta mark | ${m} accept`)),
    rule('input', 'ct state established,related meta l4proto . th dport @guarded accept'),
    ...GRANT_SET_IDS.map((s) => rule('input', `${IP[s.family]} saddr . meta l4proto . th dport @${setName(s)} meta mark set meta mark | ${m} accept`)),
    rule('input', 'meta l4proto . th dport @guarded drop'),
    rule('output', 'meta l4proto . th sport @capture tcp flags & rst == rst drop'),
    ...(spec.captureTcpRanges ?? []).map((r) => rule('output', `tcp sport ${r.from}-${r.to} tcp flags & rst == rst drop`)),
    ...(spec.forwarding === true ? forwardingLines(m, clear) : dropForwardingLines()),
  ];
}

/** Fallback for start when an existing table cannot be amended (a set or chain of another
 *  shape, left by another version): replace the whole table, still in one transaction. */
export const recreateLines = (spec: GuardSpec, mark: number): string[] =>
  [`add table ${NFT_TABLE}`, `delete table ${NFT_TABLE}`, ...guardLines(spec, mark)];

export interface GuardAttempt {
  readonly lines: string[];
  readonly recreate: boolean;
  readonly forwarding: boolean;
  /** Logged when the attempt before this one failed. */
  readonly note: string;
}

/** The guard transactions start (mayRecreate) or update tries, in order, until one
 *  applies: amend the table; replace it (a table of another shape cannot be amended);
 *  then both again without forwarding (nft refuses a nat chain without nat support).
 *  Once refused (natRefused), forwarding is not tried again. */
export function guardAttempts(spec: GuardSpec, mark: number, opts: { mayRecreate: boolean; natRefused: boolean }): GuardAttempt[] {
  const plain = { ...spec, forwarding: false };
  const specs = spec.forwarding !== true ? [spec] : opts.natRefused ? [plain] : [spec, plain];
  return specs.flatMap((s) => {
    const forwarding = s.forwarding === true;
    const amend = { lines: guardLines(s, mark), recreate: false, forwarding, note: 'trying again without forwarding' };
    const without = forwarding || s === spec ? '' : ' without forwarding';
    const note = `cannot amend table inet postern; replacing it${without} (grants in it are lost)`;
    return opts.mayRecreate ? [amend, { lines: recreateLines(s, mark), recreate: true, forwarding, note }] : [amend];
  });
}

/** keepGuarding: empty every grant set and map (forwarding: those that exist). */
export function stopLines(keepGuarding: boolean, forwarding: boolean): string[] {
  const sets = [...GRANT_SET_IDS, ...(forwarding ? FORWARD_SET_IDS : [])];
  return keepGuarding
    ? sets.map((s) => `flush ${setOrMap(s)} ${NFT_TABLE} ${setName(s)}`)
    : [`add table ${NFT_TABLE}`, `delete table ${NFT_TABLE}`]; // `add` first: idempotent
}

/** `nft -f -` input: one transaction, all or nothing. */
export function nftScript(lines: readonly string[]): string {
  for (const l of lines) if (/[\r\n]/.test(l)) throw new FirewallValueError(`newline in nft line ${JSON.stringify(l)}`);
  return lines.map((l) => `${l}\n`).join('');
}

export const applyArgv = (bin: string): string[] => [bin, '-f', '-'];
/** The whole table, elements included: what reconcile reads (one spawn). */
export const listTableArgv = (bin: string): string[] => [bin, '-j', 'list', 'table', 'inet', 'postern'];
