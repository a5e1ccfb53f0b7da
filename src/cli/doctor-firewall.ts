// SPDX-License-Identifier: MIT
// Firewall checks for `postern doctor`: the backend's binaries, postern's own ruleset,
// and on OpenWrt whether firewall4 will accept what postern marks.

import { existsSync } from 'node:fs';
import type { Config } from '../config/load.ts';
import type { Runner } from '../firewall/exec.ts';
import type { BackendName } from '../daemon/wiring.ts';
import type { Check } from './doctor.ts';

/** fw4 includes every file here at the top of its `input` chain, before the zone jumps, so one
 *  drop-in covers every rejecting zone whatever it is called (ref/openwrt.md 4.3). */
export const FW4_DROP_IN_DIR = '/usr/share/nftables.d/chain-pre/input';
export const FW4_DROP_IN = `${FW4_DROP_IN_DIR}/30-postern.nft`;
/** The same for fw4's `forward` chain: needed only when keys have forwarding targets. */
export const FW4_FORWARD_DROP_IN = '/usr/share/nftables.d/chain-pre/forward/30-postern.nft';
const FW4_MARKERS = ['/sbin/fw4', '/usr/share/firewall4'];

async function version(runner: Runner, argv: string[]): Promise<string | undefined> {
  try {
    const r = await runner(argv, { timeoutMs: 5000 });
    return r.code === 0 ? (r.stdout || r.stderr).trim().split('\n')[0] : undefined;
  } catch {
    return undefined;
  }
}

async function iptablesChecks(config: Config, runner: Runner): Promise<Check[]> {
  const fw = config.raw.firewall;
  const checks: Check[] = [];
  for (const bin of [fw.iptables, fw.ip6tables]) {
    const v = await version(runner, [bin, '-V']);
    checks.push(v ? { name: `${bin}`, status: 'ok', detail: v }
      : { name: bin, status: 'fail', detail: 'cannot run', fix: `install iptables, or set firewall.${bin.includes('6') ? 'ip6tables' : 'iptables'} to its path` });
  }
  const listing = await runner([fw.iptables, '-w', '-S', 'POSTERN-GRANTS'], { timeoutMs: 5000 }).catch(() => undefined);
  if (!listing || listing.code !== 0) {
    checks.push({ name: 'ruleset', status: 'warn', detail: 'postern chains are not installed (is the daemon running?)', fix: 'start the daemon' });
  } else {
    const grants = listing.stdout.split('\n').filter((l) => l.startsWith('-A POSTERN-GRANTS')).length;
    checks.push({ name: 'ruleset', status: 'ok', detail: `POSTERN-IN/GRANTS/OUT installed, ${grants} grant rule(s) (IPv4)` });
  }
  return checks;
}

interface NftSet { set?: { name?: string; elem?: unknown[] }; map?: { name?: string; elem?: unknown[] } }

async function nftChecks(config: Config, runner: Runner): Promise<Check[]> {
  const bin = config.raw.firewall.nft;
  const v = await version(runner, [bin, '--version']);
  if (!v) return [{ name: 'nft', status: 'fail', detail: 'cannot run', fix: 'install nftables, or set firewall.nft to its path' }];
  const checks: Check[] = [{ name: 'nft', status: 'ok', detail: v }];
  const listing = await runner([bin, '-j', 'list', 'table', 'inet', 'postern'], { timeoutMs: 5000 }).catch(() => undefined);
  if (!listing || listing.code !== 0) {
    checks.push({ name: 'ruleset', status: 'warn', detail: 'table inet postern is not loaded (is the daemon running?)', fix: 'start the daemon' });
    return checks;
  }
  const items = (JSON.parse(listing.stdout) as { nftables?: NftSet[] }).nftables ?? [];
  const sets = items.flatMap((i) => {
    const named = i.set ?? i.map;
    return named?.name ? [`${named.name}=${named.elem?.length ?? 0}`] : [];
  });
  checks.push({ name: 'ruleset', status: 'ok', detail: `table inet postern loaded; elements: ${sets.join(' ')}` });
  return checks;
}

function fw4Check(forwarding: boolean): Check | undefined {
  if (!FW4_MARKERS.some((m) => existsSync(m))) return undefined;
  const needed = forwarding ? [FW4_DROP_IN, FW4_FORWARD_DROP_IN] : [FW4_DROP_IN];
  const missing = needed.filter((f) => !existsSync(f));
  return missing.length === 0
    ? { name: 'fw4', status: 'ok', detail: `firewall4 present; drop-in(s) installed: ${needed.join(', ')}` }
    : { name: 'fw4', status: 'fail', detail: `firewall4 present but ${missing.join(', ')} missing: fw4 rejects what postern opens`,
      fix: `install the postern package's drop-ins (rootfs-overlay/openwrt/usr/share/nftables.d/) and run: fw4 reload` };
}

export async function firewallChecks(config: Config, backend: BackendName, runner: Runner): Promise<Check[]> {
  const head: Check = { name: 'backend', status: backend === 'dry-run' ? 'warn' : 'ok',
    detail: `${backend} (firewall.backend=${config.raw.firewall.backend})`,
    ...(backend === 'dry-run' && { fix: 'dry-run changes nothing: set firewall.backend to auto' }) };
  const specific = backend === 'nft' ? await nftChecks(config, runner) : backend === 'iptables' ? await iptablesChecks(config, runner) : [];
  const fw4 = fw4Check(config.keys.some((k) => k.forwards.length > 0));
  return [head, ...specific, ...(fw4 ? [fw4] : [])];
}
