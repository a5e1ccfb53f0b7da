// SPDX-License-Identifier: MIT
// IptablesBackend operation sequences (src/firewall/iptables.ts) through a recording Runner
// in front of the in-memory iptables twin (SimulatedTable): which commands run, in which
// order, with which restore scripts, and what the ruleset looks like afterwards.
// fwknop #14, PR #15 and #158 (duplicate rules on re-authorisation) are acceptance tests
// here (STYLE.md principle 9).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SimulatedTable, simulatedRunner } from '../../../src/firewall/dry-run.ts';
import type { RunOptions, RunResult, Runner } from '../../../src/firewall/exec.ts';
import { DEFAULT_IPTABLES_BINARIES, IptablesBackend } from '../../../src/firewall/iptables.ts';
import type { IptablesBinaries } from '../../../src/firewall/iptables.ts';
import { FirewallValueError } from '../../../src/firewall/iptables-rules.ts';
import type { Grant, GuardSpec } from '../../../src/firewall/types.ts';
import { memoryLogger } from '../../../src/log/logger.ts';

interface Call {
  readonly argv: readonly string[];
  readonly input: string | undefined;
}

const SPEC: GuardSpec = {
  guarded: [{ proto: 'tcp', port: 22 }, { proto: 'tcp', port: 443 }],
  capture: [{ proto: 'udp', port: 62201 }, { proto: 'tcp', port: 7000 }],
};
const NOW = 1_764_150_000_000;
const G: Grant = {
  id: 'g1', key: 'alice', family: 4, address: '198.18.0.2',
  services: [{ proto: 'tcp', port: 22 }, { proto: 'tcp', port: 443 }], expiresAtMs: NOW + 30_000,
};
const G6: Grant = { ...G, id: 'g6', family: 6, address: '2001:db8::2' };
const PRISTINE = '-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n';

/** A backend over fresh simulated tables; `fail` lets a test break chosen commands. */
function rig(opts: { binaries?: IptablesBinaries; fail?: (argv: readonly string[]) => RunResult | 'reject' | undefined } = {}) {
  const bins = opts.binaries ?? DEFAULT_IPTABLES_BINARIES;
  const tables = { 4: new SimulatedTable(), 6: new SimulatedTable() };
  const sim = simulatedRunner(bins, tables);
  const calls: Call[] = [];
  const runner: Runner = async (argv, o?: RunOptions) => {
    calls.push({ argv, input: o?.input });
    const failure = opts.fail?.(argv);
    if (failure === 'reject') throw new Error(`cannot run ${argv[0]}: ENOENT`);
    return failure ?? sim(argv, o);
  };
  const logger = memoryLogger();
  const backend = new IptablesBackend({ runner, logger, binaries: bins });
  const grants = (f: 4 | 6) => tables[f].list('POSTERN-GRANTS').stdout.split('\n').filter((l) => l.startsWith('-A'));
  return { backend, calls, tables, logger, grants, take: () => calls.splice(0) };
}

const cmd = (c: Call): string => c.argv.join(' ');
const scriptLines = (c: Call | undefined): string[] => (c?.input ?? '').split('\n').filter((l) => l !== '');

