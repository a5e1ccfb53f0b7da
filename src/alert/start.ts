// SPDX-License-Identifier: MIT
// Builds the alert side of the daemon from the config: the AlertService (the daemon's
// EventSink) and its MQTT Publisher. With no `mqtt` section, alerts are off (undefined).

import type { Config } from '../config/load.ts';
import { topicPrefix } from '../config/mqtt.ts';
import type { Clock } from '../platform/clock.ts';
import type { Logger } from '../log/logger.ts';
import { VERSION } from '../version.ts';
import { connectOptions } from './options.ts';
import { MemoryOutbox } from './outbox.ts';
import { Publisher } from './publisher.ts';
import { loadMqtt } from './mqtt-lib.ts';
import { AlertService, type StatsSnapshot } from './service.ts';
import { ALL_DROP_REASONS } from '../pipeline/reasons.ts';
import type { DaemonStatus } from '../daemon/status.ts';

export interface AlertsDeps {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly stats: () => StatsSnapshot;
}

export type AlertsResult =
  | { readonly ok: true; readonly service: AlertService | undefined; readonly connect: () => Promise<void> }
  | { readonly ok: false; readonly errors: readonly string[] };

/** The service can take events at once; connect() loads mqtt.js and starts the broker connection. */
export function createAlerts(config: Config, deps: AlertsDeps): AlertsResult {
  const m = config.raw.mqtt;
  if (!m) return { ok: true, service: undefined, connect: async () => undefined };
  const prefix = topicPrefix(m, config.device);
  const opts = connectOptions(m, `${prefix}/status`, config.device);
  if (!opts.ok) return opts;
  const logger = deps.logger.child('mqtt');
  // Until the store's outbox is attached (start-up), messages wait in memory, same cap.
  const service = new AlertService({
    mqtt: m, device: config.device, topicPrefix: prefix, version: VERSION, outbox: new MemoryOutbox(config.raw.state.outbox_rows),
    clock: deps.clock, logger, stats: deps.stats, rssBytes: () => process.memoryUsage.rss(),
  });
  const connect = async (): Promise<void> => {
    const publisher = new Publisher({
      connect: await loadMqtt(), url: m.url, options: opts.options, statusTopic: service.statusTopic, outbox: () => service.outbox, logger,
      onConnect: () => service.onConnectMessages(),
    });
    service.start(publisher);
  };
  return { ok: true, service, connect };
}

/** Refusals that become alerts. `malformed` frames (undecodable IP/UDP headers, counted by
 *  the capture layer) have no source worth naming and are only counted. */
const ALERTED_KINDS = ALL_DROP_REASONS.filter((r) => r !== 'malformed');

/** The stats topic's view of the daemon's status(). */
export function statsFromStatus(s: DaemonStatus): StatsSnapshot {
  return {
    counters: s.counters, failureKinds: ALERTED_KINDS, grantsOpen: s.grantsOpen,
    database: s.database.state, clockTrusted: s.clock === 'trusted',
    ...(s.prefilter?.dropped !== undefined && { prefilterDropped: s.prefilter.dropped }),
  };
}
