// SPDX-License-Identifier: MIT
// The iptables backend against real iptables/ip6tables in throwaway network namespaces
// (STYLE.md principle 12c; wireguard-go tests/netns.sh). Runs as root (CI does); skips
// with the reason otherwise. Every command runs through `ip netns exec <ns>`, so the host
// ruleset is never touched; namespaces and processes are removed in after(), even on
// failure, and a run killed outright is swept by the next one (its pid is gone).
// Debian 12's `iptables` is iptables-nft; the legacy binaries run too when the kernel
// allows, since older boards (Pi OS, OpenWrt 21) still use them.
//
// Three suites per variant: the guard and grant rules; forwarding (DNAT) and prefix grants,
// rule for rule in both families, with the time a forwarding grant takes to apply; and
// forwarding with real traffic through a router namespace:
//   client 198.18.0.2 (+ .3) ── wan 198.18.0.1 [router, ip_forward=1, FORWARD policy DROP]
//                                lan 198.19.0.1 ── 198.19.0.10 lan host (echo server on :22)
// 198.18.0.0/24 and 198.19.0.0/24 are RFC 2544 benchmark ranges; no namespace has a route
// anywhere else.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { prefixRunner, spawnRunner } from '../../src/firewall/exec.ts';
import type { Runner } from '../../src/firewall/exec.ts';
import { DEFAULT_IPTABLES_BINARIES, IptablesBackend } from '../../src/firewall/iptables.ts';
import type { IptablesBinaries } from '../../src/firewall/iptables.ts';
import { guardRuleLines } from '../../src/firewall/iptables-plan.ts';
import { FORWARD_ESTABLISHED, chainNames, grantRuleLines } from '../../src/firewall/iptables-rules.ts';
import type { GrantChain } from '../../src/firewall/iptables-rules.ts';
import type { Family, Grant, GuardSpec } from '../../src/firewall/types.ts';
import { memoryLogger } from '../../src/log/logger.ts';
import { probeArgv } from '../lab/net-probe.ts';
import type { TcpConnectResult, TcpHoldResult } from '../lab/net-probe.ts';

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
/** As the daemon builds it for a key with a forwarding target: the external port guarded. */
const FSPEC: GuardSpec = { ...SPEC, guarded: [...SPEC.guarded, { proto: 'tcp', port: 2222 }], forwarding: true };
const NOW = 1_764_150_000_000;
const SERVICES = [{ proto: 'tcp', port: 22 }, { proto: 'tcp', port: 443 }] as const;
const EXTERNAL = [{ proto: 'tcp', port: 2222 }] as const;
const GRANTS: Record<Family, Grant> = {
  4: { id: 'g4', key: 'alice', family: 4, address: '198.18.0.2', services: SERVICES, expiresAtMs: NOW + 30_000 },
  6: { id: 'g6', key: 'alice', family: 6, address: '2001:db8::2', services: SERVICES, expiresAtMs: NOW + 30_000 },
};
const FORWARDS: Record<Family, Grant> = {
  4: {
    id: 'f4', key: 'bob', family: 4, address: '198.18.0.2', services: EXTERNAL,
    forward: { address: '198.19.0.10', port: 22 }, expiresAtMs: NOW + 30_000,
  },
  6: {
    id: 'f6', key: 'bob', family: 6, address: '2001:db8:1:2::', prefix: 64, services: EXTERNAL,
    forward: { address: '2001:db8:ff::10', port: 22 }, expiresAtMs: NOW + 30_000,
  },
};
/** A plain grant to a whole IPv6 /64 (privacy addresses). */
const PREFIX6: Grant = { ...GRANTS[6], id: 'p6', address: '2001:db8:1:2::', prefix: 64, services: [{ proto: 'tcp', port: 22 }] };
const N = chainNames();
const TIMING_RUNS = 30;
/** How long a TCP connect waits before calling the port filtered (silence, not a refusal). */
const SILENT_MS = 500;

