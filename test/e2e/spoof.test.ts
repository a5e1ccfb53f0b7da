// SPDX-License-Identifier: MIT
// Spoofing (issue 9; DESIGN.md threat model: attackers "must not get legitimate users banned
// by spoofing"). The attacker host rewrites the source address of everything it sends to the
// SPA and fwknop ports to the client's address (nft SNAT in its own namespace, so the router
// sees exactly what an internet spoofer delivers), then sends junk, packets under the
// client's key id with a wrong tag, and replays of the client's captured packets. Against
// the real bundle (as the non-root daemon user) and the real firewall:
//   - the client's next valid open still succeeds, promptly (the figure is printed);
//   - nothing grants to the attacker or is extended by a replay;
//   - no refusal those packets cause is one the Fail2Ban filter matches
//     (fail2ban-regex over the daemon's own log lines: zero matches);
//   - the technician token bucket is per key id: a flood under key A leaves key B untouched
//     and delays A only while it lasts (the accepted cost, docs/security.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labSkipReason, type Lab, type LabHost } from '../lab/lab.ts';
import { probeArgv, tcpConnect } from '../lab/net-probe.ts';
import { Credential } from '../../src/spa/credential.ts';
import { sealAsym } from '../../src/spa/asym.ts';
import { generateTechIdentity, parseDevicePublic, type TechIdentity } from '../../src/spa/asym-keys.ts';
import { ASYM_TAG_OFFSET } from '../../src/spa/constants.ts';
import { prepareFwknopKey } from '../../src/fwknop/keys.ts';
import { encodeFwknop, sealFwknopPlaintext } from '../../src/fwknop/encode.ts';
import { digestText } from '../../src/fwknop/fields.ts';
import { BACKENDS, SERVICE_PORT, SPA_PORT, bundleSkipReason, createWorld, eventually, keyFileArgs, type World, NO_PREFILTER } from './harness.ts';

const FILTER = fileURLToPath(new URL('../../rootfs-overlay/common/etc/fail2ban/filter.d/postern.conf', import.meta.url));
const F2B = '/usr/bin/fail2ban-regex';
const COMMON = '/etc/fail2ban/filter.d/common.conf';
const skip = labSkipReason() ?? bundleSkipReason() ?? (existsSync(F2B) && existsSync(COMMON) ? undefined : 'needs fail2ban-regex (apt-get install fail2ban)');
const FWKNOP_PORT = 62201;
/** "Promptly": a valid open after (or during) the spoofing is granted within this. */
const PROMPT_MS = 2_000;
/** Under a flood the kernel's receive queue may drop any one datagram (test/bench notes), so
 *  the client, like `postern open --wait`, sends a fresh packet again after this. */
const RESEND_MS = 250;

/** From now on, everything the attacker sends to the SPA and fwknop ports carries `addr` as
 *  its source (SNAT in the attacker's own namespace: the router sees a spoofed packet). */
async function spoofAs(lab: Lab, addr: string): Promise<void> {
  await lab.exec(lab.attacker, ['nft', 'delete', 'table', 'ip', 'spoof']);
  const rules = `table ip spoof {\n chain post {\n  type nat hook postrouting priority srcnat;\n`
    + `  udp dport { ${SPA_PORT}, ${FWKNOP_PORT} } snat to ${addr}\n }\n}\n`;
  const r = await lab.exec(lab.attacker, ['nft', '-f', '-'], { input: rules });
  assert.equal(r.code, 0, r.stderr);
}

/** COUNT datagrams from inside a lab host: HEAD, then BODY_LEN random bytes (0: HEAD is sent
 *  as is, i.e. a replay). Bounded by count and time; prints {"sent":N}. */
const SEND_SCRIPT = `
const dgram = require('node:dgram'); const crypto = require('node:crypto');
const [host, port, count, maxMs, headHex, bodyLen] = process.argv.slice(1);
const head = Buffer.from(headHex, 'hex'); const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
const end = Date.now() + Number(maxMs);
let sent = 0;
const next = () => {
  if (sent >= Number(count) || Date.now() > end) { s.close(); console.log(JSON.stringify({ sent })); return; }
  const burst = Math.min(50, Number(count) - sent);
  let left = burst;
  for (let i = 0; i < burst; i++) s.send(Number(bodyLen) > 0 ? Buffer.concat([head, crypto.randomBytes(Number(bodyLen))]) : head, Number(port), host, () => { if (--left === 0) setImmediate(next); });
  sent += burst;
};
next();`;

interface Burst { readonly head: Buffer; readonly bodyLen: number; readonly count: number; readonly port?: number; readonly maxMs?: number }

