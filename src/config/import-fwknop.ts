// SPDX-License-Identifier: MIT
// `postern import fwknop`: fwknopd's access.conf (and optionally fwknopd.conf) -> postern's
// `fwknop` config section (docs/config.md "fwknop clients"). Pure: text in, result out.
//
// Syntax as fwknopd reads it (ref/fwknop.md section 14; server/access.c parse_access_file):
// `NAME value` lines, the value running to `;` or the end of the line, `#`/`;` lines are
// comments, a trailing `:` on NAME is dropped, each SOURCE starts a stanza, later values win.
//
// The rule for every stanza: it is converted only when postern grants no more than fwknopd
// did. Anything that would widen access (no HMAC, no OPEN_PORTS, an expiry, a DESTINATION,
// forced NAT, a command cycle) refuses the stanza; anything postern does more strictly
// (command execution, GPG, SNAT) is converted with a note. Every dropped option is reported
// by file, line, stanza and option, and a key value is never echoed (STYLE.md principle 6).

import { validateConfig } from './load.ts';
import type { RawFwknopStanza } from './schema.ts';
import { networkOf, parseCidr } from '../wire/address.ts';
import { KEY_BASE64_TEXT, MAX_PASSPHRASE_LEN } from '../fwknop/constants.ts';

/** One finding. `line` 0 = the file as a whole; `stanza` null = outside any stanza. */
export interface ImportReportLine {
  readonly file: 'access.conf' | 'fwknopd.conf';
  readonly line: number;
  readonly stanza: string | null;
  readonly option: string;
  readonly message: string;
}

/** One converted stanza: the fields of FwknopStanzaSchema that the import sets. */
export type ImportedStanza = Omit<RawFwknopStanza, 'forwards' | 'restrict_ports' | 'local_nat'> & { restrict_ports?: string[] };

export interface ImportedFwknop {
  port: number;
  max_age_s: number;
  stanzas: ImportedStanza[];
}

export interface FwknopImportResult {
  readonly fwknop: ImportedFwknop;
  readonly report: readonly ImportReportLine[];
  /** Stanzas in access.conf (each SOURCE) and how many of them are in `fwknop.stanzas`. */
  readonly total: number;
  readonly converted: number;
  /** The section passed validateConfig inside a minimal config (and had a stanza). */
  readonly valid: boolean;
}

/** fwknop's Rijndael passphrase limit and HMAC key limit (ref/fwknop.md sections 4 and 6). */
const MAX_HMAC_KEY_BYTES = 128;
const MAX_TIMEOUT_S = 86400;
const DEFAULT_FW_ACCESS_TIMEOUT_S = 30;
const DEFAULT_MAX_FW_TIMEOUT_S = 300;
const MAX_LIST = 16;
const MAX_SOURCES = 64;
const MAX_USERNAME = 48;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;
const DIGESTS: readonly string[] = ['md5', 'sha1', 'sha256', 'sha384', 'sha512', 'sha3_256', 'sha3_512'];
const PLACEHOLDER = '__changeme__';
const NOT_CONVERTED = ' (stanza not converted)';

/** One `NAME value` line; `label` is the text of a `#` comment line right above it. */
interface Entry { readonly line: number; readonly name: string; readonly value: string | undefined; readonly label: string | undefined }

/** An option name as printed: a line that is not `NAME value` may be a pasted key. */
const optionLabel = (name: string): string => (/^([A-Z][A-Z0-9_]*|%include(_folder|_keys)?)$/.test(name) ? name : '(unrecognised line)');

/** fwknopd's add_acc_bool: a value starting with Y or y is true. */
const isYes = (v: string): boolean => /^y/i.test(v);

