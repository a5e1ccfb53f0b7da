// SPDX-License-Identifier: MIT
// What `postern status`, the control socket and the MQTT stats see (issue 6): a plain,
// JSON-ready object. Version it like the MQTT payloads: fields are only ever added.

import type { KeyConfig } from '../config/load.ts';
import type { Grant, PrefilterStatus } from '../firewall/types.ts';
import { keyIdHex } from '../spa/credential.ts';
import type { StoreStatus } from '../store/store.ts';

export interface GrantView {
  readonly id: string;
  readonly key: string;
  readonly address: string;
  readonly prefix?: number;
  readonly services: readonly string[];
  /** LAN target host:port of a forwarding grant. */
  readonly forward?: string;
  readonly expiresMs: number;
}

export interface DaemonStatus {
  readonly version: 1;
  readonly device: string;
  readonly state: 'starting' | 'running' | 'stopping';
  readonly pid: number;
  readonly startedMs: number;
  readonly backend: string;
  readonly clock: 'trusted' | 'untrusted';
  readonly database: StoreStatus;
  /** This run's counters: accepted, extended, closed and one per DropReason. */
  readonly counters: Readonly<Record<string, number>>;
  readonly grantsOpen: number;
  readonly grants: readonly GrantView[];
  readonly rssBytes: number;
  /** The kernel-side SPA prefilter and its drop count (control socket only: reading the
   *  count runs the firewall tool, so the MQTT stats leave it out). */
  readonly prefilter?: PrefilterStatus;
}

export function grantView(g: Grant): GrantView {
  return {
    id: g.id, key: g.key, address: g.address, ...(g.prefix !== undefined && { prefix: g.prefix }),
    services: g.services.map((s) => `${s.proto}/${s.port}`),
    ...(g.forward && { forward: g.forward.address.includes(':') ? `[${g.forward.address}]:${g.forward.port}` : `${g.forward.address}:${g.forward.port}` }),
    expiresMs: g.expiresAtMs,
  };
}

/** A key as `postern keys list` and the control socket show it: never the credential. */
export interface KeyView {
  readonly name: string;
  readonly keyId: string;
  readonly services: readonly string[];
  readonly revoked: boolean;
}

export function keyViews(keys: readonly KeyConfig[]): KeyView[] {
  return keys.map((k) => ({
    name: k.name, keyId: keyIdHex(k.credential.keyId), services: k.services.map((s) => `${s.proto}/${s.port}`), revoked: k.revoked,
  }));
}
