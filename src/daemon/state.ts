// SPDX-License-Identifier: MIT
// The daemon's side of the state store: opening it from config, and the adapters the
// grant manager and the control socket use. Kept apart from daemon.ts (lifecycle only).

import type { Config } from '../config/load.ts';
import type { EventSink } from '../alert/events.ts';
import type { GrantJournal, JournalGrant } from '../grants/manager.ts';
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
  };
}

export function journalGrants(store: Store): JournalGrant[] {
  return store.loadGrants().map((s) => ({ grant: s.grant, durationMs: s.durationMs }));
}
