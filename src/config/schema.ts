// SPDX-License-Identifier: MIT
// The daemon's config schema. One schema yields both the TypeScript type (Static<...>)
// and the validator (STYLE.md principle 6), so they cannot drift. Every number has a
// range; every key has a default where a safe one exists. docs/config.md documents each
// key and test/unit/config/docs.test.ts checks that the documented example validates.

import { Type, type Static } from '@sinclair/typebox';
import { MqttSchema } from './mqtt.ts';

/** Default SPA port. fwknop owns 62201; 62442 is outside Linux's ephemeral range
 *  (32768-60999), so an outgoing connection of the board never takes it. */
export const DEFAULT_SPA_PORT = 62442;

const ServiceText = Type.String({ pattern: '^(tcp|udp)/[0-9]{1,5}$', description: 'proto/port, e.g. tcp/22' });
const Name = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$' });
const Cidr = Type.String({ minLength: 2, maxLength: 64, description: 'address or address/prefix' });

/** A forwarding target a key may ask for: external port on the router -> LAN host:port. */
export const ForwardSchema = Type.Object({
  to: Type.String({ minLength: 3, maxLength: 64, description: 'LAN host:port, e.g. 192.168.1.10:22 or [fd00::10]:22' }),
  proto: Type.Union([Type.Literal('tcp'), Type.Literal('udp')], { default: 'tcp' }),
  port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'external port on the router (default: the target port)' })),
}, { additionalProperties: false });

export const KeySchema = Type.Object({
  name: Name,
  credential: Type.String({ minLength: 1, description: 'postern1:... (see postern keygen), or a technician public key postern-pub1:... (postern keygen --asym, postern enroll)' }),
  services: Type.Array(ServiceText, { minItems: 1, maxItems: 16, uniqueItems: true }),
  default_duration_s: Type.Integer({ minimum: 1, maximum: 86400, default: 60 }),
  max_duration_s: Type.Integer({ minimum: 1, maximum: 86400, default: 600 }),
  require_source_address: Type.Boolean({ default: true }),
  allowed_addresses: Type.Array(Cidr, { minItems: 1, maxItems: 64, default: ['0.0.0.0/0', '::/0'] }),
  ipv6_prefix: Type.Integer({ minimum: 48, maximum: 128, default: 128, description: 'open for the source /N (IPv6 privacy addresses)' }),
  forwards: Type.Array(ForwardSchema, { maxItems: 16, default: [] }),
  revoked: Type.Boolean({ default: false, description: 'refuse this key (postern keys revoke); its packets count as revoked_key' }),
}, { additionalProperties: false });

export const SpaSchema = Type.Object({
  port: Type.Integer({ minimum: 1, maximum: 65535, default: DEFAULT_SPA_PORT }),
  window_s: Type.Integer({ minimum: 5, maximum: 3600, default: 90 }),
  clock: Type.Union([Type.Literal('auto'), Type.Literal('trusted'), Type.Literal('untrusted')], { default: 'auto' }),
  replay_ring: Type.Integer({ minimum: 16, maximum: 1_048_576, default: 4096 }),
  ipv6: Type.Boolean({ default: true }),
  icmp: Type.Boolean({ default: false, description: 'also accept SPA carried in ICMP/ICMPv6 echo messages (opt-in)' }),
  asym_burst: Type.Integer({ minimum: 1, maximum: 1000, default: 20, description: 'per technician key: packets verified at once before the rate applies' }),
  asym_rate: Type.Integer({ minimum: 1, maximum: 10000, default: 10, description: 'per technician key: public-key verifications per second' }),
  prefilter: Type.Boolean({ default: true, description: 'drop datagrams of no configured key id or length in the kernel, before the daemon reads them' }),
}, { additionalProperties: false, default: {} });

