// SPDX-License-Identifier: MIT
// `postern knock` through the real bundle, as an unprivileged client would run it: knocks
// land on sockets this test opens on loopback, in order, and a usage mistake sends nothing.
// The daemon side (doors opening, replay refused) is test/e2e/knock-interop.test.ts.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { currentStep, deriveSequence, formatDoorKey, parseDoorKey } from '../../src/knock/totp.ts';

const BUNDLE = fileURLToPath(new URL('../../dist/postern.js', import.meta.url));
const skip = existsSync(BUNDLE) ? false : 'needs dist/postern.js (run ./build.sh bundle)';

interface Run { code: number; stdout: string; stderr: string }

function makeHome(t: TestContext): (args: readonly string[]) => Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), 'postern-knock-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const env = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir, XDG_CONFIG_HOME: join(dir, 'cfg') };
  return (args) => new Promise((resolve, reject) => {
    execFile(process.execPath, [BUNDLE, ...args], { env, timeout: 20_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(err);
      resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
    });
  });
}

/** UDP sockets on free loopback ports; every datagram is logged as `port` in arrival order. */
async function udpPorts(t: TestContext, ports: readonly number[] | number): Promise<{ ports: number[]; hits: number[] }> {
  const hits: number[] = [];
  const socks: UdpSocket[] = [];
  const wanted = typeof ports === 'number' ? Array.from({ length: ports }, () => 0) : ports;
  for (const p of wanted) {
    const s = createSocket('udp4');
    await new Promise<void>((resolve) => s.bind(p, '127.0.0.1', resolve));
    const bound = s.address().port;
    s.on('message', () => hits.push(bound));
    socks.push(s);
  }
  t.after(() => { for (const s of socks) s.close(); });
  return { ports: socks.map((s) => s.address().port), hits };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 150));

test('knock: UDP and TCP knocks arrive in order, knockd client syntax', { skip }, async (t) => {
  const postern = makeHome(t);
  const udp = await udpPorts(t, 3);
  let tcpHits = 0;
  const server = createServer((s) => { tcpHits++; s.destroy(); });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const tcpPort = (server.address() as { port: number }).port;
  const [a, b, c] = udp.ports;
  const r = await postern(['knock', '-v', '-d', '20', '127.0.0.1', `${a}:udp`, `${tcpPort}`, `${b}:UDP,${c}:udp`]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split('\n'), [`hitting udp 127.0.0.1:${a}`, `hitting tcp 127.0.0.1:${tcpPort}`,
    `hitting udp 127.0.0.1:${b}`, `hitting udp 127.0.0.1:${c}`]);
  await settle();
  assert.deepEqual(udp.hits, [a, b, c]);
  assert.ok(tcpHits >= 1, 'the TCP knock reached the listener');
  const u = await postern(['knock', '-u', '127.0.0.1', `${c}`, `${a}`]);
  assert.equal(u.code, 0);
  assert.equal(u.stdout, '');
  await settle();
  assert.deepEqual(udp.hits, [a, b, c, c, a]);
});

test('knock: usage mistakes exit 2 with the usage and send nothing', { skip }, async (t) => {
  const postern = makeHome(t);
  const udp = await udpPorts(t, 1);
  const p = String(udp.ports[0]);
  for (const args of [
    ['127.0.0.1'], ['127.0.0.1', `${p}:udp`, '70000'], ['127.0.0.1', `${p}:sctp`], ['127.0.0.1', '0'],
    ['-6', '127.0.0.1', `${p}:udp`], ['-4', '-6', '127.0.0.1', `${p}:udp`], ['-d', 'x', '127.0.0.1', `${p}:udp`],
    ['127.0.0.1', '--door', 'ssh'], ['--door', 'ssh', '--profile', 'nope'], ['-u', '--door', 'ssh', '--profile', 'x'], ['127.0.0.1', `${p}:udp`, '--profile', 'x'],
    ['127.0.0.1', ...Array.from({ length: 33 }, () => `${p}:udp`)],
  ]) {
    const r = await postern(['knock', ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /usage: postern knock/);
  }
  await settle();
  assert.deepEqual(udp.hits, [], 'a usage error must not knock');
});

test('knock --door: the profile door\'s current sequence, key never printed', { skip }, async (t) => {
  const postern = makeHome(t);
  const gen = await postern(['knock', '--new-key']);
  assert.equal(gen.code, 0);
  const keyText = gen.stdout.trim();
  const key = parseDoorKey(keyText);
  assert.ok(key.ok, keyText);
  assert.notEqual(keyText, formatDoorKey(Buffer.alloc(32)));
  // A small UDP range we can listen on whole: 16 ports.
  const base = 47311;
  const range = await udpPorts(t, Array.from({ length: 16 }, (_, i) => base + i));
  const add = await postern(['profile', 'door', 'edge', 'ssh', '--host', '127.0.0.1', '--door-key', keyText,
    '--port-min', String(base), '--port-max', String(base + 15), '--length', '5', '--proto', 'udp']);
  assert.equal(add.code, 0, add.stderr);
  const list = await postern(['profile', 'list', '--json']);
  assert.ok(!list.stdout.includes(keyText.slice(20, 40)), 'the door key is not listed');
  const opts = { length: 5, portMin: base, portMax: base + 15, avoid: new Set<number>() };
  const before = currentStep(Date.now(), 30);
  const r = await postern(['knock', '--door', 'ssh', '--profile', 'edge']);
  const after = currentStep(Date.now(), 30);
  assert.equal(r.code, 0, r.stderr);
  await settle();
  const expected = [before, after].map((s) => deriveSequence(key.value, s, opts));
  assert.ok(expected.some((e) => JSON.stringify(e) === JSON.stringify(range.hits)), `got ${range.hits.join(',')}`);
  assert.equal(new Set(range.hits).size, 5);
  const bad = await postern(['profile', 'door', 'edge', 'x', '--door-key', keyText, '--port-min', '5000', '--port-max', '5002']);
  assert.equal(bad.code, 2);
  const keyFile = join(mkdtempSync(join(tmpdir(), 'postern-key-')), 'door.key');
  t.after(() => rmSync(keyFile, { force: true }));
  writeFileSync(keyFile, 'postern-door1:short\n');
  const badKey = await postern(['profile', 'door', 'edge', 'y', '--door-key-file', keyFile, '--port-min', '20000', '--port-max', '40000']);
  assert.equal(badKey.code, 2);
  assert.ok(!badKey.stderr.includes('short'), 'a bad key is not echoed');
});

test('knock: a knock that cannot leave the machine exits 1 with the reason', {
  skip: skip || (process.getuid?.() === 0 && existsSync('/usr/bin/unshare') ? false : 'needs root and unshare (an empty network namespace)'),
}, async () => {
  // `unshare -n`: a new network namespace with only a down loopback, so nothing is sent anywhere.
  for (const args of [['198.18.0.1', '7000'], ['-u', '198.18.0.1', '7000']]) {
    const r = await new Promise<Run>((resolve) => {
      execFile('/usr/bin/unshare', ['-n', process.execPath, BUNDLE, 'knock', ...args], { timeout: 20_000, encoding: 'utf8' },
        (err, stdout, stderr) => resolve({ code: err ? Number(err.code) : 0, stdout, stderr }));
    });
    assert.equal(r.code, 1, args.join(' '));
    assert.match(r.stderr, /ENETUNREACH/);
  }
});
