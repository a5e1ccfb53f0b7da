// SPDX-License-Identifier: MIT
// The benches' one UDP flooder (test/lab/udp-blast.c; docs/bench.md "The sender"): it compiles
// without a warning, refuses to run unbounded or on bad arguments, and sends exactly the
// payloads each option describes, in the lab only (attacker -> router), bounded in count and
// time. A plain UDP socket in the router receives.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLab, labSkipReason, type Lab } from '../lab/lab.ts';

const skip = labSkipReason() ?? (existsSync('/usr/bin/gcc') ? undefined : 'needs gcc');
const SRC = fileURLToPath(new URL('../lab/udp-blast.c', import.meta.url));
const PORT = 40_000;
const B64 = /^[A-Za-z0-9+/]*$/;

// Collects datagrams until `expected` arrived or none came for IDLE_MS; prints them as hex.
const RECEIVER = `
const [port, expected] = process.argv.slice(1).map(Number);
const s = require('node:dgram').createSocket({ type: 'udp6', ipv6Only: false, recvBufferSize: 1 << 22 });
const got = [];
let idle;
const done = () => { console.log(JSON.stringify(got)); process.exit(0); };
s.on('message', (m) => { got.push(m.toString('hex')); clearTimeout(idle); if (got.length >= expected) done(); else idle = setTimeout(done, 1000); });
s.bind(port, '::', () => { console.log('ready'); idle = setTimeout(done, 10000); });`;

function compile(dir: string): string {
  const bin = join(dir, 'udp-blast');
  // -Werror: docs/bench.md promises a clean compile under -Wall -Wextra.
  execFileSync('gcc', ['-O2', '-Wall', '-Wextra', '-Werror', '-pthread', '-o', bin, SRC]);
  return bin;
}

interface Run { readonly sent: number; readonly datagrams: Buffer[] }

async function blast(lab: Lab, bin: string, args: readonly string[], expected: number, to = lab.router.ip4): Promise<Run> {
  const rx = lab.spawn(lab.router, [process.execPath, '-e', RECEIVER, String(PORT), String(expected)]);
  await rx.waitForOutput(/^ready$/m, 10_000);
  const r = await lab.exec(lab.attacker, [bin, '--to', to, '--port', String(PORT), ...args], { timeoutMs: 20_000 });
  assert.equal(r.code, 0, r.stderr);
  const line = await rx.waitForOutput(/^\[.*\]$/m, 15_000);
  const out = JSON.parse(r.stdout) as { sent: number; errors: number };
  assert.equal(out.errors, 0);
  return { sent: out.sent, datagrams: (JSON.parse(line) as string[]).map((h) => Buffer.from(h, 'hex')) };
}

test('udp-blast: bounded, and each payload option sends what it says', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'postern-udp-blast-'));
  const lab = await createLab({ tag: 'udpblast' });
  t.after(async () => { await lab.close(); rmSync(dir, { recursive: true, force: true }); });
  const bin = compile(dir);

  await t.test('refuses to run without both bounds, or on bad arguments (exit 2)', async () => {
    const base = ['--to', lab.router.ip4, '--port', String(PORT)];
    for (const bad of [['--count', '10'], ['--seconds', '1'], ['--count', '10', '--seconds', '121'], ['--count', '0', '--seconds', '1'],
      ['--count', '10', '--seconds', '1', '--payload', '0g'], ['--count', '10', '--seconds', '1', '--prefix', 'aabbcc', '--len', '2-9'],
      ['--count', '10', '--seconds', '1', '--threads', '9'], ['--count', '10', '--seconds', '1', 'extra']]) {
      const r = await lab.exec(lab.attacker, [bin, ...base, ...bad]);
      assert.equal(r.code, 2, `${bad.join(' ')}: ${r.stdout}`);
      assert.match(r.stderr, /usage|bad payload/);
    }
    const noTo = await lab.exec(lab.attacker, [bin, '--to', 'example.org', '--port', '9', '--count', '1', '--seconds', '1']);
    assert.equal(noTo.code, 2, 'a name, not an address: refused');
  });

  await t.test('random payloads after a prefix, lengths in the range (IPv4)', async () => {
    const r = await blast(lab, bin, ['--count', '300', '--seconds', '5', '--pps', '3000', '--prefix', 'deadbeef', '--len', '10-20'], 300);
    assert.equal(r.sent, 300);
    assert.equal(r.datagrams.length, 300);
    for (const d of r.datagrams) {
      assert.equal(d.subarray(0, 4).toString('hex'), 'deadbeef');
      assert.ok(d.length >= 10 && d.length <= 20, `length ${d.length}`);
    }
    assert.ok(new Set(r.datagrams.map((d) => d.length)).size > 5, 'lengths vary');
    assert.ok(new Set(r.datagrams.map((d) => d.toString('hex'))).size > 290, 'payloads differ');
  });

  await t.test('base64 payloads of one length from two threads (IPv6)', async () => {
    const r = await blast(lab, bin, ['--count', '301', '--seconds', '5', '--pps', '3000', '--b64', '--len', '50-50', '--threads', '2'], 301, lab.router.ip6);
    assert.equal(r.sent, 301);
    assert.equal(r.datagrams.length, 301);
    for (const d of r.datagrams) { assert.equal(d.length, 50); assert.match(d.toString('latin1'), B64); }
  });

  await t.test('a payload file: its lines in order, cycled up to --count', async () => {
    const file = join(dir, 'list.hex');
    writeFileSync(file, 'aabbcc\n010203\nffee\n');
    // 1,100 datagrams: past the wrap of the sender's mmsghdr ring (2 batches of 256, rounded to
    // whole pools), which must not break the cycle.
    const r = await blast(lab, bin, ['--count', '1100', '--seconds', '5', '--pps', '5000', '--payload-file', file], 1100);
    const lines = ['aabbcc', '010203', 'ffee'];
    assert.deepEqual(r.datagrams.map((d) => d.toString('hex')), Array.from({ length: 1100 }, (_, i) => lines[i % 3]));
  });

  await t.test('the time bound and the pace hold whatever --count says', async () => {
    const r = await blast(lab, bin, ['--count', '1000000000', '--seconds', '0.5', '--pps', '1000', '--payload', '00112233'], 1_000_000_000);
    // Paced: never ahead of 1000/s (at most 0.5 s * 1000 + the first one); loaded machine: >= 200.
    assert.ok(r.sent <= 501 && r.sent >= 200, `sent ${r.sent}`);
    assert.equal(r.datagrams.length, r.sent);
    assert.ok(r.datagrams.every((d) => d.toString('hex') === '00112233'));
  });
});
