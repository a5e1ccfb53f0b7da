// SPDX-License-Identifier: MIT
// Knock doors (docs/config.md "Knock doors") validated and turned into ready values. Part
// of config loading: every error is collected; the door key is never quoted.

import type { RawConfig, RawDoor } from './schema.ts';
import type { Service } from '../firewall/types.ts';
import type { DoorConfig, DoorSource } from '../knock/door.ts';
import { knockPorts } from '../knock/door.ts';
import { parseSequence, parseTcpFlags, type KnockPort } from '../knock/sequence.ts';
import { DOOR_KEY_ERRORS, parseDoorKey, totpRangeProblem } from '../knock/totp.ts';
import { canonicalAddress, parseCidr } from '../wire/address.ts';

export const IP_PLACEHOLDER = '%IP%';

function sourceErrors(d: RawDoor, at: string): string[] {
  const n = [d.sequence, d.one_time_sequences, d.totp].filter((x) => x !== undefined).length;
  if (n !== 1) return [`${at}: needs exactly one of sequence, one_time_sequences, totp (has ${n})`];
  const errors: string[] = [];
  if (d.sequence) {
    const s = parseSequence(d.sequence);
    if (!s.ok) errors.push(`${at}/sequence: ${s.reason}`);
  }
  if (d.totp) {
    const key = parseDoorKey(d.totp.key);
    if (!key.ok) errors.push(`${at}/totp/key: ${DOOR_KEY_ERRORS[key.reason]}`);
    const problem = totpRangeProblem({ length: d.totp.length, portMin: d.totp.port_min, portMax: d.totp.port_max, avoid: new Set() });
    if (problem !== undefined) errors.push(`${at}/totp: ${problem}`);
  }
  return errors;
}

function actionErrors(d: RawDoor, at: string, guarded: ReadonlySet<string>): string[] {
  const errors: string[] = [];
  if (d.services === undefined && d.start === undefined) errors.push(`${at}: needs an action: services and/or start`);
  if (d.stop !== undefined && d.start === undefined) errors.push(`${at}/stop: only with start`);
  d.services?.forEach((s, j) => {
    if (!guarded.has(s)) errors.push(`${at}/services/${j}: ${s} is not a guarded service`);
  });
  for (const which of ['start', 'stop'] as const) {
    if (d[which]?.[0] === '' || d[which]?.[0]?.includes(IP_PLACEHOLDER)) errors.push(`${at}/${which}/0: the program must be a fixed path`);
  }
  return errors;
}

function matchErrors(d: RawDoor, at: string): string[] {
  const errors: string[] = [];
  if (d.tcpflags) {
    const f = parseTcpFlags(d.tcpflags);
    if (!f.ok) errors.push(`${at}/tcpflags: ${f.reason}`);
  }
  if (d.target !== undefined) {
    const t = canonicalAddress(d.target);
    if (t === undefined || t.includes(':')) errors.push(`${at}/target: not an IPv4 address (got ${JSON.stringify(d.target)}; IPv6 raw sockets give no destination address)`);
  }
  d.allowed_addresses.forEach((c, j) => {
    if (!parseCidr(c).ok) errors.push(`${at}/allowed_addresses/${j}: not an address or CIDR with host bits clear (got ${JSON.stringify(c)})`);
  });
  return errors;
}

const portKey = (p: KnockPort): string => `${p.proto}/${p.port}`;

/** Ports other parts of postern own: guarded services, the SPA and fwknop ports. */
function ownedPorts(raw: RawConfig): Map<string, string> {
  const owned = new Map<string, string>(raw.guarded.map((s) => [s, 'a guarded service']));
  owned.set(`udp/${raw.spa.port}`, 'the SPA port');
  if (raw.fwknop.stanzas.length > 0) owned.set(`udp/${raw.fwknop.port}`, 'the fwknop port');
  // External ports of forwarding targets are guarded too (daemon/guard-spec.ts).
  for (const f of [...raw.keys, ...raw.fwknop.stanzas].flatMap((k) => k.forwards)) {
    owned.set(`${f.proto}/${f.port ?? Number(/:([0-9]{1,5})$/.exec(f.to)?.[1])}`, 'a forwarding external port');
  }
  return owned;
}