async function canRun(bin: string): Promise<boolean> {
  return spawnRunner([bin, '--version']).then(() => true, () => false);
}

async function run(argv: readonly string[]): Promise<string> {
  const r = await spawnRunner(argv);
  if (r.code !== 0) throw new Error(`${argv.join(' ')}: exit ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

const ns = (op: 'add' | 'del', name: string): Promise<string> => run(['ip', 'netns', op, name]);

/** Namespaces left by an earlier run that was killed (its pid is gone). Bounded by the listing. */
async function removeStaleNamespaces(): Promise<void> {
  const r = await spawnRunner(['ip', 'netns', 'list']);
  for (const line of r.stdout.split('\n')) {
    const m = new RegExp(`^(${NS_PREFIX}[a-z]*-(\\d+))\\b`).exec(line);
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
  for (const b of ['ip', 'sysctl']) if (!(await canRun(b))) return `\`${b}\` is not installed (iproute2, procps)`;
  for (const b of Object.values(bins)) if (!(await canRun(b))) return `${b} is not installed (apt-get install -y iptables)`;
  const probe = `${NS_PREFIX}p${short}-${process.pid}`;
  try {
    await ns('add', probe);
    for (const b of [bins.iptables, bins.ip6tables]) {
      for (const table of ['filter', 'nat']) {
        const r = await spawnRunner(['ip', 'netns', 'exec', probe, b, '-w', '-t', table, '-S']);
        if (r.code !== 0) return `${b} -t ${table} does not work here: ${r.stderr.trim()}`;
      }
    }
    return undefined;
  } catch (err) {
    return `cannot create a network namespace: ${err instanceof Error ? err.message : String(err)}`;
  } finally {
    await ns('del', probe).catch(() => undefined);
  }
}

/** iptables helpers for one variant in one namespace. */
function tools(bins: IptablesBinaries, name: string) {
  const runner: Runner = prefixRunner(['ip', 'netns', 'exec', name], spawnRunner);
  const bin = (f: Family): string => (f === 4 ? bins.iptables : bins.ip6tables);
  const ipt = async (f: Family, ...args: string[]): Promise<string> => {
    const r = await runner([bin(f), '-w', ...args]);
    assert.equal(r.code, 0, `${bin(f)} ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const rulesOf = async (f: Family, chain: string, table = 'filter'): Promise<string[]> =>
    (await ipt(f, '-t', table, '-S', chain)).split('\n').filter((l) => l.startsWith('-A '));
  const backend = new IptablesBackend({ runner, logger: memoryLogger(), binaries: bins });
  return { runner, ipt, rulesOf, backend };
}

const built = (g: Grant, c: GrantChain = 'grants'): string[] => [...grantRuleLines(N, g)[c].values()];
/** iptables prints the conntrack states in its own order; everything else reads as built. */
const asListed = (line: string): string => line.replace('ESTABLISHED,RELATED', 'RELATED,ESTABLISHED');
const ESTABLISHED_LISTED = asListed(`-A ${N.forward} ${FORWARD_ESTABLISHED}`);

if (process.getuid?.() === 0 && (await canRun('ip'))) await removeStaleNamespaces();

for (const variant of VARIANTS) {
  const skip = await skipReason(variant.bins, variant.short);

  describe(`iptables backend in a network namespace: ${variant.name}`, { skip: skip ?? false }, () => {
    const name = `${NS_PREFIX}${variant.short}-${process.pid}`;
    const { ipt, rulesOf, backend } = tools(variant.bins, name);
    const pristine: Record<Family, string> = { 4: '', 6: '' };
    const pristineNat: Record<Family, string> = { 4: '', 6: '' };

    before(async () => {
      await ns('add', name);
      for (const f of [4, 6] as const) [pristine[f], pristineNat[f]] = [await ipt(f, '-S'), await ipt(f, '-t', 'nat', '-S')];
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
        for (const c of [N.input, N.grants, N.output]) assert.equal(all.split('\n').filter((l) => l === `-N ${c}`).length, 1);
        assert.doesNotMatch(all, /POSTERN-FWD/);
        assert.deepEqual(await rulesOf(f, 'OUTPUT'), ['-A OUTPUT -j POSTERN-OUT']);
        assert.equal((await rulesOf(f, 'INPUT'))[0], '-A INPUT -j POSTERN-IN');
        assert.equal(all.split('\n').filter((l) => l === '-A INPUT -j POSTERN-IN').length, 1);
        const expected = guardRuleLines(N, SPEC, f).map(asListed);
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

    it('stop keepGuarding removes grants only; full stop leaves the pristine ruleset, nat untouched', async () => {
      await backend.stop({ keepGuarding: true });
      assert.deepEqual(await rulesOf(4, N.grants), []);
      assert.equal((await rulesOf(4, N.input)).length, 8);
      await backend.stop({ keepGuarding: false });
      await backend.stop({ keepGuarding: false });
      for (const f of [4, 6] as const) {
        assert.equal(await ipt(f, '-S'), pristine[f]);
        assert.equal(await ipt(f, '-t', 'nat', '-S'), pristineNat[f]);
      }
    });
  });

  describe(`iptables forwarding and prefix grants in a network namespace: ${variant.name}`, { skip: skip ?? false }, () => {
    const name = `${NS_PREFIX}${variant.short}f-${process.pid}`;
    const { ipt, rulesOf, backend } = tools(variant.bins, name);
    const pristine: Record<Family, string> = { 4: '', 6: '' };
    const pristineNat: Record<Family, string> = { 4: '', 6: '' };
    const fwd = { ...FORWARDS };
    const forwardChains = async (f: Family) => ({ fwd: await rulesOf(f, N.forward), dnat: await rulesOf(f, N.dnat, 'nat') });
    const expectForward = async (f: Family, grants: readonly Grant[]) => assert.deepEqual(await forwardChains(f), {
      fwd: [ESTABLISHED_LISTED, ...grants.flatMap((g) => built(g, 'forward'))], dnat: grants.flatMap((g) => built(g, 'dnat')),
    });

    before(async () => {
      await ns('add', name);
      for (const f of [4, 6] as const) [pristine[f], pristineNat[f]] = [await ipt(f, '-S'), await ipt(f, '-t', 'nat', '-S')];
    });
    after(async () => {
      await ns('del', name);
    });

    it('start with forwarding twice: DNAT and FWD once, jumps once at position 1, established rule first', async () => {
      await backend.start(FSPEC);
      await ipt(4, '-t', 'nat', '-I', 'PREROUTING', '1', '-i', 'lo', '-j', 'RETURN'); // host rules above our jumps
      await ipt(6, '-I', 'FORWARD', '1', '-i', 'lo', '-j', 'ACCEPT');
      await backend.start(FSPEC);
      for (const f of [4, 6] as const) {
        const [filter, nat] = [await ipt(f, '-S'), await ipt(f, '-t', 'nat', '-S')];
        assert.equal(filter.split('\n').filter((l) => l === `-N ${N.forward}`).length, 1);
        assert.equal(nat.split('\n').filter((l) => l === `-N ${N.dnat}`).length, 1);
        assert.equal(filter.split('\n').filter((l) => l === `-A FORWARD -j ${N.forward}`).length, 1);
        assert.equal(nat.split('\n').filter((l) => l === `-A PREROUTING -j ${N.dnat}`).length, 1);
        assert.equal((await rulesOf(f, 'FORWARD'))[0], `-A FORWARD -j ${N.forward}`);
        assert.equal((await rulesOf(f, 'PREROUTING', 'nat'))[0], `-A PREROUTING -j ${N.dnat}`);
        await expectForward(f, []);
      }
      await ipt(4, '-t', 'nat', '-D', 'PREROUTING', '-i', 'lo', '-j', 'RETURN');
      await ipt(6, '-D', 'FORWARD', '-i', 'lo', '-j', 'ACCEPT');
    });

    it('a forwarding grant adds exactly its DNAT and FORWARD accept, tagged; a prefix grant its /64', async () => {
      for (const f of [4, 6] as const) {
        await backend.applyGrant(fwd[f]);
        await expectForward(f, [fwd[f]]);
        assert.deepEqual(await rulesOf(f, N.grants), []);
      }
      assert.match((await rulesOf(6, N.dnat, 'nat'))[0] ?? '', /^-A POSTERN-DNAT -s 2001:db8:1:2::\/64 .* --to-destination \[2001:db8:ff::10\]:22$/);
      await backend.applyGrant(PREFIX6);
      assert.deepEqual(await rulesOf(6, N.grants), built(PREFIX6));
      assert.match((await rulesOf(6, N.grants))[0] ?? '', /^-A POSTERN-GRANTS -s 2001:db8:1:2::\/64 -p tcp /);
    });

    it('extension replaces both rules; a new target moves them', async () => {
      for (const f of [4, 6] as const) {
        const longer = { ...fwd[f], expiresAtMs: NOW + 90_000 };
        await backend.applyGrant(longer, fwd[f]);
        await backend.applyGrant(longer, longer);
        await expectForward(f, [longer]);
        fwd[f] = longer;
      }
      const moved = { ...fwd[4], forward: { address: '198.19.0.11', port: 2200 } };
      await backend.applyGrant(moved, fwd[4]);
      await expectForward(4, [moved]);
      await backend.applyGrant(fwd[4], moved);
      await expectForward(4, [fwd[4]]);
    });

    it('reconcile removes expired and unknown DNAT/FWD rules and restores a missing live one', async () => {
      for (const f of [4, 6] as const) {
        const base: Grant = {
          id: 'x', key: 'x', family: f, address: f === 4 ? '198.18.0.9' : '2001:db8::9', services: EXTERNAL,
          forward: { address: f === 4 ? '198.19.0.10' : '2001:db8:ff::10', port: 22 }, expiresAtMs: 0,
        };
        for (const g of [{ ...base, id: 'old', expiresAtMs: NOW - 5000 }, { ...base, id: 'ghost', expiresAtMs: NOW + 500_000 }]) {
          for (const line of [...built(g, 'forward'), ...built(g, 'dnat')]) {
            const table = line.includes(N.dnat) ? 'nat' : 'filter';
            await ipt(f, '-t', table, ...line.split(' ').map((w) => w.replaceAll('"', '')));
          }
        }
        const live = (built(fwd[f], 'forward')[0] ?? '').replace(/^-A /, '-D ');
        await ipt(f, ...live.split(' ').map((w) => w.replaceAll('"', '')));
        assert.deepEqual([(await forwardChains(f)).fwd.length, (await forwardChains(f)).dnat.length], [3, 3]);
      }
      const live = [fwd[4], fwd[6], PREFIX6];
      const report = await backend.reconcile(live, NOW);
      assert.deepEqual([...report.removed].sort(), ['ghost', 'old']);
      assert.deepEqual([...report.restored].sort(), ['f4', 'f6']);
      for (const f of [4, 6] as const) await expectForward(f, [fwd[f]]);
      assert.deepEqual(await rulesOf(6, N.grants), built(PREFIX6));
      assert.deepEqual(await backend.reconcile(live, NOW), { removed: [], restored: [] });
    });

    it(`applies a forwarding grant in a median time (${TIMING_RUNS} runs)`, async (t) => {
      const times: Record<'forward' | 'plain', number[]> = { forward: [], plain: [] };
      for (let i = 0; i < TIMING_RUNS; i++) {
        const address = `198.18.1.${i + 1}`;
        const grants = {
          forward: { ...fwd[4], id: `t${i}`, address },
          plain: { ...GRANTS[4], id: `u${i}`, address },
        };
        for (const kind of ['forward', 'plain'] as const) {
          const t0 = performance.now();
          await backend.applyGrant(grants[kind]);
          times[kind].push(performance.now() - t0);
        }
      }
      const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
      t.diagnostic(`${variant.name}: new forwarding grant (filter+nat restore) median ${median(times.forward).toFixed(1)} ms; ` +
        `plain 2-service grant median ${median(times.plain).toFixed(1)} ms (${TIMING_RUNS} runs each)`);
      assert.equal((await forwardChains(4)).dnat.length, TIMING_RUNS + 1);
      const report = await backend.reconcile([fwd[4], fwd[6], PREFIX6], NOW);
      assert.equal(report.removed.length, 2 * TIMING_RUNS);
      await expectForward(4, [fwd[4]]);
      assert.deepEqual(await rulesOf(4, N.grants), []);
    });

    it('revoke removes the DNAT and the accept; the established rule stays', async () => {
      await backend.revokeGrant(fwd[4]);
      await backend.revokeGrant(fwd[4]);
      await expectForward(4, []);
      await expectForward(6, [fwd[6]]);
    });

    it('stop keepGuarding flushes grant rules only; full stop leaves pristine filter and nat tables', async () => {
      await backend.stop({ keepGuarding: true });
      for (const f of [4, 6] as const) {
        await expectForward(f, []);
        assert.deepEqual(await rulesOf(f, N.grants), []);
      }
      await backend.stop({ keepGuarding: false });
      await backend.stop({ keepGuarding: false });
      for (const f of [4, 6] as const) {
        assert.equal(await ipt(f, '-S'), pristine[f]);
        assert.equal(await ipt(f, '-t', 'nat', '-S'), pristineNat[f]);
      }
    });
  });

  describe(`iptables forwarding with real traffic: ${variant.name}`, { skip: skip ?? false }, () => {
    const host = { client: `${NS_PREFIX}${variant.short}c-${process.pid}`, router: `${NS_PREFIX}${variant.short}r-${process.pid}`,
      lan: `${NS_PREFIX}${variant.short}h-${process.pid}` };
    const { ipt, backend } = tools(variant.bins, host.router);
    const children: Tracked[] = [];
    const grant: Grant = { ...FORWARDS[4], expiresAtMs: Date.now() + 600_000 };
    const ipIn = (n: string, ...args: string[]): Promise<string> => run(['ip', '-n', n, ...args]);
    const connect = async (ms: number): Promise<TcpConnectResult> =>
      JSON.parse(await run(['ip', 'netns', 'exec', host.client, ...probeArgv(['tcp-connect', '198.18.0.1', 2222, ms])])) as TcpConnectResult;

    before(async () => {
      for (const n of Object.values(host)) await ns('add', n);
      await ipIn(host.router, 'link', 'add', 'wan', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.client);
      await ipIn(host.router, 'link', 'add', 'lan', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.lan);
      const addrs: [string, string, string][] = [
        [host.router, 'wan', '198.18.0.1/24'], [host.router, 'lan', '198.19.0.1/24'],
        [host.client, 'eth0', '198.18.0.2/24'], [host.client, 'eth0', '198.18.0.3/24'], [host.lan, 'eth0', '198.19.0.10/24'],
      ];
      for (const [n, dev, a] of addrs) await ipIn(n, 'addr', 'add', a, 'dev', dev);
      for (const [n, devs] of [[host.router, ['lo', 'wan', 'lan']], [host.client, ['lo', 'eth0']], [host.lan, ['lo', 'eth0']]] as const) {
        for (const dev of devs) await ipIn(n, 'link', 'set', dev, 'up');
      }
      await ipIn(host.lan, 'route', 'add', 'default', 'via', '198.19.0.1');
      await run(['ip', 'netns', 'exec', host.router, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
      // A router's FORWARD policy drops: only postern's accept lets the DNATed flow through.
      await ipt(4, '-P', 'FORWARD', 'DROP');
      const echo = track(spawn('ip', ['netns', 'exec', host.lan, ...probeArgv(['echo-server', 22, '198.19.0.10', 120])], { stdio: 'pipe' }));
      children.push(echo);
      await echo.waitFor(/^listening 22$/m, 10_000);
      await backend.start(FSPEC);
    });
    after(async () => {
      for (const c of children) c.child.kill('SIGKILL');
      for (const n of Object.values(host)) await ns('del', n).catch(() => undefined);
    });

    it('without a grant the external port is filtered', async () => {
      assert.equal((await connect(SILENT_MS)).result, 'timeout');
    });

    it('with a forwarding grant a TCP connect from the client reaches the LAN echo server', async () => {
      await backend.applyGrant(grant);
      const r = await connect(3000);
      assert.equal(r.result, 'connected', JSON.stringify(r));
      await children[0]?.waitFor(/^accepted 198\.18\.0\.2$/m, 2_000);
    });

    it('from another source address it stays filtered, until a prefix grant covers it', async () => {
      await ipIn(host.client, 'route', 'add', '198.18.0.1/32', 'dev', 'eth0', 'src', '198.18.0.3');
      try {
        assert.match(await ipIn(host.client, 'route', 'get', '198.18.0.1'), /src 198\.18\.0\.3/);
        assert.equal((await connect(SILENT_MS)).result, 'timeout');
        const wide: Grant = { ...grant, id: 'wide', address: '198.18.0.0', prefix: 24 };
        await backend.applyGrant(wide);
        assert.equal((await connect(3000)).result, 'connected');
        await children[0]?.waitFor(/^accepted 198\.18\.0\.3$/m, 2_000);
        await backend.revokeGrant(wide);
      } finally {
        await ipIn(host.client, 'route', 'del', '198.18.0.1/32');
      }
    });

    it('a forwarded connection outlives its grant; new connections are then filtered', async () => {
      const hold = track(spawn('ip', ['netns', 'exec', host.client, ...probeArgv(['tcp-hold', '198.18.0.1', 2222, 2])], { stdio: 'pipe' }));
      children.push(hold);
      await hold.waitFor(/^\{"result":"connected"\}$/m, 5_000);
      await backend.revokeGrant(grant);
      const last = await hold.waitFor(/^\{"result":"(ok|broken)".*$/m, 10_000);
      const result = JSON.parse(last) as TcpHoldResult;
      assert.equal(result.result, 'ok', last);
      assert.ok(result.echoes >= 5, last);
      assert.equal((await connect(SILENT_MS)).result, 'timeout');
    });

    it('stop removes every rule it added', async () => {
      await backend.stop({ keepGuarding: false });
      assert.equal(await ipt(4, '-t', 'nat', '-S'), '-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n-P OUTPUT ACCEPT\n-P POSTROUTING ACCEPT\n');
      assert.equal(await ipt(4, '-S'), '-P INPUT ACCEPT\n-P FORWARD DROP\n-P OUTPUT ACCEPT\n');
    });
  });
}

interface Tracked {
  readonly child: ChildProcess;
  /** Resolves with the first match of `re` in everything printed so far (stdout); rejects
   *  on timeout or when the process exits without printing it. */
  waitFor(re: RegExp, timeoutMs: number): Promise<string>;
}

function track(child: ChildProcess): Tracked {
  let out = '';
  let exited = false;
  const waiters = new Set<() => void>();
  const wake = (): void => waiters.forEach((w) => w());
  child.stdout?.on('data', (d: Buffer) => { out += d.toString('utf8'); wake(); });
  child.on('exit', () => { exited = true; wake(); });
  const waitFor = (re: RegExp, timeoutMs: number): Promise<string> => new Promise((resolve, reject) => {
    const check = (): void => {
      const m = re.exec(out);
      if (m === null && !exited) return;
      waiters.delete(check);
      clearTimeout(timer);
      if (m !== null) resolve(m[0]);
      else reject(new Error(`exited without printing ${re}: ${out}`));
    };
    const timer = setTimeout(() => {
      waiters.delete(check);
      reject(new Error(`nothing matching ${re} within ${timeoutMs} ms: ${out}`));
    }, timeoutMs);
    waiters.add(check);
    check();
  });
  return { child, waitFor };
}
