// SPDX-License-Identifier: MIT
// fwknop stanzas (access.conf semantics, ref/fwknop.md section 14.1) validated and turned
// into ready values. Part of config loading: every error is collected, secrets are never
// quoted. postern refuses stanzas without an HMAC key: fwknopd would accept packets there
// that only the encryption and an unkeyed digest protect.

import type { RawConfig, RawForward, RawFwknopStanza } from './schema.ts';
import type { ForwardConfig } from './load.ts';
import type { Service } from '../firewall/types.ts';
import { parseCidr, type Cidr } from '../wire/address.ts';
import { KEY_BASE64_TEXT, MAX_PASSPHRASE_LEN } from '../fwknop/constants.ts';

export type HmacType = RawFwknopStanza['hmac_digest_type'];

export interface FwknopStanzaConfig {
  readonly name: string;
  /** undefined = ANY */
  readonly sources: readonly Cidr[] | undefined;
  readonly key: Buffer;
  readonly hmacKey: Buffer;
  readonly hmacType: HmacType;
  readonly openPorts: readonly Service[];
  readonly restrictPorts: readonly Service[];
  readonly fwAccessTimeoutS: number;
  readonly maxFwTimeoutS: number;
  readonly requireSourceAddress: boolean;
  readonly requireUsername: string | undefined;
  readonly forwards: readonly ForwardConfig[];
  readonly localNat: boolean;
}


function secret(text: string | undefined, b64: string | undefined): Buffer | 'both' | 'none' | 'bad_base64' {
  if (text !== undefined && b64 !== undefined) return 'both';
  if (text !== undefined) return Buffer.from(text, 'utf8');
  if (b64 === undefined) return 'none';
  return KEY_BASE64_TEXT.test(b64) ? Buffer.from(b64, 'base64') : 'bad_base64';
}

function keyErrors(s: RawFwknopStanza, at: string): string[] {
  const errors: string[] = [];
  const key = secret(s.key, s.key_base64);
  const hmac = secret(s.hmac_key, s.hmac_key_base64);
  if (key === 'none') errors.push(`${at}: needs key or key_base64`);
  if (key === 'both') errors.push(`${at}: give key or key_base64, not both`);
  if (key === 'bad_base64') errors.push(`${at}/key_base64: not base64`);
  if (Buffer.isBuffer(key) && (key.length === 0 || key.length > MAX_PASSPHRASE_LEN)) errors.push(`${at}: the key must be 1-${MAX_PASSPHRASE_LEN} bytes (fwknop's AES passphrase limit)`);
  if (hmac === 'none') errors.push(`${at}: needs hmac_key or hmac_key_base64: postern does not accept fwknop packets without an HMAC`);
  if (hmac === 'both') errors.push(`${at}: give hmac_key or hmac_key_base64, not both`);
  if (hmac === 'bad_base64') errors.push(`${at}/hmac_key_base64: not base64`);
  if (Buffer.isBuffer(key) && Buffer.isBuffer(hmac) && key.equals(hmac)) errors.push(`${at}: the HMAC key must differ from the encryption key`);
  return errors;
}

function portErrors(s: RawFwknopStanza, at: string, guarded: ReadonlySet<string>, parse: (t: string) => Service | undefined): string[] {
  const errors: string[] = [];
  s.open_ports.forEach((p, j) => {
    if (!parse(p)) errors.push(`${at}/open_ports/${j}: port out of range 1-65535`);
    else if (!guarded.has(p)) errors.push(`${at}/open_ports/${j}: ${p} is not a guarded service`);
  });
  s.restrict_ports.forEach((p, j) => { if (!parse(p)) errors.push(`${at}/restrict_ports/${j}: port out of range 1-65535`); });
  if (s.fw_access_timeout_s > s.max_fw_timeout_s) errors.push(`${at}/fw_access_timeout_s: above max_fw_timeout_s`);
  return errors;
}

export interface FwknopCheckers {
  readonly parse: (t: string) => Service | undefined;
  readonly forwardErrors: (forwards: readonly RawForward[], at: string, guarded: ReadonlySet<string>) => string[];
}

export function fwknopErrors(raw: RawConfig, guarded: ReadonlySet<string>, check: FwknopCheckers): string[] {
  const { parse } = check;
  const errors: string[] = [];
  const fk = raw.fwknop;
  if (fk.stanzas.length === 0) return errors;
  if (fk.port === raw.spa.port) errors.push(`/fwknop/port: the same as spa.port (${fk.port})`);
  if (guarded.has(`udp/${fk.port}`)) errors.push(`/fwknop/port: ${fk.port} is also a guarded udp service`);
  fk.stanzas.forEach((s, i) => {
    const at = `/fwknop/stanzas/${i}`;
    errors.push(...keyErrors(s, at), ...portErrors(s, at, guarded, parse), ...check.forwardErrors(s.forwards, at, guarded));
    s.source.forEach((src, j) => {
      if (src !== 'ANY' && !parseCidr(src).ok) errors.push(`${at}/source/${j}: ANY, an address or a CIDR with host bits clear`);
    });
  });
  const names = fk.stanzas.map((s) => s.name);
  for (const n of new Set(names.filter((v, i) => names.indexOf(v) !== i))) errors.push(`/fwknop/stanzas: duplicate name ${JSON.stringify(n)}`);
  return errors;
}

export function buildFwknopStanza(
  s: RawFwknopStanza, parse: (t: string) => Service | undefined, forward: (f: RawForward) => ForwardConfig | undefined,
): FwknopStanzaConfig {
  const key = secret(s.key, s.key_base64);
  const hmacKey = secret(s.hmac_key, s.hmac_key_base64);
  if (!Buffer.isBuffer(key) || !Buffer.isBuffer(hmacKey)) throw new Error('unreachable: validated fwknop keys');
  const cidrs = s.source.includes('ANY') ? undefined : s.source.flatMap((c) => { const r = parseCidr(c); return r.ok ? [r.value] : []; });
  return Object.freeze({
    name: s.name, sources: cidrs, key, hmacKey, hmacType: s.hmac_digest_type,
    openPorts: s.open_ports.flatMap((p) => parse(p) ?? []), restrictPorts: s.restrict_ports.flatMap((p) => parse(p) ?? []),
    fwAccessTimeoutS: s.fw_access_timeout_s, maxFwTimeoutS: s.max_fw_timeout_s,
    requireSourceAddress: s.require_source_address, requireUsername: s.require_username,
    forwards: Object.freeze(s.forwards.flatMap((f) => forward(f) ?? [])),
    localNat: s.local_nat,
  });
}
