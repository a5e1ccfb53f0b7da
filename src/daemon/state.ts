// SPDX-License-Identifier: MIT
// The daemon's side of the state store: opening it from config, and the adapters the
// grant manager and the control socket use. Kept apart from daemon.ts (lifecycle only).

import type { Config } from '../config/load.ts';
import type { EventSink } from '../alert/events.ts';
import { ControlServer, type ControlHandler } from '../control/server.ts';
import type { GrantJournal, GrantManager, JournalGrant } from '../grants/manager.ts';
import type { Logger } from '../log/logger.ts';
import type { Clock } from '../platform/clock.ts';
import { Store } from '../store/store.ts';

export function openStore(config: Config, log: Logger, clock: Clock, events: EventSink | undefined): Store {
  const s = config.raw.state;
  return Store.open({
    path: s.database, log, nowMs: clock.wallMs(),
    caps: { auditRows: s.audit_rows, outboxRows: s.outbox_rows, grantRows: s.grant_rows, auditSources: s.audit_sources },
    onState: (database, reason) => events?.emit({ type: 'state', database, reason, atMs: clock.wallMs() }),
  });
}

export function storeJournal(store: Store, clock: Clock): GrantJournal {
  return {
    save: (grant, source, durationMs) => store.saveGrant({ grant, source, durationMs, createdMs: clock.wallMs() }),
    remove: (id) => store.removeGrant(id),
    batch: (fn) => store.batch(fn),
  };
}

export function journalGrants(store: Store): JournalGrant[] {
  return store.loadGrants().map((s) => ({ grant: s.grant, durationMs: s.durationMs }));
}

/** Open grants from the database back into the manager (before the first reconcile). */
export async function restoreGrants(grants: GrantManager, store: Store, log: Logger): Promise<void> {
  const r = await grants.restore(journalGrants(store));
  if (r.restored.length + r.expired.length > 0) {
    log.info('grants restored from the database', {
      restored: r.restored.map((g) => g.id).join(',') || undefined, expired: r.expired.map((g) => g.id).join(',') || undefined,
    });
  }
}

/** The control socket, or undefined when it cannot be made: guarding matters more than the
 *  CLI, so the daemon runs on without it, loudly. */
export async function startControl(path: string, handler: ControlHandler, log: Logger): Promise<ControlServer | undefined> {
  const server = new ControlServer(path, handler);
  try {
    await server.start();
    return server;
  } catch (err) {
    log.error('control socket unavailable: postern status/grants/keys cannot reach this daemon', {
      socket: path, error: err instanceof Error ? err.message : String(err),
    });
    return undefined;
  }
}
