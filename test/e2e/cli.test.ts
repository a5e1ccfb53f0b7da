// SPDX-License-Identifier: MIT
// Black-box tests of the `postern` CLI through the real bundle (dist/postern.js), run as a
// child process with argv arrays and a throw-away HOME (STYLE.md principle 12c). No root:
// the only traffic is UDP/TCP on 127.0.0.1 to sockets this test opens. The contract under
// test is STYLE.md principle 11: help on stdout with exit 0, usage errors on stderr with
// exit 2, failures exit 1, secrets never printed.

import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { splitSshArgs } from '../../src/cli/ssh.ts';
import { CREDENTIAL_PREFIX, generateCredential, parseCredential } from '../../src/spa/credential.ts';
import { buildKeyTable, openPacket, prepareKey } from '../../src/spa/packet.ts';
import type { SpaMessage } from '../../src/spa/message.ts';

const BUNDLE = fileURLToPath(new URL('../../dist/postern.js', import.meta.url));
const DOCS = fileURLToPath(new URL('../../docs/cli.md', import.meta.url));
const skip = existsSync(BUNDLE) ? false : 'needs dist/postern.js (run ./build.sh bundle)';
const EXPECTED_COMMANDS = ['daemon', 'open', 'ssh', 'knock', 'keygen', 'profile', 'config', 'doctor', 'import', 'status', 'grants', 'log', 'keys', 'alerts', 'device-key', 'enroll', 'version'];
/** Every command follows the parseArgs contract (--help exits 0, unknown options exit 2). */
const PARSED_COMMANDS = EXPECTED_COMMANDS;
const CREDENTIAL_RE = /^postern1:[A-Za-z0-9_-]{48}$/;
const SETTLE_MS = 150;

interface Run { code: number; stdout: string; stderr: string }
interface Home { dir: string; env: NodeJS.ProcessEnv; postern(args: readonly string[]): Promise<Run> }

/** A fresh HOME/XDG_CONFIG_HOME per test; a minimal env, so no POSTERN_KEY leaks in. */
function makeHome(t: TestContext, extraEnv: NodeJS.ProcessEnv = {}): Home {
  const dir = mkdtempSync(join(tmpdir(), 'postern-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir, XDG_CONFIG_HOME: join(dir, 'cfg'), ...extraEnv };
  return { dir, env, postern: (args) => runBundle(args, env) };
}

function runBundle(args: readonly string[], env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BUNDLE, ...args], { env, timeout: 20_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(new Error(`postern ${args.join(' ')}: ${err.message}`));
      resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
    });
  });
}

/** Command names as the bundle's own help lists them ("  name  summary" lines). */
function commandsFromHelp(help: string): string[] {
  return [...help.matchAll(/^ {2}([a-z][a-z-]*) {2,}\S/gm)].map((m) => m[1] ?? '');
}

/** The secret part of a credential: 8-char windows past the key id (4 bytes = 5.3 chars). */
function assertNoSecret(text: string, credential: string): void {
  const body = credential.slice(CREDENTIAL_PREFIX.length);
  for (let i = 6; i + 8 <= body.length; i++) {
    assert.ok(!text.includes(body.slice(i, i + 8)), `secret material at body offset ${i} appears in output`);
  }
}

async function listenUdp(t: TestContext): Promise<{ port: number; packets: Buffer[] }> {
  const sock = createSocket('udp4');
  const packets: Buffer[] = [];
  sock.on('message', (m) => packets.push(m));
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
  t.after(() => sock.close());
  return { port: sock.address().port, packets };
}

