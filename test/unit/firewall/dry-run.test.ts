// SPDX-License-Identifier: MIT
// DryRunBackend and the in-memory iptables twin (src/firewall/dry-run.ts): one info line
// per command with the exact argv and restore script, grant state kept in memory, and the
// twin refusing what iptables-restore refuses (atomically per `*table ... COMMIT` block),
// with a nat table for forwarding grants.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DryRunBackend, SimulatedTable, simulatedRunner } from '../../../src/firewall/dry-run.ts';
import { DEFAULT_IPTABLES_BINARIES } from '../../../src/firewall/iptables.ts';
import type { Grant, GuardSpec } from '../../../src/firewall/types.ts';
import { memoryLogger } from '../../../src/log/logger.ts';

const SPEC: GuardSpec = { guarded: [{ proto: 'tcp', port: 22 }], capture: [{ proto: 'udp', port: 62201 }] };
const NOW = 1_764_150_000_000;
const G: Grant = {
  id: 'g1', key: 'alice', family: 4, address: '198.18.0.2', services: [{ proto: 'tcp', port: 22 }], expiresAtMs: NOW + 30_000,
};

/** The argv and stdin fields of every "would run" line, decoded from logfmt. */
function commands(lines: readonly string[]): { argv: string[]; stdin: string | undefined }[] {
  return lines
    .filter((l) => l.startsWith('level=info') && l.includes('msg="would run"'))
    .map((l) => {
      const argv = /argv=("(?:[^"\\]|\\.)*")/.exec(l)?.[1] ?? '""';
      const stdin = /stdin=("(?:[^"\\]|\\.)*")/.exec(l)?.[1];
      return { argv: JSON.parse(JSON.parse(argv) as string) as string[], stdin: stdin === undefined ? undefined : (JSON.parse(stdin) as string) };
    });
}

describe('DryRunBackend', () => {
  it('logs one info line per command with the exact argv and restore script', async () => {
    const logger = memoryLogger('info');
    const b = new DryRunBackend({ logger });
    assert.equal(b.name, 'dry-run');
    await b.start(SPEC);
    await b.applyGrant(G);
    const cmds = commands(logger.lines);
    assert.deepEqual(cmds.map((c) => c.argv.join(' ')), [
      'iptables -w -S', 'iptables-restore -w --noflush', 'ip6tables -w -S', 'ip6tables-restore -w --noflush',
      'iptables-restore -w --noflush',
    ]);
    assert.equal(cmds[0]?.stdin, undefined);
    assert.equal(
      cmds[4]?.stdin,
      '*filter\n-A POSTERN-GRANTS -s 198.18.0.2/32 -p tcp -m tcp --dport 22 -m comment --comment "postern:g1:exp=1764150030" -j ACCEPT\nCOMMIT\n',
    );
    assert.ok(logger.lines.every((l) => !l.includes('\n')));
  });

  it('keeps grants in memory so reconcile reports make sense', async () => {
    const b = new DryRunBackend({ logger: memoryLogger('warn') });
    await b.start(SPEC);
    await b.applyGrant(G);
    await b.applyGrant({ ...G, id: 'g2', expiresAtMs: NOW - 1 });
    assert.deepEqual(await b.reconcile([G], NOW), { removed: ['g2'], restored: [] });
    await b.revokeGrant(G);
    assert.deepEqual(await b.reconcile([G], NOW), { removed: [], restored: ['g1'] });
    await b.update({ ...SPEC, guarded: [{ proto: 'tcp', port: 443 }] });
    assert.match(b.tables[4].list('POSTERN-IN').stdout, /--dport 443 -j DROP/);
    await b.stop({ keepGuarding: false });
    assert.equal(b.tables[4].list().stdout, '-P INPUT ACCEPT\n-P FORWARD ACCEPT\n-P OUTPUT ACCEPT\n');
  });

  it('mirrors forwarding: nat listings and two-table restores are logged and simulated', async () => {
    const logger = memoryLogger('info');
    const b = new DryRunBackend({ logger });
    await b.start({ ...SPEC, forwarding: true });
    const fwd: Grant = { ...G, id: 'f1', services: [{ proto: 'tcp', port: 2222 }], forward: { address: '198.19.0.10', port: 22 } };
    await b.applyGrant(fwd);
    const cmds = commands(logger.lines);
    assert.deepEqual(cmds.map((c) => c.argv.join(' ')).slice(0, 3), ['iptables -w -S', 'iptables -w -t nat -S', 'iptables-restore -w --noflush']);
    assert.match(cmds.at(-1)?.stdin ?? '', /^\*filter\n-A POSTERN-FWD .*\nCOMMIT\n\*nat\n-A POSTERN-DNAT .* --to-destination 198\.19\.0\.10:22\nCOMMIT\n$/);
    assert.match(b.tables[4].list(undefined, 'nat').stdout, /^-A PREROUTING -j POSTERN-DNAT$/m);
    assert.deepEqual(await b.reconcile([], NOW), { removed: ['f1'], restored: [] });
    await b.stop({ keepGuarding: false });
    assert.equal(b.tables[4].list(undefined, 'nat').stdout, '-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n-P OUTPUT ACCEPT\n-P POSTROUTING ACCEPT\n');
  });

  it('logs the configured binaries', async () => {
    const logger = memoryLogger('info');
    const b = new DryRunBackend({ logger, binaries: { iptables: '/sbin/iptables' }, chainPrefix: 'PT' });
    await b.start(SPEC);
    assert.equal(commands(logger.lines)[0]?.argv.join(' '), '/sbin/iptables -w -S');
    assert.match(b.tables[4].list().stdout, /^-N PT-GRANTS$/m);
  });
});

