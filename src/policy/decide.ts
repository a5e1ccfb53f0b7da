// SPDX-License-Identifier: MIT
// Policy is the daemon's, not the packet's (DESIGN.md "SPA protocol v1"): an
// authenticated request only gets what its key stanza allows. Pure: values in, a plan
// or a named denial out.

import type { KeyConfig } from '../config/load.ts';
import type { Family, Service } from '../firewall/types.ts';
import type { SpaMessage } from '../spa/message.ts';
import { canonicalAddress, cidrContains } from '../wire/address.ts';
import { fail, ok, type Decoded } from '../wire/result.ts';

export type PolicyDenial = 'denied_service' | 'denied_duration' | 'denied_address' | 'denied_type';

export interface GrantPlan {
  readonly family: Family;
  readonly address: string;
  readonly services: readonly Service[];
  readonly durationS: number;
}

function sameService(a: Service, b: Service): boolean {
  return a.proto === b.proto && a.port === b.port;
}

function grantAddress(msg: SpaMessage, key: KeyConfig, source: string): Decoded<string, PolicyDenial> {
  const explicit = msg.address === undefined ? undefined : canonicalAddress(msg.address);
  // An explicit address equal to the source is no extra privilege.
  const address = explicit ?? source;
  if (address !== source && key.requireSourceAddress) return fail('denied_address');
  if (!key.allowedAddresses.some((c) => cidrContains(c, address))) return fail('denied_address');
  return ok(address);
}

function grantServices(msg: SpaMessage, key: KeyConfig): Decoded<readonly Service[], PolicyDenial> {
  if (msg.services.length === 0) return ok(key.services);
  for (const want of msg.services) {
    if (!key.services.some((s) => sameService(s, want))) return fail('denied_service');
  }
  // Dedupe so a request listing tcp/22 twice makes one rule.
  return ok(msg.services.filter((s, i) => msg.services.findIndex((t) => sameService(s, t)) === i));
}

/** Decide what an authenticated, fresh `open` request from `source` may get. */
export function decideOpen(msg: SpaMessage, key: KeyConfig, source: string): Decoded<GrantPlan, PolicyDenial> {
  if (msg.type !== 'open') return fail('denied_type');
  const durationS = msg.durationS === 0 ? key.defaultDurationS : msg.durationS;
  if (durationS > key.maxDurationS) return fail('denied_duration');
  const address = grantAddress(msg, key, source);
  if (!address.ok) return address;
  const services = grantServices(msg, key);
  if (!services.ok) return services;
  return ok({ family: address.value.includes(':') ? 6 : 4, address: address.value, services: services.value, durationS });
}
