// SPDX-License-Identifier: MIT
// Config loading: JSON -> defaults -> schema (every error, with its path) -> cross-field
// checks -> one frozen Config with parsed values. A config with any error is refused
// whole: nothing is half-applied (DESIGN.md threat model, last line).

import { readFileSync } from 'node:fs';
import { Value } from '@sinclair/typebox/value';
import { buildFwknopStanza, fwknopErrors, type FwknopStanzaConfig } from './fwknop.ts';
import { buildDoor, doorErrors } from './doors.ts';
import type { DoorConfig } from '../knock/door.ts';
import { ConfigSchema, type RawConfig, type RawForward, type RawKey } from './schema.ts';
import { mqttErrors } from './mqtt.ts';
import type { ForwardTarget, Service } from '../firewall/types.ts';
import { parseCredential, keyIdHex, CREDENTIAL_ERRORS, type Credential } from '../spa/credential.ts';
import { KEY_STRING_ERRORS, TECH_IDENTITY_PREFIX, TECH_PUBLIC_PREFIX, parseTechPublic, type TechPublicKey } from '../spa/asym-keys.ts';
import { canonicalAddress, parseCidr, type Cidr } from '../wire/address.ts';

export interface ForwardConfig {
  readonly proto: Service['proto'];
  /** The port on the router the client connects to. */
  readonly externalPort: number;
  readonly target: ForwardTarget;
}

/** What a key stanza allows, whichever kind of key it holds (symmetric or technician). */
export interface KeyPolicy {
  readonly name: string;
  readonly keyId: number;
  /** Refused as revoked_key (postern keys revoke; `revoked: true` in the stanza). */
  readonly revoked: boolean;
  readonly services: readonly Service[];
  readonly defaultDurationS: number;
  readonly maxDurationS: number;
  readonly requireSourceAddress: boolean;
  readonly allowedAddresses: readonly Cidr[];
  readonly ipv6Prefix: number;
  readonly forwards: readonly ForwardConfig[];
}

/** A symmetric key stanza: the credential is a shared secret. */
export interface KeyConfig extends KeyPolicy {
  readonly credential: Credential;
}

/** A technician key stanza (asymmetric class): the device holds only the public key. */
export interface TechKeyConfig extends KeyPolicy {
  readonly techKey: TechPublicKey;
}

export interface Config {
  readonly raw: RawConfig;
  readonly device: string;
  readonly guarded: readonly Service[];
  readonly keys: readonly KeyConfig[];
  /** Technician public keys (credential postern-pub1:...). */
  readonly techKeys: readonly TechKeyConfig[];
  readonly fwknop: readonly FwknopStanzaConfig[];
  readonly doors: readonly DoorConfig[];
}

export function parseService(text: string): Service | undefined {
  const m = /^(tcp|udp)\/([0-9]{1,5})$/.exec(text);
  const port = Number(m?.[2]);
  if (!m || port < 1 || port > 65535) return undefined;
  return { proto: m[1] === 'tcp' ? 'tcp' : 'udp', port };
}

export function serviceText(s: Service): string {
  return `${s.proto}/${s.port}`;
}

/** Show a value in an error message; secrets never (STYLE.md principle 6). */
function show(path: string, value: unknown): string {
  const s = JSON.stringify(value);
  // By path, and by content: a misspelt key or a bare string may still hold a credential.
  if (/credential|password|(^|\/)(hmac_)?key(_base64)?$/.test(path) || (s !== undefined && /postern1:|postern-id1:|postern-idenc1:/.test(s))) return '(hidden)';
  return s === undefined ? 'nothing' : s.length > 60 ? s.slice(0, 57) + '...' : s;
}

function schemaErrors(input: unknown): string[] {
  return [...Value.Errors(ConfigSchema, input)].map(
    (e) => `${e.path || '/'}: ${e.message} (got ${show(e.path, e.value)})`,
  );
}

/** `host:port` or `[v6]:port` -> a canonical target, or undefined. */
export function parseTarget(text: string): ForwardTarget | undefined {
  const m = /^\[([^\]]+)\]:([0-9]{1,5})$/.exec(text) ?? /^([^:]+):([0-9]{1,5})$/.exec(text);
  const address = m?.[1] === undefined ? undefined : canonicalAddress(m[1]);
  const port = Number(m?.[2]);
  return address !== undefined && port >= 1 && port <= 65535 ? { address, port } : undefined;
}