describe('IptablesBackend', () => {
  it('constructor runs nothing', () => {
    const r = rig();
    assert.equal(r.backend.name, 'iptables');
    assert.equal(r.calls.length, 0);
  });

  it('start lists then restores each family; a second start adds no jump', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    assert.deepEqual(r.take().map(cmd), [
      'iptables -w -S', 'iptables-restore -w --noflush', 'ip6tables -w -S', 'ip6tables-restore -w --noflush',
    ]);
    await r.backend.start(SPEC);
    // An intact ruleset this process wrote is listed, not rewritten (the periodic start).
    assert.deepEqual(r.take().map(cmd), ['iptables -w -S', 'ip6tables -w -S']);
    // A rule gone behind postern's back, or a jump moved: rewritten, still with one jump.
    r.tables[4].restore('*filter\n-D POSTERN-IN -i lo -j RETURN\nCOMMIT\n');
    r.tables[6].restore('*filter\n-I INPUT 1 -p tcp -j ACCEPT\nCOMMIT\n');
    await r.backend.start(SPEC);
    const second = r.take();
    assert.equal(second.length, 4);
    assert.ok(second.every((c) => !/-I OUTPUT/.test(c.input ?? '')));
    for (const f of [4, 6] as const) {
      const listing = r.tables[f].list().stdout;
      assert.equal(listing.match(/^-A INPUT -j POSTERN-IN$/gm)?.length, 1);
      assert.equal(listing.match(/^-A OUTPUT -j POSTERN-OUT$/gm)?.length, 1);
      assert.equal(listing.match(/^-A POSTERN-IN /gm)?.length, 8); // lo return, 2 capture, 2 established, grants jump, 2 drops
    }
  });

  it('start puts a displaced jump back at position 1 and keeps grants', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    await r.backend.applyGrant(G);
    r.tables[4].restore('*filter\n-I INPUT 1 -i lo -j ACCEPT\nCOMMIT\n');
    await r.backend.start(SPEC);
    assert.match(r.tables[4].list('INPUT').stdout, /^-P INPUT ACCEPT\n-A INPUT -j POSTERN-IN\n-A INPUT -i lo -j ACCEPT\n$/);
    assert.equal(r.grants(4).length, 2);
  });

  it('a new grant costs exactly one spawn: one restore with one rule per service', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    r.take();
    await r.backend.applyGrant(G);
    const calls = r.take();
    assert.deepEqual(calls.map(cmd), ['iptables-restore -w --noflush']);
    assert.deepEqual(scriptLines(calls[0]), [
      '*filter',
      '-A POSTERN-GRANTS -s 198.18.0.2/32 -p tcp -m tcp --dport 22 -m comment --comment "postern:g1:exp=1764150030" -j ACCEPT',
      '-A POSTERN-GRANTS -s 198.18.0.2/32 -p tcp -m tcp --dport 443 -m comment --comment "postern:g1:exp=1764150030" -j ACCEPT',
      'COMMIT',
    ]);
  });

  it('extension is one listing and one restore, adds before deletes, no duplicates (fwknop #14/#158)', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    await r.backend.applyGrant(G);
    r.take();
    const longer = { ...G, expiresAtMs: NOW + 90_000 };
    await r.backend.applyGrant(longer, G);
    const calls = r.take();
    assert.deepEqual(calls.map(cmd), ['iptables -w -S POSTERN-GRANTS', 'iptables-restore -w --noflush']);
    const ops = scriptLines(calls[1]).slice(1, -1).map((l) => `${l.slice(0, 2)} ${/exp=(\d+)/.exec(l)?.[1]}`);
    assert.deepEqual(ops, ['-A 1764150090', '-A 1764150090', '-D 1764150030', '-D 1764150030']);
    assert.equal(r.grants(4).length, 2);
    assert.ok(r.grants(4).every((l) => l.includes('exp=1764150090')));
    // Re-authorising again, and even without `previous`, never duplicates.
    await r.backend.applyGrant(longer, longer);
    await r.backend.applyGrant(longer);
    assert.equal(r.grants(4).length, 2);
  });

  it('extension tolerates previous rules that are already gone', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    await r.backend.applyGrant(G);
    r.tables[4].restore('*filter\n-F POSTERN-GRANTS\nCOMMIT\n');
    await r.backend.applyGrant({ ...G, expiresAtMs: NOW + 60_000 }, G);
    assert.equal(r.grants(4).length, 2);
  });

  it('extension that changes the services replaces the set exactly', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    await r.backend.applyGrant(G);
    const next: Grant = { ...G, services: [{ proto: 'tcp', port: 443 }, { proto: 'udp', port: 53 }], expiresAtMs: NOW + 60_000 };
    await r.backend.applyGrant(next, G);
    assert.deepEqual(r.grants(4).map((l) => /-p (\w+) -m \w+ --dport (\d+)/.exec(l)?.slice(1).join('/')), ['tcp/443', 'udp/53']);
  });

  it('revoke removes only that grant; revoking an absent grant succeeds without a restore', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    await r.backend.applyGrant(G);
    await r.backend.applyGrant({ ...G, id: 'g2', address: '198.18.0.3' });
    await r.backend.revokeGrant(G);
    assert.ok(r.grants(4).every((l) => l.includes('postern:g2:')));
    assert.equal(r.grants(4).length, 2);
    r.take();
    await r.backend.revokeGrant(G);
    assert.deepEqual(r.take().map(cmd), ['iptables -w -S POSTERN-GRANTS']);
  });

  it('reconcile removes expired and unknown rules, restores missing live ones, leaves foreign rules', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    const expired = { ...G, id: 'old', expiresAtMs: NOW - 1 };
    const unknown = { ...G, id: 'ghost', address: '198.18.0.7' };
    for (const g of [G, expired, unknown, G6]) await r.backend.applyGrant(g);
    r.tables[4].restore('*filter\n-A POSTERN-GRANTS -s 10.0.0.0/8 -j ACCEPT\nCOMMIT\n');
    const missing = r.grants(4).find((l) => l.includes('postern:g1:') && l.includes('--dport 443')) ?? '';
    r.tables[4].restore(`*filter\n${missing.replace('-A', '-D')}\nCOMMIT\n`);
    const report = await r.backend.reconcile([G, expired, G6], NOW);
    assert.deepEqual({ removed: [...report.removed].sort(), restored: report.restored }, { removed: ['ghost', 'old'], restored: ['g1'] });
    assert.equal(r.grants(4).filter((l) => l.includes('postern:g1:exp=1764150030')).length, 2);
    assert.equal(r.grants(4).filter((l) => !l.includes('postern:')).length, 1);
    assert.equal(r.grants(4).length, 3);
    assert.equal(r.grants(6).length, 2);
    assert.ok(r.logger.lines.some((l) => /level=warn .*untagged rules.* count=1/.test(l)));
    // A second pass finds nothing to do and runs no restore.
    r.take();
    assert.deepEqual(await r.backend.reconcile([G, G6], NOW), { removed: [], restored: [] });
    assert.ok(r.take().every((c) => c.argv.includes('-S')));
  });

  it('reconcile removes rules whose tag expired even when the id is live, and duplicates', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    await r.backend.applyGrant(G);
    const dup = r.grants(4)[0] ?? '';
    r.tables[4].restore(`*filter\n${dup}\nCOMMIT\n`);
    assert.equal(r.grants(4).length, 3);
    assert.deepEqual(await r.backend.reconcile([G], NOW), { removed: [], restored: [] });
    assert.equal(r.grants(4).length, 2);
    const report = await r.backend.reconcile([G], G.expiresAtMs);
    assert.deepEqual(report, { removed: ['g1'], restored: [] });
    assert.equal(r.grants(4).length, 0);
  });

  it('reconcile reports an unknown id found in both families once', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    await r.backend.applyGrant({ ...G, id: 'ghost' });
    await r.backend.applyGrant({ ...G6, id: 'ghost' });
    assert.deepEqual(await r.backend.reconcile([], NOW), { removed: ['ghost'], restored: [] });
    assert.deepEqual([r.grants(4).length, r.grants(6).length], [0, 0]);
  });

  it('an extension that moves a grant to the other family removes the old rules', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    await r.backend.applyGrant(G);
    await r.backend.applyGrant({ ...G6, id: G.id }, G);
    assert.deepEqual([r.grants(4).length, r.grants(6).length], [0, 2]);
  });

  it('reconcile treats an invalid live grant as expired (fail closed)', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    await r.backend.applyGrant(G);
    const report = await r.backend.reconcile([{ ...G, address: 'not-an-address' }], NOW);
    assert.deepEqual(report, { removed: ['g1'], restored: [] });
    assert.ok(r.logger.lines.some((l) => /level=error .*invalid live grants.* ids=g1/.test(l)));
  });

  it('rejects invalid values before running anything', async () => {
    const r = rig();
    await assert.rejects(r.backend.applyGrant({ ...G, address: '1.2.3.4 -j DROP' }), FirewallValueError);
    await assert.rejects(r.backend.applyGrant(G, { ...G, id: 'BAD' }), FirewallValueError);
    await assert.rejects(r.backend.revokeGrant({ ...G, id: 'x;y' }), FirewallValueError);
    await assert.rejects(r.backend.start({ ...SPEC, guarded: [{ proto: 'tcp', port: 0 }] }), FirewallValueError);
    assert.equal(r.calls.length, 0);
  });

  it('stop keepGuarding flushes grants only; full stop restores the pristine tables', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    await r.backend.applyGrant(G);
    await r.backend.applyGrant(G6);
    await r.backend.stop({ keepGuarding: true });
    assert.deepEqual([r.grants(4).length, r.grants(6).length], [0, 0]);
    assert.match(r.tables[4].list().stdout, /-A INPUT -j POSTERN-IN/);
    await r.backend.stop({ keepGuarding: false });
    assert.equal(r.tables[4].list().stdout, PRISTINE);
    assert.equal(r.tables[6].list().stdout, PRISTINE);
    r.take();
    await r.backend.stop({ keepGuarding: false });
    assert.deepEqual(r.take().map(cmd), ['iptables -w -S', 'ip6tables -w -S']);
  });

  it('a failed full stop still flushes the grants and reports the error', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    await r.backend.applyGrant(G);
    r.tables[4].restore('*filter\n-A FORWARD -j POSTERN-GRANTS\nCOMMIT\n');
    await assert.rejects(r.backend.stop({ keepGuarding: false }), /iptables-restore -w --noflush failed \(exit 1\)/);
    assert.equal(r.grants(4).length, 0);
  });

  it('skips IPv6 with a warning when ip6tables is unusable', async () => {
    for (const failure of ['reject', { code: 3, stdout: '', stderr: "can't initialize ip6tables table `filter'" }] as const) {
      const r = rig({ fail: (argv) => (argv[0] === 'ip6tables' ? failure : undefined) });
      await r.backend.start(SPEC);
      assert.ok(r.logger.lines.some((l) => /level=warn .*ip6tables unusable/.test(l)));
      r.take();
      await r.backend.applyGrant(G);
      await assert.rejects(r.backend.applyGrant(G6), /ip6tables is unusable/);
      await r.backend.revokeGrant(G6);
      await r.backend.reconcile([G, G6], NOW);
      await r.backend.stop({ keepGuarding: false });
      assert.ok(r.take().every((c) => c.argv[0]?.startsWith('iptables')));
      assert.ok(r.logger.lines.some((l) => /IPv6 grants not applied.* count=1/.test(l)));
    }
  });

  it('fails start when IPv4 iptables is unusable', async () => {
    const r = rig({ fail: (argv) => (argv[0] === 'iptables' ? 'reject' : undefined) });
    await assert.rejects(r.backend.start(SPEC), /cannot run iptables/);
  });

  it('a failing restore rejects with its stderr and does not block later operations', async () => {
    let broken = true;
    const r = rig({
      fail: (argv) => (broken && argv[0] === 'iptables-restore' ? { code: 4, stdout: '', stderr: 'line 2 failed\n' } : undefined),
    });
    await assert.rejects(r.backend.start(SPEC), /iptables-restore -w --noflush failed \(exit 4\): line 2 failed$/);
    broken = false;
    await r.backend.start(SPEC);
    await r.backend.applyGrant(G);
    assert.equal(r.grants(4).length, 2);
  });

  it('serializes concurrent operations: no listing is interleaved with another restore', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    await r.backend.applyGrant(G);
    r.take();
    const a = r.backend.applyGrant({ ...G, expiresAtMs: NOW + 60_000 }, G);
    const b = r.backend.reconcile([{ ...G, expiresAtMs: NOW + 60_000 }], NOW);
    const c = r.backend.revokeGrant(G);
    await Promise.all([a, b, c]);
    assert.deepEqual(r.take().map((x) => x.argv[0]), [
      'iptables', 'iptables-restore', 'iptables', 'ip6tables', 'iptables', 'iptables-restore',
    ]);
    assert.equal(r.grants(4).length, 0);
  });

  it('uses configured binaries', async () => {
    const binaries = {
      iptables: '/usr/sbin/xtables-nft-multi', ip6tables: '/opt/bin/ip6tables',
      iptablesRestore: '/opt/bin/iptables-restore', ip6tablesRestore: '/opt/bin/ip6tables-restore',
    };
    const r = rig({ binaries });
    await r.backend.start(SPEC);
    assert.deepEqual(r.take().map((c) => c.argv[0]), [
      binaries.iptables, binaries.iptablesRestore, binaries.ip6tables, binaries.ip6tablesRestore,
    ]);
  });

  it('uses a chain prefix throughout', async () => {
    const tables = { 4: new SimulatedTable(), 6: new SimulatedTable() };
    const backend = new IptablesBackend({
      runner: simulatedRunner(DEFAULT_IPTABLES_BINARIES, tables), logger: memoryLogger(), chainPrefix: 'PT',
    });
    await backend.start(SPEC);
    await backend.applyGrant(G);
    assert.match(tables[4].list().stdout, /^-A INPUT -j PT-IN$/m);
    assert.equal(tables[4].list('PT-GRANTS').stdout.split('\n').filter((l) => l.startsWith('-A PT-GRANTS')).length, 2);
    await backend.stop({ keepGuarding: false });
    assert.equal(tables[4].list().stdout, PRISTINE);
  });
});

