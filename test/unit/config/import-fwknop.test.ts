// SPDX-License-Identifier: MIT
// `postern import fwknop`: access.conf/fwknopd.conf fixtures (ref/fwknop.md section 14)
// -> the fwknop section and its report. Every fixture is text with comments; the rule under
// test is "converted only when postern grants no more than fwknopd did, everything else
// reported, no key value ever printed".

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importFwknop, type FwknopImportResult } from '../../../src/config/import-fwknop.ts';
import { validateConfig } from '../../../src/config/load.ts';
import { importCommand } from '../../../src/cli/import.ts';
import { UsageError } from '../../../src/cli/command.ts';

const b64 = (n: number, fill: number) => Buffer.alloc(n, fill).toString('base64');
const KEY = b64(32, 1);
const HMAC = b64(64, 2);
const KEYS = `KEY_BASE64 ${KEY}\nHMAC_KEY_BASE64 ${HMAC}\n`;
const stanza = (extra: string, open = 'tcp/22') => `SOURCE ANY\n${KEYS}OPEN_PORTS ${open}\n${extra}\n`;

function options(r: FwknopImportResult, stanzaName?: string): string[] {
  return r.report.filter((l) => stanzaName === undefined || l.stanza === stanzaName).map((l) => l.option);
}

test('every mapped option lands in its field, and the section loads', () => {
  const text = [
    '# alice laptop',
    'SOURCE              192.168.10.0/24, 10.1.1.123',
    `KEY_BASE64          ${KEY}`,
    `HMAC_KEY_BASE64     ${HMAC}`,
    'HMAC_DIGEST_TYPE    SHA3_256',
    'OPEN_PORTS          tcp/22, udp/53',
    'RESTRICT_PORTS      tcp/23',
    'FW_ACCESS_TIMEOUT   45',
    'MAX_FW_TIMEOUT      900',
    'REQUIRE_SOURCE_ADDRESS Y',
    'REQUIRE_USERNAME    alice',
    'ENCRYPTION_MODE     CBC',
    '',
  ].join('\n');
  const r = importFwknop(text);
  assert.deepEqual(r.report, []);
  assert.deepEqual(r.fwknop, {
    port: 62201, max_age_s: 120,
    stanzas: [{
      name: 'alice-laptop', source: ['192.168.10.0/24', '10.1.1.123'], key_base64: KEY, hmac_key_base64: HMAC,
      hmac_digest_type: 'sha3_256', open_ports: ['tcp/22', 'udp/53'], restrict_ports: ['tcp/23'],
      fw_access_timeout_s: 45, max_fw_timeout_s: 900, require_source_address: true, require_username: 'alice',
    }],
  });
  assert.deepEqual([r.total, r.converted, r.valid], [1, 1, true]);
  const loaded = validateConfig({ device: 'd', guarded: ['tcp/22', 'udp/53'], keys: [], fwknop: r.fwknop });
  assert.ok(loaded.ok, JSON.stringify(!loaded.ok && loaded.errors));
  assert.equal(loaded.config.fwknop[0]?.hmacKey.length, 64);
});

test('text keys, defaults and the REQUIRE_SOURCE alias', () => {
  const r = importFwknop('SOURCE ANY\nKEY pa#ss word\nHMAC_KEY other secret\nOPEN_PORTS TCP/2222\nREQUIRE_SOURCE yes\n');
  assert.deepEqual(r.fwknop.stanzas, [{
    name: 'stanza-1', source: ['ANY'], key: 'pa#ss word', hmac_key: 'other secret', hmac_digest_type: 'sha256',
    open_ports: ['tcp/2222'], fw_access_timeout_s: 30, max_fw_timeout_s: 300, require_source_address: true,
  }]);
  assert.deepEqual(r.report, []);
});

