// SPDX-License-Identifier: MIT
// AlertService: the daemon's EventSink (issue 6). Failures go through the AlertAggregator;
// every alert and grant message is appended to the outbox before it is published, so a
// broker outage loses nothing under the cap; when the cap drops old entries, an
// `outbox_dropped` alert says how many. Stats and discovery are retained state, sent
// straight to the broker when connected (the next ones supersede them anyway).

import { randomBytes } from 'node:crypto';
import type { Clock, Cancel } from '../platform/clock.ts';
import type { Logger } from '../log/logger.ts';
import type { RawMqtt } from '../config/mqtt.ts';
import { AlertAggregator, type AlertCount } from './aggregate.ts';
import { discoveryMessages } from './discovery.ts';
import type { DaemonEvent, EventSink, GrantEvent } from './events.ts';
import type { Outbox, OutboxMessage } from './outbox.ts';
import { PAYLOAD_VERSION, type DatabaseAlert, type DroppedAlert, type FailureAlert, type GrantPayload, type StatsPayload } from './payloads.ts';

/** What the stats topic reports; the daemon's status() supplies it. */
export interface StatsSnapshot {
  readonly counters: Readonly<Record<string, number>>;
  /** Names in `counters` that are refusals (summed into failed_total). */
  readonly failureKinds: readonly string[];
  readonly grantsOpen: number;
  readonly database: string;
  readonly clockTrusted: boolean;
  /** Kernel prefilter drops as last read (undefined: off or unread). */
  readonly prefilterDropped?: number;
}

/** The MQTT side, as the service sees it (Publisher in the daemon). */
export interface AlertTransport {
  readonly connected: boolean;
  publishNow(messages: readonly OutboxMessage[]): void;
  drain(): void;
  stop(): Promise<void>;
}

export interface AlertServiceDeps {
  readonly mqtt: RawMqtt;
  readonly device: string;
  readonly topicPrefix: string;
  readonly version: string;
  /** Where messages wait until the broker has them; useOutbox() swaps in the store's. */
  readonly outbox: Outbox;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly stats: () => StatsSnapshot;
  readonly rssBytes: () => number;
}

export class AlertService implements EventSink {
  readonly #deps: AlertServiceDeps;
  readonly #agg: AlertAggregator;
  readonly #bootId = randomBytes(4).toString('hex');
  readonly #startMono: number;
  #seq = 0;
  #transport: AlertTransport | undefined;
  #timers: Cancel[] = [];
  #droppedUnreported = 0;
  #stopped = false;
  #outbox: Outbox;

  constructor(deps: AlertServiceDeps) {
    this.#deps = deps;
    this.#outbox = deps.outbox;
    this.#startMono = deps.clock.monoMs();
    const a = deps.mqtt.aggregate;
    this.#agg = new AlertAggregator({ intervalMs: a.interval_s * 1000, maxMessagesPerS: a.max_messages_per_s, maxSources: a.max_sources }, this.#startMono);
  }

  get statusTopic(): string {
    return `${this.#deps.topicPrefix}/status`;
  }

  /** The outbox in use (the transport drains this one). */
  get outbox(): Outbox {
    return this.#outbox;
  }

