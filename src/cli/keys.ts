// SPDX-License-Identifier: MIT
// `postern keys add|list|revoke`: key stanzas in the daemon's config file, written
// atomically after the whole config validates, then applied with a reload over the
// control socket (or at the daemon's next start when it is not running).

import { readFileSync } from 'node:fs';
import { parseCredential, generateCredential } from '../spa/credential.ts';
import { EXIT_FAIL, EXIT_OK, UsageError, errOut, out, parseCommandArgs, type Command } from './command.ts';
import { ask, DEFAULT_CONFIG, deviceConfig } from './device.ts';
import { readConfigJson, writeConfigJson } from './keys-file.ts';
import { parseServices } from './target.ts';

const USAGE = `usage: postern keys list [--config FILE] [--json]
       postern keys add NAME [--services LIST] [--credential-file FILE] [--config FILE] [--json]
       postern keys revoke NAME [--config FILE] [--json]

  Manages key stanzas in the daemon's config file. Every change is validated with the
  whole config, written atomically (same mode), then the daemon reloads it over the
  control socket. list never shows credentials.
  add NAME             adds a key; without --credential-file a new credential is
                       generated and printed once (give it to the technician)
  --services LIST      comma-separated services the key may open (default: tcp/22)
  --credential-file F  read the credential (postern1:...) from F instead
  revoke NAME          sets revoked: true; its packets are then refused as revoked_key
                       (open grants run to expiry: postern grants revoke ID closes them)
  --config FILE        the daemon's config (default /etc/postern/config.json)
  --json               JSON output`;

const OPTIONS = {
  config: { type: 'string', short: 'c' }, json: { type: 'boolean' }, services: { type: 'string' }, 'credential-file': { type: 'string' },
} as const;
const NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

async function reload(configPath: string): Promise<string> {
  const config = deviceConfig(configPath);
  const r = await ask(config, { cmd: 'reload' });
  if (!r.ok) return r.unavailable ? 'daemon not running: applies at its next start' : `reload not confirmed: ${r.error}`;
  if (!r.response.ok) throw new Error(r.response.message);
  return 'daemon reloaded';
}

function list(path: string, json: boolean): number {
  const keys = deviceConfig(path).keys.map((k) => ({
    name: k.name, keyId: k.credential.keyIdHex, services: k.services.map((s) => `${s.proto}/${s.port}`), revoked: k.revoked,
  }));
  if (json) out(JSON.stringify({ keys }));
  else out(keys.length === 0 ? 'no keys' : keys.map((k) => `${k.name}  ${k.keyId}  ${k.services.join(',')}${k.revoked ? '  REVOKED' : ''}`).join('\n'));
  return EXIT_OK;
}

async function add(path: string, name: string, values: { services?: string | undefined; 'credential-file'?: string | undefined }, json: boolean): Promise<number> {
  const services = parseServices((values.services ?? 'tcp/22').split(',').filter(Boolean)).map((s) => `${s.proto}/${s.port}`);
  let credential: string;
  if (values['credential-file'] !== undefined) {
    credential = readFileSync(values['credential-file'], 'utf8').trim();
    if (!parseCredential(credential).ok) throw new UsageError('--credential-file does not hold a postern1: credential');
  } else credential = generateCredential().encode();
  const config = readConfigJson(path);
  const keys = config.keys ?? [];
  if (keys.some((k) => k['name'] === name)) throw new Error(`a key named ${name} already exists`);
  config.keys = [...keys, { name, credential, services }];
  writeConfigJson(path, config);
  const applied = await reload(path);
  const generated = values['credential-file'] === undefined;
  if (json) out(JSON.stringify({ added: name, services, applied, ...(generated && { credential }) }));
  else {
    out(`key ${name} added (${services.join(',')}); ${applied}`);
    if (generated) out(`credential (shown once, give it to the technician): ${credential}`);
  }
  return EXIT_OK;
}

async function revoke(path: string, name: string, json: boolean): Promise<number> {
  const config = readConfigJson(path);
  const key = (config.keys ?? []).find((k) => k['name'] === name);
  if (!key) {
    errOut(`postern keys: no key named ${name}`);
    return EXIT_FAIL;
  }
  key['revoked'] = true;
  writeConfigJson(path, config);
  const applied = await reload(path);
  out(json ? JSON.stringify({ revoked: name, applied }) : `key ${name} revoked; ${applied}`);
  return EXIT_OK;
}

async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, OPTIONS);
  if (values.help) {
    out(USAGE);
    return EXIT_OK;
  }
  const path = values.config ?? DEFAULT_CONFIG;
  const json = values.json === true;
  const [sub, name, ...extra] = positionals;
  if (sub === 'list' && name === undefined) return list(path, json);
  if ((sub === 'add' || sub === 'revoke') && name !== undefined && extra.length === 0) {
    if (!NAME.test(name)) throw new UsageError('NAME must be 1-64 of A-Z a-z 0-9 . _ @ -');
    return sub === 'add' ? add(path, name, values, json) : revoke(path, name, json);
  }
  throw new UsageError(sub === undefined ? 'keys needs list, add NAME or revoke NAME' : `bad keys arguments: ${positionals.join(' ')}`);
}

export const keysCommand: Command = { name: 'keys', summary: 'List, add or revoke key stanzas (atomic write + reload)', usage: USAGE, run };
