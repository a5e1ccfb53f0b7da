// SPDX-License-Identifier: MIT
// What the daemon tells the alert service (issue 6). The daemon emits one event per
// classified refusal and per grant change; aggregation and rate caps live in the
// AlertService, never in the packet path. `reason` is a DropReason string (or a future
// reason such as knock_*): kept as string so new reasons need no change here.

export interface FailureEvent {
  readonly type: 'failure';
  readonly reason: string;
  /** Source address of the packet (spoofable unless the reason implies authentication). */
  readonly source: string;
  /** Key name, when the packet authenticated (or its key id named a configured key). */
  readonly key?: string | undefined;
  /** Wall-clock milliseconds. */
  readonly atMs: number;
}

export interface GrantEvent {
  readonly type: 'grant';
  readonly action: 'opened' | 'extended' | 'closed';
  readonly grantId: string;
  readonly key: string;
  readonly source: string;
  /** The address the grant opens for (may differ from source: SPA "allow address"). */
  readonly address: string;
  readonly services: readonly string[];
  /** Wall-clock expiry, for opened/extended. */
  readonly expiresMs?: number | undefined;
  readonly atMs: number;
}

/** The state database went to memory-only (or came back): alerts say so (issue 6 "Store"). */
export interface StateEvent {
  readonly type: 'state';
  readonly database: 'ok' | 'memory';
  readonly reason: string;
  readonly atMs: number;
}

export type DaemonEvent = FailureEvent | GrantEvent | StateEvent;

export interface EventSink {
  emit(ev: DaemonEvent): void;
}
