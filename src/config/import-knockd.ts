// SPDX-License-Identifier: MIT
// `postern import knockd`: knockd.conf -> postern's `doors` (docs/config.md "Knock doors";
// docs/cli.md "postern import"). Pure: text in, result out.
//
// The rule for every door: it is converted only when postern does exactly what knockd did,
// or less. A command that needs a shell, a Target postern cannot match, a directive knockd
// itself would refuse: the door is refused with the reason. Global options postern has no
// use for are reported and ignored. Every line that is not converted as written is in the
// report (line, door, directive, message).

import { validateConfig } from './load.ts';
import { doorActions, sameAction, type DoorAction, type FamilyAction } from './knockd-actions.ts';
import { lastEntry, readKnockdConf, type KnockdEntry, type KnockdSection } from './knockd-conf.ts';
import { canonicalAddress } from '../wire/address.ts';

export interface KnockdReportLine {
  /** 0 = the file as a whole. */
  readonly line: number;
  /** null = outside any door. */
  readonly door: string | null;
  readonly directive: string;
  readonly message: string;
}

/** One converted door: the fields of the config's door object that the import sets. */
export interface ImportedDoor {
  name: string;
  sequence?: string[];
  one_time_sequences?: string;
  seq_timeout_s: number;
  tcpflags?: string[];
  target?: string;
  services?: string[];
  duration_s?: number;
  start?: string[];
  stop?: string[];
  cmd_timeout_s?: number;
  allowed_addresses?: string[];
}

export interface KnockdImportResult {
  readonly doors: ImportedDoor[];
  readonly report: readonly KnockdReportLine[];
  /** Door sections in the file, and how many became (one or two) postern doors. */
  readonly total: number;
  readonly converted: number;
  /** The doors passed validateConfig inside a minimal config (and there was one). */
  readonly valid: boolean;
}

const MAX_SEQ = 32;
const DEFAULT_SEQ_TIMEOUT_S = 25;
const MAX_SEQ_TIMEOUT_S = 3600;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
const FLAGS = new Set(['fin', 'syn', 'rst', 'psh', 'ack', 'urg']);
const V4_ONLY = ['0.0.0.0/0'];
const V6_ONLY = ['::/0'];
const NOT_CONVERTED = ' (door not converted)';
const DOOR_KEYS = new Set(['SEQUENCE', 'ONE_TIME_SEQUENCES', 'SEQ_TIMEOUT', 'TCPFLAGS', 'TARGET', 'START_COMMAND', 'START_COMMAND_6',
  'STOP_COMMAND', 'STOP_COMMAND_6', 'CMD_TIMEOUT']);
const OPTION_NOTES: Readonly<Record<string, string>> = {
  USESYSLOG: 'postern logs to stderr, which its service manager (procd, systemd) sends to syslog; ignored',
  LOGFILE: 'postern logs to stderr (the service manager\'s log); ignored',
  PIDFILE: 'postern runs in the foreground under its service manager and writes no PID file; ignored',
  INTERFACE: 'postern counts knocks on every interface; to match knockd, restrict doors with target or allowed_addresses; ignored',
};

type Say = (e: KnockdEntry | undefined, message: string) => void;
/** A refusal: the reason, or a value. */
interface Refusal { readonly refuse: string }
type Part<T> = T | Refusal;
const refuse = (why: string): Refusal => ({ refuse: why });
function isRefusal<T>(p: T | Refusal): p is Refusal {
  return typeof p === 'object' && p !== null && 'refuse' in p;
}

/** knockd's parse_port_sequence, strict: every item PORT[:tcp|udp] with PORT 1-65535. */
function sequenceOf(e: KnockdEntry): Part<string[]> {
  const items = (e.value ?? '').split(',').map((s) => s.trim());
  if (items.length > MAX_SEQ) return refuse(`more than ${MAX_SEQ} ports`);
  const out: string[] = [];
  for (const item of items) {
    const m = /^([0-9]{1,5})\s*(?::\s*(tcp|udp))?$/i.exec(item);
    const port = Number(m?.[1]);
    if (!m || port < 1 || port > 65535) return refuse(`not PORT[:tcp|udp] with PORT 1-65535: ${JSON.stringify(item.slice(0, 20))}`);
    out.push(`${port}:${(m[2] ?? 'tcp').toLowerCase()}`);
  }
  return out;
}

