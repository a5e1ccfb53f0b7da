// SPDX-License-Identifier: MIT
// MQTT helpers for end-to-end tests: a real mosquitto started in a lab host (loopback of
// the router namespace by default) on a random port with a config file written by the
// test, and a "tap" subscriber (test/e2e/mqtt-tap.ts) whose received messages are parsed
// from its output. Both are lab processes, so lab.close() kills them even on failure.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Lab, LabHost, LabProcess } from '../lab/lab.ts';

export const MOSQUITTO = '/usr/sbin/mosquitto';
const TAP = fileURLToPath(new URL('./mqtt-tap.ts', import.meta.url));

export interface Broker {
  readonly port: number;
  readonly url: string;
  proc: LabProcess;
  restart(): Promise<void>;
}

export interface TapMessage {
  readonly topic: string;
  readonly payload: string;
  readonly retain: boolean;
}

export function randomPort(): number {
  return 20_000 + Math.floor(Math.random() * 20_000);
}

/** `extra` lines go into the listener section (TLS options). */
export async function startBroker(lab: Lab, host: LabHost, dir: string, opts: { bind?: string; extra?: readonly string[]; scheme?: string } = {}): Promise<Broker> {
  const port = randomPort();
  const conf = join(dir, `mosquitto-${port}.conf`);
  mkdirSync(join(dir, `mosquitto-${port}`));
  writeFileSync(conf, [
    // Persistence keeps the subscribers' sessions (and the messages queued for them) across
    // a broker restart, so a test's subscriber misses nothing while it reconnects; root,
    // because the test's directory is the root user's.
    'per_listener_settings false', 'allow_anonymous true', 'user root', 'persistence true', `persistence_location ${join(dir, `mosquitto-${port}`)}/`,
    `listener ${port} ${opts.bind ?? '127.0.0.1'}`, ...(opts.extra ?? []), '',
  ].join('\n'));
  const launch = async (): Promise<LabProcess> => {
    // -v: log to stderr (the `running` line is what start-up waits for).
    const p = lab.spawn(host, [MOSQUITTO, '-v', '-c', conf]);
    await p.waitForOutput(/running/, 5000);
    return p;
  };
  const broker: Broker = {
    port, url: `${opts.scheme ?? 'mqtt'}://${opts.bind ?? '127.0.0.1'}:${port}`, proc: await launch(),
    async restart() {
      broker.proc = await launch();
    },
  };
  return broker;
}

export async function startTap(lab: Lab, host: LabHost, url: string, topics: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<LabProcess> {
  const p = lab.spawn(host, [process.execPath, TAP, url, ...topics], { env: { ...process.env, ...env } });
  await p.waitForOutput(/^subscribed/m, 10_000);
  return p;
}

/** Every message the tap printed so far, in arrival order. */
export function tapMessages(tap: LabProcess): TapMessage[] {
  return tap.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as TapMessage);
}

export function payloadsOn(tap: LabProcess, suffix: string): Record<string, unknown>[] {
  return tapMessages(tap).filter((m) => m.topic.endsWith(`/${suffix}`) && m.payload.startsWith('{')).map((m) => JSON.parse(m.payload) as Record<string, unknown>);
}
