// SPDX-License-Identifier: MIT
// Is the wall clock trustworthy? Boards boot with wrong clocks until NTP syncs (DESIGN.md
// fact 8). `auto` trusts the clock once a time daemon says it synced: systemd-timesyncd
// touches /run/systemd/timesync/synchronized, and OpenWrt's sysntpd hotplug hook can touch
// /var/state/postern-ntp-synced (rootfs-overlay). Checked at most once per CHECK_EVERY_MS.

import { existsSync } from 'node:fs';

export type ClockMode = 'auto' | 'trusted' | 'untrusted';

export const SYNC_MARKERS = ['/run/systemd/timesync/synchronized', '/var/state/postern-ntp-synced'];
const CHECK_EVERY_MS = 5_000;

let cached: { at: number; value: boolean } | undefined;

export function clockTrusted(mode: ClockMode, markers: readonly string[] = SYNC_MARKERS): boolean {
  if (mode !== 'auto') return mode === 'trusted';
  const now = performance.now();
  if (!cached || now - cached.at > CHECK_EVERY_MS) cached = { at: now, value: markers.some((m) => existsSync(m)) };
  return cached.value;
}
