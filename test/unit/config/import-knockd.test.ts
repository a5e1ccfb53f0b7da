// SPDX-License-Identifier: MIT
// `postern import knockd`: Debian's shipped knockd.conf, a fixture using every knockd
// directive, and one case per refusal rule (ref/knockd.md section 2; docs/cli.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importKnockd, type ImportedDoor } from '../../../src/config/import-knockd.ts';
import { validateConfig } from '../../../src/config/load.ts';
import { importCommand } from '../../../src/cli/import.ts';
import { UsageError } from '../../../src/cli/command.ts';

const VECTORS = new URL('../../../test/vectors/knockd/', import.meta.url);
const DEBIAN = readFileSync(new URL('debian-knockd.conf', VECTORS), 'utf8');
const EVERY = readFileSync(new URL('every-option.conf', VECTORS), 'utf8');
const IPT = (op: string) => ['/sbin/iptables', op, 'INPUT', '-s', '%IP%', '-p', 'tcp', '--dport', '22', '-j', 'ACCEPT'];

const door = (text: string) => importKnockd(`[d]\n${text}\n`);
const messages = (r: ReturnType<typeof importKnockd>) => r.report.map((l) => l.message).join('\n');

test('Debian\'s shipped /etc/knockd.conf (knockd 0.8-2+b4): three argv doors, UseSyslog reported', () => {
  const r = importKnockd(DEBIAN);
  assert.equal(r.total, 3);
  assert.equal(r.converted, 3);
  assert.ok(r.valid);
  const flags = { seq_timeout_s: 5, tcpflags: ['syn'] };
  assert.deepEqual(r.doors, [
    { name: 'openSSH', sequence: ['7000:tcp', '8000:tcp', '9000:tcp'], ...flags, start: IPT('-A') },
    { name: 'closeSSH', sequence: ['9000:tcp', '8000:tcp', '7000:tcp'], ...flags, start: IPT('-D') },
    { name: 'openHTTPS', sequence: ['12345:tcp', '54321:tcp', '24680:tcp', '13579:tcp'], ...flags,
      start: ['/usr/local/sbin/knock_add', '-i', '-c', 'INPUT', '-p', 'tcp', '-d', '443', '-f', '%IP%'] },
  ]);
  assert.deepEqual(r.report.map((l) => [l.line, l.directive]), [[0, '-'], [2, 'UseSyslog'], [7, 'command']]);
  assert.match(messages(r), /consider "services": \["tcp\/22"\]/);
});

test('the installed /etc/knockd.conf converts like the embedded copy', { skip: existsSync('/etc/knockd.conf') ? false : 'knockd not installed' }, () => {
  const installed = readFileSync('/etc/knockd.conf', 'utf8');
  assert.deepEqual(importKnockd(installed).doors, importKnockd(DEBIAN).doors);
});

test('every knockd directive: grants, argv templates, family splits, refusals', () => {
  const r = importKnockd(EVERY);
  assert.equal(r.total, 8);
  assert.equal(r.converted, 4);
  assert.ok(r.valid);
  const byName = new Map(r.doors.map((d) => [d.name, d]));
  assert.deepEqual(byName.get('ssh'), { name: 'ssh', sequence: ['7000:tcp', '8000:udp', '9000:tcp'], seq_timeout_s: 10,
    tcpflags: ['syn', '!ack'], services: ['tcp/22'], duration_s: 15, allowed_addresses: ['0.0.0.0/0'] });
  assert.deepEqual(byName.get('web'), { name: 'web', sequence: ['31001:udp', '31002:udp'], seq_timeout_s: 25, services: ['tcp/443'], duration_s: 30 });
  assert.deepEqual(byName.get('router'), { name: 'router', one_time_sequences: '/etc/knockd/router.ots', seq_timeout_s: 20, target: '192.0.2.1',
    start: ['/usr/local/bin/open-door', '--who', '%IP%', '--note', 'knock door'], allowed_addresses: ['0.0.0.0/0'] });
  assert.deepEqual(byName.get('split')?.allowed_addresses, ['0.0.0.0/0']);
  assert.deepEqual(byName.get('split-6'), { name: 'split-6', sequence: ['32001:tcp', '32002:tcp'], seq_timeout_s: 25,
    start: ['/usr/bin/logger', 'knock-v6', '%IP%'], allowed_addresses: ['::/0'] });
  for (const gone of ['piped', 'v6target', 'idle', 'typo']) assert.ok(!byName.has(gone), gone);
  const text = messages(r);
  for (const re of [/UseSyslog|syslog/, /no PID file/, /every interface/, /LogFile|stderr/, /"\|"/, /IPv6 Target/, /does nothing/, /unknown directive/]) {
    assert.match(text, re);
  }
  // The converted doors load as a real config (the daemon's own validation).
  const guarded = [...new Set(r.doors.flatMap((d) => d.services ?? []))];
  assert.ok(validateConfig({ device: 'x', guarded, keys: [], doors: r.doors }).ok);
});