describe('IptablesBackend: applyChanges (a GrantManager batch)', () => {
  const host = (i: number, f: 4 | 6 = 4): Grant => (f === 4 ? { ...G, id: `h${i}`, address: `198.18.1.${i}` } : { ...G6, id: `s${i}`, address: `2001:db8::1:${i}` });

  it('new grants of both families: one restore per family, no listing', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    r.take();
    await r.backend.applyChanges([1, 2, 3].flatMap((i) => [{ op: 'apply' as const, grant: host(i) }, { op: 'apply' as const, grant: host(i, 6) }]));
    assert.deepEqual(r.take().map(cmd), ['iptables-restore -w --noflush', 'ip6tables-restore -w --noflush']);
    assert.equal(r.grants(4).length, 6);
    assert.equal(r.grants(6).length, 6);
  });

  it('opens, an extension and a revocation: one listing and one restore, adds before deletes', async () => {
    const r = rig();
    await r.backend.start(SPEC);
    await r.backend.applyGrant(G);
    await r.backend.applyGrant(host(9));
    r.take();
    const longer = { ...G, expiresAtMs: NOW + 90_000 };
    await r.backend.applyChanges([{ op: 'revoke', grant: host(9) }, { op: 'apply', grant: host(1) }, { op: 'apply', grant: longer, previous: G }]);
    const calls = r.take();
    assert.deepEqual(calls.map(cmd), ['iptables -w -S POSTERN-GRANTS', 'iptables-restore -w --noflush']);
    const lines = scriptLines(calls[1]);
    assert.ok(lines.findLastIndex((l) => l.startsWith('-A')) < lines.findIndex((l) => l.startsWith('-D')), 'adds first: the extension has no gap');
    const rules = r.grants(4);
    assert.equal(rules.length, 4);
    assert.ok(rules.every((l) => !l.includes('postern:h9:')));
    assert.equal(rules.filter((l) => l.includes(`postern:g1:exp=${(NOW + 90_000) / 1000}`)).length, 2, 'extended, no duplicate');
  });

  it('a batch whose restore failed is safe to retry one by one: no duplicates', async () => {
    let fail = false;
    const r = rig({ fail: (argv) => (fail && argv[0] === 'iptables-restore' ? { code: 4, stdout: '', stderr: 'iptables-restore: line 3 failed\n' } : undefined) });
    await r.backend.start(SPEC);
    fail = true;
    await assert.rejects(r.backend.applyChanges([{ op: 'apply', grant: host(1) }, { op: 'apply', grant: host(2) }]), /line 3 failed/);
    fail = false;
    r.take();
    await r.backend.applyChanges([{ op: 'apply', grant: host(1) }]);
    assert.deepEqual(r.take().map(cmd), ['iptables -w -S POSTERN-GRANTS', 'iptables-restore -w --noflush'], 'marked installed: the retry lists');
    await r.backend.applyChanges([{ op: 'apply', grant: host(2) }]);
    assert.equal(r.grants(4).length, 4);
  });
});
