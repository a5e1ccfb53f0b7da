// SPDX-License-Identifier: MIT
// The broker checks `postern doctor` uses, against a real mosquitto on this host's loopback
// (random port, killed at the end): a plain probe, a refused port, and a broker that wants a
// user and password, probed the way the daemon connects (password_file); and the daemon
// refusing a config whose mqtt files cannot be read.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { probeBroker, probeConfiguredBroker } from '../../src/alert/probe.ts';
import { validateConfig } from '../../src/config/load.ts';
import { generateCredential } from '../../src/spa/credential.ts';
import { MOSQUITTO, randomPort } from './mqtt-lab.ts';
import { BUNDLE, bundleSkipReason } from './harness.ts';

const skip = process.getuid?.() === 0 ? undefined : 'needs root (mosquitto runs as root here)';

test('probes: plain, refused, and with the configured credentials', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-probe-'));
  const port = randomPort();
  execFileSync('/usr/bin/mosquitto_passwd', ['-b', '-c', join(dir, 'passwd'), 'rtr01', 's3cret']);
  writeFileSync(join(dir, 'm.conf'), ['user root', 'persistence false', `listener ${port} 127.0.0.1`, 'allow_anonymous false', `password_file ${join(dir, 'passwd')}`, ''].join('\n'));
  const broker = spawn(MOSQUITTO, ['-v', '-c', join(dir, 'm.conf')], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => {
    broker.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('mosquitto did not start')), 5000);
    broker.stderr.on('data', (d: Buffer) => { if (/running/.test(String(d))) { clearTimeout(timer); resolve(); } });
  });
  const url = `mqtt://127.0.0.1:${port}`;
  const anonymous = await probeBroker(url, 3000);
  assert.ok(!anonymous.ok && /Not authorized|Bad user/i.test(anonymous.error), JSON.stringify(anonymous));
  const refused = await probeBroker(`mqtt://127.0.0.1:${port === 65535 ? port - 1 : port + 1}`, 3000);
  assert.ok(!refused.ok);
  assert.deepEqual(await probeBroker('mqtt://[zz', 1000), { ok: false, error: 'not a valid URL' });
  writeFileSync(join(dir, 'pass'), 's3cret\n', { mode: 0o600 });
  const cfg = validateConfig({ device: 'rtr01', guarded: ['tcp/22'], keys: [], mqtt: { url, username: 'rtr01', password_file: join(dir, 'pass') } });
  assert.ok(cfg.ok);
  assert.deepEqual(await probeConfiguredBroker(cfg.config.raw.mqtt!, 'rtr01', 3000), { ok: true });
  const missing = validateConfig({ device: 'rtr01', guarded: ['tcp/22'], keys: [], mqtt: { url, username: 'rtr01', password_file: join(dir, 'nope') } });
  assert.ok(missing.ok);
  const r = await probeConfiguredBroker(missing.config.raw.mqtt!, 'rtr01', 3000);
  assert.ok(!r.ok && /password_file: cannot read/.test(r.error), JSON.stringify(r));
});

test('the daemon refuses to start when an mqtt file cannot be read, listing each', { skip: bundleSkipReason() }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-mqcfg-'));
  try {
    const config = join(dir, 'config.json');
    writeFileSync(config, JSON.stringify({
      // One key: a keyless config is refused before the mqtt files are read.
      device: 'rtr01', guarded: ['tcp/22'], keys: [{ name: 'tech', credential: generateCredential().encode(), services: ['tcp/22'] }],
      state: { database: ':memory:' }, control: { socket: join(dir, 'c.sock') },
      mqtt: { url: 'mqtts://127.0.0.1:1', username: 'u', password_file: join(dir, 'nope'), tls: { ca: join(dir, 'ca.pem') } },
    }), { mode: 0o600 });
    // --dry-run: nothing would touch the firewall even if the start went further.
    const r = spawnSync(process.execPath, [BUNDLE, 'daemon', '--config', config, '--dry-run'], { encoding: 'utf8', timeout: 15_000 });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /refusing to start.*2 error\(s\)/);
    assert.match(r.stderr, /\/mqtt\/password_file: cannot read .*nope \(ENOENT\)/);
    assert.match(r.stderr, /\/mqtt\/tls\/ca: cannot read .*ca\.pem \(ENOENT\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