test('commands: only plain word lists become argv; everything sh would interpret is refused', () => {
  const ok = (cmd: string, argv: string[]) => assert.deepEqual(door(`sequence = 9001\nstart_command = ${cmd}`).doors[0]?.start, argv, cmd);
  ok('/usr/bin/x a b', ['/usr/bin/x', 'a', 'b']);
  ok(`/usr/bin/x 'a b' "c d" e'f'"g"`, ['/usr/bin/x', 'a b', 'c d', 'efg']);
  ok(`/usr/bin/x '$HOME; |' ""`, ['/usr/bin/x', '$HOME; |', '']);
  ok('/usr/bin/x --ip=%IP%\t-v', ['/usr/bin/x', '--ip=%IP%', '-v']);
  for (const cmd of ['/bin/x $HOME', '/bin/x `id`', '/bin/x $(id)', '/bin/x > /tmp/f', '/bin/x; /bin/y', '/bin/x && y', '/bin/x *',
    '/bin/x ~/f', '/bin/x # c', '/bin/x "a$b"', '/bin/x "a\\b"', "/bin/x 'open", 'A=1 /bin/x', 'eval /bin/x', 'exec /bin/x',
    '/bin/x a\\ b', '/bin/x {a,b}', '%IP% a', '/bin/x (a)', '/bin/x !a', '/bin/x ?']) {
    const r = door(`sequence = 9001\nstart_command = ${cmd}`);
    assert.equal(r.doors.length, 0, cmd);
    assert.match(messages(r), /door not converted/, cmd);
  }
});

test('iptables pairs: exact add/delete of one port is a grant; anything else stays argv', () => {
  const pair = (start: string, stop: string) => door(`sequence = 9001\nstart_command = ${start}\nstop_command = ${stop}\ncmd_timeout = 42`).doors;
  const grant = pair('/usr/sbin/iptables --insert INPUT 3 --protocol udp --src %IP%/32 --destination-port 53 --jump ACCEPT',
    'iptables -D INPUT -j ACCEPT -p udp -s %IP% --dport 53');
  assert.deepEqual(grant, [{ name: 'd', sequence: ['9001:tcp'], seq_timeout_s: 25, services: ['udp/53'], duration_s: 42, allowed_addresses: ['0.0.0.0/0'] }]);
  for (const [start, stop] of [
    ['iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT', 'iptables -D INPUT -s %IP% -p tcp --dport 2222 -j ACCEPT'],
    ['iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT', 'iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT'],
    ['iptables -A INPUT -i eth0 -s %IP% -p tcp --dport 22 -j ACCEPT', 'iptables -D INPUT -i eth0 -s %IP% -p tcp --dport 22 -j ACCEPT'],
    ['iptables -A FORWARD -s %IP% -p tcp --dport 22 -j ACCEPT', 'iptables -D FORWARD -s %IP% -p tcp --dport 22 -j ACCEPT'],
    ['iptables -A INPUT -s 10.0.0.1 -p tcp --dport 22 -j ACCEPT', 'iptables -D INPUT -s 10.0.0.1 -p tcp --dport 22 -j ACCEPT'],
    ['iptables -A INPUT -s %IP% -p tcp --dport 22:30 -j ACCEPT', 'iptables -D INPUT -s %IP% -p tcp --dport 22:30 -j ACCEPT'],
  ]) {
    const d = pair(start ?? '', stop ?? '');
    assert.equal(d.length, 1, start);
    assert.equal(d[0]?.services, undefined, `${start} is not a grant`);
    assert.ok(d[0]?.start && d[0].stop && d[0].cmd_timeout_s === 42, start);
  }
});

