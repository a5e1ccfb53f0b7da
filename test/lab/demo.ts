// SPDX-License-Identifier: MIT
// `sudo ./build.sh demo`: postern end to end in under a minute, narrated. A router, a
// technician and an attacker in network namespaces (no route out), the real bundle as the
// daemon, the CLIs and the alert subscriber, a real mosquitto, real nftables or iptables.
// It shows, in order: SPA (one packet opens tcp/22 for the technician only, a replay is
// refused, the window closes), MQTT alerts, `postern status`, a time-derived knock door (the
// observed sequence cannot be replayed) and the asymmetric class (technician identity +
// device key). Every expectation is checked; the exit status is 1 when one fails.
// Everything is removed at the end, also on failure or Ctrl-C (the lab's signal hooks delete
// the namespaces and kill what runs in them; the temporary directory goes in `finally`, or
// in main's signal handler). test/e2e/demo.test.ts runs it, and interrupts it, in the suite.

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { constants as osConstants, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { createLab, labSkipReason, type ExecResult, type Lab, type LabHost } from './lab.ts';
import { probeArgv, runProbe, tcpConnect, udpProbe, type TcpHoldResult } from './net-probe.ts';
import {
  DOOR, GRANT_S, MOSQUITTO, SPA_PORT, Tally, bold, dim, green, linesSince, say, setUpStage, type Stage,
} from './demo-world.ts';

const step = (n: number, s: string) => say(`\n${bold(`${n}.`)} ${bold(s)}`);
const quote = (lines: readonly string[], prefix = '') => { for (const l of lines) say(dim(`   ${prefix}${l}`)); };
const silent = (r: { result: string }) => r.result === 'timeout';

const PROMPT: Record<string, string> = { router: 'router#', client: 'technician$', attacker: 'attacker$' };

/** Runs the bundle's CLI in `host`, printed as typed there (the demo's files by their base
 *  name) and followed by its output, unless `echo` is false. */
async function cli(st: Stage, host: LabHost, args: readonly string[], echo = true): Promise<ExecResult> {
  const shown = args.map((a) => (a.startsWith(st.dir) ? basename(a) : a));
  say(`   ${green(PROMPT[host.name] ?? '$')} postern ${shown.join(' ')}`);
  const r = await st.postern(host, args);
  if (echo) for (const l of (r.stdout + r.stderr).split('\n')) if (l.trim() !== '') say(`     ${l}`);
  return r;
}

/** The alert subscriber's lines since `mark`, printed as the operator's terminal shows them. */
function alertLines(st: Stage, mark: number): void {
  quote(linesSince(st.alerts, mark, / demo-router (alert|grant) /), 'alerts | ');
}

async function scan(t: Tally, lab: Lab, who: LabHost): Promise<void> {
  for (const port of [22, 443]) {
    const r = await tcpConnect(lab, who, lab.router.ip4, port, 600);
    t.show(`${who.name} -> router tcp/${port}`, silent(r) ? 'no answer (filtered)' : r.result, silent(r));
  }
  const u = await udpProbe(lab, who, lab.router.ip4, SPA_PORT, 600);
  t.show(`${who.name} -> router udp/${SPA_PORT} (the SPA port)`, u.result === 'silent' ? 'no answer (filtered)' : u.result, u.result === 'silent');
  const closed = await tcpConnect(lab, who, lab.router.ip4, 8080, 600);
  say(`   ${dim('for contrast: an ordinary closed port, tcp/8080').padEnd(56)} ${closed.result}`);
}

/** Resolves once the attacker is done, with the technician's session still running in `hold`
 *  (wrapped: an async function would otherwise wait for the promise it returns). */
async function spa(t: Tally, st: Stage): Promise<{ hold: Promise<TcpHoldResult> }> {
  const { lab, dir, daemon } = st;
  const { router, client, attacker } = lab;
  step(3, `The technician sends one SPA packet and waits for tcp/22 (grant: ${GRANT_S} s)`);
  const mark = daemon.output().length;
  const open = await cli(st, client, ['open', router.ip4, 'tcp/22', '--key-file', join(dir, 'technician.key'), '--wait', '--save-packet', join(dir, 'sent.hex')]);
  t.show('technician: postern open --wait', open.code === 0 ? 'tcp/22 reachable' : `exit ${open.code}`, open.code === 0);
  const hold = runProbe<TcpHoldResult>(lab, client, ['tcp-hold', router.ip4, 22, GRANT_S + 3]);
  // The kernel can let the SYN through before the daemon's log line is written.
  await t.saw(daemon, /msg="grant opened"/, 3000, 'the daemon logs the grant');
  quote(linesSince(daemon, mark, /grant opened/));

  step(4, 'The attacker tries the open door and replays the captured packet');
  const atk = await tcpConnect(lab, attacker, router.ip4, 22, 600);
  t.show('attacker -> router tcp/22 (the door is the technician\'s only)', silent(atk) ? 'no answer' : atk.result, silent(atk));
  await lab.exec(attacker, probeArgv(['udp-send', router.ip4, SPA_PORT, readFileSync(join(dir, 'sent.hex'), 'utf8').trim()]));
  await t.saw(daemon, /reason=replay source=198\.18\.0\.3/, 3000, 'the daemon refuses the replay');
  const atk2 = await tcpConnect(lab, attacker, router.ip4, 22, 600);
  t.show('attacker -> router tcp/22 after the replay', silent(atk2) ? 'no answer' : atk2.result, silent(atk2));
  quote(linesSince(daemon, mark, /reason=replay/));
  return { hold };
}

async function alertsAndStatus(t: Tally, st: Stage): Promise<void> {
  step(5, 'Meanwhile the operator\'s `postern alerts` shows each event as the router publishes it over MQTT');
  await t.saw(st.alerts, /alert replay x\d+ source=198\.18\.0\.3/, 5000, 'alerts: the attacker\'s replay');
  alertLines(st, 0);
  t.show('alerts: the grant opened, the attacker\'s replay refused', 'published and shown', /grant opened key=technician/.test(st.alerts.output()));

  step(6, 'On the router, `postern status` asks the daemon over its control socket');
  const s = await cli(st, st.lab.router, ['status', '--config', st.configPath]);
  // `open --wait` may resend (a fresh packet) on a slow machine: counts of at least one.
  const good = /grants: 1 open/.test(s.stdout) && /accepted=\d/.test(s.stdout) && /replay=\d/.test(s.stdout);
  t.show('status: counters and the open grant', good ? 'accepted, replay counted; 1 grant open' : 'missing', good);
}

async function windowCloses(t: Tally, st: Stage, hold: Promise<TcpHoldResult>): Promise<void> {
  const { lab, daemon } = st;
  step(7, `The window closes after ${GRANT_S} s; the technician's open session carries on`);
  const mark = st.alerts.output().length;
  await t.saw(daemon, /msg="grant closed"/, (GRANT_S + 3) * 1000, 'the grant closes');
  quote(linesSince(daemon, 0, /grant closed/));
  const late = await tcpConnect(lab, lab.client, lab.router.ip4, 22, 600);
  t.show('technician -> router tcp/22, a new connection', silent(late) ? 'no answer (closed again)' : late.result, silent(late));
  const held = await hold;
  t.show('technician\'s session opened during the grant', held.result === 'ok' ? `still working (${held.echoes} echoes)` : 'broken', held.result === 'ok');
  await t.saw(st.alerts, /grant closed key=technician/, 5000, 'alerts: grant closed');
  alertLines(st, mark);
}

async function knock(t: Tally, st: Stage): Promise<void> {
  const { lab, daemon, dir } = st;
  const { router, client, attacker } = lab;
  step(8, `Port knocking, time-derived: ${DOOR.length} SYNs to ports that change every ${DOOR.step_s} s`);
  const add = await cli(st, client, ['profile', 'door', 'lab', DOOR.name, '--host', router.ip4, '--door-key-file', join(dir, 'door.key'),
    '--port-min', String(DOOR.port_min), '--port-max', String(DOOR.port_max), '--step', String(DOOR.step_s), '--length', String(DOOR.length)]);
  t.show('technician: postern profile door (the door key, once)', add.code === 0 ? 'saved' : `exit ${add.code}: ${add.stderr.trim()}`, add.code === 0);
  const mark = daemon.output().length;
  const alertMark = st.alerts.output().length;
  const k = await cli(st, client, ['knock', '--door', DOOR.name, '--profile', 'lab', '-v']);
  await t.saw(daemon, /msg="knock opened" door=ssh-otp source=198\.18\.0\.2/, 4000, 'the door opens');
  quote(linesSince(daemon, mark, /knock opened/));
  const tech = await tcpConnect(lab, client, router.ip4, 22, 1500);
  t.show('technician -> router tcp/22 after the knock', tech.result, tech.result === 'connected');
  // What the attacker saw on the shared segment: the same SYNs, so the same ports.
  const seen = [...k.stdout.matchAll(/:(\d+)$/gm)].map((m) => m[1] ?? '');
  say(dim(`   the attacker saw these ${seen.length} SYNs on the segment and knocks the same ports:`));
  await cli(st, attacker, ['knock', router.ip4, ...seen]);
  await t.saw(daemon, /reason=knock_replay source=198\.18\.0\.3/, 4000, 'the daemon refuses the replayed sequence');
  quote(linesSince(daemon, mark, /knock_replay/));
  const atk = await tcpConnect(lab, attacker, router.ip4, 22, 600);
  t.show('attacker -> router tcp/22 after replaying the knocks', silent(atk) ? 'no answer' : atk.result, silent(atk));
  await t.saw(st.alerts, /alert knock_replay x\d+ source=198\.18\.0\.3/, 5000, 'alerts: knock_replay');
  alertLines(st, alertMark);
  await revokeKnockGrant(t, st);
}

/** The operator closes the knock's grant early (`postern grants revoke`), so the next step
 *  starts from a closed port. */
async function revokeKnockGrant(t: Tally, st: Stage): Promise<void> {
  const { lab, configPath } = st;
  const list = await cli(st, lab.router, ['grants', '--config', configPath]);
  const id = /^\s*([0-9a-f]{12})\s+knock:ssh-otp/m.exec(list.stdout)?.[1] ?? '';
  const rv = await cli(st, lab.router, ['grants', 'revoke', id, '--config', configPath]);
  const after = await tcpConnect(lab, lab.client, lab.router.ip4, 22, 600);
  t.show('router: postern grants revoke; technician -> tcp/22', silent(after) ? 'no answer (closed early)' : after.result, rv.code === 0 && silent(after));
}

async function asymmetric(t: Tally, st: Stage): Promise<void> {
  const { lab, daemon, dir, configPath } = st;
  const { router, client, attacker } = lab;
  step(9, 'Asymmetric keys: the technician\'s identity never leaves the laptop, the router holds only its public half');
  const id = await cli(st, client, ['keygen', '--asym', '--out', join(dir, 'tech.id')]);
  const pub = id.stdout.trim().split('\n')[0] ?? '';
  t.show('technician: postern keygen --asym', id.code === 0 ? `${pub.slice(0, 24)}...` : `exit ${id.code}`, id.code === 0);
  const dk = await cli(st, router, ['device-key', '--config', configPath, '--json'], false);
  const deviceKey = dk.code === 0 ? (JSON.parse(dk.stdout) as { device_key: string }).device_key : '';
  t.show('router: postern device-key (handed to the technician)', dk.code === 0 ? `${deviceKey.slice(0, 24)}...` : `exit ${dk.code}`, dk.code === 0);
  const mark = daemon.output().length;
  const alertMark = st.alerts.output().length;
  const en = await cli(st, router, ['enroll', '--config', configPath, '--key', pub, '--name', 'field-tech', '--pid', String(daemon.pid)]);
  t.show('router: postern enroll (trust the public key, reload)', en.code === 0 ? 'enrolled' : `exit ${en.code}: ${en.stderr.trim()}`, en.code === 0);
  await t.saw(daemon, /msg="config reloaded"/, 5000, 'the daemon reloads');
  const open = await cli(st, client, ['open', router.ip4, 'tcp/22', '--identity', join(dir, 'tech.id'), '--device-key', deviceKey, '--wait']);
  t.show('technician: postern open --identity --device-key', open.code === 0 ? 'tcp/22 reachable' : `exit ${open.code}`, open.code === 0);
  await t.saw(daemon, /msg="grant opened" key=field-tech/, 3000, 'the daemon grants the enrolled key');
  quote(linesSince(daemon, mark, /grant opened" key=field-tech/));
  const atk = await tcpConnect(lab, attacker, router.ip4, 22, 600);
  t.show('attacker -> router tcp/22', silent(atk) ? 'no answer' : atk.result, silent(atk));
  await t.saw(st.alerts, /grant opened key=field-tech/, 5000, 'alerts: the enrolled key\'s grant');
  alertLines(st, alertMark);
}

async function run(lab: Lab, dir: string): Promise<Tally> {
  const t = new Tally();
  const { router, client, attacker } = lab;
  say(bold('postern demo: a router guards its SSH port with Single Packet Authorization and port knocking'));
  say(dim(`   router ${router.ip4}, technician ${client.ip4}, attacker ${attacker.ip4} (network namespaces, no route out)`));

  step(1, 'The router starts postern (tcp/22 and tcp/443 guarded), an MQTT broker, and an alert watcher');
  const st = await setUpStage(lab, dir);
  quote(linesSince(st.daemon, 0, /postern started/));
  quote(linesSince(st.alerts, 0, /subscribed to/));

  step(2, 'The attacker scans the router: nothing answers');
  await scan(t, lab, attacker);
  const { hold } = await spa(t, st);
  await alertsAndStatus(t, st);
  await windowCloses(t, st, hold);
  await knock(t, st);
  await asymmetric(t, st);
  return t;
}

async function main(): Promise<number> {
  const skip = labSkipReason() ?? (existsSync(MOSQUITTO) ? undefined : `needs ${MOSQUITTO} (package mosquitto)`);
  if (skip) {
    process.stderr.write(`demo: ${skip}. Run: sudo ./build.sh demo (it installs what is missing)\n`);
    return 1;
  }
  const started = Date.now();
  const lab = await createLab({ tag: 'demo' });
  const dir = mkdtempSync(join(tmpdir(), 'postern-demo-'));
  // Ctrl-C: the lab's own hooks (installed first, so run first) kill the processes and delete
  // the namespaces synchronously; this one removes the directory and exits as the signal would.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      rmSync(dir, { recursive: true, force: true });
      process.exit(128 + osConstants.signals[sig]);
    });
  }
  try {
    const t = await run(lab, dir);
    const secs = ((Date.now() - started) / 1000).toFixed(0);
    if (t.failed.length > 0) {
      process.stderr.write(`\ndemo: ${t.failed.length} expectation(s) failed:\n${t.failed.map((f) => `  - ${f}`).join('\n')}\n`);
      return 1;
    }
    say(`\n${bold('Done')} in ${secs} s, every expectation met. Cleaning up the namespaces; the host's own firewall was never touched.`);
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
