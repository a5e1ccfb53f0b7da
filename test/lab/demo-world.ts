// SPDX-License-Identifier: MIT
// The demo's stage (test/lab/demo.ts): the router's config, a mosquitto broker and a
// `postern alerts` subscriber on the router's loopback, the daemon, the CLI as each host
// runs it, and the tally of expectations. Every process is a lab process, so lab.close()
// kills it (also on failure and Ctrl-C); every file lives in the demo's temporary directory.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ExecResult, Lab, LabHost, LabProcess } from './lab.ts';
import { probeArgv } from './net-probe.ts';

export const BUNDLE = fileURLToPath(new URL('../../dist/postern.js', import.meta.url));
export const MOSQUITTO = '/usr/sbin/mosquitto';
export const SPA_PORT = 62442;
export const GRANT_S = 8;
/** The time-derived door draws its ports from here: below Linux's ephemeral range
 *  (32768-60999) and the broker's ports, so the router's own loopback MQTT traffic never
 *  lands on a door port (the knock capture sees loopback too). */
export const DOOR = { name: 'ssh-otp', step_s: 30, length: 4, port_min: 10000, port_max: 19999 } as const;
const BROKER_PORTS = { min: 20000, span: 10000 } as const;

const tty = process.stdout.isTTY;
const paint = (code: string) => (s: string) => (tty ? `\x1b[${code}m${s}\x1b[0m` : s);
export const bold = paint('1');
export const green = paint('32');
export const red = paint('31');
export const dim = paint('2');
export const say = (s = ''): void => { process.stdout.write(s + '\n'); };

/** Every expectation the demo checks; the exit status is non-zero when one failed. */
export class Tally {
  readonly failed: string[] = [];

  /** Prints `label  result` green when `good`, red (and counted) otherwise. */
  show(label: string, result: string, good: boolean): void {
    say(`   ${label.padEnd(56)} ${good ? green(result) : red(result)}`);
    if (!good) this.failed.push(`${label}: ${result}`);
  }

  /** Waits for `re` in a process's output; a timeout is a failed expectation, not a crash. */
  async saw(p: LabProcess, re: RegExp, timeoutMs: number, label: string): Promise<string | undefined> {
    try {
      return await p.waitForOutput(re, timeoutMs);
    } catch {
      this.show(label, `not seen within ${timeoutMs} ms`, false);
      return undefined;
    }
  }
}

export interface Stage {
  readonly lab: Lab;
  readonly dir: string;
  readonly configPath: string;
  readonly daemon: LabProcess;
  readonly alerts: LabProcess;
  readonly doorKey: string;
  /** the bundle's CLI in `host`, with a HOME of the demo's own (profiles never touch yours) */
  postern(host: LabHost, args: readonly string[]): Promise<ExecResult>;
}

/** Starts mosquitto on the router's loopback on a random port; resolves with its URL. */
async function startBroker(lab: Lab, dir: string): Promise<string> {
  const port = BROKER_PORTS.min + Math.floor(Math.random() * BROKER_PORTS.span);
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(conf, ['allow_anonymous true', 'user root', `listener ${port} 127.0.0.1`, ''].join('\n'));
  // -v: log to stderr; the `running` line says it listens.
  const broker = lab.spawn(lab.router, [MOSQUITTO, '-v', '-c', conf]);
  await broker.waitForOutput(/running/, 5000);
  return `mqtt://127.0.0.1:${port}`;
}

function routerConfig(dir: string, credentialStanza: Record<string, unknown>, mqttUrl: string, doorKey: string): Record<string, unknown> {
  return {
    device: 'demo-router',
    guarded: ['tcp/22', 'tcp/443'],
    spa: { port: SPA_PORT, clock: 'trusted' },
    keys: [{ ...credentialStanza, default_duration_s: GRANT_S, max_duration_s: 60 }],
    doors: [{ name: DOOR.name, services: ['tcp/22'], duration_s: GRANT_S, seq_timeout_s: 5,
      totp: { key: doorKey, step_s: DOOR.step_s, length: DOOR.length, port_min: DOOR.port_min, port_max: DOOR.port_max, proto: 'tcp' } }],
    // Alerts at once (the first failure of an interval is published immediately anyway).
    mqtt: { url: mqttUrl, aggregate: { interval_s: 1, max_messages_per_s: 20 } },
    state: { database: join(dir, 'state.db'), device_key: join(dir, 'device.key') },
    control: { socket: join(dir, 'control.sock') },
  };
}

/** Keys, config, broker, alert subscriber, SSH stand-in and daemon, in that order. */
export async function setUpStage(lab: Lab, dir: string): Promise<Stage> {
  const home = join(dir, 'home');
  mkdirSync(home, { mode: 0o700 });
  const env = { ...process.env, HOME: home, XDG_CONFIG_HOME: join(home, '.config') };
  const postern = (host: LabHost, args: readonly string[]) => lab.exec(host, [process.execPath, BUNDLE, ...args], { env, timeoutMs: 20_000 });
  const must = async (host: LabHost, args: readonly string[]): Promise<string> => {
    const r = await postern(host, args);
    if (r.code !== 0) throw new Error(`postern ${args.join(' ')}: exit ${r.code}\n${r.stdout}${r.stderr}`);
    return r.stdout;
  };
  const keygen = JSON.parse(await must(lab.client, ['keygen', '--name', 'technician', '--services', 'tcp/22', '--json'])) as { credential: string; stanza: Record<string, unknown> };
  writeFileSync(join(dir, 'technician.key'), keygen.credential + '\n', { mode: 0o600 });
  const doorKey = (await must(lab.client, ['knock', '--new-key'])).trim();
  writeFileSync(join(dir, 'door.key'), doorKey + '\n', { mode: 0o600 });
  const mqttUrl = await startBroker(lab, dir);
  const configPath = join(dir, 'config.json');
  writeFileSync(configPath, JSON.stringify(routerConfig(dir, keygen.stanza, mqttUrl, doorKey), null, 2), { mode: 0o600 });
  const alerts = lab.spawn(lab.router, [process.execPath, BUNDLE, 'alerts', '--url', mqttUrl, '--device', 'demo-router'], { env });
  await alerts.waitForOutput(/subscribed to/, 10_000);
  lab.spawn(lab.router, probeArgv(['echo-server', 22]));
  const daemon = lab.spawn(lab.router, [process.execPath, BUNDLE, 'daemon', '--config', configPath]);
  await daemon.waitForOutput(/msg="postern started"/, 10_000);
  return { lab, dir, configPath, daemon, alerts, doorKey, postern };
}

/** The lines a process printed after character offset `since` that match `re`. */
export function linesSince(p: LabProcess, since: number, re: RegExp): string[] {
  return p.output().slice(since).split('\n').filter((l) => re.test(l));
}
