// SPDX-License-Identifier: MIT
// Every reason a packet is dropped has a name (STYLE.md principle 5). The same names are
// used in logs, counters, test assertions and (later) MQTT alerts; the text map is
// exhaustive by construction (`satisfies Record<DropReason, string>`).

export const DROP_REASONS = {
  malformed: 'frame could not be decoded (truncated, fragment, bad header)',
  too_short: 'datagram shorter than the smallest SPA packet',
  too_long: 'datagram longer than the largest SPA packet',
  unknown_key: 'no configured key has this key id',
  revoked_key: 'authenticated with a revoked key (postern keys revoke)',
  bad_auth: 'authentication failed (wrong key or tampered packet)',
  bad_payload: 'authenticated but the plaintext is malformed (client bug or version skew)',
  replay: 'packet was already accepted once',
  stale: 'timestamp outside the freshness window',
  denied_service: 'the key may not open a requested service',
  denied_duration: 'requested duration above the key\'s maximum',
  denied_address: 'the key may not open for the requested address',
  denied_type: 'message type not supported by this daemon',
  denied_forward: 'the key may not forward to the requested target',
  bad_signature: 'technician key: decrypted, but the Ed25519 signature does not verify (forged or tampered)',
  wrong_device: 'technician key: the packet was made for another device (its device hint does not match this device key)',
  rate_limited: 'technician key: too many packets to verify; its token bucket is empty (spa.asym_burst, spa.asym_rate)',
  denied_username: 'fwknop stanza requires another username (REQUIRE_USERNAME)',
  fwknop_malformed: 'not an fwknop packet (length, characters, or a re-added Salted__ prefix)',
  fwknop_no_stanza: 'no fwknop stanza matches the source address (SOURCE)',
  fwknop_command: 'fwknop command message (type 0): postern never runs commands',
  grant_limit: 'too many live grants',
  firewall_error: 'the firewall refused the grant',
  knock_wrong: 'knock out of order for every door, or sent during a sweep penalty',
  knock_guard: 'knock on a guard or time-derived range port that is not the next knock, or a scan-like SYN mid-sequence',
  knock_timeout: 'knock sequence not completed within the door\'s seq_timeout_s',
  knock_replay: 'time-derived knock sequence already used once',
  command_error: 'a door\'s start or stop command failed, timed out or could not run',
} as const satisfies Record<string, string>;

export type DropReason = keyof typeof DROP_REASONS;

export const ALL_DROP_REASONS = Object.keys(DROP_REASONS) as DropReason[];

/** Per-reason counters, plus accepted/extended. Fixed keys: no growth under attack. */
export class Counters {
  readonly drops: Record<DropReason, number> = Object.fromEntries(ALL_DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
  accepted = 0;
  extended = 0;
  closed = 0;
  /** Public-key verifications the technician keys' token buckets allowed (issue 10). */
  publicKeyOps = 0;
  /** Frames seen on capture sockets that were not for any capture port. */
  ignored = 0;
  /** Completed knocks (each one also counts as accepted or extended when it grants). */
  knocks = 0;

  drop(reason: DropReason): void {
    this.drops[reason]++;
  }

  snapshot(): Record<string, number> {
    return { accepted: this.accepted, extended: this.extended, closed: this.closed, knocks: this.knocks, public_key_ops: this.publicKeyOps, ...this.drops };
  }
}