  /** Swap in another outbox (the daemon's SQLite one, once the store is open), moving
   *  what waits in the current one over, in order. */
  useOutbox(next: Outbox): void {
    if (next === this.#outbox) return;
    const waiting = this.#outbox.peek(this.#outbox.size());
    if (waiting.length > 0) this.#droppedUnreported += next.append(waiting, this.#deps.clock.wallMs()).dropped;
    this.#outbox = next;
    this.#transport?.drain();
  }

  /** Attach the transport and start the interval timers. */
  start(transport: AlertTransport): void {
    this.#transport = transport;
    // One slot per timer, holding only its next run: a year of ticks keeps no garbage.
    const every = (ms: number, fn: () => void): void => {
      const slot = this.#timers.length;
      const tick = (): void => { fn(); this.#timers[slot] = this.#deps.clock.schedule(ms, tick); };
      this.#timers[slot] = this.#deps.clock.schedule(ms, tick);
    };
    every(this.#deps.mqtt.aggregate.interval_s * 1000, () => this.flush());
    every(this.#deps.mqtt.stats_interval_s * 1000, () => transport.publishNow([this.statsMessage()]));
    transport.drain();
  }

  emit(ev: DaemonEvent): void {
    if (ev.type === 'grant') {
      this.#append([this.#grantMessage(ev)]);
      return;
    }
    if (ev.type === 'state') {
      const payload: DatabaseAlert = {
        v: PAYLOAD_VERSION, id: this.#id(), device: this.#deps.device, event_type: `database_${ev.database}`,
        database: ev.database, reason: ev.reason.slice(0, 200), at_ms: ev.atMs,
      };
      this.#append([this.#message('alert', payload)]);
      return;
    }
    const now = this.#agg.record(ev.reason, ev.source, ev.key, ev.atMs, this.#deps.clock.monoMs());
    if (now) this.#append([this.#failureMessage(now)]);
  }

  /** End of an aggregation interval (also called by stop()). */
  flush(): void {
    const counts = this.#agg.flush(this.#deps.clock.monoMs());
    if (counts.length > 0) this.#append(counts.map((c) => this.#failureMessage(c)));
  }

  /** Messages the transport sends right after `online`: discovery, current stats, and
   *  the report of what the outbox cap dropped while offline. */
  onConnectMessages(): OutboxMessage[] {
    const ha = this.#deps.mqtt.ha_discovery;
    const disc = ha.enabled
      ? discoveryMessages({ haPrefix: ha.prefix, topicPrefix: this.#deps.topicPrefix, device: this.#deps.device, version: this.#deps.version })
      : [];
    return [...disc, this.statsMessage(), ...this.#droppedReport()];
  }

  statsMessage(): OutboxMessage {
    const s = this.#deps.stats();
    const failed = s.failureKinds.reduce((n, k) => n + (s.counters[k] ?? 0), 0);
    const payload: StatsPayload = {
      v: PAYLOAD_VERSION, device: this.#deps.device, at_ms: this.#deps.clock.wallMs(), version: this.#deps.version,
      uptime_s: Math.floor((this.#deps.clock.monoMs() - this.#startMono) / 1000),
      counters: { ...s.counters }, failed_total: failed, grants_open: s.grantsOpen, rss_bytes: this.#deps.rssBytes(),
      database: s.database, clock_trusted: s.clockTrusted, outbox: this.#outbox.size(),
      ...(s.prefilterDropped !== undefined && { prefilter_dropped: s.prefilterDropped }),
    };
    return { topic: `${this.#deps.topicPrefix}/stats`, payload: JSON.stringify(payload), qos: this.#deps.mqtt.qos, retain: true };
  }

  /** Idempotent: the daemon calls it before its store closes, and again on a failed start. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const c of this.#timers) c();
    this.#timers = [];
    this.flush();
    await this.#transport?.stop();
  }

  #id(): string {
    return `${this.#bootId}-${++this.#seq}`;
  }

  #append(messages: OutboxMessage[]): void {
    this.#droppedUnreported += this.#outbox.append(messages, this.#deps.clock.wallMs()).dropped;
    if (this.#transport?.connected) this.#transport.publishNow(this.#droppedReport());
    this.#transport?.drain();
  }

  /** The outbox_dropped alert, once, for what the cap dropped since the last one. It is
   *  published straight away (on connect, before the outbox drains), not appended: a
   *  report in a full outbox would only push out another entry, and could be dropped
   *  itself. The dropped entries were the oldest, so the report still comes first. */
  #droppedReport(): OutboxMessage[] {
    if (this.#droppedUnreported === 0) return [];
    const now = this.#deps.clock.wallMs();
    const payload: DroppedAlert = { v: PAYLOAD_VERSION, id: this.#id(), device: this.#deps.device, event_type: 'outbox_dropped', count: this.#droppedUnreported, at_ms: now };
    this.#droppedUnreported = 0;
    this.#deps.logger.warn('outbox full: oldest alerts dropped', { count: payload.count });
    return [this.#message('alert', payload)];
  }

  #message(suffix: 'alert' | 'grant', payload: object): OutboxMessage {
    return { topic: `${this.#deps.topicPrefix}/${suffix}`, payload: JSON.stringify(payload), qos: this.#deps.mqtt.qos, retain: false };
  }

  #failureMessage(c: AlertCount): OutboxMessage {
    const payload: FailureAlert = {
      v: PAYLOAD_VERSION, id: this.#id(), device: this.#deps.device, event_type: c.kind, kind: c.kind, source: c.source,
      ...(c.key !== undefined && { key: c.key }), count: c.count, first_ms: c.firstMs, last_ms: c.lastMs,
    };
    return this.#message('alert', payload);
  }

  #grantMessage(ev: GrantEvent): OutboxMessage {
    const payload: GrantPayload = {
      v: PAYLOAD_VERSION, id: this.#id(), device: this.#deps.device, event_type: ev.action, grant_id: ev.grantId, key: ev.key,
      source: ev.source, address: ev.address, services: [...ev.services],
      ...(ev.expiresMs !== undefined && { expires_ms: ev.expiresMs }), at_ms: ev.atMs,
    };
    return this.#message('grant', payload);
  }
}