function toForward(f: RawForward): ForwardConfig | undefined {
  const target = parseTarget(f.to);
  return target && { proto: f.proto, externalPort: f.port ?? target.port, target };
}

function forwardErrors(forwards: readonly RawForward[], at: string, guarded: ReadonlySet<string>): string[] {
  const errors: string[] = [];
  const seen = new Set<string>();
  forwards.forEach((f, j) => {
    const fwd = toForward(f);
    // One client, one external port, one family: two targets there would stack two DNATs.
    const slot = fwd && `${fwd.proto}/${fwd.externalPort}/${fwd.target.address.includes(':') ? 6 : 4}`;
    if (slot !== undefined && seen.has(slot)) errors.push(`${at}/forwards/${j}: another forward of this key already uses ${fwd?.proto}/${fwd?.externalPort}`);
    if (slot !== undefined) seen.add(slot);
    if (!fwd) errors.push(`${at}/forwards/${j}/to: not host:port or [IPv6]:port (got ${show('', f.to)})`);
    else if (guarded.has(`${fwd.proto}/${fwd.externalPort}`)) {
      errors.push(`${at}/forwards/${j}: external port ${fwd.proto}/${fwd.externalPort} is a guarded local service; pick another port`);
    }
  });
  return errors;
}

function keyErrors(key: RawKey, i: number, guarded: ReadonlySet<string>): string[] {
  const at = `/keys/${i}`;
  const errors: string[] = [];
  errors.push(...credentialErrors(key.credential, at));
  key.services.forEach((s, j) => {
    if (!parseService(s)) errors.push(`${at}/services/${j}: port out of range 1-65535 (got ${show('', s)})`);
    else if (!guarded.has(s)) errors.push(`${at}/services/${j}: ${s} is not a guarded service`);
  });
  if (key.default_duration_s > key.max_duration_s) {
    errors.push(`${at}/default_duration_s: above max_duration_s (${key.default_duration_s} > ${key.max_duration_s})`);
  }
  key.allowed_addresses.forEach((c, j) => {
    if (!parseCidr(c).ok) errors.push(`${at}/allowed_addresses/${j}: not an address or CIDR with host bits clear (got ${show('', c)})`);
  });
  return [...errors, ...forwardErrors(key.forwards, at, guarded)];
}

/** A stanza's credential is a symmetric postern1: secret or a technician postern-pub1: key. */
function credentialErrors(text: string, at: string): string[] {
  if (text.trim().startsWith(TECH_PUBLIC_PREFIX)) {
    const pub = parseTechPublic(text);
    return pub.ok ? [] : [`${at}/credential: technician public key: ${KEY_STRING_ERRORS[pub.reason]}`];
  }
  if (text.trim().startsWith(TECH_IDENTITY_PREFIX) || text.trim().startsWith('postern-idenc1:')) {
    return [`${at}/credential: this is a technician's private identity; a device needs only its public key (postern-pub1:...)`];
  }
  const cred = parseCredential(text);
  return cred.ok ? [] : [`${at}/credential: ${CREDENTIAL_ERRORS[cred.reason]}`];
}

/** The key id of a valid stanza credential, either kind. */
function stanzaKeyId(text: string): number | undefined {
  const pub = parseTechPublic(text);
  if (pub.ok) return pub.value.keyId;
  const cred = parseCredential(text);
  return cred.ok ? cred.value.keyId : undefined;
}

function duplicates<T>(items: readonly T[]): T[] {
  return items.filter((v, i) => items.indexOf(v) !== i);
}