test('comments, semicolons, colons, tabs, CRLF and blank lines are read as fwknopd reads them', () => {
  const text = [
    '; a semicolon comment line',
    '   # an indented comment',
    '',
    'SOURCE:\t\t10.0.0.0/8 ;  a trailing note after the semicolon',
    `KEY_BASE64\t${KEY};`,
    `  HMAC_KEY_BASE64 ${HMAC}   `,
    'OPEN_PORTS tcp/22,udp/53 ,  tcp/443;tcp/999',
    '',
  ].join('\r\n');
  const r = importFwknop(text);
  assert.deepEqual(r.report, []);
  const s = r.fwknop.stanzas[0];
  assert.deepEqual(s?.source, ['10.0.0.0/8']);
  assert.equal(s?.key_base64, KEY);
  assert.equal(s?.hmac_key_base64, HMAC);
  assert.deepEqual(s?.open_ports, ['tcp/22', 'udp/53', 'tcp/443']);
});

test('stanza names: the comment right above SOURCE, sanitized; else stanza-N; never duplicated', () => {
  const text = [
    '# Bob\'s phone (Android)!', stanza(''),
    '# Bob\'s phone (Android)!', stanza(''),
    'SOURCE ANY', KEYS, 'OPEN_PORTS tcp/22', '',
    `#KEY_BASE64 ${b64(32, 9)}`, stanza(''),
    '# ---', '', stanza(''),
  ].join('\n');
  const r = importFwknop(text);
  assert.deepEqual(r.fwknop.stanzas.map((s) => s.name), ['Bob-s-phone-Android', 'Bob-s-phone-Android-2', 'stanza-3', 'stanza-4', 'stanza-5']);
  assert.ok(!JSON.stringify(r).includes(b64(32, 9)), 'a commented-out key is never taken as a name');
});

test('SOURCE: host bits are cleared as fwknopd does (with a note); junk refuses the stanza', () => {
  const r = importFwknop(`SOURCE 192.168.1.7/24 10.0.0.1\n${KEYS}OPEN_PORTS tcp/22\n`);
  assert.deepEqual(r.fwknop.stanzas[0]?.source, ['192.168.1.0/24', '10.0.0.1']);
  assert.match(r.report[0]?.message ?? '', /host bits set; fwknopd matched 192\.168\.1\.0\/24/);
  for (const bad of ['10.0.0.300', '10.0.0.0/33', 'example.com', '']) {
    const b = importFwknop(`SOURCE ${bad}\n${KEYS}OPEN_PORTS tcp/22\n`);
    assert.equal(b.converted, 0, bad);
    assert.ok(b.report.some((l) => l.option === 'SOURCE' && l.message.endsWith('(stanza not converted)')), bad);
  }
  assert.deepEqual(importFwknop(`SOURCE 10.0.0.1, ANY\n${KEYS}OPEN_PORTS tcp/22\n`).fwknop.stanzas[0]?.source, ['ANY']);
});

test('a stanza without an HMAC key is refused, with the reason', () => {
  const r = importFwknop(`SOURCE ANY\nKEY_BASE64 ${KEY}\nOPEN_PORTS tcp/22\n`);
  assert.deepEqual([r.converted, r.valid], [0, false]);
  assert.deepEqual(r.report, [{
    file: 'access.conf', line: 1, stanza: 'stanza-1', option: 'HMAC_KEY',
    message: 'postern requires an HMAC key; fwknopd would accept unauthenticated packets here (stanza not converted)',
  }]);
});

/** [extra lines, option reported, message pattern]: each refuses the stanza it is in. */
const REFUSING: [string, string, RegExp][] = [
  ['ENCRYPTION_MODE CTR', 'ENCRYPTION_MODE', /only CBC/],
  ['ENCRYPTION_MODE legacy', 'ENCRYPTION_MODE', /only CBC/],
  ['CMD_CYCLE_OPEN /bin/open $IP', 'CMD_CYCLE_OPEN', /never runs commands/],
  ['CMD_CYCLE_CLOSE NONE', 'CMD_CYCLE_CLOSE', /never runs commands/],
  ['CMD_CYCLE_TIMER 30', 'CMD_CYCLE_TIMER', /never runs commands/],
  ['ACCESS_EXPIRE 12/31/2030', 'ACCESS_EXPIRE', /do not expire/],
  ['ACCESS_EXPIRE_EPOCH 1924905600', 'ACCESS_EXPIRE_EPOCH', /do not expire/],
  ['DESTINATION 192.168.1.1', 'DESTINATION', /destination/],
  ['FORCE_NAT 192.168.1.10 22', 'FORCE_NAT', /forwards/],
  ['FORWARD_ALL Y', 'FORWARD_ALL', /gateway/],
  ['HMAC_DIGEST_TYPE SHA224', 'HMAC_DIGEST_TYPE', /not one of/],
  ['FW_ACCESS_TIMEOUT soon', 'FW_ACCESS_TIMEOUT', /whole number/],
  ['RESTRICT_PORTS icmp/0', 'RESTRICT_PORTS', /not tcp\/PORT/],
  [`REQUIRE_USERNAME ${'u'.repeat(49)}`, 'REQUIRE_USERNAME', /longer than 48/],
];