export const FirewallSchema = Type.Object({
  backend: Type.Union(
    [Type.Literal('auto'), Type.Literal('nft'), Type.Literal('iptables'), Type.Literal('dry-run')],
    { default: 'auto', description: 'auto = nft when the nft binary works, else iptables' },
  ),
  nft: Type.String({ minLength: 1, default: 'nft' }),
  keep_guarding_on_exit: Type.Boolean({ default: false }),
  reconcile_interval_s: Type.Integer({ minimum: 1, maximum: 3600, default: 30 }),
  iptables: Type.String({ minLength: 1, default: 'iptables' }),
  ip6tables: Type.String({ minLength: 1, default: 'ip6tables' }),
  iptables_restore: Type.String({ minLength: 1, default: 'iptables-restore' }),
  ip6tables_restore: Type.String({ minLength: 1, default: 'ip6tables-restore' }),
}, { additionalProperties: false, default: {} });

/** One fwknop access.conf stanza, in postern's words (docs/config.md "fwknop"). Keys are
 *  base64 (KEY_BASE64) or literal text (KEY); an HMAC key is required: postern does not
 *  accept unauthenticated fwknop packets. */
export const FwknopStanzaSchema = Type.Object({
  name: Name,
  source: Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 64, default: ['ANY'], description: 'ANY or addresses/CIDRs' }),
  key_base64: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  key: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
  hmac_key_base64: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  hmac_key: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  hmac_digest_type: Type.Union([
    Type.Literal('md5'), Type.Literal('sha1'), Type.Literal('sha256'), Type.Literal('sha384'), Type.Literal('sha512'),
    Type.Literal('sha3_256'), Type.Literal('sha3_512'),
  ], { default: 'sha256' }),
  open_ports: Type.Array(ServiceText, { minItems: 1, maxItems: 16, uniqueItems: true }),
  restrict_ports: Type.Array(ServiceText, { maxItems: 16, default: [] }),
  fw_access_timeout_s: Type.Integer({ minimum: 1, maximum: 86400, default: 30 }),
  max_fw_timeout_s: Type.Integer({ minimum: 1, maximum: 86400, default: 300 }),
  require_source_address: Type.Boolean({ default: false, description: 'refuse allow-IP 0.0.0.0 (client -s)' }),
  require_username: Type.Optional(Type.String({ minLength: 1, maxLength: 48 })),
  forwards: Type.Array(ForwardSchema, { maxItems: 16, default: [], description: 'NAT targets for fwknop -N requests (types 2 and 4)' }),
  local_nat: Type.Boolean({ default: false, description: 'allow --nat-local requests (types 5 and 6): ENABLE_IPT_LOCAL_NAT' }),
}, { additionalProperties: false });

export const FwknopSchema = Type.Object({
  port: Type.Integer({ minimum: 1, maximum: 65535, default: 62201 }),
  max_age_s: Type.Integer({ minimum: 5, maximum: 100000, default: 120, description: 'MAX_SPA_PACKET_AGE' }),
  stanzas: Type.Array(FwknopStanzaSchema, { maxItems: 256, default: [] }),
}, { additionalProperties: false, default: {} });

export const ForwardingSchema = Type.Object({
  enable_ip_forward: Type.Boolean({ default: false, description: 'set net.ipv4.ip_forward (and IPv6 forwarding) at start' }),
}, { additionalProperties: false, default: {} });

export const StateSchema = Type.Object({
  database: Type.String({ minLength: 1, default: '/var/lib/postern/state.db', description: 'SQLite file, or :memory:' }),
  device_key: Type.String({ minLength: 1, default: '/var/lib/postern/device.key', description: "the device's X25519 key (mode 0600), made at first start when technician keys are configured" }),
  audit_rows: Type.Integer({ minimum: 100, maximum: 1_000_000, default: 10_000, description: 'audit table cap; oldest rows pruned' }),
  outbox_rows: Type.Integer({ minimum: 10, maximum: 1_000_000, default: 10_000, description: 'MQTT outbox cap; oldest dropped' }),
  grant_rows: Type.Integer({ minimum: 16, maximum: 65_536, default: 4096, description: 'persisted grants at most' }),
  flush_interval_s: Type.Integer({ minimum: 1, maximum: 300, default: 5, description: 'audit and counters are written at most this often' }),
  audit_sources: Type.Integer({ minimum: 1, maximum: 1024, default: 32, description: 'distinct (reason, source) rows per interval; the rest are one overflow row' }),
}, { additionalProperties: false, default: {} });

