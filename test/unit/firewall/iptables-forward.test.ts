// SPDX-License-Identifier: MIT
// IptablesBackend with forwarding (DNAT) grants and prefix grants (src/firewall/iptables.ts),
// through a recording Runner in front of the in-memory iptables twin, whose nat table
// mirrors iptables-restore's per-block commits: which commands run, the exact restore
// scripts and their block order, and the rulesets afterwards.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SimulatedTable, simulatedRunner } from '../../../src/firewall/dry-run.ts';
import type { RunOptions, RunResult, Runner } from '../../../src/firewall/exec.ts';
import { DEFAULT_IPTABLES_BINARIES, IptablesBackend } from '../../../src/firewall/iptables.ts';
import { FORWARD_ESTABLISHED, FirewallValueError } from '../../../src/firewall/iptables-rules.ts';
import type { Family, Grant, GuardSpec } from '../../../src/firewall/types.ts';
import { memoryLogger } from '../../../src/log/logger.ts';

interface Call {
  readonly argv: readonly string[];
  readonly input: string | undefined;
}
type Hook = (argv: readonly string[], input: string | undefined, sim: Runner) => Promise<RunResult | undefined> | RunResult | undefined;

const SPEC: GuardSpec = {
  guarded: [{ proto: 'tcp', port: 22 }, { proto: 'tcp', port: 2222 }], capture: [{ proto: 'udp', port: 62201 }], forwarding: true,
};
const NOW = 1_764_150_000_000;
const F: Grant = {
  id: 'f1', key: 'bob', family: 4, address: '198.18.0.2', services: [{ proto: 'tcp', port: 2222 }],
  forward: { address: '198.19.0.10', port: 22 }, expiresAtMs: NOW + 30_000,
};
const F6: Grant = {
  ...F, id: 'f6', family: 6, address: '2001:db8:1:2::', prefix: 64, forward: { address: '2001:db8:ff::10', port: 22 },
};
const P: Grant = {
  id: 'p1', key: 'carol', family: 4, address: '198.18.0.0', prefix: 24, services: [{ proto: 'tcp', port: 22 }], expiresAtMs: NOW + 30_000,
};
const PRISTINE = '-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n';
const PRISTINE_NAT = '-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n-P OUTPUT ACCEPT\n-P POSTROUTING ACCEPT\n';
const DNAT_F = '-A POSTERN-DNAT -s 198.18.0.2/32 -p tcp -m tcp --dport 2222 -m comment --comment "postern:f1:exp=1764150030" -j DNAT --to-destination 198.19.0.10:22';
const FWD_F = '-A POSTERN-FWD -s 198.18.0.2/32 -d 198.19.0.10/32 -p tcp -m tcp --dport 22 -m conntrack --ctstate DNAT -m comment --comment "postern:f1:exp=1764150030" -j ACCEPT';

/** A backend over fresh simulated tables; `hook` may answer a command instead of the twin. */
function rig(hook?: Hook) {
  const tables = { 4: new SimulatedTable(), 6: new SimulatedTable() };
  const sim = simulatedRunner(DEFAULT_IPTABLES_BINARIES, tables);
  const calls: Call[] = [];
  const runner: Runner = async (argv, o?: RunOptions) => {
    calls.push({ argv, input: o?.input });
    return (await hook?.(argv, o?.input, sim)) ?? sim(argv, o);
  };
  const logger = memoryLogger();
  const backend = new IptablesBackend({ runner, logger });
  const rules = (f: Family, chain: string, table: 'filter' | 'nat' = 'filter') =>
    tables[f].list(chain, table).stdout.split('\n').filter((l) => l.startsWith('-A'));
  return { backend, tables, logger, rules, take: () => calls.splice(0) };
}

const cmd = (c: Call): string => c.argv.join(' ');
const chainRules = (r: ReturnType<typeof rig>, f: Family) => ({
  grants: r.rules(f, 'POSTERN-GRANTS'), fwd: r.rules(f, 'POSTERN-FWD'), dnat: r.rules(f, 'POSTERN-DNAT', 'nat'),
});

