// SPDX-License-Identifier: MIT
// `postern profile add|list|remove`: the technician's saved devices (0600 file).

import { readFileSync } from 'node:fs';
import { EXIT_FAIL, EXIT_OK, UsageError, errOut, intOption, out, parseCommandArgs, type Command } from './command.ts';
import { profilesPath, readProfiles, validateProfile, writeProfiles, type Profile } from './profiles.ts';
import { parseServices } from './target.ts';
import { parseCredential } from '../spa/credential.ts';
import { KEY_STRING_ERRORS, deviceFingerprint, parseDevicePublic } from '../spa/asym-keys.ts';
import { resolve } from 'node:path';
import { DOOR_OPTIONS, DOOR_USAGE, buildDoor, withDoor } from './profile-door.ts';

const USAGE = `usage: postern profile add NAME --host HOST (--key CRED | --key-file FILE
                          | --identity FILE --device-key postern-dev1:...
                          | --fwknop-key B64 --fwknop-hmac-key B64 [--fwknop-hmac-type T])
                          [--port N] [--services tcp/22,...] [--ssh-port N] [--ssh-user USER]
${DOOR_USAGE}
       postern profile list [--json]
       postern profile remove NAME

  An asymmetric profile stores the path of the technician identity (postern keygen --asym)
  and the device's public key with its fingerprint (postern device-key on the device).
  Profiles live in ${'$'}XDG_CONFIG_HOME/postern/profiles.json (default ~/.config), mode 0600.
  Then: postern open NAME --wait, or postern ssh NAME. A door (a time-derived knock door
  of the device, same key and range as its totp block) is used by postern knock --door.`;

const OPTIONS = {
  host: { type: 'string' }, key: { type: 'string' }, 'key-file': { type: 'string' }, port: { type: 'string' },
  services: { type: 'string' }, 'ssh-port': { type: 'string' }, 'ssh-user': { type: 'string' }, json: { type: 'boolean' },
  identity: { type: 'string' }, 'device-key': { type: 'string' },
  'fwknop-key': { type: 'string' }, 'fwknop-hmac-key': { type: 'string' }, 'fwknop-hmac-type': { type: 'string' },
  ...DOOR_OPTIONS,
} as const;

type Values = ReturnType<typeof parseCommandArgs<typeof OPTIONS>>['values'];

function fwknopKeys(values: Values): Profile['fwknop'] {
  if (values['fwknop-key'] === undefined && values['fwknop-hmac-key'] === undefined) return undefined;
  if (!values['fwknop-key'] || !values['fwknop-hmac-key']) throw new UsageError('a fwknop profile needs --fwknop-key and --fwknop-hmac-key');
  return {
    key_base64: values['fwknop-key'], hmac_key_base64: values['fwknop-hmac-key'],
    ...(values['fwknop-hmac-type'] !== undefined && { hmac_type: values['fwknop-hmac-type'] }),
  };
}

/** --identity FILE --device-key K: the identity's path (made absolute) and the device key by fingerprint. */
function asymFields(values: Values): Pick<Profile, 'identity' | 'device_key' | 'device_fingerprint'> | undefined {
  if (values.identity === undefined && values['device-key'] === undefined) return undefined;
  if (values.identity === undefined || values['device-key'] === undefined) throw new UsageError('an asymmetric profile needs --identity FILE and --device-key postern-dev1:...');
  const dev = parseDevicePublic(values['device-key']);
  if (!dev.ok) throw new UsageError(`bad --device-key: ${KEY_STRING_ERRORS[dev.reason]}`);
  return { identity: resolve(values.identity), device_key: values['device-key'].trim(), device_fingerprint: deviceFingerprint(dev.value) };
}