export const ControlSchema = Type.Object({
  socket: Type.String({ minLength: 1, maxLength: 100, default: '/run/postern/control.sock', description: 'unix socket of postern status/grants/keys' }),
}, { additionalProperties: false, default: {} });

/** Port knocking (docs/config.md "Knock doors"). */
export const KnockSchema = Type.Object({
  max_sources: Type.Integer({ minimum: 16, maximum: 65536, default: 4096, description: 'memory: max_sources * (doors * 21 + 75) bytes, allocated at start' }),
  guard_width: Type.Integer({ minimum: 0, maximum: 16, default: 2 }),
  penalty_s: Type.Integer({ minimum: 0, maximum: 3600, default: 10 }),
}, { additionalProperties: false, default: {} });

const KnockPortText = Type.String({ pattern: '^[0-9]{1,5}(:(tcp|udp))?$', description: 'PORT[:tcp|udp], tcp when omitted' });
const Argv = Type.Array(Type.String({ maxLength: 4096 }), { minItems: 1, maxItems: 64 });
const TcpFlagText = Type.String({ pattern: '^!?(fin|syn|rst|psh|ack|urg)$' });

export const TotpDoorSchema = Type.Object({
  key: Type.String({ minLength: 1, maxLength: 128, description: 'postern-door1:...' }),
  step_s: Type.Integer({ minimum: 5, maximum: 3600, default: 30 }),
  length: Type.Integer({ minimum: 1, maximum: 32, default: 4 }),
  port_min: Type.Integer({ minimum: 1024, maximum: 65535 }),
  port_max: Type.Integer({ minimum: 1024, maximum: 65535 }),
  proto: Type.Literal('tcp', { default: 'tcp' }),
}, { additionalProperties: false });

export const DoorSchema = Type.Object({
  name: Name,
  sequence: Type.Optional(Type.Array(KnockPortText, { minItems: 1, maxItems: 32 })),
  one_time_sequences: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
  totp: Type.Optional(TotpDoorSchema),
  seq_timeout_s: Type.Integer({ minimum: 1, maximum: 3600, default: 25 }),
  tcpflags: Type.Optional(Type.Array(TcpFlagText, { minItems: 1, maxItems: 6 })),
  target: Type.Optional(Type.String({ minLength: 7, maxLength: 15, description: 'IPv4 address' })),
  services: Type.Optional(Type.Array(ServiceText, { minItems: 1, maxItems: 16, uniqueItems: true })),
  duration_s: Type.Integer({ minimum: 1, maximum: 86400, default: 60 }),
  allowed_addresses: Type.Array(Cidr, { minItems: 1, maxItems: 64, default: ['0.0.0.0/0', '::/0'] }),
  start: Type.Optional(Argv),
  stop: Type.Optional(Argv),
  cmd_timeout_s: Type.Integer({ minimum: 1, maximum: 86400, default: 10 }),
}, { additionalProperties: false });

export const ConfigSchema = Type.Object({
  device: Name,
  log_level: Type.Union(
    [Type.Literal('debug'), Type.Literal('info'), Type.Literal('warn'), Type.Literal('error')],
    { default: 'info' },
  ),
  guarded: Type.Array(ServiceText, { minItems: 1, maxItems: 64, uniqueItems: true }),
  spa: SpaSchema,
  keys: Type.Array(KeySchema, { maxItems: 1024 }),
  firewall: FirewallSchema,
  state: StateSchema,
  control: ControlSchema,
  forwarding: ForwardingSchema,
  fwknop: FwknopSchema,
  knock: KnockSchema,
  doors: Type.Array(DoorSchema, { maxItems: 64, default: [] }),
  mqtt: Type.Optional(MqttSchema),
}, { additionalProperties: false });

export type RawConfig = Static<typeof ConfigSchema>;
export type RawKey = Static<typeof KeySchema>;
export type RawForward = Static<typeof ForwardSchema>;
export type RawFwknopStanza = Static<typeof FwknopStanzaSchema>;
export type RawDoor = Static<typeof DoorSchema>;
