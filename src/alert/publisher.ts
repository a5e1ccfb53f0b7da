// SPDX-License-Identifier: MIT
// The MQTT side of alerts: one mqtt.js client, `online` published on every connect (the
// will says `offline`), and the outbox drained in order at QoS 1: a batch is published,
// and its entries are deleted only after every PUBACK came back. A disconnect mid-batch
// leaves them in the outbox, to be sent again after reconnect (at-least-once: payload ids
// de-duplicate). Nothing is published while disconnected, so mqtt.js never queues.

import { setTimeout as sleep } from 'node:timers/promises';
import type { IClientOptions, MqttClient } from 'mqtt';
import type { Connect } from './mqtt-lib.ts';
import type { Logger } from '../log/logger.ts';
import type { Outbox, OutboxMessage } from './outbox.ts';
import { RECONNECT_MS, STATUS_ONLINE, STATUS_OFFLINE, brokerOptions } from './options.ts';

/** Entries per in-flight batch: bounded memory, and mosquitto's default max_inflight is 20. */
const DRAIN_BATCH = 20;
/** Reconnect backoff ceiling. mqtt.js retries at a fixed interval (ref/mqtt.md 4); a fleet
 *  whose broker restarts should neither hammer it in lockstep nor wait long. */
const MAX_RECONNECT_MS = 60_000;
/** At stop, how long the last messages (grants closed by the shutdown) may take to go out. */
const STOP_DRAIN_MS = 2000;

export interface PublisherDeps {
  /** mqtt.js's connect (loaded lazily: mqtt-lib.ts). */
  readonly connect: Connect;
  readonly url: string;
  readonly options: IClientOptions;
  readonly statusTopic: string;
  /** A getter: the service may swap outboxes (memory until the store is open). */
  readonly outbox: () => Outbox;
  readonly logger: Logger;
  /** Retained state sent straight after `online` on each connect (discovery, stats). */
  readonly onConnect: () => readonly OutboxMessage[];
}

/** Exponential backoff from RECONNECT_MS to MAX_RECONNECT_MS, with +-25 % jitter. */
export function reconnectDelay(failures: number): number {
  const base = Math.min(MAX_RECONNECT_MS, RECONNECT_MS * 2 ** Math.min(failures, 16));
  return Math.round(base * (0.75 + Math.random() / 2));
}

export class Publisher {
  readonly #deps: PublisherDeps;
  readonly #client: MqttClient;
  #draining: Promise<void> | undefined;
  #generation = 0;
  #wasConnected = false;
  #toldUnreachable = false;
  #failures = 0;

  constructor(deps: PublisherDeps) {
    this.#deps = deps;
    this.#client = deps.connect({ ...brokerOptions(deps.url), ...deps.options });
    this.#client.on('connect', () => this.#connected());
    this.#client.on('close', () => {
      this.#generation++;
      // mqtt.js reports refused or reset connections only as a close: say it once per outage.
      if (this.#wasConnected) deps.logger.warn('broker connection lost; alerts wait in the outbox', { outbox: deps.outbox().size() });
      else if (!this.#toldUnreachable) deps.logger.warn('broker not reachable; alerts wait in the outbox', { retry_s: `${RECONNECT_MS / 1000}..${MAX_RECONNECT_MS / 1000}` });
      this.#toldUnreachable = true;
      this.#wasConnected = false;
      // Applies from the next retry (mqtt.js has scheduled this one already).
      this.#client.options.reconnectPeriod = reconnectDelay(this.#failures++);
    });
    // mqtt.js retries by itself (RECONNECT_MS); errors are logged, never thrown.
    this.#client.on('error', (e) => deps.logger.warn('broker error', { error: e.message }));
  }

  get connected(): boolean {
    return this.#client.connected;
  }

  #connected(): void {
    this.#wasConnected = true;
    this.#toldUnreachable = false;
    this.#failures = 0;
    this.#generation++;
    this.#deps.logger.info('broker connected', { url: this.#deps.url.replace(/\/\/[^@/]*@/, '//'), outbox: this.#deps.outbox().size() });
    this.publishNow([{ topic: this.#deps.statusTopic, payload: STATUS_ONLINE, qos: 1, retain: true }, ...this.#deps.onConnect()]);
    this.drain();
  }

  /** State-like messages (retained, superseded by the next one): sent only if connected. */
  publishNow(messages: readonly OutboxMessage[]): void {
    if (!this.#client.connected) return;
    for (const m of messages) this.#client.publish(m.topic, m.payload, { qos: m.qos, retain: m.retain }, () => undefined);
  }

  /** Send what the outbox holds, oldest first, until it is empty or the connection drops. */
  drain(): void {
    if (this.#draining || !this.#client.connected) return;
    this.#draining = this.#drainLoop(this.#generation).finally(() => {
      this.#draining = undefined;
      // Entries appended during the last batch, or a reconnect during it.
      if (this.#client.connected && this.#deps.outbox().size() > 0) this.drain();
    });
  }

  async #drainLoop(generation: number): Promise<void> {
    for (;;) {
      // The outbox of this batch: acking an id in a swapped-in outbox would delete others.
      const box = this.#deps.outbox();
      const batch = box.peek(DRAIN_BATCH);
      const last = batch.at(-1);
      if (!last || generation !== this.#generation || !this.#client.connected) return;
      try {
        await Promise.all(batch.map((e) => this.#client.publishAsync(e.topic, e.payload, { qos: e.qos, retain: e.retain })));
      } catch (err) {
        this.#deps.logger.warn('publish failed; retrying after reconnect', { error: err instanceof Error ? err.message : String(err) });
        return;
      }
      // Every PUBACK came back: delivered, whatever happened to the connection since.
      box.ack(last.id);
    }
  }

  /** Clean shutdown: `offline` (a clean disconnect does not fire the will), then close. */
  async stop(): Promise<void> {
    if (this.#client.connected) {
      this.drain();
      let late = false;
      const deadline = sleep(STOP_DRAIN_MS).then(() => { late = true; });
      while (this.#draining && !late) await Promise.race([this.#draining, deadline]);
      await this.#client.publishAsync(this.#deps.statusTopic, STATUS_OFFLINE, { qos: 1, retain: true }).catch(() => undefined);
    }
    // Forced when disconnected: nothing is in flight, and a reconnect loop must not delay exit.
    await this.#client.endAsync(!this.#client.connected).catch(() => undefined);
  }
}
