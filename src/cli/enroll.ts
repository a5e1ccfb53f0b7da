// SPDX-License-Identifier: MIT
// `postern enroll`: trust a technician's public key on this device (issue 10). Adds a key
// stanza to the config file, validates the whole result (nothing is written unless the new
// config is entirely valid), replaces the file atomically and asks the daemon to reload
// (SIGHUP), so the key works without a restart.

import { readFileSync } from 'node:fs';
import { validateConfig } from '../config/load.ts';
import { KEY_STRING_ERRORS, parseTechPublic } from '../spa/asym-keys.ts';
import { writeFileAtomic } from '../platform/atomic-write.ts';
import { EXIT_FAIL, EXIT_OK, UsageError, errOut, intOption, out, parseCommandArgs, type Command } from './command.ts';
import { parseServices } from './target.ts';

const USAGE = `usage: postern enroll --config FILE (--key postern-pub1:... | --key-file FILE) [--name NAME]
                      [--services tcp/22,...] [--max-duration S] [--pid PID | --pid-file FILE] [--json]

  Adds a technician's public key (postern keygen --asym prints it) to the device's key
  stanzas in FILE, validates the whole config, writes it atomically (temp file, fsync,
  rename) and sends SIGHUP to the daemon so the key works at once. The key is public: the
  device still holds nothing that can open another device.
  --key K             the technician's public key
  --key-file FILE     read it from FILE
  --name NAME         the stanza name (default tech-<key id>)
  --services LIST     services the key may open (default tcp/22; each must be guarded)
  --max-duration S    the stanza's max_duration_s (default: the config default, 600)
  --pid PID           the daemon to reload; --pid-file FILE reads it from FILE
                      (without either, reload it yourself: kill -HUP, or the init script)
  --json              print {"name", "key_id", "reloaded"}`;

const OPTIONS = {
  config: { type: 'string', short: 'c' }, key: { type: 'string' }, 'key-file': { type: 'string' }, name: { type: 'string' },
  services: { type: 'string' }, 'max-duration': { type: 'string' }, pid: { type: 'string' }, 'pid-file': { type: 'string' },
  json: { type: 'boolean' },
} as const;

type Values = ReturnType<typeof parseCommandArgs<typeof OPTIONS>>['values'];

function keyText(values: Values): string {
  if ((values.key === undefined) === (values['key-file'] === undefined)) throw new UsageError('give --key or --key-file (one of them)');
  return values.key ?? readFileSync(values['key-file'] ?? '', 'utf8').trim();
}

function pidOf(values: Values): number | undefined {
  if (values.pid !== undefined && values['pid-file'] !== undefined) throw new UsageError('give --pid or --pid-file, not both');
  const text = values.pid ?? (values['pid-file'] === undefined ? undefined : readFileSync(values['pid-file'], 'utf8').trim());
  return intOption(text, values.pid !== undefined ? 'pid' : 'pid-file', 2, 4_194_304);
}

type Stanza = Record<string, unknown>;

async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, OPTIONS, false);
  if (values.help) {
    out(USAGE);
    return EXIT_OK;
  }
  if (positionals.length > 0 || values.config === undefined) throw new UsageError('enroll needs --config FILE');
  const pub = parseTechPublic(keyText(values));
  if (!pub.ok) throw new UsageError(`not a technician public key: ${KEY_STRING_ERRORS[pub.reason]}`);
  const services = parseServices((values.services ?? 'tcp/22').split(',').filter(Boolean)).map((s) => `${s.proto}/${s.port}`);
  const maxDuration = intOption(values['max-duration'], 'max-duration', 1, 86400);
  const pid = pidOf(values);
  const name = values.name ?? `tech-${pub.value.keyIdHex}`;
  const raw = JSON.parse(readFileSync(values.config, 'utf8')) as Record<string, unknown>;
  const keys = Array.isArray(raw['keys']) ? (raw['keys'] as Stanza[]) : [];
  const credential = pub.value.encode();
  const same = keys.find((k) => k['credential'] === credential);
  if (same) {
    errOut(`postern enroll: this key is already trusted, as ${JSON.stringify(same['name'])}`);
    return EXIT_FAIL;
  }
  const stanza: Stanza = { name, credential, services, ...(maxDuration !== undefined && { max_duration_s: maxDuration }) };
  const next = { ...raw, keys: [...keys, stanza] };
  const checked = validateConfig(next);
  if (!checked.ok) {
    errOut(`postern enroll: ${values.config} left unchanged; the result would have ${checked.errors.length} error(s):\n  ${checked.errors.join('\n  ')}`);
    return EXIT_FAIL;
  }
  writeFileAtomic(values.config, JSON.stringify(next, null, 2) + '\n');
  const reloaded = pid !== undefined && signal(pid);
  if (values.json) out(JSON.stringify({ name, key_id: pub.value.keyIdHex, reloaded }));
  else out(`enrolled ${name} (key id ${pub.value.keyIdHex}) in ${values.config}${reloaded ? `; daemon ${pid} reloading` : pid === undefined ? '; reload the daemon (kill -HUP) to apply' : ''}`);
  return pid !== undefined && !reloaded ? EXIT_FAIL : EXIT_OK;
}

function signal(pid: number): boolean {
  try {
    process.kill(pid, 'SIGHUP');
    return true;
  } catch (err) {
    errOut(`postern enroll: could not signal ${pid} (${(err as NodeJS.ErrnoException).code ?? String(err)}); reload the daemon yourself`);
    return false;
  }
}

export const enrollCommand: Command = { name: 'enroll', summary: "Trust a technician's public key on this device (and reload)", usage: USAGE, run };