test('options that would widen access refuse the stanza and name line and option', () => {
  for (const [extra, option, message] of REFUSING) {
    const r = importFwknop(`# keep\n${stanza('')}# target\n${stanza(extra)}`);
    assert.deepEqual(r.fwknop.stanzas.map((s) => s.name), ['keep'], extra);
    const line = r.report.find((l) => l.option === option);
    assert.ok(line, `${extra}: ${JSON.stringify(r.report)}`);
    assert.equal(line.stanza, 'target');
    assert.equal(line.line, 12, extra);
    assert.match(line.message, message);
    assert.match(line.message, /\(stanza not converted\)$/);
  }
});

test('missing OPEN_PORTS, placeholders, bad base64, long keys and equal keys refuse the stanza', () => {
  const cases: [string, string, RegExp][] = [
    [`SOURCE ANY\n${KEYS}`, 'OPEN_PORTS', /fwknopd opens any port/],
    [`SOURCE ANY\nKEY_BASE64 __CHANGEME__\nHMAC_KEY_BASE64 ${HMAC}\nOPEN_PORTS tcp/22\n`, 'KEY_BASE64', /__CHANGEME__ placeholder/],
    [`SOURCE ANY\nKEY_BASE64 ${KEY}\nHMAC_KEY __changeme__\nOPEN_PORTS tcp/22\n`, 'HMAC_KEY', /__CHANGEME__ placeholder/],
    [`SOURCE ANY\nKEY_BASE64 not*base64\nHMAC_KEY_BASE64 ${HMAC}\nOPEN_PORTS tcp/22\n`, 'KEY_BASE64', /not base64/],
    [`SOURCE ANY\nKEY_BASE64 ${b64(33, 3)}\nHMAC_KEY_BASE64 ${HMAC}\nOPEN_PORTS tcp/22\n`, 'KEY_BASE64', /33 bytes; postern takes 1-32/],
    [`SOURCE ANY\nKEY ${'k'.repeat(33)}\nHMAC_KEY_BASE64 ${HMAC}\nOPEN_PORTS tcp/22\n`, 'KEY', /33 bytes/],
    [`SOURCE ANY\nKEY_BASE64 ${KEY}\nHMAC_KEY_BASE64 ${b64(129, 4)}\nOPEN_PORTS tcp/22\n`, 'HMAC_KEY_BASE64', /129 bytes; postern takes 1-128/],
    [`SOURCE ANY\nKEY_BASE64 ${KEY}\nHMAC_KEY_BASE64 ${KEY}\nOPEN_PORTS tcp/22\n`, 'HMAC_KEY', /equals the encryption key/],
    [`SOURCE ANY\nGPG_DECRYPT_ID ABCD1234\nGPG_DECRYPT_PW hunter2\nHMAC_KEY_BASE64 ${HMAC}\nOPEN_PORTS tcp/22\n`, 'KEY', /GPG mode is not supported/],
    [`SOURCE ANY\n${KEYS}OPEN_PORTS tcp/22 # ssh\n`, 'OPEN_PORTS', /not tcp\/PORT/],
    [`SOURCE ANY\n${KEYS}OPEN_PORTS tcp/70000\n`, 'OPEN_PORTS', /not tcp\/PORT/],
  ];
  for (const [text, option, message] of cases) {
    const r = importFwknop(text);
    assert.equal(r.converted, 0, text);
    assert.ok(r.report.some((l) => l.option === option && message.test(l.message) && l.message.endsWith('(stanza not converted)')), `${option}: ${JSON.stringify(r.report)}`);
    assert.ok(!JSON.stringify(r.report).includes('hunter2'));
  }
});