test('door directives: refusals and notes, as knockd reads the file', () => {
  const refused = (text: string, re: RegExp) => {
    const r = importKnockd(text);
    assert.equal(r.doors.length, 0, text);
    assert.match(messages(r), re, text);
  };
  refused('[d]\nstart_command = /bin/true\n', /no Sequence/);
  refused('[d]\nsequence = 1,2:sctp\nstart_command = /bin/true\n', /PORT\[:tcp\|udp\]/);
  refused('[d]\nsequence = 70000\nstart_command = /bin/true\n', /PORT 1-65535/);
  refused(`[d]\nsequence = ${Array.from({ length: 33 }, (_, i) => 2000 + i).join(',')}\nstart_command = /bin/true\n`, /more than 32/);
  refused('[d]\nsequence = 9001\nseq_timeout = 0\nstart_command = /bin/true\n', /Seq_Timeout/);
  refused('[d]\nsequence = 9001\none_time_sequences = /f\nstart_command = /bin/true\n', /both Sequence and One_Time_Sequences/);
  refused('[d]\nsequence = 9001\nstop_command = /bin/true\n', /without a start command/);
  refused('[d]\nsequence = 9001\ntcpflags = syn,foo\nstart_command = /bin/true\n', /unknown flag/);
  refused('[d]\nsequence = 9001\ntarget = router.example\nstart_command = /bin/true\n', /not an address/);
  refused('[d]\nsequence = 9001\nstart_command = /bin/a\nstop_command = /bin/b\ncmd_timeout = x\n', /Cmd_Timeout/);
  refused('[d]\nsequence = 9001\nstart_command = /bin/true\nfrobnicate = 1\n', /unknown directive/);
  refused('', /no door section/);
  refused('[d]\nsequence = 9001\nstart_command = /bin/true\nSequence\n', /unknown directive/);
  assert.equal(importKnockd('[d]\nUseSyslog\nsequence = 9001\nstart_command = /bin/true\n').doors.length, 1, 'UseSyslog is accepted in a door section');
  // knockd upper-cases keys, trims, splits at the first '=', and ignores CR; [Options] is a door.
  const r = importKnockd('[Options]\r\n  SEQUENCE=9001 , 9002:UDP\r\n\tStart_Command = /bin/x a=b\r\ntcpflags = syn,!syn\r\n');
  assert.deepEqual(r.doors, [{ name: 'Options', sequence: ['9001:tcp', '9002:udp'], seq_timeout_s: 25, tcpflags: ['!syn'], start: ['/bin/x', 'a=b'] }]);
  const twice = importKnockd('sequence = 1\n[my door]\nsequence = 9001\nsequence = 9003\nstart_command = /bin/x\n[my door]\nsequence = 9101\nstart_command = /bin/x\n[]\n');
  assert.deepEqual(twice.doors.map((d: ImportedDoor) => [d.name, d.sequence]), [['my-door', ['9003:tcp']], ['my-door-2', ['9101:tcp']]]);
  assert.match(messages(twice), /outside any section/);
  assert.match(messages(twice), /bad section name/);
  assert.match(messages(twice), /the later value wins/);
  assert.match(messages(twice), /renamed to my-door-2/);
});

async function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const saved = [process.stdout.write, process.stderr.write] as const;
  let stdout = '';
  let stderr = '';
  process.stdout.write = ((chunk: string) => { stdout += chunk; return true; }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string) => { stderr += chunk; return true; }) as typeof process.stderr.write;
  try {
    return { code: await importCommand.run(args), stdout, stderr };
  } finally {
    [process.stdout.write, process.stderr.write] = saved;
  }
}

test('CLI: import knockd prints the doors, reports on stderr, --out writes a 0600 file, --json', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-knockd-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const conf = join(dir, 'knockd.conf');
  writeFileSync(conf, DEBIAN);
  const r = await runCli(['knockd', conf]);
  assert.equal(r.code, 0);
  assert.deepEqual((JSON.parse(r.stdout) as { doors: ImportedDoor[] }).doors, importKnockd(DEBIAN).doors);
  assert.match(r.stderr, new RegExp(`${conf}:2: UseSyslog: `));
  assert.match(r.stderr, /\[openHTTPS\] command: \/usr\/local\/sbin\/knock_add does not exist/);
  assert.match(r.stderr, /converted 3 of 3 doors/);
  const outFile = join(dir, 'doors.json');
  const w = await runCli(['knockd', conf, '--out', outFile]);
  assert.equal(w.code, 0);
  assert.equal(w.stdout, '');
  assert.equal(statSync(outFile).mode & 0o777, 0o600);
  assert.deepEqual(JSON.parse(readFileSync(outFile, 'utf8')), JSON.parse(r.stdout));
  const j = await runCli(['knockd', conf, '--json']);
  assert.equal((JSON.parse(j.stdout) as { report: unknown[] }).report.length, 4);
  writeFileSync(conf, '[d]\nsequence = 1\n');
  const none = await runCli(['knockd', conf]);
  assert.equal(none.code, 1);
  assert.equal(none.stdout, '');
  assert.equal((await runCli(['knockd', join(dir, 'missing')])).code, 1);
  for (const args of [['knockd'], ['knockd', conf, 'x'], ['knockd', conf, '--fwknopd-conf', conf], ['knockd', conf, '--out', '']]) {
    await assert.rejects(runCli(args), UsageError, JSON.stringify(args));
  }
});

test('the docs/cli.md example report is what the command prints for Debian\'s file', {
  skip: existsSync('/usr/local/sbin/knock_add') ? 'this machine has /usr/local/sbin/knock_add' : false,
}, async (t) => {
  const doc = readFileSync(new URL('../../../docs/cli.md', import.meta.url), 'utf8');
  const block = /\$ postern import knockd \/etc\/knockd\.conf --out doors\.json\n([\s\S]*?)```/.exec(doc)?.[1] ?? '';
  assert.ok(block.length > 0, 'the example is in docs/cli.md');
  const dir = mkdtempSync(join(tmpdir(), 'postern-knockd-doc-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const conf = join(dir, 'knockd.conf');
  writeFileSync(conf, DEBIAN);
  const r = await runCli(['knockd', conf, '--out', join(dir, 'doors.json')]);
  assert.equal(r.stderr.split(conf).join('/etc/knockd.conf'), block);
});

test('docs/cli.md documents postern import knockd', () => {
  const doc = readFileSync(new URL('../../../docs/cli.md', import.meta.url), 'utf8');
  for (const s of ['postern import knockd', '--out', 'Start_Command_6', 'shell']) assert.ok(doc.includes(s), s);
});
