// SPDX-License-Identifier: MIT
// UCI sections (/etc/config/postern, rootfs-overlay/openwrt/etc/config/postern) -> the
// daemon's JSON config (docs/config.md). Pure. Only the mapping lives here: every value is
// checked afterwards by the same validateConfig the daemon runs, so UCI cannot express
// anything the JSON config could not. Unknown sections and options are errors, listed with
// their line, never ignored: a misspelt option must not silently fall back to a default.
// Credentials are never quoted (STYLE.md principle 6).

import type { UciSection } from './uci.ts';

type Kind = 'string' | 'int' | 'bool' | 'list';
/** UCI option -> [JSON path, kind]. Service knobs only the init script reads map to null. */
type Table = Readonly<Record<string, readonly [readonly string[] | null, Kind]>>;

const MAIN: Table = {
  enabled: [null, 'bool'], network: [null, 'string'],
  device: [['device'], 'string'], log_level: [['log_level'], 'string'], guarded: [['guarded'], 'list'],
  spa_port: [['spa', 'port'], 'int'], window_s: [['spa', 'window_s'], 'int'], clock: [['spa', 'clock'], 'string'],
  replay_ring: [['spa', 'replay_ring'], 'int'], ipv6: [['spa', 'ipv6'], 'bool'], icmp: [['spa', 'icmp'], 'bool'],
  backend: [['firewall', 'backend'], 'string'], nft: [['firewall', 'nft'], 'string'],
  iptables: [['firewall', 'iptables'], 'string'], ip6tables: [['firewall', 'ip6tables'], 'string'],
  reconcile_interval_s: [['firewall', 'reconcile_interval_s'], 'int'],
  keep_guarding_on_exit: [['firewall', 'keep_guarding_on_exit'], 'bool'],
  database: [['state', 'database'], 'string'],
};

const KEY: Table = {
  name: [['name'], 'string'], credential: [['credential'], 'string'], service: [['services'], 'list'],
  default_duration_s: [['default_duration_s'], 'int'], max_duration_s: [['max_duration_s'], 'int'],
  require_source_address: [['require_source_address'], 'bool'], allowed_address: [['allowed_addresses'], 'list'],
  ipv6_prefix: [['ipv6_prefix'], 'int'],
};

// config_get_bool's words (OpenWrt functions.sh).
const TRUE = new Set(['1', 'on', 'true', 'yes', 'enabled']);
const FALSE = new Set(['0', 'off', 'false', 'no', 'disabled']);

type Json = string | number | boolean | string[];
type Conv = { readonly ok: true; readonly value: Json } | { readonly ok: false; readonly error: string };

function convert(raw: string | readonly string[], kind: Kind): Conv {
  if (kind === 'list') return { ok: true, value: typeof raw === 'string' ? [raw] : [...raw] };
  if (typeof raw !== 'string') return { ok: false, error: 'is a list; expected a single option' };
  if (kind === 'string') return { ok: true, value: raw };
  if (kind === 'int') {
    return /^[0-9]{1,9}$/.test(raw) ? { ok: true, value: Number(raw) } : { ok: false, error: 'expected a whole number' };
  }
  const word = raw.toLowerCase();
  if (TRUE.has(word)) return { ok: true, value: true };
  return FALSE.has(word) ? { ok: true, value: false } : { ok: false, error: 'expected 1/0, on/off, true/false, yes/no' };
}

/** By option and by content, as validateConfig's show(): a credential pasted under the
 *  wrong option is still a secret (found by test/fuzz/config.fuzz.test.ts). */
const SECRET_TEXT = /postern1:|postern-id1:|postern-idenc1:/;
function hidden(opt: string, raw: string | readonly string[]): boolean {
  return opt === 'credential' || SECRET_TEXT.test(typeof raw === 'string' ? raw : raw.join(' '));
}

function put(target: Record<string, unknown>, path: readonly string[], value: Json): void {
  let obj = target;
  for (const p of path.slice(0, -1)) obj = (obj[p] ??= {}) as Record<string, unknown>;
  obj[path[path.length - 1] as string] = value;
}

function mapSection(s: UciSection, table: Table, target: Record<string, unknown>, errors: string[]): void {
  for (const [opt, raw] of s.options) {
    const entry = table[opt];
    const at = `line ${s.optionLines.get(opt) ?? s.line} (config ${s.type}${s.name === undefined ? '' : ` ${s.name}`}) ${opt}`;
    if (entry === undefined) {
      errors.push(`${at}: unknown option (known: ${Object.keys(table).join(', ')})`);
      continue;
    }
    const [path, kind] = entry;
    const c = convert(raw, kind);
    if (!c.ok) errors.push(`${at}: ${c.error}${hidden(opt, raw) ? '' : ` (got ${JSON.stringify(raw).slice(0, 60)})`}`);
    else if (path !== null) put(target, path, c.value);
  }
}

export type UciConfigResult =
  | { readonly ok: true; readonly config: Record<string, unknown>; readonly enabled: boolean }
  | { readonly ok: false; readonly errors: readonly string[] };

/** Exactly one `config postern 'main'` and any number of `config key` sections. */
export function uciToConfig(sections: readonly UciSection[]): UciConfigResult {
  const errors: string[] = [];
  const config: Record<string, unknown> = { keys: [] };
  const mains = sections.filter((s) => s.type === 'postern');
  if (mains.length !== 1) errors.push(`expected exactly one "config postern 'main'" section, found ${mains.length}`);
  for (const s of sections) {
    if (s.type === 'postern') mapSection(s, MAIN, config, errors);
    else if (s.type === 'key') {
      const key: Record<string, unknown> = s.name === undefined ? {} : { name: s.name };
      mapSection(s, KEY, key, errors);
      (config['keys'] as unknown[]).push(key);
    } else errors.push(`line ${s.line}: unknown section type ${JSON.stringify(s.type)} (expected postern or key)`);
  }
  const enabled = mains[0]?.options.get('enabled');
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, config, enabled: typeof enabled === 'string' && TRUE.has(enabled.toLowerCase()) };
}