test('options postern handles more strictly are converted with a note', () => {
  const extra = ['ENABLE_CMD_EXEC Y', 'CMD_EXEC_USER nobody', 'CMD_SUDO_EXEC_USER root', 'GPG_HOME_DIR /root/.gnupg',
    'GPG_REQUIRE_SIG Y', 'FORCE_SNAT 10.0.0.1', 'FORCE_MASQUERADE Y', 'DISABLE_DNAT Y', 'SOME_FUTURE_OPTION 1',
    // Values that match what postern always does are not findings.
    'ENABLE_CMD_SUDO_EXEC N', 'FORWARD_ALL N', 'DESTINATION ANY', 'ENCRYPTION_MODE cbc'].join('\n');
  const r = importFwknop(stanza(extra));
  assert.equal(r.converted, 1);
  assert.deepEqual(options(r), ['ENABLE_CMD_EXEC', 'CMD_EXEC_USER', 'CMD_SUDO_EXEC_USER', 'GPG_HOME_DIR', 'GPG_REQUIRE_SIG',
    'FORCE_SNAT', 'FORCE_MASQUERADE', 'DISABLE_DNAT', 'SOME_FUTURE_OPTION']);
  assert.ok(r.report.every((l) => !l.message.includes('not converted')));
  assert.match(r.report[0]?.message ?? '', /never runs commands/);
});

test('timeouts: FW_ACCESS_TIMEOUT above MAX_FW_TIMEOUT and above a day are capped, with notes', () => {
  const r = importFwknop(stanza('FW_ACCESS_TIMEOUT 600\nMAX_FW_TIMEOUT 100000'));
  assert.equal(r.fwknop.stanzas[0]?.max_fw_timeout_s, 86400);
  assert.equal(r.fwknop.stanzas[0]?.fw_access_timeout_s, 600);
  assert.deepEqual(options(r), ['MAX_FW_TIMEOUT']);
  const c = importFwknop(stanza('FW_ACCESS_TIMEOUT 600'));
  assert.equal(c.fwknop.stanzas[0]?.fw_access_timeout_s, 300);
  assert.match(c.report[0]?.message ?? '', /fwknopd honours 300 s/);
});

test('includes, options before SOURCE, repeated options and valueless lines are reported', () => {
  const text = `%include /etc/fwknop/more.conf\nOPEN_PORTS tcp/1\n${stanza('OPEN_PORTS tcp/2222\n%include_keys /home/u/keys.conf\nREQUIRE_USERNAME')}%include_folder /etc/fwknop/access.d\n`;
  const r = importFwknop(text);
  assert.deepEqual(r.fwknop.stanzas[0]?.open_ports, ['tcp/2222']);
  assert.deepEqual(r.report.map((l) => [l.line, l.stanza, l.option]), [
    [1, null, '%include'], [2, null, 'OPEN_PORTS'], [7, 'stanza-1', 'OPEN_PORTS'], [8, 'stanza-1', '%include_keys'],
    [9, 'stanza-1', 'REQUIRE_USERNAME'], [10, 'stanza-1', '%include_folder'],
  ]);
  assert.match(r.report[0]?.message ?? '', /not followed/);
  assert.match(r.report[2]?.message ?? '', /first on line 6\); the last value is used/);
  const noKey = importFwknop(`SOURCE ANY\nKEY_BASE64\nHMAC_KEY_BASE64 ${HMAC}\nOPEN_PORTS tcp/22\n`);
  assert.equal(noKey.converted, 0);
  assert.deepEqual(noKey.report.map((l) => [l.line, l.option]), [[1, 'KEY'], [2, 'KEY_BASE64']]);
});