describe('IptablesBackend forwarding grants', () => {
  it('start with forwarding lists both tables and sets up FWD, then DNAT, in one restore; twice is idempotent', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    const calls = r.take();
    assert.deepEqual(calls.map(cmd), [
      'iptables -w -S', 'iptables -w -t nat -S', 'iptables-restore -w --noflush',
      'ip6tables -w -S', 'ip6tables -w -t nat -S', 'ip6tables-restore -w --noflush',
    ]);
    const script = calls[2]?.input ?? '';
    assert.match(script, /^\*filter\n[^*]*:POSTERN-FWD - \[0:0\]\n-A POSTERN-FWD -m conntrack[^*]*-I FORWARD 1 -j POSTERN-FWD\nCOMMIT\n\*nat\n:POSTERN-DNAT - \[0:0\]\n-I PREROUTING 1 -j POSTERN-DNAT\nCOMMIT\n$/);
    await r.backend.start(SPEC);
    assert.ok(r.take().every((c) => !/-I (INPUT|OUTPUT|FORWARD|PREROUTING)|POSTERN-FWD - |POSTERN-DNAT - /.test(c.input ?? '')));
    for (const f of [4, 6] as const) {
      assert.equal(r.tables[f].list().stdout.match(/^-A FORWARD -j POSTERN-FWD$/gm)?.length, 1);
      assert.equal(r.tables[f].list(undefined, 'nat').stdout.match(/^-A PREROUTING -j POSTERN-DNAT$/gm)?.length, 1);
      assert.deepEqual(r.rules(f, 'POSTERN-FWD'), [`-A POSTERN-FWD ${FORWARD_ESTABLISHED}`]);
    }
    assert.ok(r.logger.lines.some((l) => /msg=guarding .*forwarding="ipv4,ipv6"/.test(l)));
  });

  it('a new forwarding grant is one restore: FORWARD accept, then DNAT; nothing in GRANTS', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    r.take();
    await r.backend.applyGrant(F);
    const calls = r.take();
    assert.deepEqual(calls.map(cmd), ['iptables-restore -w --noflush']);
    assert.equal(calls[0]?.input, `*filter\n${FWD_F}\nCOMMIT\n*nat\n${DNAT_F}\nCOMMIT\n`);
    assert.deepEqual(chainRules(r, 4), { grants: [], fwd: [`-A POSTERN-FWD ${FORWARD_ESTABLISHED}`, FWD_F], dnat: [DNAT_F] });
  });

  it('is refused before any command when forwarding was not started', async () => {
    const r = rig();
    await r.backend.start({ ...SPEC, forwarding: false });
    assert.ok(r.take().every((c) => !c.argv.includes('nat')));
    await assert.rejects(r.backend.applyGrant(F), /no IPv4 forwarding chains/);
    assert.deepEqual(r.take(), []);
    await assert.rejects(r.backend.applyGrant({ ...F, services: [...F.services, { proto: 'udp', port: 1 }] }), FirewallValueError);
  });

  it('extension lists FWD and DNAT only, and replaces both rules in one restore', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    await r.backend.applyGrant(F);
    r.take();
    const longer = { ...F, expiresAtMs: NOW + 90_000 };
    await r.backend.applyGrant(longer, F);
    const calls = r.take();
    assert.deepEqual(calls.map(cmd), [
      'iptables -w -S POSTERN-FWD', 'iptables -w -t nat -S POSTERN-DNAT', 'iptables-restore -w --noflush',
    ]);
    assert.deepEqual(
      (calls[2]?.input ?? '').split('\n').filter((l) => l !== '').map((l) => l.startsWith('-') ? `${l.slice(0, 2)} ${/(FWD|DNAT) .*exp=(\d+)/.exec(l)?.slice(1).join(' ')}` : l),
      ['*filter', '-A FWD 1764150090', 'COMMIT', '*nat', '-A DNAT 1764150090', '-D DNAT 1764150030', 'COMMIT', '*filter', '-D FWD 1764150030', 'COMMIT'],
    );
    const after = chainRules(r, 4);
    assert.deepEqual([after.fwd.length, after.dnat.length], [2, 1]);
    assert.ok([...after.fwd.slice(1), ...after.dnat].every((l) => l.includes('exp=1764150090')));
    await r.backend.applyGrant(longer);
    await r.backend.applyGrant({ ...longer, forward: { address: '198.19.0.11', port: 22 } }, longer);
    assert.deepEqual([chainRules(r, 4).fwd.length, chainRules(r, 4).dnat.length], [2, 1]);
    assert.match(chainRules(r, 4).dnat[0] ?? '', /--to-destination 198\.19\.0\.11:22$/);
  });

  it('revoke finds the grant in every chain, removes DNAT before the accept, keeps the established rule', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    await r.backend.applyGrant(F);
    await r.backend.applyGrant({ ...F, id: 'f2', address: '198.18.0.3' });
    r.take();
    await r.backend.revokeGrant(F);
    const calls = r.take();
    assert.deepEqual(calls.map(cmd).slice(0, 3), ['iptables -w -S POSTERN-GRANTS', 'iptables -w -S POSTERN-FWD', 'iptables -w -t nat -S POSTERN-DNAT']);
    assert.match(calls[3]?.input ?? '', /^\*nat\n-D POSTERN-DNAT .*postern:f1:.*\nCOMMIT\n\*filter\n-D POSTERN-FWD .*postern:f1:.*\nCOMMIT\n$/);
    const left = chainRules(r, 4);
    assert.deepEqual([left.fwd[0], left.fwd.length, left.dnat.length], [`-A POSTERN-FWD ${FORWARD_ESTABLISHED}`, 2, 1]);
    assert.ok([...left.fwd.slice(1), ...left.dnat].every((l) => l.includes('postern:f2:')));
  });

  it('reconcile covers DNAT and FWD: expired and unknown out, missing live restored, foreign left', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    const expired = { ...F, id: 'old', address: '198.18.0.4', expiresAtMs: NOW - 1 };
    const ghost = { ...F, id: 'ghost', address: '198.18.0.7' };
    for (const g of [F, expired, ghost, F6]) await r.backend.applyGrant(g);
    r.tables[4].restore(`*filter\n${FWD_F.replace('-A', '-D')}\n-A POSTERN-FWD -i wan -j DROP\nCOMMIT\n`);
    const report = await r.backend.reconcile([F, expired, F6], NOW);
    assert.deepEqual({ removed: [...report.removed].sort(), restored: report.restored }, { removed: ['ghost', 'old'], restored: ['f1'] });
    assert.deepEqual(chainRules(r, 4), {
      grants: [], fwd: [`-A POSTERN-FWD ${FORWARD_ESTABLISHED}`, '-A POSTERN-FWD -i wan -j DROP', FWD_F], dnat: [DNAT_F],
    });
    assert.deepEqual([chainRules(r, 6).fwd.length, chainRules(r, 6).dnat.length], [2, 1]);
    assert.ok(r.logger.lines.some((l) => /level=warn .*untagged rules.* chain=POSTERN-FWD count=1/.test(l)));
    r.take();
    assert.deepEqual(await r.backend.reconcile([F, F6], NOW), { removed: [], restored: [] });
    assert.ok(r.take().every((c) => c.argv.includes('-S')));
  });

  it('stop keepGuarding flushes grant rules but keeps chains and the established rule; full stop is pristine', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    await r.backend.applyGrant(F);
    await r.backend.applyGrant(F6);
    await r.backend.stop({ keepGuarding: true });
    for (const f of [4, 6] as const) assert.deepEqual(chainRules(r, f), { grants: [], fwd: [`-A POSTERN-FWD ${FORWARD_ESTABLISHED}`], dnat: [] });
    r.take();
    await r.backend.stop({ keepGuarding: false });
    const calls = r.take();
    assert.deepEqual(calls.map(cmd).slice(0, 3), ['iptables -w -S', 'iptables -w -t nat -S', 'iptables-restore -w --noflush']);
    assert.match(calls[2]?.input ?? '', /^\*nat\n-D PREROUTING -j POSTERN-DNAT\n-F POSTERN-DNAT\n-X POSTERN-DNAT\nCOMMIT\n\*filter\n/);
    for (const f of [4, 6] as const) {
      assert.equal(r.tables[f].list().stdout, PRISTINE);
      assert.equal(r.tables[f].list(undefined, 'nat').stdout, PRISTINE_NAT);
    }
    r.take();
    await r.backend.stop({ keepGuarding: false });
    assert.deepEqual(r.take().map(cmd), ['iptables -w -S', 'ip6tables -w -S']);
  });

  it('start without forwarding removes chains an earlier forwarding start left', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    await r.backend.applyGrant(F);
    const again = new IptablesBackend({ runner: simulatedRunner(DEFAULT_IPTABLES_BINARIES, r.tables), logger: memoryLogger() });
    await again.start({ ...SPEC, forwarding: false });
    assert.doesNotMatch(r.tables[4].list().stdout, /POSTERN-FWD/);
    assert.equal(r.tables[4].list(undefined, 'nat').stdout, PRISTINE_NAT);
    assert.match(r.tables[4].list().stdout, /^-A INPUT -j POSTERN-IN$/m);
  });

  it('update that turns forwarding on sets the chains up, then grants apply', async () => {
    const r = rig();
    await r.backend.start({ ...SPEC, forwarding: false });
    await r.backend.update(SPEC);
    await r.backend.applyGrant(F);
    assert.deepEqual(chainRules(r, 4).dnat, [DNAT_F]);
    r.take();
    await r.backend.update(SPEC);
    assert.deepEqual(r.take().map(cmd), ['iptables-restore -w --noflush', 'ip6tables-restore -w --noflush']);
  });

  it('without an IPv6 nat table: warns, IPv4 forwarding works, IPv6 forwarding grants are refused', async () => {
    const broken = { code: 3, stdout: '', stderr: "ip6tables v1.8.9: can't initialize ip6tables table `nat'" };
    const r = rig((argv) => (argv[0] === 'ip6tables' && argv.includes('nat') ? broken : undefined));
    await r.backend.start(SPEC);
    assert.ok(r.logger.lines.some((l) => /level=warn .*nat table unusable.* family=6/.test(l)));
    await r.backend.applyGrant(F);
    await assert.rejects(r.backend.applyGrant(F6), /no IPv6 forwarding chains/);
    assert.doesNotMatch(r.tables[6].list().stdout, /POSTERN-FWD/);
    await r.backend.reconcile([F, F6], NOW);
    assert.ok(r.logger.lines.some((l) => /forwarding grants not applied.* family=6 ids=f6/.test(l)));
  });

  it('fails start when IPv4 nat is unusable and forwarding is wanted', async () => {
    const r = rig((argv) => (argv[0] === 'iptables' && argv.includes('nat') ? { code: 3, stdout: '', stderr: 'no nat' } : undefined));
    await assert.rejects(r.backend.start(SPEC), /iptables -w -t nat -S failed \(exit 3\): no nat/);
  });

  it('after a restore whose nat block failed, a retry lists instead of duplicating the accept', async () => {
    let once = false;
    const r = rig(async (argv, input, sim) => {
      if (!once || argv[0] !== 'iptables-restore' || !(input ?? '').includes('*nat')) return undefined;
      once = false;
      await sim(argv, { input: (input ?? '').split('*nat')[0] ?? '' }); // the filter block commits
      return { code: 1, stdout: '', stderr: 'iptables-restore: line 4 failed\n' };
    });
    await r.backend.start(SPEC);
    once = true;
    await assert.rejects(r.backend.applyGrant(F), /line 4 failed/);
    assert.deepEqual(chainRules(r, 4).dnat, []);
    r.take();
    await r.backend.applyGrant(F);
    assert.deepEqual(r.take().map(cmd), ['iptables -w -S POSTERN-FWD', 'iptables -w -t nat -S POSTERN-DNAT', 'iptables-restore -w --noflush']);
    assert.deepEqual(chainRules(r, 4), { grants: [], fwd: [`-A POSTERN-FWD ${FORWARD_ESTABLISHED}`, FWD_F], dnat: [DNAT_F] });
  });
});