async function listenTcp(t: TestContext, onConn: (s: Socket) => void): Promise<{ port: number; server: Server; conns: () => number }> {
  let n = 0;
  const server = createServer((s) => {
    n++;
    s.on('error', () => undefined); // probes hang up abruptly (RST); that is not a test failure
    onConn(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  return { port: (server.address() as AddressInfo).port, server, conns: () => n };
}

const settle = () => new Promise((r) => setTimeout(r, SETTLE_MS));

function decode(packet: Buffer, credential: string): SpaMessage {
  const cred = parseCredential(credential);
  assert.ok(cred.ok);
  const opened = openPacket(packet, buildKeyTable([prepareKey('tech', cred.value)]));
  assert.ok(opened.ok, `packet did not open: ${opened.ok ? '' : opened.reason}`);
  return opened.value.message;
}

function keyFile(home: Home, credential = generateCredential().encode()): { path: string; credential: string } {
  const path = join(home.dir, 'tech.key');
  writeFileSync(path, credential + '\n', { mode: 0o600 });
  return { path, credential };
}

function writeJson(home: Home, name: string, value: unknown): string {
  const path = join(home.dir, name);
  writeFileSync(path, JSON.stringify(value, null, 2), { mode: 0o600 });
  return path;
}

// ---- top level -------------------------------------------------------------------------

test('--help, -h and help list every subcommand on stdout and exit 0', { skip }, async (t) => {
  const home = makeHome(t);
  for (const arg of ['--help', '-h', 'help']) {
    const r = await home.postern([arg]);
    assert.equal(r.code, 0, arg);
    assert.equal(r.stderr, '');
    assert.deepEqual(commandsFromHelp(r.stdout), EXPECTED_COMMANDS, arg);
  }
});

test('no arguments: help on stderr, exit 2; unknown command: named on stderr, exit 2', { skip }, async (t) => {
  const home = makeHome(t);
  const none = await home.postern([]);
  assert.equal(none.code, 2);
  assert.equal(none.stdout, '');
  assert.deepEqual(commandsFromHelp(none.stderr), EXPECTED_COMMANDS);
  const bad = await home.postern(['frobnicate']);
  assert.equal(bad.code, 2);
  assert.equal(bad.stdout, '');
  assert.match(bad.stderr, /unknown command "frobnicate"/);
});

test('version and --version print postern <semver> (node 24.x)', { skip }, async (t) => {
  const home = makeHome(t);
  for (const arg of ['version', '--version']) {
    const r = await home.postern([arg]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^postern \d+\.\d+\.\d+(-[0-9A-Za-z.-]+)? \(node 24\.\d+\.\d+\)\n$/);
  }
});

test('every subcommand --help prints its usage on stdout, exit 0', { skip }, async (t) => {
  const home = makeHome(t);
  const runs = await Promise.all(PARSED_COMMANDS.map((c) => home.postern([c, '--help'])));
  runs.forEach((r, i) => {
    assert.equal(r.code, 0, PARSED_COMMANDS[i]);
    assert.equal(r.stderr, '');
    assert.ok(r.stdout.startsWith(`usage: postern ${PARSED_COMMANDS[i]}`), r.stdout);
  });
});

test('an unknown option prints the usage on stderr, exit 2', { skip }, async (t) => {
  const home = makeHome(t);
  const runs = await Promise.all(PARSED_COMMANDS.map((c) => home.postern([c, '--bogus'])));
  runs.forEach((r, i) => {
    assert.equal(r.code, 2, PARSED_COMMANDS[i]);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /--bogus/);
    assert.match(r.stderr, new RegExp(`usage: postern ${PARSED_COMMANDS[i]}`));
  });
});

test('version follows the same contract: --help is usage, a bad option is exit 2', {
  skip,
}, async (t) => {
  const home = makeHome(t);
  const help = await home.postern(['version', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^usage: postern version/);
  assert.equal((await home.postern(['version', '--bogus'])).code, 2);
});

// ---- open: usage errors send nothing ---------------------------------------------------

test('open: usage errors exit 2 before any packet is sent; a bad key is never echoed', { skip }, async (t) => {
  const home = makeHome(t);
  const udp = await listenUdp(t);
  const key = keyFile(home);
  const base = ['127.0.0.1', 'tcp/22', '--port', String(udp.port)];
  const badKeys = [`${CREDENTIAL_PREFIX}SHORTsecretTEXT`, 'plainSECRETwithoutPREFIX', `${CREDENTIAL_PREFIX}${'$'.repeat(48)}`];
  for (const bad of badKeys) {
    const r = await home.postern(['open', ...base, '--key', bad]);
    assert.equal(r.code, 2, bad);
    assert.match(r.stderr, /bad credential/);
    assert.ok(!r.stderr.includes(bad.slice(CREDENTIAL_PREFIX.length)) && !r.stdout.includes(bad), 'bad key text echoed');
  }
  const usage: string[][] = [
    ['--duration', 'abc'], ['--duration', '0'], ['--duration', '86401'], ['--allow-ip', 'not-an-address'],
    ['--timeout', 'abc'], ['--key-file', join(home.dir, 'missing.key')], ['tcp/99999'],
  ];
  for (const extra of usage) {
    const args = extra[0] === '--key-file' ? ['open', ...base, ...extra] : ['open', ...base, '--key-file', key.path, ...extra];
    const r = await home.postern(args);
    assert.equal(r.code, 2, extra.join(' '));
    assert.match(r.stderr, /usage: postern open/);
  }
  for (const args of [['open', '--key-file', key.path], ['open', '127.0.0.1', '--port', String(udp.port)],
    ['open', '127.0.0.1', '--key-file', key.path, '--port', '0'], ['open', 'no-such-profile', '--profile', 'nope', '--key-file', key.path]]) {
    assert.equal((await home.postern(args)).code, 2, args.join(' '));
  }
  await settle();
  assert.equal(udp.packets.length, 0, 'a usage error must not send a packet');
});

test('open --wait without a tcp service is refused before the packet goes out', {
  skip,
}, async (t) => {
  const home = makeHome(t);
  const udp = await listenUdp(t);
  const r = await home.postern(['open', '127.0.0.1', 'udp/53', '--key-file', keyFile(home).path, '--port', String(udp.port), '--wait']);
  assert.equal(r.code, 2);
  await settle();
  assert.equal(udp.packets.length, 0);
});

test('open: a credential typed where a SERVICE goes is not echoed', {
  skip,
}, async (t) => {
  const home = makeHome(t);
  const cred = generateCredential().encode();
  const r = await home.postern(['open', '127.0.0.1', cred, '--key-file', keyFile(home).path, '--port', '9']);
  assert.equal(r.code, 2);
  assertNoSecret(r.stderr + r.stdout, cred);
});

// ---- open: the datagram ----------------------------------------------------------------

test('open sends exactly one datagram carrying the requested services, duration and address', { skip }, async (t) => {
  const home = makeHome(t);
  const udp = await listenUdp(t);
  const key = keyFile(home);
  const saved = join(home.dir, 'sent.hex');
  const before = Date.now();
  const r = await home.postern(['open', '127.0.0.1', 'tcp/22', 'udp/53', '8080', '--key-file', key.path,
    '--port', String(udp.port), '--duration', '120', '--allow-ip', '2001:DB8:0::7', '--save-packet', saved, '--json']);
  assert.equal(r.code, 0, r.stderr);
  await settle();
  assert.equal(udp.packets.length, 1);
  const pkt = udp.packets[0];
  assert.ok(pkt);
  const msg = decode(pkt, key.credential);
  assert.equal(msg.type, 'open');
  assert.deepEqual(msg.services, [{ proto: 'tcp', port: 22 }, { proto: 'udp', port: 53 }, { proto: 'tcp', port: 8080 }]);
  assert.equal(msg.durationS, 120);
  assert.equal(msg.address, '2001:db8::7');
  assert.equal(msg.nonce.length, 8);
  assert.ok(msg.timestampMs >= before - 1000 && msg.timestampMs <= Date.now() + 1000, 'timestamp is now');
  assert.deepEqual(JSON.parse(r.stdout), { sent: true, host: '127.0.0.1', spa_port: udp.port, bytes: pkt.length });
  assert.equal(readFileSync(saved, 'utf8'), pkt.toString('hex') + '\n', '--save-packet holds the datagram sent');
  assert.equal(statSync(saved).mode & 0o777, 0o600);
  assertNoSecret(r.stdout + r.stderr, key.credential);
});

test('open --close, --key and POSTERN_KEY: type close, source address, key default duration', { skip }, async (t) => {
  const cred = generateCredential().encode();
  const home = makeHome(t, { POSTERN_KEY: cred });
  const udp = await listenUdp(t);
  const closeRun = await home.postern(['open', '127.0.0.1', 'tcp/22', '--key', cred, '--port', String(udp.port), '--close']);
  assert.equal(closeRun.code, 0, closeRun.stderr);
  assert.match(closeRun.stdout, new RegExp(`^sent close request to 127\\.0\\.0\\.1 udp/${udp.port} \\(\\d+ bytes\\)\\n$`));
  const envRun = await home.postern(['open', '127.0.0.1', '--port', String(udp.port)]);
  assert.equal(envRun.code, 0, envRun.stderr);
  await settle();
  assert.equal(udp.packets.length, 2);
  const [closeMsg, envMsg] = udp.packets.map((p) => decode(p, cred));
  assert.equal(closeMsg?.type, 'close');
  assert.deepEqual(closeMsg?.services, [{ proto: 'tcp', port: 22 }]);
  assert.equal(closeMsg?.address, undefined, 'auto: the packet source address');
  assert.equal(envMsg?.type, 'open');
  assert.deepEqual(envMsg?.services, [], 'no SERVICE: everything the key allows');
  assert.equal(envMsg?.durationS, 0, '0 = the key default');
  // Random padding (0..MAX_PADDING) varies the length: five identical requests are not all one size.
  const sizes = new Set<number>();
  await Promise.all([1, 2, 3, 4].map(() => home.postern(['open', '127.0.0.1', '--port', String(udp.port)])));
  await settle();
  assert.equal(udp.packets.length, 6);
  for (const p of udp.packets.slice(1)) sizes.add(p.length); // the identical no-SERVICE requests
  assert.ok(sizes.size > 1, `packet sizes vary (${[...sizes].join(',')})`);
});

test('open NAME and --profile NAME use the profile host, port, services and key', { skip }, async (t) => {
  const home = makeHome(t);
  const udp = await listenUdp(t);
  const key = keyFile(home);
  const add = await home.postern(['profile', 'add', 'edge', '--host', '127.0.0.1', '--key-file', key.path,
    '--port', String(udp.port), '--services', 'tcp/22,udp/53']);
  assert.equal(add.code, 0, add.stderr);
  assert.equal((await home.postern(['open', 'edge'])).code, 0);
  assert.equal((await home.postern(['open', '--profile', 'edge', '--duration', '30'])).code, 0);
  assert.equal((await home.postern(['open', 'edge', 'tcp/443'])).code, 0);
  await settle();
  assert.equal(udp.packets.length, 3);
  const msgs = udp.packets.map((p) => decode(p, key.credential));
  assert.deepEqual(msgs[0]?.services, [{ proto: 'tcp', port: 22 }, { proto: 'udp', port: 53 }]);
  assert.equal(msgs[1]?.durationS, 30);
  assert.deepEqual(msgs[2]?.services, [{ proto: 'tcp', port: 443 }], 'SERVICE arguments override the profile');
});

test('open --wait: exit 0 once the tcp service accepts; exit 1 after --timeout when it never does', { skip }, async (t) => {
  const home = makeHome(t);
  const udp = await listenUdp(t);
  const tcp = await listenTcp(t, (s) => s.destroy());
  const key = keyFile(home);
  const ok = await home.postern(['open', '127.0.0.1', `tcp/${tcp.port}`, '--key-file', key.path, '--port', String(udp.port), '--wait']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, new RegExp(`tcp/${tcp.port} is open \\(after \\d+ ms\\)`));
  const closed = await listenTcp(t, (s) => s.destroy());
  await new Promise<void>((resolve) => closed.server.close(() => resolve()));
  const started = Date.now();
  const fail = await home.postern(['open', '127.0.0.1', `tcp/${closed.port}`, '--key-file', key.path, '--port', String(udp.port),
    '--wait', '--timeout', '1', '--json']);
  assert.equal(fail.code, 1);
  assert.ok(Date.now() - started >= 1000, '--timeout 1 waits about a second');
  const report = JSON.parse(fail.stdout) as Record<string, unknown>;
  assert.deepEqual({ ...report, bytes: undefined }, { sent: true, host: '127.0.0.1', spa_port: udp.port, bytes: undefined, probe: `tcp/${closed.port}`, open: false });
  await settle();
  assert.equal(udp.packets.length, 2);
});

// ---- keygen ----------------------------------------------------------------------------

test('keygen prints one credential line; two runs differ', { skip }, async (t) => {
  const home = makeHome(t);
  const [a, b] = await Promise.all([home.postern(['keygen']), home.postern(['keygen'])]);
  for (const r of [a, b]) {
    assert.equal(r.code, 0);
    assert.equal(r.stderr, '');
    assert.match(r.stdout, /^postern1:[A-Za-z0-9_-]{48}\n$/);
    assert.equal(r.stdout.trim().length, CREDENTIAL_PREFIX.length + 48);
  }
  const idA = parseCredential(a.stdout), idB = parseCredential(b.stdout);
  assert.ok(idA.ok && idB.ok);
  assert.notEqual(idA.value.keyIdHex, idB.value.keyIdHex);
  assert.notEqual(a.stdout, b.stdout);
});

test('keygen --json: credential, key_id and a stanza that config check accepts', { skip }, async (t) => {
  const home = makeHome(t);
  const r = await home.postern(['keygen', '--json']);
  assert.equal(r.code, 0);
  const out = JSON.parse(r.stdout) as { credential: string; key_id: string; stanza: { name: string; credential: string; services: string[] } };
  assert.match(out.credential, CREDENTIAL_RE);
  assert.match(out.key_id, /^[0-9a-f]{8}$/);
  const parsed = parseCredential(out.credential);
  assert.ok(parsed.ok);
  assert.equal(parsed.value.keyIdHex, out.key_id);
  assert.deepEqual(out.stanza, { name: `key-${out.key_id}`, credential: out.credential, services: ['tcp/22'] });
  const config = writeJson(home, 'config.json', { device: 'edge-1', guarded: ['tcp/22'], keys: [out.stanza], state: { database: ':memory:' } });
  const check = await home.postern(['config', 'check', config]);
  assert.equal(check.code, 0, check.stderr);
  assert.equal(check.stdout, `${config}: valid (device edge-1, 1 key, guarding tcp/22)\n`);
  assertNoSecret(check.stdout, out.credential);
  const named = JSON.parse((await home.postern(['keygen', '--json', '--name', 'alice@laptop', '--services', 'tcp/22,udp/53,8080'])).stdout);
  assert.deepEqual([named.stanza.name, named.stanza.services], ['alice@laptop', ['tcp/22', 'udp/53', 'tcp/8080']]);
  for (const bad of [['keygen', '--name', 'bad name'], ['keygen', 'extra'], ['keygen', '--services', 'tcp/0']]) {
    assert.equal((await home.postern(bad)).code, 2, bad.join(' '));
  }
});

test('keygen --qr prints the credential, then a QR block of half-block characters', { skip }, async (t) => {
  const home = makeHome(t);
  const r = await home.postern(['keygen', '--qr']);
  assert.equal(r.code, 0);
  const [first, ...qr] = r.stdout.trimEnd().split('\n');
  assert.match(first ?? '', CREDENTIAL_RE);
  const width = qr[0]?.length ?? 0;
  // Two QR rows per text line, a 2-module quiet zone on each side: version 1..40 = 21..177 modules.
  assert.ok(width >= 21 + 4 && width <= 177 + 4, `QR width ${width}`);
  assert.equal(qr.length, Math.ceil(width / 2));
  for (const line of qr) assert.match(line, new RegExp(`^[\\u2580\\u2584\\u2588 ]{${width}}$`));
  assert.ok(qr.some((l) => /[\u2580\u2584]/.test(l)), 'the block has modules');
});

// ---- config check ----------------------------------------------------------------------

test('config check lists every schema error with its path, exit 1; --json too', { skip }, async (t) => {
  const home = makeHome(t);
  const cred = `${CREDENTIAL_PREFIX}${'S'.repeat(20)}`;
  const path = writeJson(home, 'bad.json', {
    device: 'not valid!', log_level: 'loud', guarded: ['tcp/22'], spa: { port: 0 },
    keys: [{ name: 'a', credential: cred, services: ['tcp/22'] }], state: { database: ':memory:' },
  });
  const r = await home.postern(['config', 'check', path]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /: 3 errors\n/);
  for (const p of ['/device', '/log_level', '/spa/port']) assert.match(r.stderr, new RegExp(`^  ${p}: `, 'm'), p);
  const j = await home.postern(['config', 'check', path, '--json']);
  assert.equal(j.code, 1);
  const out = JSON.parse(j.stdout) as { valid: boolean; errors: string[] };
  assert.equal(out.valid, false);
  assert.equal(out.errors.length, 3);
});

test('config check lists every cross-field error and never echoes a credential', { skip }, async (t) => {
  const home = makeHome(t);
  const badCred = `${CREDENTIAL_PREFIX}${'Q'.repeat(30)}SECRETTAIL`;
  const goodCred = generateCredential().encode();
  const path = writeJson(home, 'bad.json', {
    device: 'd1', guarded: ['tcp/22'], state: { database: ':memory:' },
    keys: [
      { name: 'a', credential: badCred, services: ['tcp/23'], default_duration_s: 900, max_duration_s: 60 },
      { name: 'a', credential: goodCred, services: ['tcp/22'] },
    ],
  });
  for (const json of [false, true]) {
    const r = await home.postern(['config', 'check', path, ...(json ? ['--json'] : [])]);
    assert.equal(r.code, 1);
    const text = r.stdout + r.stderr;
    for (const p of ['/keys/0/credential', '/keys/0/services/0', '/keys/0/default_duration_s', '/keys: duplicate key name']) {
      assert.ok(text.includes(p), `${p} listed`);
    }
    assert.ok(!text.includes('QQQQ') && !text.includes('SECRETTAIL'), 'malformed credential echoed');
    assertNoSecret(text, goodCred);
    if (json) assert.equal((JSON.parse(r.stdout) as { errors: string[] }).errors.length, 4);
    else assert.match(r.stderr, /: 4 errors\n/);
  }
});

test('config check never echoes a credential under a misspelt key or in the wrong place', {
  skip,
}, async (t) => {
  const home = makeHome(t);
  const cred = generateCredential().encode();
  const path = writeJson(home, 'typo.json', {
    device: 'd1', guarded: ['tcp/22'], keys: [{ name: 'a', credentail: cred, services: ['tcp/22'] }, cred],
  });
  const r = await home.postern(['config', 'check', path]);
  assert.equal(r.code, 1);
  assertNoSecret(r.stderr + r.stdout, cred);
});

test('config check: missing file and non-JSON exit 1 with a clear message; bad usage exits 2', { skip }, async (t) => {
  const home = makeHome(t);
  const missing = await home.postern(['config', 'check', join(home.dir, 'nope.json')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /nope\.json: cannot read \(ENOENT\)/);
  const garbage = join(home.dir, 'garbage.json');
  writeFileSync(garbage, 'device = edge\n');
  const notJson = await home.postern(['config', 'check', garbage]);
  assert.equal(notJson.code, 1);
  assert.match(notJson.stderr, /garbage\.json: not valid JSON/);
  for (const args of [['config'], ['config', 'check'], ['config', 'lint', garbage], ['config', 'check', garbage, 'extra']]) {
    assert.equal((await home.postern(args)).code, 2, args.join(' '));
  }
});

// ---- profile ---------------------------------------------------------------------------

test('profile add/list/remove: 0600 file, secret never shown', { skip }, async (t) => {
  const home = makeHome(t);
  const cred = generateCredential().encode();
  const add = await home.postern(['profile', 'add', 'edge', '--host', '192.0.2.1', '--key', cred, '--services', 'tcp/22', '--ssh-port', '2222']);
  assert.equal(add.code, 0, add.stderr);
  const file = join(home.dir, 'cfg', 'postern', 'profiles.json');
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { edge: { host: '192.0.2.1', credential: cred, services: ['tcp/22'], ssh_port: 2222 } });
  const id = parseCredential(cred);
  assert.ok(id.ok);
  const list = await home.postern(['profile', 'list']);
  assert.equal(list.code, 0);
  assert.match(list.stdout, new RegExp(`^edge\\t192\\.0\\.2\\.1\\t.*key ${id.value.keyIdHex} \\(secret hidden\\)\\ttcp/22\\n$`));
  const json = await home.postern(['profile', 'list', '--json']);
  const listed = JSON.parse(json.stdout) as Record<string, { host: string; ssh_port: number; services: string[] }>;
  assert.deepEqual([listed['edge']?.host, listed['edge']?.ssh_port, listed['edge']?.services], ['192.0.2.1', 2222, ['tcp/22']]);
  for (const r of [add, list, json]) assertNoSecret(r.stdout + r.stderr, cred);
  const removed = await home.postern(['profile', 'remove', 'edge']);
  assert.equal(removed.code, 0);
  assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), {});
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const again = await home.postern(['profile', 'remove', 'edge']);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /no profile "edge"/);
});