test('no key value ever appears in the report, whatever is wrong with it', () => {
  const secrets = Array.from({ length: 6 }, () => randomBytes(40).toString('base64'));
  const [s0 = '', s1 = '', s2 = '', s3 = '', s4 = '', s5 = ''] = secrets;
  const text = [
    `SOURCE ANY\nKEY_BASE64 ${s0}\nHMAC_KEY_BASE64 ${s1}\nOPEN_PORTS tcp/22`,
    `SOURCE ANY\nKEY ${s2}\nKEY_BASE64 ${s3.slice(0, 20)}*\nOPEN_PORTS tcp/22`,
    `SOURCE ANY\nKEY_BASE64 ${s4.slice(0, 40)}\nHMAC_KEY_BASE64 ${s4.slice(0, 40)}\nOPEN_PORTS tcp/22\nGPG_DECRYPT_PW ${s5}`,
    `${s5}\nSOURCE ANY\nHMAC_KEY ${s1.slice(0, 30)}\nKEY ${s0.slice(0, 30)}\nOPEN_PORTS icmp/1`,
  ].join('\n');
  const r = importFwknop(text);
  assert.equal(r.converted, 0);
  assert.ok(r.report.length >= 6);
  const printed = JSON.stringify(r.report);
  for (const s of secrets) for (const part of [s, s.slice(0, 20), s.slice(0, 30)]) assert.ok(!printed.includes(part), 'a key value leaked');
  assert.ok(r.report.some((l) => l.option === '(unrecognised line)'), printed);
});

test('fwknopd.conf: port, packet age and the options postern lacks', () => {
  const one = (conf: string) => importFwknop(stanza(''), conf);
  assert.equal(one('PCAP_FILTER udp port 62202;\n').fwknop.port, 62202);
  assert.equal(one('ENABLE_UDP_SERVER Y\nUDPSERV_PORT 40001\n').fwknop.port, 40001);
  assert.equal(one('ENABLE_UDP_SERVER N\nUDPSERV_PORT 40001\nPCAP_FILTER udp port 40002\n').fwknop.port, 40002);
  const complex = one('PCAP_FILTER udp dst port 40003 and host 1.2.3.4\n');
  assert.equal(complex.fwknop.port, 40003);
  assert.match(complex.report[0]?.message ?? '', /only the port \(40003\) is used/);
  assert.equal(one('PCAP_FILTER tcp port 80\n').fwknop.port, 62201);
  const r = one('MAX_SPA_PACKET_AGE 60\nENABLE_SPA_PACKET_AGING N\nENABLE_IPT_FORWARDING Y\nPCAP_INTF eth1\nVERBOSE 1\n');
  assert.equal(r.fwknop.max_age_s, 60);
  assert.deepEqual(r.report.map((l) => [l.file, l.line, l.option]), [
    ['fwknopd.conf', 2, 'ENABLE_SPA_PACKET_AGING'], ['fwknopd.conf', 3, 'ENABLE_IPT_FORWARDING'],
    ['fwknopd.conf', 4, 'PCAP_INTF'], ['fwknopd.conf', 5, 'VERBOSE'],
  ]);
  assert.match(r.report[0]?.message ?? '', /always checks the packet age/);
  assert.equal(one('MAX_SPA_PACKET_AGE 1\n').fwknop.max_age_s, 5);
  assert.equal(one('MAX_SPA_PACKET_AGE 0x10\n').fwknop.max_age_s, 120);
  assert.deepEqual(one('hunter2-secret\n').report.map((l) => l.option), ['(unrecognised line)']);
});

test('the section is checked with validateConfig; a stanza that cannot load is dropped', () => {
  // udp/62201 is the fwknop port itself: guarding it would capture postern's own packets.
  const r = importFwknop(`# keep\n${stanza('')}# clash\n${stanza('', 'udp/62201')}`);
  assert.deepEqual(r.fwknop.stanzas.map((s) => s.name), ['keep']);
  const v = r.report.find((l) => l.option === 'validate');
  assert.equal(v?.stanza, 'clash');
  assert.match(v?.message ?? '', /also a guarded udp service.*\(stanza not converted\)$/);
  assert.equal(r.valid, true);
});

