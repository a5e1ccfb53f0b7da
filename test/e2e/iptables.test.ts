// SPDX-License-Identifier: MIT
// The iptables backend against real iptables/ip6tables in a throwaway network namespace
// (STYLE.md principle 12c; wireguard-go tests/netns.sh). Runs as root (CI does); skips
// with the reason otherwise. Every command runs through `ip netns exec <ns>`, so the host
// ruleset is never touched; the namespace is deleted in after(), even on failure.
// Debian 12's `iptables` is iptables-nft; the legacy binaries run too when the kernel
// allows, since older boards (Pi OS, OpenWrt 21) still use them.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { prefixRunner, spawnRunner } from '../../src/firewall/exec.ts';
import type { Runner } from '../../src/firewall/exec.ts';
import { DEFAULT_IPTABLES_BINARIES, IptablesBackend } from '../../src/firewall/iptables.ts';
import type { IptablesBinaries } from '../../src/firewall/iptables.ts';
import { chainNames, grantRuleLines, guardRuleLines } from '../../src/firewall/iptables-rules.ts';
import type { Family, Grant, GuardSpec } from '../../src/firewall/types.ts';
import { memoryLogger } from '../../src/log/logger.ts';

const LEGACY: IptablesBinaries = {
  iptables: 'iptables-legacy', ip6tables: 'ip6tables-legacy',
  iptablesRestore: 'iptables-legacy-restore', ip6tablesRestore: 'ip6tables-legacy-restore',
};
const VARIANTS = [
  { name: 'iptables (default binaries)', short: 'n', bins: DEFAULT_IPTABLES_BINARIES },
  { name: 'iptables-legacy', short: 'l', bins: LEGACY },
] as const;
const NS_PREFIX = 'pst-fw';

const SPEC: GuardSpec = {
  guarded: [{ proto: 'tcp', port: 22 }, { proto: 'tcp', port: 443 }],
  capture: [{ proto: 'udp', port: 62201 }, { proto: 'tcp', port: 7000 }],
};
const NOW = 1_764_150_000_000;
const SERVICES = [{ proto: 'tcp', port: 22 }, { proto: 'tcp', port: 443 }] as const;
const GRANTS: Record<Family, Grant> = {
  4: { id: 'g4', key: 'alice', family: 4, address: '198.18.0.2', services: SERVICES, expiresAtMs: NOW + 30_000 },
  6: { id: 'g6', key: 'alice', family: 6, address: '2001:db8::2', services: SERVICES, expiresAtMs: NOW + 30_000 },
};
const N = chainNames();

async function canRun(bin: string): Promise<boolean> {
  return spawnRunner([bin, '--version']).then(() => true, () => false);
}

async function ns(op: 'add' | 'del', name: string): Promise<void> {
  const r = await spawnRunner(['ip', 'netns', op, name]);
  if (r.code !== 0) throw new Error(`ip netns ${op} ${name}: ${r.stderr.trim()}`);
}

/** Namespaces left by an earlier run that was killed (its pid is gone). Bounded by the listing. */
async function removeStaleNamespaces(): Promise<void> {
  const r = await spawnRunner(['ip', 'netns', 'list']);
  for (const line of r.stdout.split('\n')) {
    const m = new RegExp(`^(${NS_PREFIX}[a-z]?-(\\d+))\\b`).exec(line);
    if (m === null || Number(m[2]) === process.pid) continue;
    let alive = true;
    try {
      process.kill(Number(m[2]), 0);
    } catch {
      alive = false;
    }
    if (!alive) await ns('del', m[1] ?? '').catch(() => undefined);
  }
}

/** Why the variant cannot run here, or undefined. Probes in a namespace of its own. */
async function skipReason(bins: IptablesBinaries, short: string): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'needs root (creates a network namespace)';
  if (!(await canRun('ip'))) return '`ip` (iproute2) is not installed';
  for (const b of Object.values(bins)) if (!(await canRun(b))) return `${b} is not installed (apt-get install -y iptables)`;
  const probe = `${NS_PREFIX}p${short}-${process.pid}`;
  try {
    await ns('add', probe);
    for (const b of [bins.iptables, bins.ip6tables]) {
      const r = await spawnRunner(['ip', 'netns', 'exec', probe, b, '-w', '-S']);
      if (r.code !== 0) return `${b} does not work here: ${r.stderr.trim()}`;
    }
    return undefined;
  } catch (err) {
    return `cannot create a network namespace: ${err instanceof Error ? err.message : String(err)}`;
  } finally {
    await ns('del', probe).catch(() => undefined);
  }
}

if (process.getuid?.() === 0 && (await canRun('ip'))) await removeStaleNamespaces();