describe('SimulatedTable', () => {
  it('lists like iptables -S and refuses an unknown chain', () => {
    const t = new SimulatedTable();
    assert.equal(t.list('INPUT').stdout, '-P INPUT ACCEPT\n');
    assert.deepEqual(t.list('NOPE'), { code: 1, stdout: '', stderr: 'iptables: No chain/target/match by that name.\n' });
  });

  it('applies a transaction atomically: a failing line leaves the table unchanged', () => {
    const t = new SimulatedTable();
    assert.equal(t.restore('*filter\n:A - [0:0]\n-A A -j ACCEPT\nCOMMIT\n').code, 0);
    const before = t.list().stdout;
    const r = t.restore('*filter\n-A A -j DROP\n-D A -j RETURN\nCOMMIT\n');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /line 3 failed: Bad rule/);
    assert.equal(t.list().stdout, before);
  });

  const refusals: [string, string, RegExp][] = [
    ['jump to a missing chain', '-A INPUT -j NOPE', /Couldn't load target/],
    ['delete a non-empty chain', '-X A', /not empty/],
    ['delete a referenced chain', '-X B', /Too many links/],
    ['create an existing chain', '-N A', /already exists/],
    ['insert past the end', '-I INPUT 3 -j ACCEPT', /insertion too big/],
    ['append to a missing chain', '-A NOPE -j ACCEPT', /No chain/],
    ['an unknown line', 'garbage', /cannot parse/],
  ];
  for (const [name, line, why] of refusals) {
    it(`refuses to ${name}`, () => {
      const t = new SimulatedTable();
      t.restore('*filter\n:A - [0:0]\n:B - [0:0]\n-A A -j B\nCOMMIT\n');
      const r = t.restore(`*filter\n${line}\nCOMMIT\n`);
      assert.equal(r.code, 1);
      assert.match(r.stderr, why);
    });
  }

  it('has a nat table with its own built-in chains and DNAT target', () => {
    const t = new SimulatedTable();
    assert.equal(t.list(undefined, 'nat').stdout, '-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n-P OUTPUT ACCEPT\n-P POSTROUTING ACCEPT\n');
    assert.equal(t.restore('*nat\n:D - [0:0]\n-A D -p tcp -m tcp --dport 1 -j DNAT --to-destination 198.19.0.10:22\n-I PREROUTING 1 -j D\nCOMMIT\n').code, 0);
    assert.equal(t.list('D', 'nat').stdout, '-N D\n-A D -p tcp -m tcp --dport 1 -j DNAT --to-destination 198.19.0.10:22\n');
    assert.equal(t.list('D').code, 1); // not in filter
    assert.match(t.restore('*filter\n-A INPUT -j DNAT --to-destination 1.2.3.4:1\nCOMMIT\n').stderr, /Couldn't load target `DNAT'/);
    assert.match(t.restore('*nat\n-X D\nCOMMIT\n').stderr, /not empty/);
  });

  it('commits block by block: a failing block leaves the earlier blocks applied, not the later ones', () => {
    const t = new SimulatedTable();
    const r = t.restore('*filter\n:A - [0:0]\nCOMMIT\n*nat\n:D - [0:0]\n-D D -j ACCEPT\nCOMMIT\n*filter\n:B - [0:0]\nCOMMIT\n');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /line 6 failed: Bad rule/);
    assert.match(t.list().stdout, /^-N A$/m);
    assert.doesNotMatch(t.list().stdout, /^-N B$/m);
    assert.equal(t.list('D', 'nat').code, 1);
    assert.match(t.restore('*filter\n:C - [0:0]\n').stderr, /COMMIT expected/);
    assert.match(t.restore('*mangle\nCOMMIT\n').stderr, /expected \*filter or \*nat/);
    assert.equal(t.list('C').code, 1);
  });

  it('declaring an existing chain flushes it (iptables-restore --noflush semantics)', () => {
    const t = new SimulatedTable();
    t.restore('*filter\n:A - [0:0]\n-A A -j ACCEPT\nCOMMIT\n');
    t.restore('*filter\n:A - [0:0]\nCOMMIT\n');
    assert.equal(t.list('A').stdout, '-N A\n');
  });

  it('the simulated runner refuses commands the backend never runs', async () => {
    const run = simulatedRunner(DEFAULT_IPTABLES_BINARIES, { 4: new SimulatedTable(), 6: new SimulatedTable() });
    assert.equal((await run(['iptables', '-F'])).code, 2);
    assert.equal((await run(['sh', '-c', 'true'])).code, 2);
    assert.equal((await run(['iptables-restore', '-w', '--noflush'], { input: 'x' })).code, 1);
    assert.equal((await run(['iptables', '-w', '-t', 'mangle', '-S'])).code, 2);
    assert.equal((await run(['iptables', '-w', '-t', 'nat', '-S', 'A', 'B'])).code, 2);
    assert.equal((await run(['ip6tables', '-w', '-t', 'nat', '-S'])).code, 0);
  });
});
