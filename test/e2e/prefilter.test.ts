// SPDX-License-Identifier: MIT
// The kernel-side SPA prefilter (issue 9; src/firewall/prefilter.ts, docs/firewall.md
// "Prefilter"), on each real backend, with the daemon as its non-root user:
//   - datagrams of a wrong length, or of a valid length but no configured key id, are
//     dropped in the input hook and counted there (status `prefilter.dropped`), over IPv4
//     and IPv6; the daemon never sees them (its too_short/too_long/unknown_key stay 0);
//   - a datagram with a configured key id and a valid length still reaches the daemon
//     (a bad tag is counted as bad_auth), and valid packets open, over IPv4 and IPv6;
//   - a key added by a config reload gets through at once (the rules follow the keys);
//   - with `spa.prefilter: false` (another reload) junk reaches the daemon again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { labSkipReason, type LabHost } from '../lab/lab.ts';
import { tcpConnect } from '../lab/net-probe.ts';
import { generateCredential } from '../../src/spa/credential.ts';
import { MAX_PACKET, MIN_PACKET } from '../../src/spa/constants.ts';
import { BACKENDS, SERVICE_PORT, SPA_PORT, bundleSkipReason, createWorld, eventually, keyFileArgs, NO_PREFILTER, sleep, type World } from './harness.ts';

const skip = labSkipReason() ?? bundleSkipReason();

/** Sends each hex payload once, in order, one at a time (so no queue ever overflows). */
const SEND_SCRIPT = `
const dgram = require('node:dgram');
const [host, port, list] = process.argv.slice(1);
const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
const items = JSON.parse(list);
const next = (i) => i === items.length ? s.close() : s.send(Buffer.from(items[i], 'hex'), Number(port), host, () => next(i + 1));
next(0);`;

async function sendAll(w: World, from: LabHost, to: string, payloads: readonly Buffer[]): Promise<void> {
  const r = await w.lab.exec(from, [process.execPath, '-e', SEND_SCRIPT, to, String(SPA_PORT), JSON.stringify(payloads.map((p) => p.toString('hex')))]);
  assert.equal(r.code, 0, r.stderr);
}

interface Status { counters: Record<string, number>; prefilter: { state: string; dropped?: number } }

async function status(w: World): Promise<Status> {
  const r = await w.postern(w.lab.router, ['status', '--json', '--config', w.configPath]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Status;
}

const keyIdBytes = (id: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(id, 0); return b; };

/** Junk the prefilter must drop, for a daemon whose only key id is `known`: random bytes
 *  of every bad length class, and valid lengths under other key ids. */
function junk(known: number): Buffer[] {
  const other = (known ^ 0x5a5a5a5a) >>> 0;
  return [
    Buffer.alloc(0), randomBytes(3), Buffer.concat([keyIdBytes(known), randomBytes(MIN_PACKET - 5)]),
    Buffer.concat([keyIdBytes(known), randomBytes(MAX_PACKET - 3)]), randomBytes(1400),
    ...Array.from({ length: 20 }, (_, i) => Buffer.concat([keyIdBytes((other + i) >>> 0), randomBytes(MIN_PACKET + 4 * i)])),
  ];
}

const opens = async (w: World, to: string, keyArgs: readonly string[]): Promise<void> => {
  const r = await w.postern(w.lab.client, ['open', to, `tcp/${SERVICE_PORT}`, ...keyArgs, '--duration', '30', '--wait']);
  assert.equal(r.code, 0, r.stdout + r.stderr);
};

const daemonSawNoJunk = (s: Status): void =>
  assert.deepEqual([s.counters['too_short'] ?? 0, s.counters['too_long'] ?? 0, s.counters['unknown_key'] ?? 0], [0, 0, 0], JSON.stringify(s.counters));

for (const backend of BACKENDS) {
  test(`[${backend}] the kernel drops and counts junk before the daemon reads it; key ids follow reloads; spa.prefilter: false turns it off`, { skip }, async (t) => {
    const w = await createWorld({ backend });
    t.after(() => w.close());
    const { lab } = w;
    await w.startDaemon();
    const s0 = await status(w);
    assert.equal(s0.prefilter.state, 'on');
    assert.equal(s0.prefilter.dropped, 0);

    const j = junk(w.key.keyId);
    await sendAll(w, lab.attacker, lab.router.ip4, j);
    await sendAll(w, lab.attacker, lab.router.ip6, j);
    // Right key id, right length, wrong tag: the daemon must still get this one.
    await sendAll(w, lab.attacker, lab.router.ip4, [Buffer.concat([keyIdBytes(w.key.keyId), randomBytes(MIN_PACKET + 10)])]);
    await eventually(async () => (await status(w)).counters['bad_auth'] === 1, 5_000, 'the bad tag reaches the daemon');
    const s1 = await status(w);
    assert.equal(s1.prefilter.dropped, 2 * j.length, 'every junk datagram, IPv4 and IPv6, dropped in the kernel');
    daemonSawNoJunk(s1);
    // The count survives the guard rules' rebuild at every reconcile (1 s in these worlds;
    // iptables resets rule counters when it rebuilds a chain).
    await sleep(2_500);
    assert.equal((await status(w)).prefilter.dropped, 2 * j.length, 'the count survives rule rebuilds');

    await opens(w, lab.router.ip4, keyFileArgs(w));
    await opens(w, lab.router.ip6, keyFileArgs(w));
    assert.equal((await tcpConnect(lab, lab.client, lab.router.ip4, SERVICE_PORT, 2_000)).result, 'connected');

    // A key added by reload passes at once; its packet was dropped before the reload.
    const bob = generateCredential();
    const bobArgs = ['--key', bob.encode()];
    const stale = (await status(w)).prefilter.dropped ?? 0;
    await sendAll(w, lab.attacker, lab.router.ip4, [Buffer.concat([keyIdBytes(bob.keyId), randomBytes(MIN_PACKET + 1)])]);
    await eventually(async () => (await status(w)).prefilter.dropped === stale + 1, 5_000, 'an unconfigured key id is dropped');
    w.writeConfig({ keys: [
      { name: 'tech', credential: w.key.encode(), services: [`tcp/${SERVICE_PORT}`], max_duration_s: 120 },
      { name: 'bob', credential: bob.encode(), services: [`tcp/${SERVICE_PORT}`], max_duration_s: 120 },
    ] });
    w.daemon.kill('SIGHUP');
    await w.daemon.waitForOutput(/config reloaded/, 10_000);
    await opens(w, lab.router.ip4, bobArgs);

    w.writeConfig(NO_PREFILTER);
    w.daemon.kill('SIGHUP');
    await eventually(async () => (await status(w)).prefilter.state === 'off', 10_000, 'the prefilter is off after the reload');
    await sendAll(w, lab.attacker, lab.router.ip4, j.slice(-5));
    await eventually(async () => (await status(w)).counters['unknown_key'] === 5, 5_000, 'junk reaches the daemon without the prefilter');
  });
}
