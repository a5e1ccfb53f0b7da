// SPDX-License-Identifier: MIT
// Concrete adapters for the daemon: which firewall backend and which packet source a
// config asks for. Kept apart from daemon.ts so that tests can wire fakes instead.

import type { Config } from '../config/load.ts';
import { RawCapture, type PacketSource } from '../capture/raw.ts';
import { DryRunBackend } from '../firewall/dry-run.ts';
import { spawnRunner, type Runner } from '../firewall/exec.ts';
import { IptablesBackend } from '../firewall/iptables.ts';
import { NftBackend } from '../firewall/nft.ts';
import type { FirewallBackend } from '../firewall/types.ts';
import type { Logger } from '../log/logger.ts';
import type { Clock } from '../platform/clock.ts';
import type { FrameProto } from '../wire/frame.ts';
import { capturePorts } from './active.ts';

export type BackendName = 'nft' | 'iptables' | 'dry-run';

/** `auto` picks nft when its binary runs (OpenWrt 22.03+, Debian 11+), else iptables. */
export async function resolveBackendName(config: Config, runner: Runner = spawnRunner): Promise<BackendName> {
  const wanted = config.raw.firewall.backend;
  if (wanted !== 'auto') return wanted;
  const r = await runner([config.raw.firewall.nft, '--version'], { timeoutMs: 5000 }).catch(() => undefined);
  return r?.code === 0 ? 'nft' : 'iptables';
}

export function makeBackend(config: Config, name: BackendName, deps: { logger: Logger; clock: Clock }): FirewallBackend {
  const fw = config.raw.firewall;
  const binaries = {
    iptables: fw.iptables, ip6tables: fw.ip6tables, iptablesRestore: fw.iptables_restore, ip6tablesRestore: fw.ip6tables_restore,
  };
  if (name === 'dry-run') return new DryRunBackend({ logger: deps.logger, binaries });
  if (name === 'nft') return new NftBackend({ runner: spawnRunner, logger: deps.logger, clock: deps.clock, nft: fw.nft });
  return new IptablesBackend({ runner: spawnRunner, logger: deps.logger, binaries });
}

export function makeCapture(config: Config, logger: Logger): PacketSource {
  // ICMP is opt-in (spa.icmp): without it no ICMP socket is opened at all.
  const protocols: FrameProto[] = config.raw.spa.icmp ? ['udp', 'icmp'] : ['udp'];
  return new RawCapture({ ipv6: config.raw.spa.ipv6, protocols, sinkPorts: capturePorts(config), logger });
}