function buildProfile(values: Values): Profile {
  const fwknop = fwknopKeys(values);
  const credential = values.key ?? (values['key-file'] ? readFileSync(values['key-file'], 'utf8').trim() : undefined);
  const asym = asymFields(values);
  if (!values.host || (!credential && !fwknop && !asym)) throw new UsageError('profile add needs --host and --key, --key-file, --identity/--device-key or --fwknop-key/--fwknop-hmac-key');
  const port = intOption(values.port, 'port', 1, 65535);
  const sshPort = intOption(values['ssh-port'], 'ssh-port', 1, 65535);
  const services = values.services ? parseServices(values.services.split(',').filter(Boolean)).map((s) => `${s.proto}/${s.port}`) : undefined;
  return {
    host: values.host, ...(credential !== undefined && { credential }), ...(fwknop && { fwknop }), ...asym,
    ...(port !== undefined && { port }), ...(services && { services }),
    ...(sshPort !== undefined && { ssh_port: sshPort }), ...(values['ssh-user'] && { ssh_user: values['ssh-user'] }),
  };
}

function list(json: boolean): number {
  const profiles = readProfiles();
  if (json) {
    // Credentials never go to stdout: show the key id only.
    out(JSON.stringify(Object.fromEntries(Object.entries(profiles).map(([n, p]) => {
      const { fwknop: _keys, doors, ...rest } = p;
      return [n, { ...rest, ...(doors && { doors: Object.keys(doors) }), kind: p.fwknop ? 'fwknop' : p.identity !== undefined ? 'asym' : 'postern', credential: keyIdOf(p) }];
    }))));
    return EXIT_OK;
  }
  for (const [name, p] of Object.entries(profiles)) {
    out(`${name}\t${p.host}\tspa port ${p.port ?? 'default'}\tkey ${keyIdOf(p)}\t${(p.services ?? []).join(',') || 'all key services'}`);
  }
  return EXIT_OK;
}

function saveDoor(name: string | undefined, rest: readonly string[], values: Values): number {
  const [door, ...extra] = rest;
  if (!name || !door || extra.length > 0) throw new UsageError('expected profile door PROFILE DOOR');
  const profiles = readProfiles();
  const profile = withDoor(profiles[name], values.host, door, buildDoor(values));
  const errors = validateProfile(name, profile);
  if (errors.length > 0) throw new UsageError(errors.join('; '));
  writeProfiles({ ...profiles, [name]: profile });
  out(`saved door ${door} in profile ${name} (${profilesPath()}, mode 0600)`);
  return EXIT_OK;
}

function keyIdOf(p: Profile): string {
  if (p.fwknop) return 'fwknop (keys hidden)';
  if (p.identity !== undefined) return `asym, device ${p.device_fingerprint ?? '?'}`;
  if (p.credential === undefined && p.doors) return `doors ${Object.keys(p.doors).join(',')} (keys hidden)`;
  const c = parseCredential(p.credential ?? '');
  return c.ok ? `${c.value.keyIdHex} (secret hidden)` : '(invalid credential)';
}

async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, OPTIONS);
  if (values.help) {
    out(USAGE);
    return EXIT_OK;
  }
  const [verb, name, ...extra] = positionals;
  if (verb === 'door') return saveDoor(name, extra, values);
  if (extra.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
  if (verb === 'list') return list(values.json === true);
  if (verb !== 'add' && verb !== 'remove') throw new UsageError('expected profile add, door, list or remove');
  if (!name) throw new UsageError(`profile ${verb} needs a NAME`);
  const profiles = readProfiles();
  if (verb === 'add') {
    const profile = buildProfile(values);
    const errors = validateProfile(name, profile);
    if (errors.length > 0) throw new UsageError(errors.join('; '));
    writeProfiles({ ...profiles, [name]: profile });
    out(`saved profile ${name} in ${profilesPath()} (mode 0600)`);
    return EXIT_OK;
  }
  if (verb === 'remove') {
    if (!profiles[name]) {
      errOut(`no profile ${JSON.stringify(name)}`);
      return EXIT_FAIL;
    }
    const { [name]: _removed, ...rest } = profiles;
    writeProfiles(rest);
    out(`removed profile ${name}`);
    return EXIT_OK;
  }
  throw new UsageError('expected profile add, door, list or remove');
}

export const profileCommand: Command = { name: 'profile', summary: 'Manage saved device profiles (add, door, list, remove)', usage: USAGE, run };