function readEntries(text: string): Entry[] {
  const entries: Entry[] = [];
  let label: string | undefined;
  text.split(/\r?\n/).forEach((raw, i) => {
    const t = raw.trim();
    if (t === '' || t.startsWith('#') || t.startsWith(';')) {
      label = t.startsWith('#') ? t.replace(/^#+\s*/, '') : undefined;
      return;
    }
    // sscanf("%s %[^;\n\r]") in access.c; a trailing ':' on the name is dropped there too.
    const m = /^(\S+)(?:\s+([^;]*))?/.exec(t);
    const value = m?.[2]?.trim();
    entries.push({ line: i + 1, name: (m?.[1] ?? '').replace(/:$/, ''), value: value === '' ? undefined : value, label });
    label = undefined;
  });
  return entries;
}

const MAPPED = new Set(['SOURCE', 'KEY', 'KEY_BASE64', 'HMAC_KEY', 'HMAC_KEY_BASE64', 'HMAC_DIGEST_TYPE', 'OPEN_PORTS',
  'RESTRICT_PORTS', 'FW_ACCESS_TIMEOUT', 'MAX_FW_TIMEOUT', 'REQUIRE_SOURCE_ADDRESS', 'REQUIRE_SOURCE', 'REQUIRE_USERNAME']);

type Verdict = { readonly refuse: boolean; readonly message: string } | undefined;
const refuse = (message: string): Verdict => ({ refuse: true, message });
const note = (message: string): Verdict => ({ refuse: false, message });
const NO_COMMANDS = note('postern never runs commands: command messages (type 0) are refused and logged; ignored');
const CYCLE = refuse('postern never runs commands, and fwknopd ran this command cycle instead of adding a firewall rule');
const EXPIRE = refuse('postern stanzas do not expire: converted, the access would outlive the date; add it by hand and remove it when due');
const NO_SNAT = note('SNAT/MASQUERADE are not supported (postern forwards with DNAT only); ignored');

/** Options that are not mapped to a field: what each value means for the stanza. */
const OPTION_RULES: Readonly<Record<string, (value: string) => Verdict>> = {
  ENCRYPTION_MODE: (v) => (/^cbc$/i.test(v) ? undefined : refuse('postern decrypts only CBC, fwknop\'s default; move the clients to CBC (fwknop -M cbc) and remove this line')),
  ENABLE_CMD_EXEC: (v) => (isYes(v) ? NO_COMMANDS : undefined),
  ENABLE_CMD_SUDO_EXEC: (v) => (isYes(v) ? NO_COMMANDS : undefined),
  CMD_EXEC_USER: () => NO_COMMANDS, CMD_EXEC_GROUP: () => NO_COMMANDS, CMD_REGEX: () => NO_COMMANDS,
  CMD_SUDO_EXEC_USER: () => NO_COMMANDS, CMD_SUDO_EXEC_GROUP: () => NO_COMMANDS,
  CMD_CYCLE_OPEN: () => CYCLE, CMD_CYCLE_CLOSE: () => CYCLE, CMD_CYCLE_TIMER: () => CYCLE,
  ACCESS_EXPIRE: () => EXPIRE, ACCESS_EXPIRE_EPOCH: () => EXPIRE,
  DESTINATION: (v) => (/^any$/i.test(v) ? undefined : refuse('postern cannot match the packet\'s destination: converted, the stanza would apply to every address of the device')),
  // forwards are per request (client -N host:port), FORCE_NAT redirects every request: not the same grant.
  FORCE_NAT: () => refuse('postern does not force NAT: its `forwards` serve clients that ask for one (fwknop -N host:port); add a forwards entry for that target by hand and point the clients at it'),
  FORWARD_ALL: (v) => (isYes(v) ? refuse('postern has no gateway mode: it forwards only the targets a stanza lists') : undefined),
  FORCE_SNAT: () => NO_SNAT,
  FORCE_MASQUERADE: (v) => (isYes(v) ? NO_SNAT : undefined),
  DISABLE_DNAT: (v) => (isYes(v) ? note('only meaningful with FORWARD_ALL, which postern lacks; ignored') : undefined),
};

interface Stanza {
  readonly line: number;
  readonly name: string;
  readonly options: Map<string, Entry>;
}

interface Ctx {
  readonly stanza: Stanza;
  readonly report: ImportReportLine[];
  refused: boolean;
}

function flag(ctx: Ctx, line: number, option: string, verdict: Verdict): void {
  if (!verdict) return;
  if (verdict.refuse) ctx.refused = true;
  ctx.report.push({ file: 'access.conf', line, stanza: ctx.stanza.name, option, message: verdict.message + (verdict.refuse ? NOT_CONVERTED : '') });
}

/** A comment right above SOURCE names the stanza, unless it looks like a commented-out
 *  option line (which could hold a key: a name is printed, a key must never be). */
function stanzaName(label: string | undefined, n: number, taken: ReadonlySet<string>): string {
  const clean = label === undefined || /^%?[A-Z][A-Z0-9_]*(:|\s|$)/.test(label) ? ''
    : label.replace(/[^A-Za-z0-9._@-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 64).replace(/-+$/, '');
  const base = NAME.test(clean) ? clean : `stanza-${n}`;
  return taken.has(base) ? `${base.slice(0, 56)}-${n}` : base;
}

function groupStanzas(entries: readonly Entry[], report: ImportReportLine[]): Stanza[] {
  const stanzas: Stanza[] = [];
  const taken = new Set<string>();
  for (const e of entries) {
    const current = stanzas.at(-1);
    const at = { file: 'access.conf' as const, line: e.line, stanza: current?.name ?? null, option: optionLabel(e.name) };
    if (e.name === 'SOURCE') {
      const name = stanzaName(e.label, stanzas.length + 1, taken);
      taken.add(name);
      stanzas.push({ line: e.line, name, options: new Map([['SOURCE', e]]) });
      at.stanza = name;
    } else if (e.name.startsWith('%include')) {
      report.push({ ...at, message: `not followed: convert the ${e.name === '%include_keys' ? 'keys file\'s keys into this stanza' : 'included file(s)'} too` });
      continue;
    } else if (!current) {
      report.push({ ...at, message: 'before the first SOURCE: fwknopd ignores it' });
      continue;
    } else if (current.options.has(e.name)) {
      report.push({ ...at, message: `set again (first on line ${current.options.get(e.name)?.line}); the last value is used, as fwknopd does` });
    }
    // A valueless line is left out, so a required option counts as missing (and refuses).
    if (e.value === undefined) report.push({ ...at, message: 'has no value (fwknopd refuses the file); left out' });
    else if (e.name !== 'SOURCE') current?.options.set(e.name, e);
  }
  return stanzas;
}

function convertSource(ctx: Ctx): string[] | undefined {
  const e = ctx.stanza.options.get('SOURCE');
  const items = (e?.value ?? '').split(/[\s,]+/).filter((s) => s !== '');
  if (items.length === 0 || items.length > MAX_SOURCES) return void flag(ctx, ctx.stanza.line, 'SOURCE', refuse(`needs ANY or 1-${MAX_SOURCES} addresses/CIDRs`));
  if (items.some((s) => /^any$/i.test(s))) return ['ANY'];
  const out: string[] = [];
  for (const item of items) {
    const [addr = '', prefixText] = item.split('/');
    const prefix = prefixText === undefined ? undefined : /^[0-9]{1,3}$/.test(prefixText) ? Number(prefixText) : -1;
    const net = prefix === undefined ? addr : networkOf(addr, prefix);
    const cidr = net === undefined ? undefined : prefix === undefined ? net : `${net}/${prefix}`;
    if (cidr === undefined || !parseCidr(cidr).ok) return void flag(ctx, ctx.stanza.line, 'SOURCE', refuse(`${JSON.stringify(item)} is not an address or CIDR`));
    // fwknopd masks the host bits (access.c add_source_mask); keep its meaning, say so.
    if (cidr !== item) flag(ctx, ctx.stanza.line, 'SOURCE', note(`${item} has host bits set; fwknopd matched ${cidr}, and so does the import`));
    out.push(cidr);
  }
  return out;
}

interface Secret { readonly field: 'text' | 'base64'; readonly value: string; readonly bytes: Buffer; readonly line: number }

/** KEY / KEY_BASE64 (or the HMAC pair): the later line wins, as both fill one fwknopd field. */
function convertSecret(ctx: Ctx, textName: string, what: string, maxBytes: number): Secret | undefined {
  const text = ctx.stanza.options.get(textName);
  const b64 = ctx.stanza.options.get(`${textName}_BASE64`);
  const e = text && b64 ? (text.line > b64.line ? text : b64) : (text ?? b64);
  if (!e || e.value === undefined) return undefined;
  if (text && b64) flag(ctx, e.line, e.name, note(`both ${textName} and ${textName}_BASE64 are set; the later one (this line) is used, as fwknopd does`));
  const option = e.name;
  if (e.value.toLowerCase() === PLACEHOLDER) return void flag(ctx, e.line, option, refuse(`still the __CHANGEME__ placeholder: generate a real ${what} (fwknopd --key-gen)`));
  if (option.endsWith('_BASE64') && !KEY_BASE64_TEXT.test(e.value)) return void flag(ctx, e.line, option, refuse('not base64'));
  const bytes = option.endsWith('_BASE64') ? Buffer.from(e.value, 'base64') : Buffer.from(e.value, 'utf8');
  if (bytes.length === 0 || bytes.length > maxBytes) return void flag(ctx, e.line, option, refuse(`the ${what} is ${bytes.length} bytes; postern takes 1-${maxBytes}, as fwknop uses`));
  return { field: option.endsWith('_BASE64') ? 'base64' : 'text', value: e.value, bytes, line: e.line };
}

function convertKeys(ctx: Ctx): Pick<ImportedStanza, 'key' | 'key_base64' | 'hmac_key' | 'hmac_key_base64'> | undefined {
  const key = convertSecret(ctx, 'KEY', 'key', MAX_PASSPHRASE_LEN);
  const hmac = convertSecret(ctx, 'HMAC_KEY', 'HMAC key', MAX_HMAC_KEY_BYTES);
  const has = (n: string) => ctx.stanza.options.has(n) || ctx.stanza.options.has(`${n}_BASE64`);
  const gpg = [...ctx.stanza.options.keys()].some((n) => n.startsWith('GPG_'));
  if (!has('KEY')) flag(ctx, ctx.stanza.line, 'KEY', refuse(`no KEY or KEY_BASE64${gpg ? ': GPG mode is not supported' : ''}`));
  if (!has('HMAC_KEY')) flag(ctx, ctx.stanza.line, 'HMAC_KEY', refuse('postern requires an HMAC key; fwknopd would accept unauthenticated packets here'));
  if (key && hmac && key.bytes.equals(hmac.bytes)) flag(ctx, hmac.line, 'HMAC_KEY', refuse('the HMAC key equals the encryption key'));
  if (!key || !hmac || ctx.refused) return undefined;
  return {
    ...(key.field === 'text' ? { key: key.value } : { key_base64: key.value }),
    ...(hmac.field === 'text' ? { hmac_key: hmac.value } : { hmac_key_base64: hmac.value }),
  };
}

function convertPorts(ctx: Ctx, option: 'OPEN_PORTS' | 'RESTRICT_PORTS'): string[] | undefined {
  const e = ctx.stanza.options.get(option);
  if (e?.value === undefined) {
    if (option === 'OPEN_PORTS') flag(ctx, ctx.stanza.line, option, refuse('missing: fwknopd opens any port a client asks for; postern needs the list (add OPEN_PORTS, e.g. tcp/22)'));
    return undefined;
  }
  const out = new Set<string>();
  for (const item of e.value.split(/[\s,]+/).filter((s) => s !== '')) {
    const m = /^(tcp|udp)\/([0-9]{1,5})$/i.exec(item);
    const port = Number(m?.[2]);
    if (!m || port < 1 || port > 65535) return void flag(ctx, e.line, option, refuse(`${JSON.stringify(item)} is not tcp/PORT or udp/PORT`));
    out.add(`${m[1]?.toLowerCase()}/${port}`);
  }
  if (out.size === 0 || out.size > MAX_LIST) return void flag(ctx, e.line, option, refuse(`needs 1-${MAX_LIST} proto/port entries`));
  return [...out];
}

function timeout(ctx: Ctx, option: string, fallback: number): number {
  const e = ctx.stanza.options.get(option);
  if (e?.value === undefined) return fallback;
  if (!/^[0-9]{1,9}$/.test(e.value)) return flag(ctx, e.line, option, refuse('not a whole number of seconds')), fallback;
  const n = Number(e.value);
  if (n < 1) return flag(ctx, e.line, option, note(`below 1: fwknopd uses its default ${fallback}, and so does the import`)), fallback;
  if (n > MAX_TIMEOUT_S) return flag(ctx, e.line, option, note(`capped at postern's ${MAX_TIMEOUT_S} s`)), MAX_TIMEOUT_S;
  return n;
}

function convertPolicy(ctx: Ctx): Pick<ImportedStanza, 'hmac_digest_type' | 'fw_access_timeout_s' | 'max_fw_timeout_s' | 'require_source_address' | 'require_username'> {
  const o = ctx.stanza.options;
  const digest = o.get('HMAC_DIGEST_TYPE');
  const type = digest?.value?.toLowerCase() ?? 'sha256';
  if (digest && !DIGESTS.includes(type)) flag(ctx, digest.line, 'HMAC_DIGEST_TYPE', refuse(`not one of ${DIGESTS.join(', ')}`));
  const max = timeout(ctx, 'MAX_FW_TIMEOUT', DEFAULT_MAX_FW_TIMEOUT_S);
  let fw = timeout(ctx, 'FW_ACCESS_TIMEOUT', DEFAULT_FW_ACCESS_TIMEOUT_S);
  if (fw > max) fw = (flag(ctx, o.get('FW_ACCESS_TIMEOUT')?.line ?? ctx.stanza.line, 'FW_ACCESS_TIMEOUT', note(`above MAX_FW_TIMEOUT: fwknopd honours ${max} s, and so does the import`)), max);
  const rs = [o.get('REQUIRE_SOURCE_ADDRESS'), o.get('REQUIRE_SOURCE')].filter((e) => e?.value !== undefined).sort((a, b) => (a?.line ?? 0) - (b?.line ?? 0)).at(-1);
  const user = o.get('REQUIRE_USERNAME');
  if (user?.value !== undefined && user.value.length > MAX_USERNAME) flag(ctx, user.line, 'REQUIRE_USERNAME', refuse(`longer than ${MAX_USERNAME} characters`));
  return {
    hmac_digest_type: type as ImportedStanza['hmac_digest_type'],
    fw_access_timeout_s: fw, max_fw_timeout_s: max,
    require_source_address: rs?.value !== undefined && isYes(rs.value),
    ...(user?.value === undefined ? {} : { require_username: user.value }),
  };
}

function checkOtherOptions(ctx: Ctx): void {
  for (const [name, e] of ctx.stanza.options) {
    if (MAPPED.has(name) || e.value === undefined) continue;
    const rule = OPTION_RULES[name];
    const verdict = rule ? rule(e.value)
      : name.startsWith('GPG_') ? note('GPG mode is not supported (postern speaks fwknop\'s Rijndael + HMAC mode); ignored')
        : note('unknown option; fwknopd ignores it too');
    flag(ctx, e.line, optionLabel(name), verdict);
  }
}

function convertStanza(stanza: Stanza, report: ImportReportLine[]): ImportedStanza | undefined {
  const ctx: Ctx = { stanza, report, refused: false };
  checkOtherOptions(ctx);
  const source = convertSource(ctx);
  const open = convertPorts(ctx, 'OPEN_PORTS');
  const restrict = convertPorts(ctx, 'RESTRICT_PORTS');
  const policy = convertPolicy(ctx);
  const keys = convertKeys(ctx);
  if (ctx.refused || !source || !open || !keys) return undefined;
  const { hmac_digest_type, ...limits } = policy;
  // Field order as docs/config.md lists them, so the output reads like the reference.
  return { name: stanza.name, source, ...keys, hmac_digest_type, open_ports: open, ...(restrict ? { restrict_ports: restrict } : {}), ...limits };
}

// ---- fwknopd.conf (ref/fwknop.md section 14.2): global options, the last value wins ----

const DEFAULT_FWKNOP_PORT = 62201;
const DEFAULT_MAX_AGE_S = 120;
const MIN_MAX_AGE_S = 5;
const MAX_MAX_AGE_S = 100000;
const FORWARDING = 'postern forwards only to targets listed in a stanza\'s `forwards` (none are imported); with some, set forwarding.enable_ip_forward';
const NO_SNAT_D = 'SNAT is not supported (postern forwards with DNAT only); ignored';

/** fwknopd.conf options with a meaning postern lacks, when set to the given value. */
const DAEMON_RULES: Readonly<Record<string, (v: string) => string | undefined>> = {
  ENABLE_SPA_PACKET_AGING: (v) => (isYes(v) ? undefined : 'postern always checks the packet age (fwknop.max_age_s); it cannot be turned off'),
  ENABLE_IPT_FORWARDING: (v) => (isYes(v) ? FORWARDING : undefined),
  ENABLE_IPT_LOCAL_NAT: (v) => (isYes(v) ? FORWARDING : undefined),
  ENABLE_FIREWD_FORWARDING: (v) => (isYes(v) ? FORWARDING : undefined),
  ENABLE_FIREWD_LOCAL_NAT: (v) => (isYes(v) ? FORWARDING : undefined),
  ENABLE_IPT_SNAT: (v) => (isYes(v) ? NO_SNAT_D : undefined),
  SNAT_TRANSLATE_IP: () => NO_SNAT_D,
  ENABLE_DIGEST_PERSISTENCE: (v) => (isYes(v) ? undefined : 'postern always keeps its replay state (state.database)'),
  ENABLE_SPA_OVER_HTTP: (v) => (isYes(v) ? 'SPA over HTTP is not supported; postern takes fwknop packets over UDP only' : undefined),
  ENABLE_TCP_SERVER: (v) => (isYes(v) ? 'postern takes fwknop packets over UDP only' : undefined),
  ENABLE_NFQ_CAPTURE: (v) => (isYes(v) ? 'postern captures with its own raw socket, not NFQUEUE' : undefined),
};
const DAEMON_MAPPED = new Set(['UDPSERV_PORT', 'PCAP_FILTER', 'ENABLE_UDP_SERVER', 'MAX_SPA_PACKET_AGE']);

type DaemonReport = (e: Entry | undefined, message: string) => void;

function daemonPort(o: ReadonlyMap<string, Entry>, say: DaemonReport): number {
  const udp = o.get('UDPSERV_PORT');
  const filter = o.get('PCAP_FILTER');
  const udpMode = o.get('ENABLE_UDP_SERVER');
  const useUdp = udpMode?.value !== undefined ? isYes(udpMode.value) : filter === undefined;
  const text = useUdp ? udp?.value : filter?.value && (/\budp\s+(?:dst\s+)?port\s+([0-9]{1,5})\b/i.exec(filter.value)?.[1] ?? '');
  if (useUdp && udp && udpMode?.value === undefined) say(udp, 'taken as the listening port (ENABLE_UDP_SERVER is unset: with libpcap, fwknopd listens per PCAP_FILTER instead)');
  if (!useUdp && filter && udp) say(udp, 'ignored: fwknopd listens per PCAP_FILTER unless ENABLE_UDP_SERVER is Y');
  if (useUdp && filter) say(filter, 'ignored: ENABLE_UDP_SERVER is Y');
  if (text === undefined) return DEFAULT_FWKNOP_PORT;
  const port = Number(text);
  if (!/^[0-9]{1,5}$/.test(text) || port < 1 || port > 65535) {
    say(useUdp ? udp : filter, `no usable udp port here; fwknop.port stays ${DEFAULT_FWKNOP_PORT}`);
    return DEFAULT_FWKNOP_PORT;
  }
  if (!useUdp && filter?.value !== undefined && !/^udp\s+(dst\s+)?port\s+[0-9]+$/i.test(filter.value)) {
    say(filter, `only the port (${port}) is used; the rest of the filter has no postern equivalent`);
  }
  return port;
}

function daemonMaxAge(e: Entry | undefined, say: DaemonReport): number {
  if (e?.value === undefined) return DEFAULT_MAX_AGE_S;
  const n = /^[0-9]{1,9}$/.test(e.value) ? Number(e.value) : NaN;
  if (Number.isNaN(n)) return say(e, `not a whole number; fwknop.max_age_s stays ${DEFAULT_MAX_AGE_S}`), DEFAULT_MAX_AGE_S;
  const clamped = Math.min(Math.max(n, MIN_MAX_AGE_S), MAX_MAX_AGE_S);
  if (clamped !== n) say(e, `outside postern's ${MIN_MAX_AGE_S}-${MAX_MAX_AGE_S}; using ${clamped}`);
  return clamped;
}

function daemonSettings(text: string | undefined, report: ImportReportLine[]): { port: number; maxAgeS: number } {
  const o = new Map<string, Entry>();
  const say: DaemonReport = (e, message) => report.push({ file: 'fwknopd.conf', line: e?.line ?? 0, stanza: null, option: e?.name ?? '-', message });
  for (const e of readEntries(text ?? '')) {
    if (e.value === undefined) say({ ...e, name: optionLabel(e.name) }, 'has no value; ignored');
    else o.set(e.name, e);
  }
  for (const [name, e] of o) {
    if (DAEMON_MAPPED.has(name) || e.value === undefined) continue;
    const rule = DAEMON_RULES[name];
    const message = rule ? rule(e.value) : 'no postern equivalent; ignored';
    if (message !== undefined) say({ ...e, name: optionLabel(name) }, message);
  }
  return { port: daemonPort(o, say), maxAgeS: daemonMaxAge(o.get('MAX_SPA_PACKET_AGE'), say) };
}

/** validateConfig with a minimal config whose `guarded` is exactly the stanzas' open_ports. */
function configErrors(section: ImportedFwknop): readonly string[] {
  const guarded = [...new Set(section.stanzas.flatMap((s) => s.open_ports))];
  const r = validateConfig({ device: 'fwknop-import', guarded, keys: [], fwknop: section });
  return r.ok ? [] : r.errors;
}

/** Keep the stanzas that load on their own, then check the whole section. */
function validateSection(section: ImportedFwknop, lines: ReadonlyMap<string, number>, report: ImportReportLine[]): boolean {
  const stanzas = section.stanzas.filter((s) => {
    const errors = configErrors({ ...section, stanzas: [s] });
    for (const err of errors) {
      report.push({ file: 'access.conf', line: lines.get(s.name) ?? 0, stanza: s.name, option: 'validate', message: `config check: ${err.replace('/fwknop/stanzas/0', '/fwknop/stanzas/' + s.name)}${NOT_CONVERTED}` });
    }
    return errors.length === 0;
  });
  section.stanzas = stanzas;
  const errors = stanzas.length === 0 ? [] : configErrors(section);
  for (const err of errors) report.push({ file: 'access.conf', line: 0, stanza: null, option: 'validate', message: `config check: ${err}` });
  return stanzas.length > 0 && errors.length === 0;
}

/** Convert access.conf (and fwknopd.conf, when given). Never throws on file content. */
export function importFwknop(accessText: string, fwknopdText?: string): FwknopImportResult {
  const report: ImportReportLine[] = [];
  const daemon = daemonSettings(fwknopdText, report);
  const stanzas = groupStanzas(readEntries(accessText), report);
  if (stanzas.length === 0) report.push({ file: 'access.conf', line: 0, stanza: null, option: 'SOURCE', message: 'no stanza (no SOURCE line) found' });
  const section: ImportedFwknop = { port: daemon.port, max_age_s: daemon.maxAgeS, stanzas: stanzas.flatMap((s) => convertStanza(s, report) ?? []) };
  const valid = validateSection(section, new Map(stanzas.map((s) => [s.name, s.line])), report);
  report.sort((a, b) => (a.file === b.file ? a.line - b.line : a.file === 'fwknopd.conf' ? 1 : -1));
  return { fwknop: section, report, total: stanzas.length, converted: section.stanzas.length, valid };
}