test('profile add refuses a bad credential or name with exit 2 and writes nothing', { skip }, async (t) => {
  const home = makeHome(t);
  const good = generateCredential().encode();
  const cases = [
    ['profile', 'add', 'edge', '--host', 'h', '--key', `${CREDENTIAL_PREFIX}TRUNCATEDsecret`],
    ['profile', 'add', 'bad name', '--host', 'h', '--key', good],
    ['profile', 'add', 'edge', '--key', good],
    ['profile', 'add', 'edge', '--host', 'h', '--key', good, '--ssh-port', '70000'],
    ['profile', 'add', '--host', 'h', '--key', good],
  ];
  for (const args of cases) {
    const r = await home.postern(args);
    assert.equal(r.code, 2, args.join(' '));
    assert.ok(!r.stderr.includes('TRUNCATEDsecret'));
    assertNoSecret(r.stderr, good);
  }
  assert.equal(existsSync(join(home.dir, 'cfg', 'postern', 'profiles.json')), false);
});

// ---- ssh -------------------------------------------------------------------------------

test('splitSshArgs: our options before HOST, ssh arguments after it', () => {
  const cases: [string[], ReturnType<typeof splitSshArgs>][] = [
    [['--key', 'X', 'user@h', '-v', 'ls'], { ours: ['--key', 'X'], host: 'user@h', rest: ['-v', 'ls'] }],
    [['h'], { ours: [], host: 'h', rest: [] }],
    [['--port=1', 'h', '--', 'x'], { ours: ['--port=1'], host: 'h', rest: ['--', 'x'] }],
    [['--key-file', 'k', '--ssh-port', '2222', '--timeout', '5', 'root@h', 'uptime'],
      { ours: ['--key-file', 'k', '--ssh-port', '2222', '--timeout', '5'], host: 'root@h', rest: ['uptime'] }],
    [['--key', 'X', '--', 'h', '-p', '1'], { ours: ['--key', 'X'], host: 'h', rest: ['-p', '1'] }],
    [['--profile', '-odd', 'h'], { ours: ['--profile', '-odd'], host: 'h', rest: [] }],
    [['--help'], { ours: ['--help'], host: undefined, rest: [] }],
    [['--key'], { ours: ['--key'], host: undefined, rest: [] }],
    [[], { ours: [], host: undefined, rest: [] }],
  ];
  for (const [args, want] of cases) assert.deepEqual(splitSshArgs(args), want, JSON.stringify(args));
});

