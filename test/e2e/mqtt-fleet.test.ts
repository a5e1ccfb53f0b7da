// SPDX-License-Identifier: MIT
// MQTT across a fleet and over TLS (issue 6 tests 4 and 7): `postern alerts` shows the
// events of two daemons in two namespaces on one broker; and a mosquitto that requires a
// client certificate (CA, server and client certificates made here with openssl) accepts
// the daemon's mqtts connection and refuses a client without a certificate.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { labSkipReason } from '../lab/lab.ts';
import { probeArgv } from '../lab/net-probe.ts';
import { generateCredential } from '../../src/spa/credential.ts';
import { BUNDLE, SPA_PORT, bundleSkipReason, createWorld, eventually, NO_PREFILTER } from './harness.ts';
import { payloadsOn, startBroker, startTap, tapMessages } from './mqtt-lab.ts';

const OPENSSL = '/usr/bin/openssl';
const skip = labSkipReason() ?? bundleSkipReason();

/** A CA, a server certificate for 127.0.0.1 and a client certificate, in `dir`. */
function makeCerts(dir: string): void {
  const ssl = (...args: string[]) => execFileSync(OPENSSL, args, { cwd: dir, stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=postern test CA');
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\n');
  for (const [name, cn] of [['server', '127.0.0.1'], ['client', 'lab-router']] as const) {
    ssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '1',
      ...(name === 'server' ? ['-extfile', 'server.ext'] : []));
  }
  // mosquitto reads them after dropping root for its own user.
  for (const f of ['ca.pem', 'server.pem', 'server.key']) chmodSync(join(dir, f), 0o644);
  chmodSync(dir, 0o711);
}

test('TLS: mosquitto requires a client certificate; the daemon connects with mqtts and its certificate', { skip }, async (t) => {
  const w = await createWorld({ tag: 'mqtls', config: NO_PREFILTER });
  t.after(() => w.close());
  makeCerts(w.dir);
  const f = (n: string) => join(w.dir, n);
  w.own(f('client.key')); // the daemon's own TLS key: readable by its user only (0600)
  const broker = await startBroker(w.lab, w.lab.router, w.dir, {
    scheme: 'mqtts',
    extra: [`cafile ${f('ca.pem')}`, `certfile ${f('server.pem')}`, `keyfile ${f('server.key')}`, 'require_certificate true', 'use_identity_as_username true'],
  });
  w.writeConfig({ mqtt: { url: broker.url, tls: { ca: f('ca.pem'), cert: f('client.pem'), key: f('client.key') }, aggregate: { interval_s: 1 } } });
  const tap = await startTap(w.lab, w.lab.router, broker.url, ['postern/#'], { TAP_CA: f('ca.pem'), TAP_CERT: f('client.pem'), TAP_KEY: f('client.key') });
  await w.startDaemon();
  await eventually(() => tapMessages(tap).some((m) => m.topic === 'postern/lab-router/status' && m.payload === 'online'), 10_000, 'online over TLS');
  await w.sendRaw(w.lab.client, w.packet({ credential: generateCredential() }));
  await eventually(() => payloadsOn(tap, 'alert').some((a) => a['event_type'] === 'unknown_key'), 10_000, 'an alert over TLS');
  // Without a client certificate the broker refuses; with one, postern alerts subscribes.
  const noCert = await w.postern(w.lab.router, ['alerts', '--url', broker.url, '--ca', f('ca.pem'), '--count', '1'], 15_000);
  assert.equal(noCert.code, 1, noCert.stdout + noCert.stderr);
  assert.match(noCert.stderr, /cannot subscribe/);
  const withCert = w.postern(w.lab.router, ['alerts', '--url', broker.url, '--ca', f('ca.pem'), '--cert', f('client.pem'), '--key', f('client.key'), '--count', '1', '--json'], 15_000);
  await new Promise((r) => setTimeout(r, 1500));
  await w.sendRaw(w.lab.client, w.packet({ services: [{ proto: 'tcp', port: 443 }] }));
  const r = await withCert;
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout.trim())['event_type'], 'denied_service');
});

test('postern alerts shows the events of two daemons in two namespaces on one broker', { skip }, async (t) => {
  const w = await createWorld({ tag: 'fleet', config: NO_PREFILTER });
  t.after(() => w.close());
  const { lab } = w;
  // The broker listens on the router's lab address, reachable from the other hosts.
  const broker = await startBroker(lab, lab.router, w.dir, { bind: lab.router.ip4 });
  const mqtt = { url: broker.url, aggregate: { interval_s: 1 } };
  w.writeConfig({ mqtt });
  const cfgA = JSON.parse(readFileSync(w.configPath, 'utf8')) as Record<string, unknown>;
  const cfgB = join(w.dir, 'b.json');
  writeFileSync(cfgB, JSON.stringify({ ...cfgA, device: 'lab-b', state: { database: join(w.dir, 'b.db') }, control: { socket: join(w.dir, 'b.sock') } }), { mode: 0o600 });
  const watch = lab.spawn(lab.client, [process.execPath, BUNDLE, 'alerts', '--url', broker.url]);
  const watchJson = lab.spawn(lab.client, [process.execPath, BUNDLE, 'alerts', '--url', broker.url, '--device', 'lab-b', '--json']);
  await watch.waitForOutput(/subscribed/, 10_000);
  await w.startDaemon();
  // The second device: the attacker namespace plays another router, with its own firewall.
  w.own(cfgB);
  const second = w.daemonCommand(['--config', cfgB]); // the same non-root user as the first
  const b = lab.spawn(lab.attacker, second.argv, { env: second.env });
  await b.waitForOutput(/msg="postern started"/, 10_000);
  await eventually(() => /broker connected/.test(b.output()) && /broker connected/.test(w.daemon.output()), 10_000, 'both daemons connected');
  await w.sendRaw(lab.client, w.packet({ credential: generateCredential() }));
  const forB = w.packet({ durationS: 1 });
  await lab.exec(lab.client, probeArgv(['udp-send', lab.attacker.ip4, SPA_PORT, forB.toString('hex')]));
  await eventually(() => /lab-router alert unknown_key x1 source=198\.18\.0\.2/.test(watch.output())
    && /lab-b grant opened key=tech source=198\.18\.0\.2/.test(watch.output())
    && /lab-b grant closed/.test(watch.output()), 10_000, `both devices in postern alerts:\n${watch.output()}`);
  const json = watchJson.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.ok(json.length >= 2);
  assert.ok(json.every((e) => e['device'] === 'lab-b'), '--device lab-b shows only lab-b');
  assert.deepEqual(json.filter((e) => e['topic'] === 'grant').map((e) => e['event_type']), ['opened', 'closed']);
  b.kill('SIGTERM');
  await b.exited();
});