async function blast(w: World, from: LabHost, b: Burst): Promise<number> {
  const argv = [process.execPath, '-e', SEND_SCRIPT, w.lab.router.ip4, String(b.port ?? SPA_PORT), String(b.count), String(b.maxMs ?? 5_000), b.head.toString('hex'), String(b.bodyLen)];
  const r = await w.lab.exec(from, argv, { timeoutMs: 20_000 });
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { sent: number }).sent;
}

/** The daemon's logfmt lines, after SIGTERM (which flushes the repeat summaries). */
async function stoppedLines(w: World): Promise<string[]> {
  w.daemon.kill('SIGTERM');
  assert.equal(await w.daemon.exited(), 0, w.daemon.output().slice(-2000));
  return w.daemon.output().split('\n').filter((l) => l.startsWith('level='));
}

/** fail2ban-regex with the shipped filter over `lines` as syslog would store them: the
 *  addresses it would ban, one per matched line. */
async function fail2banMatches(w: World, lines: readonly string[], name: string): Promise<string[]> {
  const conf = join(w.dir, `f2b-${name}`);
  mkdirSync(join(conf, 'filter.d'), { recursive: true });
  copyFileSync(FILTER, join(conf, 'filter.d', 'postern.conf'));
  copyFileSync(COMMON, join(conf, 'filter.d', 'common.conf'));
  const log = join(conf, 'syslog');
  const d = new Date();
  const stamp = `${d.toLocaleString('en-US', { month: 'short', timeZone: 'UTC' })} ${String(d.getUTCDate()).padStart(2, ' ')} ${d.toISOString().slice(11, 19)}`;
  writeFileSync(log, lines.map((l) => `${stamp} router postern[${w.daemon.pid}]: ${l}`).join('\n') + '\n');
  const r = await w.lab.exec(w.lab.router, [F2B, '--config', conf, '-o', 'ip', log, join(conf, 'filter.d', 'postern.conf')], { timeoutMs: 30_000 });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter((l) => l.trim() !== '');
}

const grants = (w: World) => (w.daemon.output().match(/msg="grant (opened|extended)"/g) ?? []).length;

/** ms from the client's first packet leaving (its sender process done; starting that process
 *  costs ~0.5 s on this machine and is not counted) until the daemon logs a grant; a fresh
 *  packet is sent every RESEND_MS until then. Fails unless granted within PROMPT_MS. */
async function timeToGrant(w: World, make: () => Buffer): Promise<{ ms: number; sends: number }> {
  const before = grants(w);
  let t0 = 0;
  for (let sends = 1; ; sends++) {
    await w.sendRaw(w.lab.client, make());
    if (sends === 1) t0 = performance.now();
    const next = performance.now() + RESEND_MS;
    while (performance.now() < next && grants(w) === before) await new Promise((r) => setTimeout(r, 10));
    if (grants(w) > before) return { ms: Math.round(performance.now() - t0), sends };
    if (performance.now() - t0 >= PROMPT_MS) return assert.fail(`no grant within ${PROMPT_MS} ms (${sends} packets sent)`);
  }
}

function countOf(lines: readonly string[], reason: string): number {
  return lines.filter((l) => l.includes(`reason=${reason} `)).reduce((n, l) => n + Number(/count=(\d+)/.exec(l)?.[1] ?? 1), 0);
}

