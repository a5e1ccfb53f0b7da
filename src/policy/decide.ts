// SPDX-License-Identifier: MIT
// Policy is the daemon's, not the packet's (DESIGN.md "SPA protocol v1"): an
// authenticated request only gets what its key stanza allows. Pure: values in, a plan
// or a named denial out.

import type { ForwardConfig, KeyPolicy } from '../config/load.ts';
import type { Family, ForwardTarget, Service } from '../firewall/types.ts';
import type { SpaMessage } from '../spa/message.ts';
import { canonicalAddress, cidrContains, networkOf } from '../wire/address.ts';
import { fail, ok, type Decoded } from '../wire/result.ts';

export type PolicyDenial = 'denied_service' | 'denied_duration' | 'denied_address' | 'denied_type' | 'denied_forward';

export interface GrantPlan {
  readonly family: Family;
  /** The source address, or with `prefix` the network it belongs to. */
  readonly address: string;
  readonly prefix?: number;
  readonly services: readonly Service[];
  readonly durationS: number;
  readonly forward?: ForwardTarget;
}

function sameService(a: Service, b: Service): boolean {
  return a.proto === b.proto && a.port === b.port;
}

interface Who {
  readonly family: Family;
  readonly address: string;
  readonly prefix?: number;
}

/** The address the grant is for: source or explicit, widened to the key's IPv6 prefix. */
function grantAddress(msg: SpaMessage, key: KeyPolicy, source: string): Decoded<Who, PolicyDenial> {
  const explicit = msg.address === undefined ? undefined : canonicalAddress(msg.address);
  // An explicit address equal to the source is no extra privilege.
  const address = explicit ?? source;
  if (address !== source && key.requireSourceAddress) return fail('denied_address');
  if (!key.allowedAddresses.some((c) => cidrContains(c, address))) return fail('denied_address');
  const family: Family = address.includes(':') ? 6 : 4;
  if (family === 4 || key.ipv6Prefix === 128) return ok({ family, address });
  const network = networkOf(address, key.ipv6Prefix);
  return network === undefined ? fail('denied_address') : ok({ family, address: network, prefix: key.ipv6Prefix });
}

function grantServices(msg: SpaMessage, key: KeyPolicy): Decoded<readonly Service[], PolicyDenial> {
  if (msg.services.length === 0) return ok(key.services);
  for (const want of msg.services) {
    if (!key.services.some((s) => sameService(s, want))) return fail('denied_service');
  }
  // Dedupe so a request listing tcp/22 twice makes one rule.
  return ok(msg.services.filter((s, i) => msg.services.findIndex((t) => sameService(s, t)) === i));
}

function duration(msg: SpaMessage, key: KeyPolicy): Decoded<number, PolicyDenial> {
  const durationS = msg.durationS === 0 ? key.defaultDurationS : msg.durationS;
  return durationS > key.maxDurationS ? fail('denied_duration') : ok(durationS);
}

function plan(who: Who, services: readonly Service[], durationS: number, forward?: ForwardTarget): GrantPlan {
  return { ...who, services, durationS, ...(forward && { forward }) };
}

/** Decide what an authenticated, fresh `open` request from `source` may get. */
export function decideOpen(msg: SpaMessage, key: KeyPolicy, source: string): Decoded<GrantPlan, PolicyDenial> {
  if (msg.type !== 'open') return fail('denied_type');
  const d = duration(msg, key);
  if (!d.ok) return d;
  const who = grantAddress(msg, key, source);
  if (!who.ok) return who;
  const services = grantServices(msg, key);
  if (!services.ok) return services;
  return ok(plan(who.value, services.value, d.value));
}

function matchForward(msg: SpaMessage, key: KeyPolicy): ForwardConfig | undefined {
  const nat = msg.nat;
  if (!nat) return undefined;
  const want = msg.services[0];
  if (msg.services.length > 1) return undefined;
  return key.forwards.find((f) => f.target.address === canonicalAddress(nat.address) && f.target.port === nat.port
    && (want === undefined || (want.proto === f.proto && want.port === f.externalPort)));
}

/** Decide a `forward` request: the NAT target must be one the key's stanza lists. */
export function decideForward(msg: SpaMessage, key: KeyPolicy, source: string): Decoded<GrantPlan, PolicyDenial> {
  if (msg.type !== 'forward') return fail('denied_type');
  const fwd = matchForward(msg, key);
  if (!fwd) return fail('denied_forward');
  const d = duration(msg, key);
  if (!d.ok) return d;
  const who = grantAddress(msg, key, source);
  if (!who.ok) return who;
  // DNAT cannot translate between families: an IPv4 client cannot reach an IPv6 target.
  if ((fwd.target.address.includes(':') ? 6 : 4) !== who.value.family) return fail('denied_forward');
  return ok(plan(who.value, [{ proto: fwd.proto, port: fwd.externalPort }], d.value, fwd.target));
}
