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
  denied_username: 'fwknop stanza requires another username (REQUIRE_USERNAME)',
  fwknop_malformed: 'not an fwknop packet (length, characters, or a re-added Salted__ prefix)',
  fwknop_no_stanza: 'no fwknop stanza matches the source address (SOURCE)',
  fwknop_command: 'fwknop command message (type 0): postern never runs commands',
  grant_limit: 'too many live grants',
  firewall_error: 'the firewall refused the grant',
} as const satisfies Record<string, string>;

export type DropReason = keyof typeof DROP_REASONS;

export const ALL_DROP_REASONS = Object.keys(DROP_REASONS) as DropReason[];

/** Per-reason counters, plus accepted/extended. Fixed keys: no growth under attack. */
export class Counters {
  readonly drops: Record<DropReason, number> = Object.fromEntries(ALL_DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
  accepted = 0;
  extended = 0;
  closed = 0;
  /** Frames seen on capture sockets that were not for any capture port. */
  ignored = 0;

  drop(reason: DropReason): void {
    this.drops[reason]++;
  }

  snapshot(): Record<string, number> {
    return { accepted: this.accepted, extended: this.extended, closed: this.closed, ...this.drops };
  }
}