const DEBIAN = '/etc/fwknop/access.conf';
test('Debian\'s shipped access.conf: the __CHANGEME__ stanza is reported, not converted', { skip: !existsSync(DEBIAN) && `no ${DEBIAN}` }, () => {
  const daemon = existsSync('/etc/fwknop/fwknopd.conf') ? readFileSync('/etc/fwknop/fwknopd.conf', 'utf8') : undefined;
  const r = importFwknop(readFileSync(DEBIAN, 'utf8'), daemon);
  assert.deepEqual([r.total, r.converted, r.valid], [1, 0, false]);
  assert.ok(r.report.some((l) => l.option === 'KEY_BASE64' && /__CHANGEME__/.test(l.message)));
  assert.ok(r.report.some((l) => l.option === 'HMAC_KEY_BASE64' && /__CHANGEME__/.test(l.message)));
  assert.ok(r.report.every((l) => l.stanza === 'stanza-1' || l.file === 'fwknopd.conf'));
});

// ---- the CLI: importCommand.run() with stdout/stderr captured ----------------------------

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

test('CLI: exit codes, stdout section, stderr report, --json', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-import-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const good = join(dir, 'access.conf');
  const bad = join(dir, 'bad.conf');
  const daemon = join(dir, 'fwknopd.conf');
  writeFileSync(good, `# alice\n${stanza('ENABLE_CMD_EXEC Y')}SOURCE ANY\nKEY_BASE64 ${KEY}\nOPEN_PORTS tcp/22\n`);
  writeFileSync(bad, `SOURCE ANY\nKEY_BASE64 ${KEY}\nOPEN_PORTS tcp/22\n`);
  writeFileSync(daemon, 'UDPSERV_PORT 40000\n');

  const ok = await runCli(['fwknop', good, '--fwknopd-conf', daemon]);
  assert.equal(ok.code, 0);
  const section = JSON.parse(ok.stdout) as { fwknop: { port: number; stanzas: { name: string }[] } };
  assert.deepEqual(Object.keys(section), ['fwknop']);
  assert.equal(section.fwknop.port, 40000);
  assert.deepEqual(section.fwknop.stanzas.map((s) => s.name), ['alice']);
  assert.ok(ok.stdout.startsWith('{\n  "fwknop": {'), '2-space indented');
  assert.match(ok.stderr, new RegExp(`${good}:6: \\[alice\\] ENABLE_CMD_EXEC: postern never runs commands`));
  assert.match(ok.stderr, /\[stanza-2\] HMAC_KEY: postern requires an HMAC key/);
  assert.match(ok.stderr, /converted 1 of 2 stanzas/);
  assert.ok(!ok.stderr.includes(KEY) && !ok.stderr.includes(HMAC));

  const json = await runCli(['fwknop', good, '--json']);
  assert.equal(json.code, 0);
  const doc = JSON.parse(json.stdout) as { fwknop: unknown; report: { line: number; stanza: string; option: string; message: string }[] };
  assert.equal(doc.report.length, 2);
  assert.deepEqual(Object.keys(doc.report[0] ?? {}).sort(), ['file', 'line', 'message', 'option', 'stanza']);
  assert.equal(json.stderr, '');

  const none = await runCli(['fwknop', bad]);
  assert.deepEqual([none.code, none.stdout], [1, '']);
  assert.match(none.stderr, /converted 0 of 1 stanza; nothing to use/);
  assert.equal((await runCli(['fwknop', bad, '--json'])).code, 1);
  const missing = await runCli(['fwknop', join(dir, 'nope.conf')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /nope\.conf: cannot read \(ENOENT\)/);
  assert.equal((await runCli(['fwknop', good, '--fwknopd-conf', join(dir, 'nope')])).code, 1);

  const help = await runCli(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /postern import fwknop ACCESS\.CONF \[--fwknopd-conf FILE\] \[--json\]/);
  for (const args of [[], ['knockd'], ['nosuch', good], ['fwknop'], ['fwknop', good, 'extra'], ['fwknop', good, '--bogus']]) {
    await assert.rejects(runCli(args), UsageError, JSON.stringify(args));
  }
});

test('docs/cli.md documents postern import and its options', () => {
  const doc = readFileSync(new URL('../../../docs/cli.md', import.meta.url), 'utf8');
  for (const s of ['## postern import', 'postern import fwknop', '--fwknopd-conf', '--json']) assert.ok(doc.includes(s), s);
});