function crossErrors(raw: RawConfig): string[] {
  const errors: string[] = [];
  raw.guarded.forEach((s, i) => {
    if (!parseService(s)) errors.push(`/guarded/${i}: port out of range 1-65535 (got ${show('', s)})`);
  });
  if (raw.guarded.includes(`udp/${raw.spa.port}`)) errors.push(`/spa/port: ${raw.spa.port} is also a guarded udp service`);
  const guarded = new Set(raw.guarded);
  raw.keys.forEach((k, i) => errors.push(...keyErrors(k, i, guarded)));
  for (const name of new Set(duplicates(raw.keys.map((k) => k.name)))) errors.push(`/keys: duplicate key name ${show('', name)}`);
  const ids = raw.keys.flatMap((k) => { const id = stanzaKeyId(k.credential); return id === undefined ? [] : [keyIdHex(id)]; });
  for (const id of new Set(duplicates(ids))) errors.push(`/keys: two keys share key id ${id} (generate a new credential for one)`);
  return [...errors, ...fwknopErrors(raw, guarded, { parse: parseService, forwardErrors }), ...doorErrors(raw, guarded), ...mqttErrors(raw.mqtt)];
}

function buildPolicy(k: RawKey, keyId: number): KeyPolicy {
  return {
    name: k.name,
    keyId,
    revoked: k.revoked,
    services: Object.freeze(k.services.flatMap((s) => parseService(s) ?? [])),
    defaultDurationS: k.default_duration_s,
    maxDurationS: k.max_duration_s,
    requireSourceAddress: k.require_source_address,
    allowedAddresses: Object.freeze(k.allowed_addresses.flatMap((c) => { const r = parseCidr(c); return r.ok ? [r.value] : []; })),
    ipv6Prefix: k.ipv6_prefix,
    forwards: Object.freeze(k.forwards.flatMap((f) => toForward(f) ?? [])),
  };
}

function buildKey(k: RawKey): KeyConfig {
  const cred = parseCredential(k.credential);
  if (!cred.ok) throw new Error('unreachable: validated credential');
  return Object.freeze({ ...buildPolicy(k, cred.value.keyId), credential: cred.value });
}

function buildTechKey(k: RawKey): TechKeyConfig {
  const pub = parseTechPublic(k.credential);
  if (!pub.ok) throw new Error('unreachable: validated technician key');
  return Object.freeze({ ...buildPolicy(k, pub.value.keyId), techKey: pub.value });
}

const isTechStanza = (k: RawKey) => k.credential.trim().startsWith(TECH_PUBLIC_PREFIX);

export type LoadResult =
  | { readonly ok: true; readonly config: Config }
  | { readonly ok: false; readonly errors: readonly string[] };

/** Validate a parsed JSON value. Returns the config, or every error found. */
export function validateConfig(input: unknown): LoadResult {
  const withDefaults = Value.Default(ConfigSchema, structuredClone(input));
  const errors = schemaErrors(withDefaults);
  if (errors.length > 0) return { ok: false, errors };
  const raw = withDefaults as RawConfig;
  const cross = crossErrors(raw);
  if (cross.length > 0) return { ok: false, errors: cross };
  const config: Config = {
    raw,
    device: raw.device,
    guarded: Object.freeze(raw.guarded.flatMap((s) => parseService(s) ?? [])),
    keys: Object.freeze(raw.keys.filter((k) => !isTechStanza(k)).map(buildKey)),
    techKeys: Object.freeze(raw.keys.filter(isTechStanza).map(buildTechKey)),
    fwknop: Object.freeze(raw.fwknop.stanzas.map((st) => buildFwknopStanza(st, parseService, toForward))),
    doors: Object.freeze(raw.doors.map((d) => buildDoor(d, parseService))),
  };
  return { ok: true, config: Object.freeze(config) };
}

/** Why a valid config still cannot run a daemon: nothing in it can ever open a door (a
 *  shipped board config has no keys, issue 8). undefined when some key or door exists. */
export function doorlessReason(config: Config): string | undefined {
  if (config.keys.length > 0 || config.techKeys.length > 0 || config.fwknop.length > 0 || config.doors.length > 0) return undefined;
  return 'no keys, no fwknop stanzas and no knock doors: nothing could ever open a guarded service. '
    + 'Add a key first (postern keygen, then a "keys" entry; see docs/config.md).';
}

export function loadConfigFile(path: string): LoadResult {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return { ok: false, errors: [`${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`] };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    // JSON.parse quotes the text around the error, which may be part of a credential.
    const at = /position (\d+)/.exec((err as Error).message)?.[1];
    return { ok: false, errors: [`${path}: not valid JSON${at === undefined ? '' : ` (at character ${at})`}`] };
  }
  return validateConfig(json);
}
