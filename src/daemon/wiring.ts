// SPDX-License-Identifier: MIT
// Concrete adapters for the daemon: which firewall backend and which packet source a
// config asks for. Kept apart from daemon.ts so that tests can wire fakes instead.

import type { Config } from '../config/load.ts';
import { RawCapture, type PacketSource } from '../capture/raw.ts';
import { DryRunBackend } from '../firewall/dry-run.ts';
import { spawnRunner } from '../firewall/exec.ts';
import { IptablesBackend } from '../firewall/iptables.ts';
import type { FirewallBackend } from '../firewall/types.ts';
import type { Logger } from '../log/logger.ts';

export function makeBackend(config: Config, logger: Logger, dryRun: boolean): FirewallBackend {
  const fw = config.raw.firewall;
  const binaries = {
    iptables: fw.iptables, ip6tables: fw.ip6tables, iptablesRestore: fw.iptables_restore, ip6tablesRestore: fw.ip6tables_restore,
  };
  if (dryRun || fw.backend === 'dry-run') return new DryRunBackend({ logger, binaries });
  return new IptablesBackend({ runner: spawnRunner, logger, binaries });
}

export function makeCapture(config: Config, logger: Logger): PacketSource {
  return new RawCapture({ ipv6: config.raw.spa.ipv6, protocols: ['udp'], sinkPorts: [config.raw.spa.port], logger });
}