for (const variant of VARIANTS) {
  const skip = await skipReason(variant.bins, variant.short);
  describe(`iptables backend in a network namespace: ${variant.name}`, { skip: skip ?? false }, () => {
    const name = `${NS_PREFIX}${variant.short}-${process.pid}`;
    const runner: Runner = prefixRunner(['ip', 'netns', 'exec', name], spawnRunner);
    const backend = new IptablesBackend({ runner, logger: memoryLogger(), binaries: variant.bins });
    const pristine: Record<Family, string> = { 4: '', 6: '' };
    const bin = (f: Family): string => (f === 4 ? variant.bins.iptables : variant.bins.ip6tables);

    const ipt = async (f: Family, ...args: string[]): Promise<string> => {
      const r = await runner([bin(f), '-w', ...args]);
      assert.equal(r.code, 0, `${bin(f)} ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    const rulesOf = async (f: Family, chain: string): Promise<string[]> =>
      (await ipt(f, '-S', chain)).split('\n').filter((l) => l.startsWith('-A '));
    const built = (g: Grant): string[] => [...grantRuleLines(N, g).values()];

    before(async () => {
      await ns('add', name);
      for (const f of [4, 6] as const) pristine[f] = await ipt(f, '-S');
    });
    after(async () => {
      await ns('del', name);
    });

    it('start twice: chains once, jumps once and at position 1, guard rules as built', async () => {
      await backend.start(SPEC);
      await ipt(4, '-I', 'INPUT', '1', '-i', 'lo', '-j', 'ACCEPT'); // a host rule lands above our jump
      await backend.start(SPEC);
      for (const f of [4, 6] as const) {
        const all = await ipt(f, '-S');
        for (const c of Object.values(N)) assert.equal(all.split('\n').filter((l) => l === `-N ${c}`).length, 1);
        assert.deepEqual(await rulesOf(f, 'OUTPUT'), ['-A OUTPUT -j POSTERN-OUT']);
        assert.equal((await rulesOf(f, 'INPUT'))[0], '-A INPUT -j POSTERN-IN');
        assert.equal(all.split('\n').filter((l) => l === '-A INPUT -j POSTERN-IN').length, 1);
        // iptables prints the conntrack states in its own order; everything else reads as built.
        const expected = guardRuleLines(N, SPEC).map((l) => l.replace('ESTABLISHED,RELATED', 'RELATED,ESTABLISHED'));
        assert.deepEqual([...(await rulesOf(f, N.input)), ...(await rulesOf(f, N.output))], expected);
      }
      await ipt(4, '-D', 'INPUT', '-i', 'lo', '-j', 'ACCEPT');
    });

    it('a grant adds exactly one rule per service, tagged, in each family', async () => {
      for (const f of [4, 6] as const) {
        await backend.applyGrant(GRANTS[f]);
        assert.deepEqual(await rulesOf(f, N.grants), built(GRANTS[f]));
      }
    });

    it('extension replaces the rules: same count, new expiry', async () => {
      for (const f of [4, 6] as const) {
        const longer = { ...GRANTS[f], expiresAtMs: NOW + 90_000 };
        await backend.applyGrant(longer, GRANTS[f]);
        await backend.applyGrant(longer, longer);
        assert.deepEqual(await rulesOf(f, N.grants), built(longer));
        GRANTS[f] = longer;
      }
    });

    it('reconcile removes expired and unknown-id rules and restores a missing live one', async () => {
      for (const f of [4, 6] as const) {
        const src = f === 4 ? '198.18.0.9' : '2001:db8::9';
        const tag = (id: string, exp: number) => ['-m', 'comment', '--comment', `postern:${id}:exp=${exp}`];
        await ipt(f, '-A', N.grants, '-s', src, '-p', 'tcp', '--dport', '22', ...tag('old', NOW / 1000 - 5), '-j', 'ACCEPT');
        await ipt(f, '-A', N.grants, '-s', src, '-p', 'tcp', '--dport', '22', ...tag('ghost', NOW / 1000 + 500), '-j', 'ACCEPT');
        await ipt(f, '-D', N.grants, ...(built(GRANTS[f])[1] ?? '').split(' ').slice(2).map((w) => w.replaceAll('"', '')));
        assert.equal((await rulesOf(f, N.grants)).length, 3);
      }
      const report = await backend.reconcile([GRANTS[4], GRANTS[6]], NOW);
      assert.deepEqual([...report.removed].sort(), ['ghost', 'old']);
      assert.deepEqual([...report.restored].sort(), ['g4', 'g6']);
      for (const f of [4, 6] as const) assert.deepEqual((await rulesOf(f, N.grants)).sort(), built(GRANTS[f]).sort());
      assert.deepEqual(await backend.reconcile([GRANTS[4], GRANTS[6]], NOW), { removed: [], restored: [] });
    });

    it('revoke removes a grant; revoking it again succeeds', async () => {
      await backend.revokeGrant(GRANTS[6]);
      await backend.revokeGrant(GRANTS[6]);
      assert.deepEqual(await rulesOf(6, N.grants), []);
      assert.deepEqual(await rulesOf(4, N.grants), built(GRANTS[4]));
    });

    it('stop keepGuarding removes grants only; full stop leaves the pristine ruleset', async () => {
      await backend.stop({ keepGuarding: true });
      assert.deepEqual(await rulesOf(4, N.grants), []);
      assert.equal((await rulesOf(4, N.input)).length, 8);
      await backend.stop({ keepGuarding: false });
      await backend.stop({ keepGuarding: false });
      for (const f of [4, 6] as const) assert.equal(await ipt(f, '-S'), pristine[f]);
    });
  });
}