function sourceOf(s: KnockdSection): Part<Pick<ImportedDoor, 'sequence' | 'one_time_sequences'>> {
  const seq = lastEntry(s.entries, 'SEQUENCE');
  const ots = lastEntry(s.entries, 'ONE_TIME_SEQUENCES');
  if (seq && ots) return refuse('both Sequence and One_Time_Sequences: postern needs one of them');
  if (ots) return ots.value ? { one_time_sequences: ots.value } : refuse('One_Time_Sequences has no file');
  if (!seq) return refuse('no Sequence (knockd refuses this door: "empty knock sequence")');
  const parsed = sequenceOf(seq);
  return isRefusal(parsed) ? refuse(`Sequence: ${parsed.refuse}`) : { sequence: parsed };
}

function timeoutOf(s: KnockdSection): Part<number> {
  const e = lastEntry(s.entries, 'SEQ_TIMEOUT');
  if (e?.value === undefined) return DEFAULT_SEQ_TIMEOUT_S;
  const n = /^[0-9]{1,5}$/.test(e.value) ? Number(e.value) : NaN;
  return n >= 1 && n <= MAX_SEQ_TIMEOUT_S ? n : refuse(`Seq_Timeout must be 1-${MAX_SEQ_TIMEOUT_S} seconds (got ${JSON.stringify(e.value.slice(0, 20))})`);
}

/** TCPFlags: a later setting of the same flag wins, as in knockd. */
function flagsOf(s: KnockdSection): Part<string[] | undefined> {
  const e = lastEntry(s.entries, 'TCPFLAGS');
  if (e?.value === undefined) return undefined;
  const byFlag = new Map<string, string>();
  for (const raw of e.value.split(',')) {
    const f = raw.trim().toLowerCase();
    const bare = f.replace(/^!/, '');
    if (!FLAGS.has(bare)) return refuse(`TCPFlags: unknown flag ${JSON.stringify(raw.slice(0, 10))} (knockd refuses it too)`);
    byFlag.set(bare, f);
  }
  return [...byFlag.values()];
}

function targetOf(s: KnockdSection): Part<string | undefined> {
  const e = lastEntry(s.entries, 'TARGET');
  if (e?.value === undefined) return undefined;
  const addr = canonicalAddress(e.value);
  if (addr === undefined) return refuse(`Target ${JSON.stringify(e.value.slice(0, 40))} is not an address postern can match (names are not resolved)`);
  if (addr.includes(':')) return refuse('an IPv6 Target cannot be matched by postern (IPv6 raw sockets give no destination address)');
  return addr;
}

function actionFields(a: DoorAction): Partial<ImportedDoor> {
  return a.kind === 'grant' ? { services: a.services, duration_s: a.duration_s } : { start: a.start, ...(a.stop && { stop: a.stop, cmd_timeout_s: a.cmd_timeout_s ?? 10 }) };
}

/** One door per distinct family action: both families share a door when knockd did the same. */
function splitByFamily(base: ImportedDoor, v4: FamilyAction, v6: FamilyAction): ImportedDoor[] {
  if (v4 !== null && sameAction(v4, v6)) return [{ ...base, ...actionFields(v4) }];
  const doors: ImportedDoor[] = [];
  if (v4 !== null) doors.push({ ...base, ...actionFields(v4), allowed_addresses: V4_ONLY });
  if (v6 !== null) doors.push({ ...base, name: v4 === null ? base.name : `${base.name.slice(0, 62)}-6`, ...actionFields(v6), allowed_addresses: V6_ONLY });
  return doors;
}

/** Report repeated keys; refuse (true) on a directive knockd itself would reject. */
function badDirective(s: KnockdSection, say: Say): boolean {
  for (const e of s.entries) {
    // knockd accepts the bare UseSyslog flag in any section (parseconfig).
    if (e.key === 'USESYSLOG' && e.value === undefined) {
      say(e, OPTION_NOTES['USESYSLOG'] ?? '');
      continue;
    }
    if (!DOOR_KEYS.has(e.key) || e.value === undefined) {
      say(e, `unknown directive (knockd refuses the whole file: "syntax error")${NOT_CONVERTED}`);
      return true;
    }
    if (lastEntry(s.entries, e.key) !== e) say(e, 'set again later in this door; the later value wins, as in knockd');
  }
  return false;
}

/** Everything but the action: what is knocked, and how it is matched. */
function doorBase(s: KnockdSection, name: string): Part<ImportedDoor> {
  const source = sourceOf(s);
  if (isRefusal(source)) return source;
  const timeout = timeoutOf(s);
  if (isRefusal(timeout)) return timeout;
  const flags = flagsOf(s);
  if (isRefusal(flags)) return flags;
  const target = targetOf(s);
  if (isRefusal(target)) return target;
  return { name, ...source, seq_timeout_s: timeout, ...(flags && { tcpflags: flags }), ...(target !== undefined && { target }) };
}