describe('IptablesBackend prefix grants', () => {
  it('applies -s NET/PREFIX, reconciles without churn, extends and revokes', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    await r.backend.applyGrant(P);
    await r.backend.applyGrant(F6);
    assert.deepEqual(r.rules(4, 'POSTERN-GRANTS'), [
      '-A POSTERN-GRANTS -s 198.18.0.0/24 -p tcp -m tcp --dport 22 -m comment --comment "postern:p1:exp=1764150030" -j ACCEPT',
    ]);
    assert.match(r.rules(6, 'POSTERN-DNAT', 'nat')[0] ?? '', /^-A POSTERN-DNAT -s 2001:db8:1:2::\/64 .* --to-destination \[2001:db8:ff::10\]:22$/);
    r.take();
    assert.deepEqual(await r.backend.reconcile([P, F6], NOW), { removed: [], restored: [] });
    assert.ok(r.take().every((c) => c.argv.includes('-S')));
    await r.backend.applyGrant({ ...P, expiresAtMs: NOW + 60_000 }, P);
    assert.match(r.rules(4, 'POSTERN-GRANTS').join('\n'), /^-A POSTERN-GRANTS -s 198\.18\.0\.0\/24 .*exp=1764150060" -j ACCEPT$/);
    assert.equal(r.rules(4, 'POSTERN-GRANTS').length, 1);
    await r.backend.revokeGrant(P);
    await r.backend.revokeGrant(F6);
    assert.deepEqual([chainRules(r, 4).grants, chainRules(r, 6).dnat, chainRules(r, 6).fwd.length], [[], [], 1]);
  });

  it('rejects a prefix with host bits set before running anything', async () => {
    const r = rig();
    await assert.rejects(r.backend.applyGrant({ ...P, address: '198.18.0.1' }), /has host bits set/);
    await assert.rejects(r.backend.applyGrant({ ...P, prefix: 33 }), FirewallValueError);
    assert.deepEqual(r.take(), []);
  });
});
