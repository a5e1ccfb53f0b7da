// SPDX-License-Identifier: MIT
// `sudo ./build.sh demo`: postern end to end in under a minute, narrated. A router, a
// technician and an attacker in network namespaces (no route out), the real bundle as the
// daemon and the technician's CLI, real iptables. Everything is removed at the end, also
// on Ctrl-C (the lab's signal hooks delete the namespaces and kill what runs in them).

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLab, labSkipReason, type Lab, type LabProcess } from './lab.ts';
import { probeArgv, runProbe, tcpConnect, udpProbe, type TcpHoldResult } from './net-probe.ts';

const BUNDLE = fileURLToPath(new URL('../../dist/postern.js', import.meta.url));
const SPA_PORT = 62442;
const GRANT_S = 6;
const tty = process.stdout.isTTY;
const paint = (code: string) => (s: string) => (tty ? `\x1b[${code}m${s}\x1b[0m` : s);
const bold = paint('1');
const green = paint('32');
const red = paint('31');
const dim = paint('2');

const say = (s = '') => process.stdout.write(s + '\n');
const step = (n: number, s: string) => say(`\n${bold(`${n}.`)} ${bold(s)}`);

function show(label: string, result: string, good: boolean): void {
  say(`   ${label.padEnd(52)} ${good ? green(result) : red(result)}`);
}

function daemonLines(daemon: LabProcess, since: number, re: RegExp): string[] {
  return daemon.output().slice(since).split('\n').filter((l) => re.test(l));
}

async function setUp(lab: Lab, dir: string): Promise<LabProcess> {
  const keygen = await lab.exec(lab.client, [process.execPath, BUNDLE, 'keygen', '--name', 'technician', '--services', 'tcp/22', '--json']);
  const { credential, stanza } = JSON.parse(keygen.stdout) as { credential: string; stanza: Record<string, unknown> };
  writeFileSync(join(dir, 'technician.key'), credential + '\n', { mode: 0o600 });
  const config = {
    device: 'demo-router', guarded: ['tcp/22', 'tcp/443'],
    spa: { port: SPA_PORT, clock: 'trusted' },
    keys: [{ ...stanza, default_duration_s: GRANT_S, max_duration_s: 60 }],
    state: { database: join(dir, 'state.db') },
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2), { mode: 0o600 });
  lab.spawn(lab.router, probeArgv(['echo-server', 22]));
  const daemon = lab.spawn(lab.router, [process.execPath, BUNDLE, 'daemon', '--config', join(dir, 'config.json')]);
  await daemon.waitForOutput(/msg="postern started"/, 10_000);
  return daemon;
}

async function scan(lab: Lab, who: 'attacker' | 'client'): Promise<void> {
  const host = lab[who];
  for (const port of [22, 443]) {
    const r = await tcpConnect(lab, host, lab.router.ip4, port, 600);
    show(`${who} -> router tcp/${port}`, r.result === 'timeout' ? 'no answer (filtered)' : r.result, r.result === 'timeout');
  }
  const u = await udpProbe(lab, host, lab.router.ip4, SPA_PORT, 600);
  show(`${who} -> router udp/${SPA_PORT} (the SPA port)`, u.result === 'silent' ? 'no answer (filtered)' : u.result, u.result === 'silent');
  const closed = await tcpConnect(lab, host, lab.router.ip4, 8080, 600);
  show(`${dim('for contrast: an ordinary closed port, tcp/8080')}`, closed.result, true);
}

async function run(lab: Lab, dir: string): Promise<void> {
  const { router, client, attacker } = lab;
  say(bold('postern demo: a router guards its SSH port with Single Packet Authorization'));
  say(dim(`   router ${router.ip4}, technician ${client.ip4}, attacker ${attacker.ip4} (network namespaces, no route out)`));

  step(1, 'The router starts postern: tcp/22 and tcp/443 are guarded');
  const daemon = await setUp(lab, dir);
  say(dim(`   ${daemonLines(daemon, 0, /postern started/)[0] ?? ''}`));

  step(2, 'The attacker scans the router: nothing answers');
  await scan(lab, 'attacker');

  step(3, `The technician sends one SPA packet and waits for tcp/22 (grant: ${GRANT_S} s)`);
  const mark = daemon.output().length;
  const open = await lab.exec(client, [process.execPath, BUNDLE, 'open', router.ip4, 'tcp/22',
    '--key-file', join(dir, 'technician.key'), '--wait', '--save-packet', join(dir, 'sent.hex')]);
  for (const l of open.stdout.trim().split('\n')) say(`   ${green('$')} ${l}`);
  const hold = runProbe<TcpHoldResult>(lab, client, ['tcp-hold', router.ip4, 22, GRANT_S + 3]);
  say(dim(`   ${daemonLines(daemon, mark, /grant opened/)[0] ?? ''}`));

  step(4, 'The attacker tries the open door and replays the captured packet');
  const atk = await tcpConnect(lab, attacker, router.ip4, 22, 600);
  show('attacker -> router tcp/22 (the door is the technician\'s only)', atk.result === 'timeout' ? 'no answer' : atk.result, atk.result === 'timeout');
  const packet = readFileSync(join(dir, 'sent.hex'), 'utf8').trim();
  await lab.exec(attacker, probeArgv(['udp-send', router.ip4, SPA_PORT, packet]));
  await daemon.waitForOutput(/reason=replay source=198\.18\.0\.3/, 3000).catch(() => '');
  const atk2 = await tcpConnect(lab, attacker, router.ip4, 22, 600);
  show('attacker -> router tcp/22 after the replay', atk2.result === 'timeout' ? 'no answer' : atk2.result, atk2.result === 'timeout');
  say(dim(`   ${daemonLines(daemon, mark, /reason=replay/)[0] ?? ''}`));

  step(5, `The window closes after ${GRANT_S} s; the technician's open session carries on`);
  await daemon.waitForOutput(/msg="grant closed"/, (GRANT_S + 3) * 1000);
  say(dim(`   ${daemonLines(daemon, mark, /grant closed/)[0] ?? ''}`));
  const late = await tcpConnect(lab, client, router.ip4, 22, 600);
  show('technician -> router tcp/22, a new connection', late.result === 'timeout' ? 'no answer (closed again)' : late.result, late.result === 'timeout');
  const held = await hold;
  show('technician\'s session opened during the grant', held.result === 'ok' ? `still working (${held.echoes} echoes)` : 'broken', held.result === 'ok');

  say(`\n${bold('Done.')} Cleaning up the namespaces; the host's own firewall was never touched.`);
}

async function main(): Promise<number> {
  const skip = labSkipReason();
  if (skip) {
    process.stderr.write(`demo: ${skip}. Run: sudo ./build.sh demo\n`);
    return 1;
  }
  const lab = await createLab({ tag: 'demo' });
  const dir = mkdtempSync(join(tmpdir(), 'postern-demo-'));
  try {
    await run(lab, dir);
    return 0;
  } catch (err) {
    process.stderr.write(`demo failed: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  } finally {
    await lab.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then((code) => process.exit(code), (err: unknown) => {
  process.stderr.write(`demo failed: ${String(err)}\n`);
  process.exit(1);
});
