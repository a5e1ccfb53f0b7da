// SPDX-License-Identifier: MIT
// SPA over ICMP end to end (opt-in `spa.icmp`): `postern open --icmp` over IPv4 and IPv6,
// Debian's real `fwknop -P icmp`, replay refusal, and pings answered exactly as without
// postern: one kernel reply per echo request (SPA-carrying or not), nothing else from the
// router. Needs root (raw sockets, namespaces); CI runs as root.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { labSkipReason, type LabHost } from '../lab/lab.ts';
import { tcpConnect } from '../lab/net-probe.ts';
import { SERVICE_PORT, bundleSkipReason, createWorld, eventually, keyFileArgs, type Backend, type World } from './harness.ts';

const skip = labSkipReason() ?? bundleSkipReason();
const FWKNOP = ['/usr/bin/fwknop', '/usr/local/bin/fwknop'].find((p) => existsSync(p));
const RAW_SOCKET = fileURLToPath(new URL('../../node_modules/raw-socket', import.meta.url));
const ICMP_CONFIG = { port: 62442, clock: 'trusted', window_s: 60, icmp: true };

/**
 * A tiny ping run inside a lab host: sends `count` echo requests (sequence 1..count) whose
 * data is `hex`, then listens `waitMs` and reports replies per sequence number, plus every
 * other ICMP message seen (IPv6 neighbour discovery and MLD excepted). Bounded by waitMs.
 */
const PING = `
const raw = require(process.argv[1]);
const [dst, fam, count, hex, waitMs] = process.argv.slice(2);
const six = fam === '6';
const sock = raw.createSocket({ protocol: six ? raw.Protocol.ICMPv6 : raw.Protocol.ICMP,
  addressFamily: six ? raw.AddressFamily.IPv6 : raw.AddressFamily.IPv4 });
const id = process.pid & 0xffff;
const data = Buffer.from(hex, 'hex');
const replies = {}; const other = [];
sock.on('message', (buf) => {
  const m = six ? buf : buf.subarray((buf[0] & 15) * 4);
  if (m.length < 8 || (six && m[0] >= 130 && m[0] <= 143)) return;
  if (m[0] === (six ? 129 : 0) && m.readUInt16BE(4) === id && m.subarray(8).equals(data)) {
    const s = m.readUInt16BE(6); replies[s] = (replies[s] || 0) + 1;
  } else other.push(m.subarray(0, 8).toString('hex'));
});
for (let seq = 1; seq <= Number(count); seq++) {
  const m = Buffer.alloc(8 + data.length);
  m[0] = six ? 128 : 8; m.writeUInt16BE(id, 4); m.writeUInt16BE(seq, 6); data.copy(m, 8);
  if (!six) m.writeUInt16BE(raw.createChecksum(m), 2);
  sock.send(m, 0, m.length, dst, (err) => { if (err) { console.error(String(err)); process.exit(1); } });
}
setTimeout(() => { console.log(JSON.stringify({ replies, other })); sock.close(); process.exit(0); }, Number(waitMs));
`;

interface PingResult { readonly replies: Record<string, number>; readonly other: string[] }

async function ping(w: World, from: LabHost, to: string, count: number, data: Buffer): Promise<PingResult> {
  const fam = to.includes(':') ? '6' : '4';
  const r = await w.lab.exec(from, [process.execPath, '-e', PING, RAW_SOCKET, to, fam, String(count), data.toString('hex'), '700'], { timeoutMs: 10_000 });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.trim()) as PingResult;
}

/** Exactly one reply per request and nothing else: what the kernel does without postern. */
function assertAnsweredOnce(r: PingResult, count: number, what: string): void {
  const want = Object.fromEntries(Array.from({ length: count }, (_, i) => [String(i + 1), 1]));
  assert.deepEqual(r, { replies: want, other: [] }, what);
}

async function withIcmpWorld(t: TestContext, backend: Backend, config: Record<string, unknown>, fn: (w: World) => Promise<void>): Promise<void> {
  const w = await createWorld({ backend, config });
  t.after(() => w.close());
  await w.startDaemon();
  await fn(w);
}

async function rawSocketsOf(w: World): Promise<string> {
  const r = await w.lab.exec(w.lab.router, ['cat', '/proc/net/raw', '/proc/net/raw6']);
  return r.stdout;
}

