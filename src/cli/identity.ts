// SPDX-License-Identifier: MIT
// The technician's identity file (issue 10): one line, mode 0600, either
//   postern-id1:<base64url(key id || Ed25519 seed)>                         (plain)
//   postern-idenc1:<base64url(salt (16) || iv (12) || tag (16) || sealed (36))> (passphrase)
// The sealed form is scrypt (N=2^15, r=8, p=1; RFC 7914) -> AES-256-GCM with the prefix as
// associated data, all from node:crypto. A passphrase comes from --passphrase-file, from
// $POSTERN_PASSPHRASE, or from a prompt on the terminal; never from argv (ps shows argv).

import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { TECH_IDENTITY_PREFIX, parseTechIdentity, type TechIdentity } from '../spa/asym-keys.ts';

export const SEALED_PREFIX = 'postern-idenc1:';
const SALT = 16;
const IV = 12;
const TAG = 16;
const BODY = 36;
// 2^15 * 128 * r = 32 MiB of memory per derivation: slow for guessing, fine once per open.
const SCRYPT = { N: 1 << 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 } as const;

export const PASSPHRASE_ENV = 'POSTERN_PASSPHRASE';

export function defaultIdentityPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env['XDG_CONFIG_HOME'] || join(env['HOME'] || homedir(), '.config');
  return join(base, 'postern', 'identity');
}

function kdf(passphrase: string, salt: Buffer): Buffer {
  return scryptSync(passphrase.normalize('NFC'), salt, 32, SCRYPT);
}

export function sealIdentity(identity: TechIdentity, passphrase: string): string {
  const plain = Buffer.from(identity.encodeSecret().slice(TECH_IDENTITY_PREFIX.length), 'base64url');
  const salt = randomBytes(SALT);
  const iv = randomBytes(IV);
  const c = createCipheriv('aes-256-gcm', kdf(passphrase, salt), iv);
  c.setAAD(Buffer.from(SEALED_PREFIX));
  const sealed = Buffer.concat([c.update(plain), c.final()]);
  plain.fill(0);
  return SEALED_PREFIX + Buffer.concat([salt, iv, c.getAuthTag(), sealed]).toString('base64url');
}

export function unsealIdentity(text: string, passphrase: string): TechIdentity | undefined {
  const raw = Buffer.from(text.trim().slice(SEALED_PREFIX.length), 'base64url');
  if (raw.length !== SALT + IV + TAG + BODY) return undefined;
  const d = createDecipheriv('aes-256-gcm', kdf(passphrase, raw.subarray(0, SALT)), raw.subarray(SALT, SALT + IV));
  d.setAAD(Buffer.from(SEALED_PREFIX));
  d.setAuthTag(raw.subarray(SALT + IV, SALT + IV + TAG));
  try {
    const plain = Buffer.concat([d.update(raw.subarray(SALT + IV + TAG)), d.final()]);
    const id = parseTechIdentity(TECH_IDENTITY_PREFIX + plain.toString('base64url'));
    plain.fill(0);
    return id.ok ? id.value : undefined;
  } catch {
    return undefined; // wrong passphrase or a damaged file: GCM refuses both
  }
}

/** Write the identity file atomically with mode 0600 (temp file, fsync by writeFileSync's flush, rename). */
export function writeIdentityFile(path: string, content: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, content + '\n', { mode: 0o600, flag: 'wx', flush: true });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

export interface PassphraseSource {
  readonly passphraseFile?: string | undefined;
}

/** --passphrase-file, then $POSTERN_PASSPHRASE, then a terminal prompt. */
export async function passphrase(src: PassphraseSource, prompt: string): Promise<string> {
  if (src.passphraseFile !== undefined) return readFileSync(src.passphraseFile, 'utf8').replace(/\r?\n$/, '');
  const env = process.env[PASSPHRASE_ENV];
  if (env) return env;
  if (!process.stdin.isTTY) throw new Error(`a passphrase is needed: give --passphrase-file FILE or set ${PASSPHRASE_ENV}`);
  return promptHidden(prompt);
}

/** Read a line from the terminal without echoing it. */
function promptHidden(prompt: string): Promise<string> {
  const stdin = process.stdin;
  process.stderr.write(prompt);
  stdin.setRawMode(true);
  stdin.resume();
  return new Promise((resolve, reject) => {
    let text = '';
    const done = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(text);
    };
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(new Error('interrupted'));
        if (ch === '\u007f') text = text.slice(0, -1);
        else text += ch;
      }
    };
    stdin.on('data', onData);
  });
}

/** Read an identity file, asking for the passphrase when it is sealed. */
export async function readIdentity(path: string, src: PassphraseSource): Promise<TechIdentity> {
  const text = readFileSync(path, 'utf8').trim();
  if (text.startsWith(SEALED_PREFIX)) {
    const id = unsealIdentity(text, await passphrase(src, `passphrase for ${path}: `));
    if (!id) throw new Error(`${path}: wrong passphrase, or the file is damaged`);
    return id;
  }
  const id = parseTechIdentity(text);
  if (!id.ok) throw new Error(`${path}: not a postern identity file (${TECH_IDENTITY_PREFIX}... or ${SEALED_PREFIX}...)`);
  return id.value;
}
