// SPDX-License-Identifier: MIT
// The asymmetric-class commands through the real bundle, no root and no network: keygen
// --asym (0600 identity, sealed with a passphrase, never overwritten), device-key (made once,
// 0600, stable), enroll (validated, atomic, refused whole on error, SIGHUP to a pid), and the
// passphrase-sealed identity format itself.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SEALED_PREFIX, readIdentity, sealIdentity, unsealIdentity } from '../../src/cli/identity.ts';
import { generateTechIdentity, parseTechPublic } from '../../src/spa/asym-keys.ts';

const BUNDLE = fileURLToPath(new URL('../../dist/postern.js', import.meta.url));
const skip = existsSync(BUNDLE) ? false : 'needs dist/postern.js (run ./build.sh bundle)';

interface Run { code: number; stdout: string; stderr: string }

function tmp(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'postern-asym-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function postern(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BUNDLE, ...args], { env: { PATH: process.env['PATH'], HOME: '/nonexistent', ...env }, timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err && typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const mode = (p: string) => statSync(p).mode & 0o777;

test('sealed identity: round trip, wrong passphrase refused, readIdentity with a passphrase file', async (t) => {
  const dir = tmp(t);
  const id = generateTechIdentity();
  const sealed = sealIdentity(id, 'a long passphrase');
  assert.ok(sealed.startsWith(SEALED_PREFIX));
  assert.ok(!sealed.includes(id.encodeSecret().slice(12, 30)), 'the seed is not visible in the sealed form');
  assert.equal(unsealIdentity(sealed, 'a long passphrase')?.encodeSecret(), id.encodeSecret());
  assert.equal(unsealIdentity(sealed, 'another passphrase'), undefined);
  assert.equal(unsealIdentity(sealed.slice(0, -2), 'a long passphrase'), undefined);
  writeFileSync(join(dir, 'id'), sealed + '\n');
  writeFileSync(join(dir, 'pp'), 'a long passphrase\n');
  assert.equal((await readIdentity(join(dir, 'id'), { passphraseFile: join(dir, 'pp') })).keyId, id.keyId);
});

test('keygen --asym: public key on stdout, identity 0600 (sealed with --passphrase-file), never overwritten', { skip }, async (t) => {
  const dir = tmp(t);
  writeFileSync(join(dir, 'pp'), 'correct horse battery staple\n');
  const r = await postern(['keygen', '--asym', '--out', join(dir, 'id'), '--passphrase-file', join(dir, 'pp'), '--json']);
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { public_key: string; key_id: string; encrypted: boolean; stanza: { credential: string } };
  assert.ok(parseTechPublic(j.public_key).ok);
  assert.equal(j.encrypted, true);
  assert.equal(j.stanza.credential, j.public_key);
  assert.equal(mode(join(dir, 'id')), 0o600);
  assert.ok(readFileSync(join(dir, 'id'), 'utf8').startsWith(SEALED_PREFIX));
  const again = await postern(['keygen', '--asym', '--out', join(dir, 'id')]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /exists; refusing to overwrite/);
  const short = await postern(['keygen', '--asym', '--out', join(dir, 'id2')], { POSTERN_PASSPHRASE: 'short' });
  assert.equal(short.code, 1, 'a short passphrase is refused');
  assert.equal(existsSync(join(dir, 'id2')), false);
  const misuse = await postern(['keygen', '--out', join(dir, 'id3')]);
  assert.equal(misuse.code, 2, '--out without --asym is a usage error');
});

test('device-key: made once with mode 0600, then stable; --json', { skip }, async (t) => {
  const dir = tmp(t);
  const path = join(dir, 'sub', 'device.key');
  const first = await postern(['device-key', '--key-file', path, '--json']);
  assert.equal(first.code, 0, first.stderr);
  const a = JSON.parse(first.stdout) as { device_key: string; fingerprint: string; created: boolean };
  assert.equal(a.created, true);
  assert.equal(mode(path), 0o600);
  assert.equal(mode(join(dir, 'sub')), 0o700);
  const second = await postern(['device-key', '--key-file', path]);
  assert.equal(second.code, 0);
  assert.ok(second.stdout.includes(a.device_key) && second.stdout.includes(a.fingerprint));
  assert.match(second.stdout, /[\u2580\u2584\u2588]/, 'a QR code');
  assert.ok(!second.stdout.includes(readFileSync(path, 'utf8').trim().slice(16)), 'the private key is never printed');
});

test('enroll: validated and atomic; refused whole on error; duplicates refused; SIGHUP to --pid', { skip }, async (t) => {
  const dir = tmp(t);
  const config = join(dir, 'config.json');
  const base = { device: 'd', guarded: ['tcp/22'], keys: [], state: { database: ':memory:', device_key: join(dir, 'device.key') } };
  writeFileSync(config, JSON.stringify(base), { mode: 0o600 });
  const tech = generateTechIdentity();
  const pub = tech.publicKey().encode();
  const bad = await postern(['enroll', '--config', config, '--key', pub, '--services', 'tcp/443']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /left unchanged.*\n.*tcp\/443 is not a guarded service/);
  assert.equal(readFileSync(config, 'utf8'), JSON.stringify(base), 'file untouched');
  // A process that counts SIGHUPs stands in for the daemon.
  const child = execFile(process.execPath, ['-e', "process.on('SIGHUP', () => { console.log('hup'); process.exit(0); }); setTimeout(() => process.exit(3), 15000); console.log('ready');"]);
  await new Promise<void>((r) => child.stdout?.once('data', () => r()));
  const exited = new Promise<number | null>((r) => child.once('exit', r));
  const ok = await postern(['enroll', '--config', config, '--key', pub, '--name', 'field', '--pid', String(child.pid), '--json']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(JSON.parse(ok.stdout), { name: 'field', key_id: tech.keyIdHex, reloaded: true });
  assert.equal(await exited, 0, 'the daemon stand-in got SIGHUP');
  const written = JSON.parse(readFileSync(config, 'utf8')) as { keys: { name: string; credential: string }[] };
  assert.deepEqual(written.keys.map((k) => [k.name, k.credential]), [['field', pub]]);
  assert.equal(mode(config), 0o600, 'mode kept');
  assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp')), [], 'no temp file left');
  const dup = await postern(['enroll', '--config', config, '--key', pub]);
  assert.equal(dup.code, 1);
  assert.match(dup.stderr, /already trusted, as "field"/);
  const check = await postern(['config', 'check', config]);
  assert.equal(check.code, 0, check.stdout + check.stderr);
  const usage = await postern(['enroll', '--config', config]);
  assert.equal(usage.code, 2);
});