/** Static sequence and guard ports may not be ports postern owns otherwise, and no
 *  time-derived range may hold any of those (so its derivation's avoid set is empty). */
function overlapErrors(raw: RawConfig): string[] {
  const owned = ownedPorts(raw);
  const fixed = raw.doors.flatMap((d) => (d.sequence ? [parseSequence(d.sequence)] : [])).flatMap((s) => (s.ok ? [s.value] : []));
  const ports = knockPorts(fixed, [], raw.knock.guard_width);
  const errors: string[] = [];
  for (const p of [...ports.sequence, ...ports.guard]) {
    const what = owned.get(portKey(p));
    if (what) errors.push(`/doors: knock or guard port ${portKey(p)} is ${what}`);
  }
  const busy = [...owned.keys(), ...[...ports.sequence, ...ports.guard].map(portKey)];
  raw.doors.forEach((d, i) => {
    const t = d.totp;
    if (!t) return;
    const clash = busy.find((k) => { const [proto, port] = k.split('/'); return proto === t.proto && Number(port) >= t.port_min && Number(port) <= t.port_max; });
    if (clash !== undefined) errors.push(`/doors/${i}/totp: range ${t.port_min}-${t.port_max} holds ${clash}, a guarded, SPA, or static knock/guard port`);
  });
  return errors;
}

export function doorErrors(raw: RawConfig, guarded: ReadonlySet<string>): string[] {
  const errors = raw.doors.flatMap((d, i) => {
    const at = `/doors/${i}`;
    return [...sourceErrors(d, at), ...actionErrors(d, at, guarded), ...matchErrors(d, at)];
  });
  const names = raw.doors.map((d) => d.name);
  for (const n of new Set(names.filter((v, i) => names.indexOf(v) !== i))) errors.push(`/doors: duplicate door name ${JSON.stringify(n)}`);
  return [...errors, ...overlapErrors(raw)];
}

function doorSource(d: RawDoor): DoorSource {
  if (d.totp) {
    const key = parseDoorKey(d.totp.key);
    if (!key.ok) throw new Error('unreachable: validated door key');
    const t = d.totp;
    return { kind: 'totp', key: key.value, stepS: t.step_s, length: t.length, portMin: t.port_min, portMax: t.port_max, proto: t.proto };
  }
  if (d.one_time_sequences !== undefined) return { kind: 'one_time', path: d.one_time_sequences };
  const seq = parseSequence(d.sequence ?? []);
  if (!seq.ok) throw new Error('unreachable: validated sequence');
  return { kind: 'static', sequence: Object.freeze(seq.value) };
}

/** A validated door (doorErrors returned nothing) as the engine's DoorConfig. */
export function buildDoor(d: RawDoor, parseService: (s: string) => Service | undefined): DoorConfig {
  const flags = d.tcpflags ? parseTcpFlags(d.tcpflags) : undefined;
  const target = d.target === undefined ? undefined : canonicalAddress(d.target);
  return Object.freeze({
    name: d.name,
    source: doorSource(d),
    seqTimeoutS: d.seq_timeout_s,
    ...(flags?.ok && { tcpFlags: flags.value }),
    ...(target !== undefined && { target }),
    services: Object.freeze((d.services ?? []).flatMap((s) => parseService(s) ?? [])),
    durationS: d.duration_s,
    allowedAddresses: Object.freeze(d.allowed_addresses.flatMap((c) => { const r = parseCidr(c); return r.ok ? [r.value] : []; })),
    ...(d.start && { start: Object.freeze([...d.start]) }),
    ...(d.stop && { stop: Object.freeze([...d.stop]) }),
    cmdTimeoutS: d.cmd_timeout_s,
  });
}
