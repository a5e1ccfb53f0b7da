// SPDX-License-Identifier: MIT
// DryRunBackend and the in-memory iptables twin (src/firewall/dry-run.ts): one info line
// per command with the exact argv and restore script, grant state kept in memory, and the
// twin refusing what iptables-restore refuses (atomically).

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
  });
});
