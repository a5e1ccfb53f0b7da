// SPDX-License-Identifier: MIT
// fwknop compatibility end to end: Debian's real `fwknop` client (fwknop-client 2.6.10)
// opens postern's guarded port in the lab, and each refusal has its reason. Needs root
// and the fwknop client; CI installs both.

import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLab, labSkipReason, type LabHost } from '../lab/lab.ts';
import { probeArgv, tcpConnect } from '../lab/net-probe.ts';
import { BACKENDS, BUNDLE, SERVICE_PORT, bundleSkipReason, createWorld, eventually, type Backend, type World } from './harness.ts';

const FWKNOP = ['/usr/bin/fwknop', '/usr/local/bin/fwknop'].find((p) => existsSync(p));
const skip = labSkipReason() ?? bundleSkipReason() ?? (FWKNOP ? undefined : 'needs the fwknop client (apt-get install fwknop-client)');
const FWKNOP_PORT = 62201;

interface Keys { readonly key: string; readonly hmac: string }

function stanza(keys: Keys, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: 'laptop', key_base64: keys.key, hmac_key_base64: keys.hmac,
    open_ports: [`tcp/${SERVICE_PORT}`], fw_access_timeout_s: 30, ...extra,
  };
}

async function withFwknop(t: TestContext, backend: Backend, stanzas: Record<string, unknown>[], fn: (w: World) => Promise<void>): Promise<void> {
  const w = await createWorld({ backend, config: { fwknop: { port: FWKNOP_PORT, stanzas } } });
  t.after(() => w.close());
  await w.startDaemon();
  await fn(w);
}

/** Run the real client inside `host`; HOME is a fresh directory so no rc file interferes. */
async function fwknop(w: World, host: LabHost, keys: Keys, args: readonly string[]): Promise<void> {
  const argv = [FWKNOP ?? 'fwknop', '--no-rc-file', '-D', w.lab.router.ip4, '-p', String(FWKNOP_PORT), '--use-hmac',
    '--key-base64-rijndael', keys.key, '--key-base64-hmac', keys.hmac, ...args];
  const r = await w.lab.exec(host, argv, { env: { ...process.env, HOME: w.dir }, timeoutMs: 15_000 });
  assert.equal(r.code, 0, `fwknop failed: ${r.stderr}${r.stdout}`);
}

const newKeys = (): Keys => ({ key: randomBytes(32).toString('base64'), hmac: randomBytes(64).toString('base64') });

for (const backend of BACKENDS) {
  test(`[${backend}] the real fwknop client opens the guarded port; the attacker stays out`, { skip }, async (t) => {
    const keys = newKeys();
    await withFwknop(t, backend, [stanza(keys, { max_fw_timeout_s: 120 })], async (w) => {
      const { lab } = w;
      assert.equal((await tcpConnect(lab, lab.client, lab.router.ip4, SERVICE_PORT, 500)).result, 'timeout');
      await fwknop(w, lab.client, keys, ['-A', `tcp/${SERVICE_PORT}`, '-a', lab.client.ip4, '-f', '60']);
      await eventually(async () => (await tcpConnect(lab, lab.client, lab.router.ip4, SERVICE_PORT, 300)).result === 'connected', 3000, 'fwknop grant');
      await w.daemon.waitForOutput(/msg="grant opened" key=fwknop:laptop format=fwknop .*duration_s=60/, 2000);
      assert.equal((await tcpConnect(lab, lab.attacker, lab.router.ip4, SERVICE_PORT, 500)).result, 'timeout');
    });
  });
}

test('fwknop variants: -s (source address), SHA-512 HMAC with -m sha512, -U username', { skip }, async (t) => {
  const a = newKeys();
  const b = newKeys();
  await withFwknop(t, 'nft', [
    stanza(a),
    stanza(b, { name: 'sha512', hmac_digest_type: 'sha512', require_username: 'tech' }),
  ], async (w) => {
    const { lab } = w;
    await fwknop(w, lab.client, a, ['-A', `tcp/${SERVICE_PORT}`, '-s']);
    await w.daemon.waitForOutput(/msg="grant opened" key=fwknop:laptop .*address=198\.18\.0\.2/, 3000);
    await fwknop(w, lab.attacker, b, ['-A', `tcp/${SERVICE_PORT}`, '-a', lab.attacker.ip4, '--hmac-digest-type', 'sha512', '-m', 'sha512', '-U', 'tech']);
    await w.daemon.waitForOutput(/msg="grant opened" key=fwknop:sha512 .*address=198\.18\.0\.3/, 3000);
    await fwknop(w, lab.attacker, b, ['-A', `tcp/${SERVICE_PORT}`, '-a', lab.attacker.ip4, '--hmac-digest-type', 'sha512', '-U', 'mallory']);
    await w.daemon.waitForOutput(/reason=denied_username/, 3000);
  });
});