function convertDoor(s: KnockdSection, name: string, say: Say): ImportedDoor[] {
  if (badDirective(s, say)) return [];
  const base = doorBase(s, name);
  const actions = doorActions(s.entries);
  const refusal = isRefusal(base) ? base.refuse : typeof actions === 'string' ? actions : undefined;
  if (refusal !== undefined || isRefusal(base) || typeof actions === 'string') {
    say(undefined, `${refusal ?? ''}${NOT_CONVERTED}`);
    return [];
  }
  for (const n of actions.notes) say(n.entry, n.message);
  const doors = splitByFamily(base, actions.v4, actions.v6);
  if (doors.length === 2) say(undefined, `IPv4 and IPv6 knocks ran different commands: two doors, ${doors.map((d) => d.name).join(' and ')}`);
  else if (doors[0]?.allowed_addresses) say(undefined, `converted for IPv${doors[0].allowed_addresses === V4_ONLY ? 4 : 6} knocks only (knockd ran nothing for the other family)`);
  return doors;
}

/** A postern door name for a knockd section name, unique among `taken`. */
function doorName(section: string, index: number, taken: Set<string>): string {
  let name = section.replace(/[^A-Za-z0-9._@-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 60);
  if (!NAME.test(name)) name = `door-${index + 1}`;
  for (let n = 2; taken.has(name) || taken.has(`${name}-6`); n++) name = `${name.replace(/-[0-9]+$/, '')}-${n}`;
  taken.add(name);
  return name;
}

/** A guarded service far from every knock port: the check needs one, command doors have none. */
function spareService(doors: readonly ImportedDoor[]): string {
  const ports = doors.flatMap((d) => d.sequence ?? []).map((k) => Number(k.split(':')[0]));
  const port = [22, 2222, 60022, 1].find((p) => ports.every((k) => Math.abs(k - p) > 16)) ?? 22;
  return `tcp/${port}`;
}

function configErrors(doors: readonly ImportedDoor[]): readonly string[] {
  const services = doors.flatMap((d) => d.services ?? []);
  const guarded = [...new Set(services.length > 0 ? services : [spareService(doors)])];
  const r = validateConfig({ device: 'knockd-import', guarded, keys: [], doors });
  return r.ok ? [] : r.errors;
}

/** Keep the doors that load on their own, then check them together. */
function validateDoors(doors: ImportedDoor[], lines: ReadonlyMap<string, number>, report: KnockdReportLine[]): { doors: ImportedDoor[]; valid: boolean } {
  const kept = doors.filter((d) => {
    const errors = configErrors([d]);
    for (const err of errors) report.push({ line: lines.get(d.name) ?? 0, door: d.name, directive: 'validate', message: `config check: ${err.replace('/doors/0', `/doors/${d.name}`)}${NOT_CONVERTED}` });
    return errors.length === 0;
  });
  const errors = kept.length === 0 ? [] : configErrors(kept);
  for (const err of errors) report.push({ line: 0, door: null, directive: 'validate', message: `config check: ${err}` });
  return { doors: kept, valid: kept.length > 0 && errors.length === 0 };
}

/** Convert a knockd.conf. Never throws on file content. */
export function importKnockd(text: string): KnockdImportResult {
  const report: KnockdReportLine[] = [];
  const file = readKnockdConf(text);
  for (const o of file.orphans) report.push({ line: o.line, door: null, directive: '-', message: o.message });
  for (const e of file.options) {
    report.push({ line: e.line, door: null, directive: e.written.slice(0, 40), message: OPTION_NOTES[e.key] ?? 'unknown option (knockd refuses the whole file: "syntax error"); ignored' });
  }
  const taken = new Set<string>();
  const lines = new Map<string, number>();
  const doors = file.doors.flatMap((s, i) => {
    const name = doorName(s.name, i, taken);
    const say: Say = (e, message) => report.push({ line: e?.line ?? s.line, door: name, directive: e?.written.slice(0, 40) ?? `[${s.name.slice(0, 40)}]`, message });
    if (name !== s.name) say(undefined, `renamed to ${name} (postern door names are 1-64 of A-Z a-z 0-9 . _ @ -, unique)`);
    const converted = convertDoor(s, name, say);
    for (const d of converted) lines.set(d.name, s.line);
    return converted;
  });
  if (file.doors.length === 0) report.push({ line: 0, door: null, directive: '-', message: 'no door section found' });
  const checked = validateDoors(doors, lines, report);
  if (checked.doors.some((d) => d.sequence)) report.push({ line: 0, door: null, directive: '-', message: 'static sequences can be observed and replayed; prefer totp doors (docs/config.md)' });
  report.sort((a, b) => a.line - b.line);
  const sections = new Set(checked.doors.map((d) => lines.get(d.name)));
  return { doors: checked.doors, report, total: file.doors.length, converted: sections.size, valid: checked.valid };
}
