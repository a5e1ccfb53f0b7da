// SPDX-License-Identifier: MIT
// `postern keygen`: a new client credential from the kernel CSPRNG. The same string goes
// to the technician (postern open --key-file) and into the device's key stanza.

import QRCode from 'qrcode';
import { generateCredential } from '../spa/credential.ts';
import { EXIT_OK, UsageError, out, parseCommandArgs, type Command } from './command.ts';
import { parseServices } from './target.ts';
import { runAsymKeygen } from './keygen-asym.ts';

const USAGE = `usage: postern keygen [--name NAME] [--services tcp/22,...] [--json] [--qr]
       postern keygen --asym [--out FILE] [--encrypt | --passphrase-file F] [--name NAME]
                     [--services tcp/22,...] [--json] [--qr]

  Prints a new client credential (postern1:...). Keep it secret: it opens the device.
  --name NAME       key stanza name (default: key-<key id>)
  --services LIST   comma-separated services the stanza allows (default: tcp/22)
  --json            print the credential and the device-side key stanza as JSON
  --qr              also print the credential as a terminal QR code (for phones)

  --asym            make a technician identity instead (asymmetric class): an Ed25519 key
                    written to FILE (mode 0600); prints only its public key (postern-pub1:...),
                    which devices trust (postern enroll). Nothing secret goes into any device.
  --out FILE        where the identity goes (default ~/.config/postern/identity)
  --encrypt         seal the identity with a passphrase (scrypt + AES-256-GCM), asked for on
                    the terminal; --passphrase-file F or $POSTERN_PASSPHRASE give it instead`;

const OPTIONS = {
  name: { type: 'string' }, services: { type: 'string' }, json: { type: 'boolean' }, qr: { type: 'boolean' },
  asym: { type: 'boolean' }, out: { type: 'string' }, encrypt: { type: 'boolean' }, 'passphrase-file': { type: 'string' },
} as const;

/** Render a QR code with half-block characters: two modules per character cell. */
export function renderQr(text: string): string {
  const qr = QRCode.create(text, { errorCorrectionLevel: 'M' });
  const size = qr.modules.size;
  const QUIET = 2;
  const dark = (x: number, y: number) =>
    x >= 0 && y >= 0 && x < size && y < size && qr.modules.get(y, x) === 1;
  const lines: string[] = [];
  for (let y = -QUIET; y < size + QUIET; y += 2) {
    let line = '';
    for (let x = -QUIET; x < size + QUIET; x++) {
      const top = dark(x, y);
      const bottom = dark(x, y + 1);
      // Light-on-dark terminals: print light modules, leave dark ones blank.
      line += top && bottom ? ' ' : top ? '\u2584' : bottom ? '\u2580' : '\u2588';
    }
    lines.push(line);
  }
  return lines.join('\n');
}

async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(args, OPTIONS, false);
  if (values.help) {
    out(USAGE);
    return EXIT_OK;
  }
  if (positionals.length > 0) throw new UsageError('keygen takes no positional arguments');
  if (values.name !== undefined && !/^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/.test(values.name)) throw new UsageError('--name must be 1-64 of A-Z a-z 0-9 . _ @ -');
  const services = parseServices((values.services ?? 'tcp/22').split(',').filter(Boolean)).map((s) => `${s.proto}/${s.port}`);
  if (values.asym) {
    return runAsymKeygen({
      out: values.out, name: values.name, services, encrypt: values.encrypt === true, passphraseFile: values['passphrase-file'],
      json: values.json === true, qr: renderQr, showQr: values.qr === true,
    });
  }
  if (values.out !== undefined || values.encrypt || values['passphrase-file'] !== undefined) throw new UsageError('--out, --encrypt and --passphrase-file go with --asym');
  const cred = generateCredential();
  const name = values.name ?? `key-${cred.keyIdHex}`;
  const credential = cred.encode();
  if (values.json) {
    out(JSON.stringify({ credential, key_id: cred.keyIdHex, stanza: { name, credential, services } }, null, 2));
  } else {
    out(credential);
  }
  if (values.qr) out(renderQr(credential));
  return EXIT_OK;
}

export const keygenCommand: Command = { name: 'keygen', summary: 'Generate a new client credential (and its device key stanza)', usage: USAGE, run };
