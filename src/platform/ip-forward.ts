// SPDX-License-Identifier: MIT
// IP forwarding for forwarding grants. postern turns it on only when the config says so
// (forwarding.enable_ip_forward), and says so at start; otherwise it warns when keys have
// forwarding targets but the kernel will not forward.

import { readFileSync, writeFileSync } from 'node:fs';
import type { Config } from '../config/load.ts';
import type { Logger } from '../log/logger.ts';

const SYSCTL = { 4: '/proc/sys/net/ipv4/ip_forward', 6: '/proc/sys/net/ipv6/conf/all/forwarding' } as const;

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

export function checkForwarding(config: Config, log: Logger): void {
  const targets = [...config.keys, ...config.fwknop].flatMap((k) => k.forwards);
  if (targets.length === 0) return;
  const families = new Set(targets.map((f) => (f.target.address.includes(':') ? 6 : 4) as 4 | 6));
  for (const fam of families) {
    const path = SYSCTL[fam];
    if (read(path) === '1') continue;
    if (!config.raw.forwarding.enable_ip_forward) {
      log.warn('keys have forwarding targets but the kernel does not forward; forwarding grants will not pass', {
        sysctl: path, fix: 'set forwarding.enable_ip_forward, or enable forwarding yourself',
      });
      continue;
    }
    try {
      writeFileSync(path, '1\n');
      log.warn('enabled IP forwarding (forwarding.enable_ip_forward)', { sysctl: path });
    } catch (err) {
      log.error('cannot enable IP forwarding', { sysctl: path, error: String(err) });
    }
  }
}
