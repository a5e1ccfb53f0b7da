// SPDX-License-Identifier: MIT
// The shipped Fail2Ban filter (rootfs-overlay/common/etc/fail2ban/filter.d/postern.conf)
// run by Debian's fail2ban-regex over real daemon log lines from the lab: it must match
// the policy refusals of an authenticated key (unforgeable) and nothing an attacker can
// produce from a spoofed address: unknown_key, bad_auth, replay, stale, junk (issue 6).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labSkipReason } from '../lab/lab.ts';
import { probeArgv } from '../lab/net-probe.ts';
import { Credential, generateCredential } from '../../src/spa/credential.ts';
import { SPA_PORT, bundleSkipReason, createWorld, eventually, NO_PREFILTER } from './harness.ts';

const FILTER = fileURLToPath(new URL('../../rootfs-overlay/common/etc/fail2ban/filter.d/postern.conf', import.meta.url));
const F2B = '/usr/bin/fail2ban-regex';
const COMMON = '/etc/fail2ban/filter.d/common.conf';
const skip = labSkipReason() ?? bundleSkipReason() ?? (existsSync(F2B) && existsSync(COMMON) ? undefined : 'needs fail2ban-regex (apt-get install fail2ban)');

/** What syslog (or logread) puts before each stderr line of the service. */
function syslogLine(line: string, pid: number, tag: string): string {
  const d = new Date();
  const mon = d.toLocaleString('en-US', { month: 'short', timeZone: 'UTC' });
  const hms = d.toISOString().slice(11, 19);
  return `${mon} ${String(d.getUTCDate()).padStart(2, ' ')} ${hms} router ${tag}[${pid}]: ${line}`;
}

test('fail2ban-regex: the filter matches only authenticated policy refusals in real daemon logs', { skip }, async (t) => {
  const w = await createWorld({ tag: 'f2b', config: NO_PREFILTER });
  t.after(() => w.close());
  await w.startDaemon();
  const { lab } = w;
  const fromClient = (over: Parameters<typeof w.packet>[0]) => w.sendRaw(lab.client, w.packet(over));
  // Forgeable from anywhere: the attacker sends them.
  await w.sendRaw(lab.attacker, w.packet({ credential: new Credential(w.key.keyId, Buffer.alloc(32, 7)) }));
  await w.sendRaw(lab.attacker, w.packet({ credential: generateCredential() }));
  await lab.exec(lab.attacker, probeArgv(['udp-flood', lab.router.ip4, SPA_PORT, 50, 5, 3]));
  const valid = w.packet({ durationS: 1 });
  await w.sendRaw(lab.client, valid);
  await w.sendRaw(lab.attacker, valid); // replay of a captured packet
  // A captured old packet sent again is stale: also forgeable, even though it authenticates.
  await w.sendRaw(lab.attacker, w.packet({ nowMs: Date.now() - 10 * 60_000 }));
  // Unforgeable: the key holder asks for what its policy denies.
  await fromClient({ services: [{ proto: 'tcp', port: 443 }] });
  await fromClient({ durationS: 121 });
  await fromClient({ services: [{ proto: 'tcp', port: 443 }] });
  await eventually(() => /reason=denied_duration/.test(w.daemon.output()) && /reason=replay/.test(w.daemon.output()), 5000, 'refusals logged');
  w.daemon.kill('SIGTERM');
  await w.daemon.exited(); // flushes the repeat summaries
  const lines = w.daemon.output().split('\n').filter((l) => l.startsWith('level='));
  for (const r of ['bad_auth', 'unknown_key', 'replay', 'stale', 'denied_service', 'denied_duration']) {
    assert.ok(lines.some((l) => l.includes(`reason=${r} `)), `the daemon logged ${r}`);
  }
  const conf = join(w.dir, 'f2b');
  mkdirSync(join(conf, 'filter.d'), { recursive: true });
  copyFileSync(FILTER, join(conf, 'filter.d', 'postern.conf'));
  copyFileSync(COMMON, join(conf, 'filter.d', 'common.conf'));
  const log = join(w.dir, 'syslog');
  // Tagged postern (SyslogIdentifier=postern) and node (a unit without one): both match.
  writeFileSync(log, [...lines.map((l) => syslogLine(l, w.daemon.pid, 'postern')), ...lines.map((l) => syslogLine(l, w.daemon.pid, 'node'))].join('\n') + '\n');
  const r = await lab.exec(lab.router, [F2B, '--config', conf, '-o', 'ip', log, join(conf, 'filter.d', 'postern.conf')], { timeoutMs: 30_000 });
  assert.equal(r.code, 0, r.stderr);
  const banned = r.stdout.split('\n').filter((l) => l.trim() !== '');
  const denied = lines.filter((l) => /msg=(refused|"refused \(repeats\)") reason=denied_/.test(l));
  assert.ok(denied.length >= 2, denied.join('\n'));
  assert.equal(banned.length, 2 * denied.length, `matched ${banned.join(',')} for:\n${denied.join('\n')}`);
  assert.deepEqual([...new Set(banned)], [lab.client.ip4]);
  assert.ok(!banned.includes(lab.attacker.ip4), 'nothing the attacker sent can ban anyone');
});
