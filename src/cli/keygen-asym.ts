// SPDX-License-Identifier: MIT
// `postern keygen --asym`: a technician identity (issue 10). The Ed25519 seed goes to a 0600
// file (optionally passphrase-sealed, see identity.ts); stdout gets only the public key
// (postern-pub1:...), which is what devices trust (postern enroll) and safe to publish.

import { existsSync } from 'node:fs';
import { generateTechIdentity } from '../spa/asym-keys.ts';
import { EXIT_FAIL, EXIT_OK, errOut, out } from './command.ts';
import { PASSPHRASE_ENV, defaultIdentityPath, passphrase, sealIdentity, writeIdentityFile } from './identity.ts';

export interface AsymKeygenOptions {
  readonly out?: string | undefined;
  readonly name: string | undefined;
  readonly services: readonly string[];
  readonly encrypt: boolean;
  readonly passphraseFile?: string | undefined;
  readonly json: boolean;
  readonly qr: (text: string) => string;
  readonly showQr: boolean;
}

const MIN_PASSPHRASE = 8;

async function sealedOrPlain(opts: AsymKeygenOptions, plain: () => string, seal: (p: string) => string): Promise<string | undefined> {
  const wanted = opts.encrypt || opts.passphraseFile !== undefined || Boolean(process.env[PASSPHRASE_ENV]);
  if (!wanted) return plain();
  const first = await passphrase(opts, 'passphrase for the new identity: ');
  if (opts.passphraseFile === undefined && !process.env[PASSPHRASE_ENV]) {
    const again = await passphrase(opts, 'again: ');
    if (again !== first) {
      errOut('postern keygen: the passphrases differ');
      return undefined;
    }
  }
  if (first.length < MIN_PASSPHRASE) {
    errOut(`postern keygen: a passphrase has at least ${MIN_PASSPHRASE} characters`);
    return undefined;
  }
  return seal(first);
}

export async function runAsymKeygen(opts: AsymKeygenOptions): Promise<number> {
  const path = opts.out ?? defaultIdentityPath();
  if (existsSync(path)) {
    errOut(`postern keygen: ${path} exists; refusing to overwrite an identity (devices trust it)`);
    return EXIT_FAIL;
  }
  const id = generateTechIdentity();
  const content = await sealedOrPlain(opts, () => id.encodeSecret(), (p) => sealIdentity(id, p));
  if (content === undefined) return EXIT_FAIL;
  writeIdentityFile(path, content);
  const publicKey = id.publicKey().encode();
  const name = opts.name ?? `tech-${id.keyIdHex}`;
  if (opts.json) {
    out(JSON.stringify({
      public_key: publicKey, key_id: id.keyIdHex, identity_file: path, encrypted: content !== id.encodeSecret(),
      stanza: { name, credential: publicKey, services: opts.services },
    }, null, 2));
  } else {
    out(publicKey);
    errOut(`identity written to ${path} (mode 0600${content === id.encodeSecret() ? ', not encrypted' : ', passphrase-encrypted'}); the line above is its public key`);
  }
  if (opts.showQr) out(opts.qr(publicKey));
  return EXIT_OK;
}
