// SPDX-License-Identifier: MIT
// `postern device-key`: print this device's X25519 public key, its fingerprint and a QR
// code, for the technician's profile (issue 10). Makes the key first if the daemon has not.

import { loadConfigFile } from '../config/load.ts';
import { loadOrCreateDeviceKey } from '../daemon/device-key.ts';
import { deviceFingerprint, encodeDevicePublic } from '../spa/asym-keys.ts';
import { EXIT_FAIL, EXIT_OK, UsageError, errOut, out, parseCommandArgs, type Command } from './command.ts';
import { renderQr } from './keygen.ts';

export const DEFAULT_DEVICE_KEY = '/var/lib/postern/device.key';

const USAGE = `usage: postern device-key [--config FILE | --key-file PATH] [--json]

  Prints this device's public key (postern-dev1:...), its fingerprint and a QR code of the
  key. Technicians put it in their profile (postern profile add ... --device-key KEY) and
  compare the fingerprint with what the device shows. The key is made on the device
  (mode 0600) the first time it is needed and never leaves it; only its public half is shown.
  --config FILE     read state.device_key from the daemon's config
  --key-file PATH   the device key file (default ${DEFAULT_DEVICE_KEY})
  --json            print {"device_key", "fingerprint", "path"} instead (no QR code)`;

async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, {
    config: { type: 'string', short: 'c' }, 'key-file': { type: 'string' }, json: { type: 'boolean' },
  }, false);
  if (values.help) {
    out(USAGE);
    return EXIT_OK;
  }
  if (positionals.length > 0) throw new UsageError('device-key takes no positional arguments');
  if (values.config !== undefined && values['key-file'] !== undefined) throw new UsageError('give --config or --key-file, not both');
  let path = values['key-file'] ?? DEFAULT_DEVICE_KEY;
  if (values.config !== undefined) {
    const loaded = loadConfigFile(values.config);
    if (!loaded.ok) {
      errOut(`postern device-key: ${values.config} has ${loaded.errors.length} error(s):\n  ${loaded.errors.join('\n  ')}`);
      return EXIT_FAIL;
    }
    path = loaded.config.raw.state.device_key;
  }
  const { key, created } = loadOrCreateDeviceKey(path);
  const deviceKey = encodeDevicePublic(key.publicKey);
  const fingerprint = deviceFingerprint(key.publicKey);
  if (values.json) {
    out(JSON.stringify({ device_key: deviceKey, fingerprint, path, created }));
    return EXIT_OK;
  }
  if (created) errOut(`made a new device key in ${path} (mode 0600)`);
  out(`device key   ${deviceKey}`);
  out(`fingerprint  ${fingerprint}`);
  out(renderQr(deviceKey));
  return EXIT_OK;
}

export const deviceKeyCommand: Command = { name: 'device-key', summary: "Print this device's public key, fingerprint and QR code", usage: USAGE, run };