for (const backend of BACKENDS) {
  test(`[${backend}] spoofed junk, bad tags under the client's key id and replays of its packets: the client still opens at once, nothing bans it`, { skip }, async (t) => {
    const w = await createWorld({ backend, tag: 'spoof', config: NO_PREFILTER });
    t.after(() => w.close());
    await w.startDaemon();
    const { lab } = w;
    const captured = w.packet({ durationS: 30 });
    const first = await timeToGrant(w, () => captured);
    await spoofAs(lab, lab.client.ip4);
    const junk = await lab.exec(lab.attacker, probeArgv(['udp-flood', lab.router.ip4, SPA_PORT, 3000, 3]));
    assert.equal(junk.code, 0, junk.stderr);
    const sent = {
      junk: (JSON.parse(junk.stdout) as { sent: number }).sent,
      // The client's key id, a random body of a valid length: AES-SIV fails (bad_auth).
      badTag: await blast(w, lab.attacker, { head: w.packet().subarray(0, 4), bodyLen: 80, count: 3000 }),
      // The key id and a wrong secret, i.e. a well-formed packet from someone without the key.
      forged: await blast(w, lab.attacker, { head: w.packet({ credential: new Credential(w.key.keyId, randomBytes(32)) }), bodyLen: 0, count: 200 }),
      replay: await blast(w, lab.attacker, { head: captured, bodyLen: 0, count: 3000 }),
      stale: await blast(w, lab.attacker, { head: w.packet({ nowMs: Date.now() - 10 * 60_000 }), bodyLen: 0, count: 200 }),
    };
    const after = await timeToGrant(w, () => w.packet({ durationS: 30 }));
    // During a spoofed bad-tag flood, `postern open --wait` (which resends if the kernel's
    // queue dropped its packet) still gets the client in.
    const flood = blast(w, lab.attacker, { head: w.packet().subarray(0, 4), bodyLen: 80, count: 30_000, maxMs: 4_000 });
    const t0 = performance.now();
    const open = await w.postern(lab.client, ['open', lab.router.ip4, `tcp/${SERVICE_PORT}`, ...keyFileArgs(w), '--wait', '--timeout', '10']);
    const during = Math.round(performance.now() - t0);
    assert.equal(open.code, 0, open.stderr + open.stdout);
    sent.badTag += await flood;
    assert.equal((await tcpConnect(lab, lab.client, lab.router.ip4, SERVICE_PORT, 2_000)).result, 'connected');
    const rules = await w.grantRules();
    assert.ok(rules.length >= 1 && rules.every((r) => r.includes(lab.client.ip4)), `only the client holds a grant:\n${rules.join('\n')}`);
    t.diagnostic(`time to grant: first ${JSON.stringify(first)}, after the spoofing ${JSON.stringify(after)}, open --wait during a spoofed flood ${during} ms; sent ${JSON.stringify(sent)}`);

    const lines = await stoppedLines(w);
    for (const r of ['bad_auth', 'replay', 'stale']) assert.ok(countOf(lines, r) > 0, `the daemon refused some as ${r}`);
    assert.ok(lines.some((l) => /reason=(malformed|too_short|too_long|unknown_key) /.test(l)), 'junk was refused');
    assert.deepEqual(lines.filter((l) => /reason=(denied_|revoked_key|rate_limited)/.test(l)), [], 'no unforgeable-looking refusal');
    assert.deepEqual(await fail2banMatches(w, lines, 'spa'), [], 'nothing the spoofer sent matches the ban filter');
  });
}

interface FwKeys { readonly key: Buffer; readonly hmacKey: Buffer }

/** A sealed fwknop plaintext from raw fields: the client's own refused requests. */
function fwknopWire(keys: FwKeys, type: string, message: string): string {
  const b64 = (s: string) => Buffer.from(s, 'latin1').toString('base64').replace(/=+$/, '');
  const body = [String(1e15 + Math.floor(Math.random() * 8e15)), b64('tech'), String(Math.floor(Date.now() / 1000)), '3.0.0', type, b64(message)].join(':');
  return sealFwknopPlaintext(`${body}:${digestText('sha256', body)}`, prepareFwknopKey({ ...keys, hmacType: 'sha256' }), randomBytes(8));
}

test('[nft] fwknop: the client\'s refused packets replayed from spoofed addresses are `replay`, never a banned reason', { skip }, async (t) => {
  const keys: FwKeys = { key: randomBytes(32), hmacKey: randomBytes(64) };
  const stanza = { name: 'laptop', key_base64: keys.key.toString('base64'), hmac_key_base64: keys.hmacKey.toString('base64'), open_ports: [`tcp/${SERVICE_PORT}`], fw_access_timeout_s: 30 };
  const w = await createWorld({ tag: 'spooffw', config: { fwknop: { port: FWKNOP_PORT, stanzas: [stanza] } } });
  t.after(() => w.close());
  await w.startDaemon();
  const { lab } = w;
  const send = (from: LabHost, wire: string, to = lab.router.ip4) => lab.exec(from, probeArgv(['udp-send', to, FWKNOP_PORT, Buffer.from(wire).toString('hex')]));
  // The key holder's own requests that policy refuses, captured by the attacker: an icmp
  // access (the codec's unsupported_proto), a command message, a port outside open_ports.
  const icmp = fwknopWire(keys, '1', '0.0.0.0,icmp/0');
  const command = fwknopWire(keys, '0', '0.0.0.0,touch /tmp/pwned');
  const port443 = fwknopWire(keys, '1', '0.0.0.0,tcp/443');
  await send(lab.client, icmp);
  await send(lab.client, command);
  await send(lab.client, port443, lab.router.ip6); // another source, so no line is a repeat
  await w.daemon.waitForOutput(/reason=denied_service source=fd50:7374::2/, 3_000);
  await w.daemon.waitForOutput(/reason=fwknop_command source=198\.18\.0\.2/, 3_000);
  const mark = w.daemon.output().length;
  const spoofed = [lab.client.ip4, '198.18.0.77', '203.0.113.9'];
  for (const addr of spoofed) {
    await spoofAs(lab, addr);
    for (const wire of [icmp, command, port443]) await blast(w, lab.attacker, { head: Buffer.from(wire), bodyLen: 0, count: 100, port: FWKNOP_PORT });
  }
  await eventually(() => (w.daemon.output().slice(mark).match(/reason=replay source=203\.0\.113\.9/g) ?? []).length > 0, 3_000, 'replays from the last spoofed address');
  const req = { username: 'tech', timestampS: Math.floor(Date.now() / 1000), type: 1 as const, allowIp: '0.0.0.0', access: [{ proto: 'tcp' as const, port: SERVICE_PORT }] };
  const valid = encodeFwknop(req, prepareFwknopKey({ ...keys, hmacType: 'sha256' }), { salt: randomBytes(8), random16: '1234567890123456' });
  await send(lab.client, valid);
  const t0 = performance.now(); // after the sender process is done, as in timeToGrant
  await w.daemon.waitForOutput(/msg="grant opened" key=fwknop:laptop/, PROMPT_MS);
  t.diagnostic(`fwknop open after the spoofed replays: ${Math.round(performance.now() - t0)} ms after the packet left`);
  const lines = await stoppedLines(w);
  // Everything logged since the replays began, the exit's repeat summaries included.
  const replayPhase = w.daemon.output().slice(mark).split('\n').filter((l) => l.startsWith('level=') && /msg=(refused|"refused \(repeats\)")/.test(l));
  assert.ok(replayPhase.length >= spoofed.length, replayPhase.join('\n'));
  assert.deepEqual(replayPhase.filter((l) => !l.includes('reason=replay ')), [], 'every replay, from every address, is `replay`');
  assert.deepEqual(await fail2banMatches(w, replayPhase, 'fwknop-replays'), []);
  // The filter does match the key holder's own refusals in this very log (the zero above is not vacuous).
  assert.deepEqual((await fail2banMatches(w, lines, 'fwknop-all')).sort(), [lab.client.ip4, lab.client.ip6].sort());
});

