// SPDX-License-Identifier: MIT
// Property tests for the knockd.conf importer (STYLE.md principle 12b), with fast-check:
// - importKnockd never throws, on random text and on random configs built from knockd's own
//   directives, and whatever it emits passes the daemon's validation;
// - shellWords agrees with the real /bin/sh: whenever it accepts a command, sh splits the
//   same text into exactly the same words (differential test; sh only ever runs `set --`
//   and printf, in an empty temporary directory with an empty environment);
// - the iptables grant recogniser does not depend on option order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { importKnockd } from '../../../src/config/import-knockd.ts';
import { parseIptablesRule } from '../../../src/config/knockd-iptables.ts';
import { shellWords } from '../../../src/config/shell-words.ts';
import { validateConfig } from '../../../src/config/load.ts';

function assertLoads(r: ReturnType<typeof importKnockd>): void {
  for (const d of r.doors) {
    assert.ok(d.services !== undefined || d.start !== undefined, 'every door has an action');
    assert.ok(!(d.start?.[0] ?? '').includes('%IP%'));
  }
  if (r.doors.length === 0) return;
  const guarded = [...new Set(r.doors.flatMap((d) => d.services ?? []))];
  const result = validateConfig({ device: 'x', guarded: guarded.length > 0 ? guarded : ['tcp/60022'], keys: [], doors: r.doors });
  assert.equal(result.ok, r.valid, JSON.stringify(result.ok ? r.doors : result.errors));
}

test('random text: importKnockd never throws and reports, never half-converts', () => {
  fc.assert(fc.property(fc.string({ maxLength: 400 }), (text) => {
    const r = importKnockd(text);
    assert.ok(r.converted <= r.total);
    assertLoads(r);
  }), { numRuns: 2000 });
});

const KEYS = ['Sequence', 'sequence', 'One_Time_Sequences', 'Seq_Timeout', 'Timeout', 'TCPFlags', 'Target', 'Start_Command',
  'Command', 'Start_Command_6', 'Command_6', 'Stop_Command', 'Stop_Command_6', 'Cmd_Timeout', 'UseSyslog', 'Interface', 'Bogus'];
const VALUES = ['7000,8000:udp,9000', '1', '70000', '7000:sctp', '12,13:TCP', '', '0', '25', '86401', 'syn,!ack', 'fin,bogus',
  '192.0.2.1', '2001:db8::1', 'host.example', '/f.ots', '/sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT',
  '/sbin/iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT', 'ip6tables -A INPUT -s %IP% -p udp --dport 53 -j ACCEPT',
  'ip6tables -D INPUT -s %IP% -p udp --dport 53 -j ACCEPT', '/bin/x "%IP%" \'a b\'', '/bin/x | y', '%IP%', 'eval x', '/bin/x $HOME'];
const line = fc.oneof(
  fc.tuple(fc.constantFrom(...KEYS), fc.constantFrom(' = ', '=', ' '), fc.constantFrom(...VALUES)).map(([k, eq, v]) => `\t${k}${eq}${v}`),
  fc.constantFrom('[options]', '[door]', '[my door]', '[Options]', '[]', '# c', '', '[x]'),
);

test('random knockd-shaped configs: never throws; every emitted door loads', () => {
  fc.assert(fc.property(fc.array(line, { maxLength: 30 }), (lines) => {
    assertLoads(importKnockd(lines.join(fc.sample(fc.constantFrom('\n', '\r\n'), 1)[0] ?? '\n')));
  }), { numRuns: 1500 });
});

const SH_CHARS = [...'ab%IP=/-. \t\'"$`\\|&;<>()*?[]{}~#!:,@+_\n'];
/** Mostly characters shellWords accepts, so that many commands reach the comparison. */
const SH_EASY = [...'ab%IP=/-. \t\'":,@+_'];
const shChar = fc.oneof({ arbitrary: fc.constantFrom(...SH_EASY), weight: 9 }, { arbitrary: fc.constantFrom(...SH_CHARS), weight: 1 });

test('differential: shellWords accepts only what /bin/sh merely splits, and splits it the same way', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-sh-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  let accepted = 0;
  fc.assert(fc.property(fc.array(shChar, { minLength: 1, maxLength: 24 }).map((cs) => `/bin/x ${cs.join('')}`), (cmd) => {
    const mine = shellWords(cmd);
    if (!mine.ok) return;
    accepted++;
    const out = execFileSync('/bin/sh', ['-c', `set -- ${cmd}\nprintf '%s\\0' "$@"`], { cwd: dir, env: {}, encoding: 'utf8' });
    assert.deepEqual(mine.value, out.split('\0').slice(0, -1), cmd);
    assert.deepEqual(readdirSync(dir), [], 'sh created nothing');
  }), { numRuns: 1500 });
  t.diagnostic(`${accepted} accepted commands compared with /bin/sh`);
  assert.ok(accepted > 300, `enough accepted commands to compare (${accepted})`);
});

test('iptables rules: option order does not matter; extra options break the match', () => {
  const opts = [['-s', '%IP%'], ['-p', 'tcp'], ['--dport', '22'], ['-j', 'ACCEPT'], ['-m', 'tcp']];
  fc.assert(fc.property(fc.shuffledSubarray(opts, { minLength: opts.length, maxLength: opts.length }), fc.nat({ max: 5 }), (order, at) => {
    const args = order.flat();
    const withOp = [...args.slice(0, (at % 5) * 2), '-A', 'INPUT', ...args.slice((at % 5) * 2)];
    assert.deepEqual(parseIptablesRule(['iptables', ...withOp]), { op: 'add', family: 4, proto: 'tcp', port: 22 });
    assert.equal(parseIptablesRule(['iptables', ...withOp, '-i', 'eth0']), undefined);
    assert.equal(parseIptablesRule(['iptables', ...withOp, '-p', 'tcp']), undefined, 'an option twice');
  }), { numRuns: 300 });
});