test('ssh: no HOST or a bad option exits 2 without sending', { skip }, async (t) => {
  const home = makeHome(t);
  const udp = await listenUdp(t);
  const key = keyFile(home);
  for (const args of [['ssh'], ['ssh', '--key-file', key.path], ['ssh', '-p', '22', '127.0.0.1'], ['ssh', '--key-file', key.path, '--port', String(udp.port), '--ssh-port', '0', '127.0.0.1']]) {
    const r = await home.postern(args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.stderr, /usage: postern ssh/);
  }
  await settle();
  assert.equal(udp.packets.length, 0);
});

test('ssh: a bad --timeout is refused before the packet goes out', {
  skip,
}, async (t) => {
  const home = makeHome(t);
  const udp = await listenUdp(t);
  const r = await home.postern(['ssh', '--key-file', keyFile(home).path, '--port', String(udp.port), '--timeout', 'abc', '127.0.0.1']);
  assert.equal(r.code, 2);
  await settle();
  assert.equal(udp.packets.length, 0);
});

const sshSkip = skip || (hasSsh() ? false : 'needs the ssh client');

function hasSsh(): boolean {
  try {
    execFileSync('ssh', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

test('ssh: one packet for the SSH port, waits for it, runs ssh with -p/-l and the rest; ssh exit code is ours', { skip: sshSkip }, async (t) => {
  const home = makeHome(t);
  const udp = await listenUdp(t);
  // A fake sshd: sends a banner and hangs up, so real ssh logs how it was invoked and exits 255.
  const tcp = await listenTcp(t, (s) => s.end('SSH-2.0-postern-test\r\n'));
  const key = keyFile(home);
  const r = await home.postern(['ssh', '--key-file', key.path, '--port', String(udp.port), '--ssh-port', String(tcp.port),
    '--timeout', '5', '--duration', '45', 'bob@127.0.0.1', '-F', '/dev/null', '-v', '-o', 'BatchMode=yes', '-o', 'UserKnownHostsFile=/dev/null', 'true']);
  assert.equal(r.code, 255, r.stderr);
  assert.match(r.stderr, new RegExp(`Connecting to 127\\.0\\.0\\.1 \\[127\\.0\\.0\\.1\\] port ${tcp.port}`));
  assert.match(r.stderr, new RegExp(`Authenticating to 127\\.0\\.0\\.1:${tcp.port} as 'bob'`));
  assert.ok(tcp.conns() >= 2, 'the --wait probe, then ssh');
  await settle();
  assert.equal(udp.packets.length, 1);
  const msg = decode(udp.packets[0] ?? Buffer.alloc(0), key.credential);
  assert.deepEqual(msg.services, [{ proto: 'tcp', port: tcp.port }]);
  assert.equal(msg.durationS, 45);
});

// ---- config uci (OpenWrt's /etc/config/postern -> JSON) ---------------------------------

test('config uci: prints valid JSON, --out writes it 0600, errors exit 1 writing nothing, no FILE exits 2', { skip }, async (t) => {
  const home = makeHome(t);
  const uci = join(home.dir, 'postern');
  writeFileSync(uci, "config postern 'main'\n\toption device 'r1'\n\tlist guarded 'tcp/22'\n\toption spa_port '62442'\n");
  const r = await home.postern(['config', 'uci', uci]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { keys: [], device: 'r1', guarded: ['tcp/22'], spa: { port: 62442 } });
  const out = join(home.dir, 'config.json');
  assert.equal((await home.postern(['config', 'uci', uci, '--out', out])).code, 0);
  assert.equal(statSync(out).mode & 0o777, 0o600);
  assert.equal((await home.postern(['config', 'check', out])).code, 0);
  writeFileSync(uci, "config postern 'main'\n\toption device 'r1'\n\toption spa_port 'x'\n\toption colour 'red'\n");
  const bad = await home.postern(['config', 'uci', uci, '--out', join(home.dir, 'never.json')]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /2 errors\n {2}line 3 \(config postern main\) spa_port: expected a whole number[^\n]*\n {2}line 4 \(config postern main\) colour: unknown option/);
  assert.equal(existsSync(join(home.dir, 'never.json')), false);
  assert.equal((await home.postern(['config', 'uci'])).code, 2);
});

// ---- daemon (only what needs no root: it refuses before touching the firewall) --------

test('daemon: missing --config exits 2; an invalid config is refused with exit 1', { skip }, async (t) => {
  const home = makeHome(t);
  assert.equal((await home.postern(['daemon'])).code, 2);
  const bad = writeJson(home, 'bad.json', { device: 'd1', guarded: [], keys: [] });
  assert.equal((await home.postern(['daemon', '--config', bad, '--log-level', 'loud'])).code, 2);
  const r = await home.postern(['daemon', '--config', bad]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /refusing to start, .*bad\.json has \d+ error\(s\):\n {2}\/guarded/);
});

// ---- docs/cli.md -----------------------------------------------------------------------

test('docs/cli.md documents every subcommand and every option in the bundle help', { skip }, async (t) => {
  const home = makeHome(t);
  const doc = readFileSync(DOCS, 'utf8');
  const commands = commandsFromHelp((await home.postern(['--help'])).stdout);
  assert.ok(commands.length >= EXPECTED_COMMANDS.length);
  for (const c of commands) {
    assert.ok(doc.includes(`postern ${c}`), `docs/cli.md mentions postern ${c}`);
    const usage = (await home.postern([c, '--help'])).stdout;
    for (const opt of new Set(usage.match(/--[a-z][a-z-]+/g) ?? [])) {
      assert.ok(doc.includes(opt), `docs/cli.md mentions ${opt} (postern ${c})`);
    }
  }
  assert.match(doc, /exit codes?/i);
});
