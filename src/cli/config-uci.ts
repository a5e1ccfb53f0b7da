// SPDX-License-Identifier: MIT
// `postern config uci FILE [--out PATH]`: OpenWrt's /etc/config/postern (UCI) -> the
// daemon's JSON config, validated exactly as the daemon validates it. The procd init
// script (rootfs-overlay/openwrt/etc/init.d/postern) calls this instead of reading UCI in
// the shell, so no value is ever evaluated by a shell. Nothing is written unless the whole
// translation is valid; the file is written 0600 (keys inside) and renamed into place.

import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { validateConfig } from '../config/load.ts';
import { parseUci, MAX_UCI_BYTES } from '../config/uci.ts';
import { uciToConfig } from '../config/uci-config.ts';
import { EXIT_FAIL, EXIT_OK, UsageError, errOut, out, parseCommandArgs } from './command.ts';

export const CONFIG_UCI_USAGE = `usage: postern config uci FILE [--out PATH]

  Translates a UCI file (OpenWrt /etc/config/postern) into postern's JSON config and
  validates it like \`postern config check\`. Prints the JSON, or with --out writes it to
  PATH (mode 0600, atomically). Lists every error and writes nothing when any is found.`;

function readUci(file: string): { text: string } | { error: string } {
  try {
    const text = readFileSync(file, 'utf8');
    return text.length > MAX_UCI_BYTES ? { error: `${file}: longer than ${MAX_UCI_BYTES} bytes` } : { text };
  } catch (err) {
    return { error: `${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})` };
  }
}

/** Every error of the file, or the validated JSON text. */
export function translateUci(text: string): { ok: true; json: string; enabled: boolean } | { ok: false; errors: readonly string[] } {
  const parsed = parseUci(text);
  if (!parsed.ok) return parsed;
  const mapped = uciToConfig(parsed.sections);
  if (!mapped.ok) return mapped;
  const valid = validateConfig(mapped.config);
  if (!valid.ok) return valid;
  return { ok: true, json: JSON.stringify(mapped.config, null, 2) + '\n', enabled: mapped.enabled };
}

export async function runConfigUci(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, { out: { type: 'string', short: 'o' } });
  if (values.help) {
    out(CONFIG_UCI_USAGE);
    return EXIT_OK;
  }
  const [file, ...extra] = positionals;
  if (!file || extra.length > 0) throw new UsageError('expected: config uci FILE [--out PATH]');
  const read = readUci(file);
  const result = 'error' in read ? { ok: false as const, errors: [read.error] } : translateUci(read.text);
  if (!result.ok) {
    errOut(`${file}: ${result.errors.length} error${result.errors.length === 1 ? '' : 's'}`);
    for (const e of result.errors) errOut(`  ${e}`);
    return EXIT_FAIL;
  }
  if (values.out === undefined) {
    out(result.json);
    return EXIT_OK;
  }
  const tmp = `${values.out}.tmp-${process.pid}`;
  writeFileSync(tmp, result.json, { mode: 0o600 });
  renameSync(tmp, values.out);
  return EXIT_OK;
}