test('fwknop refusals: replay, re-added Salted__ prefix, bad HMAC, too old, port outside open_ports, command', { skip }, async (t) => {
  const keys = newKeys();
  await withFwknop(t, 'nft', [stanza(keys, { require_source_address: true })], async (w) => {
    const { lab } = w;
    const saved = join(w.dir, 'spa.pkt');
    await fwknop(w, lab.client, keys, ['-A', `tcp/${SERVICE_PORT}`, '-a', lab.client.ip4, '-B', saved]);
    await w.daemon.waitForOutput(/msg="grant opened"/, 3000);
    const wire = readFileSync(saved, 'utf8').trim();
    const send = (text: string, from: LabHost = lab.attacker) =>
      lab.exec(from, probeArgv(['udp-send', lab.router.ip4, FWKNOP_PORT, Buffer.from(text).toString('hex')]));
    await send(wire);
    await w.daemon.waitForOutput(/reason=replay source=198\.18\.0\.3/, 3000);
    await send(`U2FsdGVkX1${wire}`);
    await w.daemon.waitForOutput(/reason=fwknop_malformed source=198\.18\.0\.3/, 3000);
    await fwknop(w, lab.client, { key: keys.key, hmac: newKeys().hmac }, ['-A', `tcp/${SERVICE_PORT}`, '-a', lab.client.ip4]);
    await w.daemon.waitForOutput(/reason=bad_auth source=198\.18\.0\.2/, 3000);
    await fwknop(w, lab.client, keys, ['-A', `tcp/${SERVICE_PORT}`, '-a', lab.client.ip4, '--time-offset-minus', '10m']);
    await w.daemon.waitForOutput(/reason=stale source=198\.18\.0\.2 key=laptop/, 3000);
    await fwknop(w, lab.client, keys, ['-A', 'tcp/443', '-a', lab.client.ip4]);
    await w.daemon.waitForOutput(/reason=denied_service source=198\.18\.0\.2/, 3000);
    await fwknop(w, lab.client, keys, ['-A', `tcp/${SERVICE_PORT}`, '-s']);
    await w.daemon.waitForOutput(/reason=denied_address source=198\.18\.0\.2/, 3000);
    await fwknop(w, lab.client, keys, ['-C', 'id', '-a', lab.client.ip4]);
    await w.daemon.waitForOutput(/reason=fwknop_command source=198\.18\.0\.2/, 3000);
    assert.equal((await w.grantRules()).length, 1, 'only the first, valid packet opened anything');
  });
});

const FWKNOPD = ['/usr/sbin/fwknopd', '/usr/bin/fwknopd'].find((p) => existsSync(p));