test('[iptables] spa.icmp: postern open --icmp over IPv4 and IPv6; pings answered once; replay refused', { skip }, async (t) => {
  await withIcmpWorld(t, 'iptables', { spa: ICMP_CONFIG }, async (w) => {
    const { lab } = w;
    // ICMP (1) and ICMPv6 (58) raw sockets are open: local_address "00000000:0001", "...:003A".
    const socks = await rawSocketsOf(w);
    assert.match(socks, /: 00000000:0001 /);
    assert.match(socks, /:003A /);
    assertAnsweredOnce(await ping(w, lab.client, lab.router.ip4, 3, Buffer.from('plain ping 4')), 3, 'plain IPv4 ping');
    assertAnsweredOnce(await ping(w, lab.client, lab.router.ip6, 3, Buffer.from('plain ping 6')), 3, 'plain IPv6 ping');
    assert.equal((await tcpConnect(lab, lab.client, lab.router.ip4, SERVICE_PORT, 500)).result, 'timeout');

    const r4 = await w.postern(lab.client, ['open', lab.router.ip4, `tcp/${SERVICE_PORT}`, ...keyFileArgs(w), '--icmp', '--wait', '--duration', '30']);
    assert.equal(r4.code, 0, r4.stderr + r4.stdout);
    assert.match(r4.stdout, /in an ICMP echo request .*\n.*tcp\/22 is open/);
    const r6 = await w.postern(lab.client, ['open', lab.router.ip6, `tcp/${SERVICE_PORT}`, ...keyFileArgs(w), '--icmp', '--wait', '--json']);
    assert.equal(r6.code, 0, r6.stderr + r6.stdout);
    assert.equal((JSON.parse(r6.stdout) as { open: boolean; transport: string }).transport, 'icmp');
    assert.match((await w.grantRules(6))[0] ?? '', /fd50:7374::2\b/);
    assert.equal((await tcpConnect(lab, lab.attacker, lab.router.ip4, SERVICE_PORT, 500)).result, 'timeout');

    // An SPA-carrying echo is a ping like any other: the kernel answers it once.
    const pkt = w.packet({ durationS: 30 });
    assertAnsweredOnce(await ping(w, lab.attacker, lab.router.ip4, 1, pkt), 1, 'SPA-carrying echo');
    await w.daemon.waitForOutput(/msg="grant opened" key=tech .*source=198\.18\.0\.3/, 3000);
    assertAnsweredOnce(await ping(w, lab.attacker, lab.router.ip4, 1, pkt), 1, 'replayed SPA-carrying echo');
    await w.daemon.waitForOutput(/msg=refused reason=replay source=198\.18\.0\.3 key=tech/, 3000);
    assert.equal((await w.grantRules(4)).length, 2, 'client and attacker; the replay added nothing');
    // Ordinary pings are not refusals: nothing about them in the log.
    assert.doesNotMatch(w.daemon.output(), /reason=(unknown_key|too_short|too_long|malformed)/);
  });
});

test('[nft] spa.icmp off (default): no ICMP socket, --icmp opens nothing, pings answered once', { skip }, async (t) => {
  await withIcmpWorld(t, 'nft', {}, async (w) => {
    const { lab } = w;
    const socks = await rawSocketsOf(w);
    assert.doesNotMatch(socks, /: 00000000:0001 /);
    assert.doesNotMatch(socks, /:003A /);
    const r = await w.postern(lab.client, ['open', lab.router.ip4, `tcp/${SERVICE_PORT}`, ...keyFileArgs(w), '--icmp']);
    assert.equal(r.code, 0, r.stderr);
    assertAnsweredOnce(await ping(w, lab.client, lab.router.ip4, 2, w.packet()), 2, 'SPA-carrying echo, icmp off');
    assert.equal((await tcpConnect(lab, lab.client, lab.router.ip4, SERVICE_PORT, 500)).result, 'timeout');
    assert.equal((await w.grantRules()).length, 0);
  });
});

const fwknopSkip = skip ?? (FWKNOP ? undefined : 'needs the fwknop client (apt-get install fwknop-client)');

test('[nft] the real fwknop -P icmp opens the guarded port (its default echo reply, and --icmp-type 8)', { skip: fwknopSkip }, async (t) => {
  const keys = { key: randomBytes(32).toString('base64'), hmac: randomBytes(64).toString('base64') };
  const stanza = { name: 'laptop', key_base64: keys.key, hmac_key_base64: keys.hmac, open_ports: [`tcp/${SERVICE_PORT}`], fw_access_timeout_s: 30 };
  await withIcmpWorld(t, 'nft', { spa: ICMP_CONFIG, fwknop: { stanzas: [stanza] } }, async (w) => {
    const { lab } = w;
    const fwknop = async (host: LabHost, extra: readonly string[]) => {
      const argv = [FWKNOP ?? 'fwknop', '--no-rc-file', '-D', lab.router.ip4, '-P', 'icmp', '--use-hmac',
        '--key-base64-rijndael', keys.key, '--key-base64-hmac', keys.hmac, '-A', `tcp/${SERVICE_PORT}`, '-a', host.ip4, ...extra];
      const r = await lab.exec(host, argv, { env: { ...process.env, HOME: w.dir }, timeoutMs: 15_000 });
      assert.equal(r.code, 0, `fwknop failed: ${r.stderr}${r.stdout}`);
    };
    await fwknop(lab.client, []);
    await eventually(async () => (await tcpConnect(lab, lab.client, lab.router.ip4, SERVICE_PORT, 300)).result === 'connected', 3000, 'fwknop ICMP grant');
    await w.daemon.waitForOutput(/msg="grant opened" key=fwknop:laptop format=fwknop source=198\.18\.0\.2/, 2000);
    await fwknop(lab.attacker, ['--icmp-type', '8']);
    await w.daemon.waitForOutput(/msg="grant opened" key=fwknop:laptop format=fwknop source=198\.18\.0\.3/, 3000);
  });
});
