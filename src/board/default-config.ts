// SPDX-License-Identifier: MIT
// The config a board image ships: secure defaults and no keys (issue 8). It validates, so
// `postern config check` passes on a fresh image, but the daemon refuses to start with it
// (config/load.ts doorlessReason) until an operator adds a key or a door: a fresh image
// never guards nothing while pretending to work, and never holds a shared default key.

import type { Board } from './schema.ts';

export function defaultConfig(board: Board): Record<string, unknown> {
  return {
    device: board.name,
    log_level: 'info',
    // SSH is what an operator of a board reaches for first; nothing else is guarded by default.
    guarded: ['tcp/22'],
    spa: { port: 62442, window_s: 90, clock: 'auto', ipv6: true, icmp: false },
    keys: [],
    firewall: {
      backend: board.firewall_backend,
      nft: board.paths.nft,
      iptables: board.paths.iptables,
      ip6tables: board.paths.ip6tables,
      iptables_restore: `${board.paths.iptables}-restore`,
      ip6tables_restore: `${board.paths.ip6tables}-restore`,
      keep_guarding_on_exit: false,
    },
    state: { database: board.database },
  };
}