test('postern open --fwknop opens a real fwknopd (pcap mode, real iptables) in the router namespace', { skip: skip ?? (FWKNOPD ? undefined : 'needs fwknopd (apt-get install fwknop-server)') }, async (t) => {
  const lab = await createLab();
  const dir = mkdtempSync(join(tmpdir(), 'postern-fwknopd-'));
  t.after(async () => {
    await lab.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const keys = newKeys();
  writeFileSync(join(dir, 'fwknopd.conf'), `PCAP_INTF ${lab.router.ifname};\nFWKNOP_RUN_DIR ${dir};\n`, { mode: 0o600 });
  writeFileSync(join(dir, 'access.conf'), ['SOURCE ANY', `KEY_BASE64 ${keys.key}`, `HMAC_KEY_BASE64 ${keys.hmac}`,
    `OPEN_PORTS tcp/${SERVICE_PORT}`, 'FW_ACCESS_TIMEOUT 30', ''].join('\n'), { mode: 0o600 });
  writeFileSync(join(dir, 'client.keys'), `KEY_BASE64 ${keys.key}\nHMAC_KEY_BASE64 ${keys.hmac}\n`, { mode: 0o600 });
  assert.equal((await lab.exec(lab.router, ['iptables', '-w', '-A', 'INPUT', '-p', 'tcp', '--dport', String(SERVICE_PORT), '-j', 'DROP'])).code, 0);
  lab.spawn(lab.router, probeArgv(['echo-server', SERVICE_PORT]));
  const daemon = lab.spawn(lab.router, [FWKNOPD ?? 'fwknopd', '-f', '-c', join(dir, 'fwknopd.conf'), '-a', join(dir, 'access.conf'),
    '-i', lab.router.ifname, '-p', join(dir, 'fwknopd.pid'), '-d', join(dir, 'digest.cache'), '-r', dir]);
  await daemon.waitForOutput(/Starting fwknopd main event loop/, 10_000);
  assert.equal((await tcpConnect(lab, lab.client, lab.router.ip4, SERVICE_PORT, 500)).result, 'timeout');
  const r = await lab.exec(lab.client, [process.execPath, BUNDLE, 'open', '--fwknop', lab.router.ip4, `tcp/${SERVICE_PORT}`,
    '--fwknop-key-file', join(dir, 'client.keys'), '--allow-ip', lab.client.ip4, '--wait'], { timeoutMs: 20_000 });
  assert.equal(r.code, 0, r.stderr + r.stdout);
  await daemon.waitForOutput(/Added access rule to FWKNOP_INPUT for 198\.18\.0\.2/, 5000);
  assert.equal((await tcpConnect(lab, lab.attacker, lab.router.ip4, SERVICE_PORT, 500)).result, 'timeout');
});

test('fwknop -N: a NAT request through a router reaches the LAN host only when the stanza lists the target', { skip }, async (t) => {
  const keys = newKeys();
  const w = await createWorld({ backend: 'nft', lan: true, config: {
    forwarding: { enable_ip_forward: true },
    fwknop: { port: FWKNOP_PORT, stanzas: [stanza(keys, { forwards: [{ to: '198.19.0.10:22', port: 2222 }] })] },
  } });
  t.after(() => w.close());
  await w.startDaemon();
  const { lab } = w;
  await fwknop(w, lab.client, keys, ['-A', 'tcp/2222', '-a', lab.client.ip4, '-N', '198.19.0.10:22']);
  await eventually(async () => (await tcpConnect(lab, lab.client, lab.router.ip4, 2222, 300)).result === 'connected', 4000, 'NAT grant');
  await w.daemon.waitForOutput(/msg="grant opened" key=fwknop:laptop .*forward_to=198\.19\.0\.10:22/, 2000);
  assert.equal((await tcpConnect(lab, lab.attacker, lab.router.ip4, 2222, 500)).result, 'timeout');
  await fwknop(w, lab.client, keys, ['-A', 'tcp/2222', '-a', lab.client.ip4, '-N', '198.19.0.11:22']);
  await w.daemon.waitForOutput(/reason=denied_forward/, 3000);
});

test('a profile of kind fwknop: postern open NAME sends fwknop packets with the saved keys', { skip }, async (t) => {
  const keys = newKeys();
  await withFwknop(t, 'nft', [stanza(keys)], async (w) => {
    const { lab } = w;
    const env = { ...process.env, HOME: w.dir, XDG_CONFIG_HOME: join(w.dir, 'cfg') };
    const add = await lab.exec(lab.client, [process.execPath, BUNDLE, 'profile', 'add', 'edge', '--host', lab.router.ip4,
      '--fwknop-key', keys.key, '--fwknop-hmac-key', keys.hmac, '--services', `tcp/${SERVICE_PORT}`], { env });
    assert.equal(add.code, 0, add.stderr);
    const list = await lab.exec(lab.client, [process.execPath, BUNDLE, 'profile', 'list', '--json'], { env });
    assert.ok(!list.stdout.includes(keys.key) && !list.stdout.includes(keys.hmac), 'keys are hidden');
    assert.match(list.stdout, /"kind":"fwknop"/);
    const r = await lab.exec(lab.client, [process.execPath, BUNDLE, 'open', 'edge', '--allow-ip', lab.client.ip4, '--wait'], { env, timeoutMs: 20_000 });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    await w.daemon.waitForOutput(/msg="grant opened" key=fwknop:laptop format=fwknop/, 2000);
  });
});

for (const backend of BACKENDS) {
    test(`[${backend}] fwknop --nat-local: an external port is DNATed to the local service, only where the stanza allows local NAT`, { skip }, async (t) => {
    const keys = newKeys();
    const plain = newKeys();
    await withFwknop(t, backend, [stanza(keys, { local_nat: true }), stanza(plain, { name: 'nolocal' })], async (w) => {
      const { lab } = w;
      await fwknop(w, lab.client, keys, ['-A', `tcp/${SERVICE_PORT}`, '-a', lab.client.ip4, '--nat-local', '--nat-port', '55000']);
      await eventually(async () => (await tcpConnect(lab, lab.client, lab.router.ip4, 55000, 300)).result === 'connected', 4000, 'local NAT grant');
      assert.match(w.daemon.output(), /forward_to=198\.18\.0\.1:22/);
      assert.equal((await tcpConnect(lab, lab.attacker, lab.router.ip4, 55000, 500)).result !== 'connected', true, 'not for the attacker');
      await fwknop(w, lab.client, plain, ['-A', `tcp/${SERVICE_PORT}`, '-a', lab.client.ip4, '--nat-local', '--nat-port', '55001']);
      await w.daemon.waitForOutput(/reason=denied_type source=198\.18\.0\.2 key=nolocal/, 3000);
    });
  });
}

test('an fwknop packet over IPv6 transport opens for the IPv4 allow address inside it', { skip }, async (t) => {
  const keys = newKeys();
  await withFwknop(t, 'nft', [stanza(keys)], async (w) => {
    const { lab } = w;
    const saved = join(w.dir, 'v6.pkt');
    // -T builds without sending; the allow IP inside is IPv4 by fwknop's format.
    await fwknop(w, lab.client, keys, ['-A', `tcp/${SERVICE_PORT}`, '-a', lab.client.ip4, '-T', '-B', saved]);
    const wire = readFileSync(saved, 'utf8').trim();
    const r = await lab.exec(lab.client, probeArgv(['udp-send', lab.router.ip6, FWKNOP_PORT, Buffer.from(wire).toString('hex')]));
    assert.equal(r.code, 0, r.stderr);
    await w.daemon.waitForOutput(/msg="grant opened" key=fwknop:laptop format=fwknop source=fd50:7374::2 address=198\.18\.0\.2/, 3000);
    assert.equal((await tcpConnect(lab, lab.client, lab.router.ip4, SERVICE_PORT, 1000)).result, 'connected');
  });
});