function techStanza(name: string, id: TechIdentity): Record<string, unknown> {
  return { name, credential: id.publicKey().encode(), services: [`tcp/${SERVICE_PORT}`], max_duration_s: 120 };
}

test('[nft] technician keys: a spoofed flood under key A never stops key B, and delays A only while it lasts', { skip }, async (t) => {
  const a = generateTechIdentity();
  const b = generateTechIdentity();
  const w = await createWorld({ tag: 'spoofasym' });
  t.after(() => w.close());
  w.writeConfig({
    keys: [techStanza('alice', a), techStanza('bob', b)],
    state: { database: join(w.dir, 'state.db'), device_key: join(w.dir, 'device.key') },
    spa: { port: SPA_PORT, clock: 'trusted', window_s: 60, asym_burst: 5, asym_rate: 5 },
  });
  await w.startDaemon();
  const { lab } = w;
  const dk = await w.postern(lab.router, ['device-key', '--config', w.configPath, '--json']);
  assert.equal(dk.code, 0, dk.stderr);
  const device = parseDevicePublic((JSON.parse(dk.stdout) as { device_key: string }).device_key);
  assert.ok(device.ok);
  const seal = (id: TechIdentity) => sealAsym({ identity: id, device: device.value, padding: Buffer.alloc(0), message: {
    type: 'open', timestampMs: Date.now(), nonce: randomBytes(8), durationS: 30, address: undefined, services: [{ proto: 'tcp', port: SERVICE_PORT }], nat: undefined,
  } });
  await spoofAs(lab, lab.client.ip4);
  // Key A's id and the device hint (both visible in any captured packet), garbage after:
  // every packet reaches A's token bucket, the worst case the bucket exists for.
  const head = seal(a).subarray(0, ASYM_TAG_OFFSET);
  const flood = blast(w, lab.attacker, { head, bodyLen: 150, count: 40_000, maxMs: 5_000 });
  await new Promise((r) => setTimeout(r, 500));
  const duringB: { ms: number; sends: number }[] = [];
  for (let i = 0; i < 3; i++) duringB.push(await timeToGrant(w, () => seal(b)));
  const sent = await flood;
  // A's own bucket refills at asym_rate once the flood stops: A opens at once again.
  const afterA = await timeToGrant(w, () => seal(a));
  t.diagnostic(`spoofed flood under key A: ${sent} packets; key B during it ${JSON.stringify(duringB)}; key A after it ${JSON.stringify(afterA)}`);
  const lines = await stoppedLines(w);
  assert.ok(countOf(lines, 'rate_limited') > 0, 'the flood emptied A\'s bucket');
  assert.ok(lines.every((l) => !/reason=rate_limited .*key=bob/.test(l)), 'B was never rate limited');
  assert.ok(/msg="grant opened" key=alice/.test(w.daemon.output()));
  assert.deepEqual(await fail2banMatches(w, lines, 'asym'), [], 'the flood bans nobody');
});
