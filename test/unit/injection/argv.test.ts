// SPDX-License-Identifier: MIT
// Command injection (issue 9): names, config strings, UCI values and knock %IP% substitutions
// full of shell metacharacters never reach a shell and never change argv beyond their own
// argument. The real Runner (src/firewall/exec.ts, spawn without a shell) runs a recording
// program that writes the argv it received as JSON; every test compares that record with
// what was meant, and checks that payloads such as $(touch FILE) left no FILE behind.

import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { validateConfig } from '../../../src/config/load.ts';
import { translateUci } from '../../../src/cli/config-uci.ts';
import { quoteUci } from '../../../src/config/uci.ts';
import { DoorCommands, expandArgv } from '../../../src/daemon/knock-commands.ts';
import { spawnRunner } from '../../../src/firewall/exec.ts';
import { checkGrant, FirewallValueError } from '../../../src/firewall/iptables-rules.ts';
import type { Grant } from '../../../src/firewall/types.ts';
import { memoryLogger } from '../../../src/log/logger.ts';
import { ManualClock } from '../../../src/platform/clock.ts';
import { Credential } from '../../../src/spa/credential.ts';

const dir = mkdtempSync(join(tmpdir(), 'postern-inject-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const PWNED = join(dir, 'pwned');
const RECORDER = join(dir, 'record-argv');
// argv[1] is where to write; the rest is what the program was given.
writeFileSync(RECORDER, '#!/usr/bin/env python3\nimport json, sys\nwith open(sys.argv[1], "w") as f:\n    json.dump(sys.argv[2:], f)\n');
chmodSync(RECORDER, 0o755);

/** Shell metacharacter payloads; each would create PWNED if a shell ever saw it. */
const PAYLOADS = [
  `$(touch ${PWNED})`, `\`touch ${PWNED}\``, `; touch ${PWNED}`, `| touch ${PWNED}`, `&& touch ${PWNED}`, `\ntouch ${PWNED}`,
  `'; touch ${PWNED}; '`, `"; touch ${PWNED}; "`, `> ${PWNED}`, `$IFS`, '*', '~', '#', '%IP%', 'a b', '\t', '-rf', '--', '${PATH}', '\\',
];
const metaString = fc.oneof(
  fc.constantFrom(...PAYLOADS),
  fc.string({ unit: fc.constantFrom(...'ab $`;|&<>()"\'\\*?[]{}~#!\n\t%IP='), maxLength: 24 }),
  fc.string({ unit: 'grapheme', maxLength: 12 }),
);
let runs = 0;

async function record(args: readonly string[]): Promise<string[]> {
  const out = join(dir, `argv-${runs++}.json`);
  const r = await spawnRunner([RECORDER, out, ...args]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(readFileSync(out, 'utf8')) as string[];
}

test('the real Runner: any argument, metacharacters and all, arrives as exactly one argument', async () => {
  await fc.assert(fc.asyncProperty(fc.array(metaString, { maxLength: 6 }), async (args) => {
    assert.deepEqual(await record(args), args);
  }), { numRuns: 25 });
  assert.equal(existsSync(PWNED), false, 'a payload ran in a shell');
});

test('the real Runner: an argument with a NUL byte is refused (rejects), never truncated or split', async () => {
  await assert.rejects(spawnRunner([RECORDER, join(dir, 'nul.json'), 'a\0; touch x']));
  assert.equal(existsSync(join(dir, 'nul.json')), false);
});

test('knock door commands: %IP% substitution stays inside its element; metacharacters in templates are data', async () => {
  const clock = new ManualClock();
  const failures: string[] = [];
  const cmds = new DoorCommands({ runner: spawnRunner, clock, logger: memoryLogger('info'), onFailure: (d, a) => failures.push(`${d} ${a}`) });
  const startOut = join(dir, 'start.json');
  const stopOut = join(dir, 'stop.json');
  const tail = [...PAYLOADS.slice(0, 8), '--src=%IP%;%IP%', '%IP%%IP%', '%ip%', '%IP'];
  const door = {
    name: 'door-x', source: { kind: 'static' as const, sequence: [{ proto: 'tcp' as const, port: 7000 }] }, seqTimeoutS: 5, services: [],
    durationS: 60, allowedAddresses: [], cmdTimeoutS: 1, start: [RECORDER, startOut, ...tail], stop: [RECORDER, stopOut, '-D', '%IP%', ...PAYLOADS],
  };
  for (const address of ['198.18.0.2', '2001:db8::5:1']) {
    cmds.opened(door, address);
    await waitFor(() => existsSync(startOut));
    const got = JSON.parse(readFileSync(startOut, 'utf8')) as string[];
    assert.deepEqual(got, expandArgv(tail, address));
    assert.equal(got.length, tail.length);
    assert.equal(got[8], `--src=${address};${address}`);
    clock.advance(1000);
    await waitFor(() => existsSync(stopOut));
    assert.deepEqual(JSON.parse(readFileSync(stopOut, 'utf8')), expandArgv(['-D', '%IP%', ...PAYLOADS], address));
    rmSync(startOut);
    rmSync(stopOut);
  }
  assert.deepEqual(failures, []);
  assert.equal(existsSync(PWNED), false);
});

async function waitFor(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), 'timed out waiting for the recording program');
}

const cred = new Credential(0x01020304, Buffer.alloc(32, 1)).encode();

test('config: key and door names with metacharacters are refused; door templates keep them verbatim as argv', () => {
  fc.assert(fc.property(metaString, (s) => {
    const name = `n${s}`;
    const r = validateConfig({ device: 'd', guarded: ['tcp/22'], keys: [{ name, credential: cred, services: ['tcp/22'] }] });
    if (r.ok) assert.match(name, /^[A-Za-z0-9][A-Za-z0-9._@-]*$/, `accepted key name ${JSON.stringify(name)}`);
    const d = validateConfig({ device: 'd', guarded: ['tcp/22'], keys: [], doors: [{ name, sequence: ['7000', '8000', '9000'], start: ['/usr/sbin/x', s, '%IP%'] }] });
    if (d.ok) {
      assert.match(name, /^[A-Za-z0-9][A-Za-z0-9._@-]*$/);
      assert.deepEqual(d.config.doors[0]?.start, ['/usr/sbin/x', s, '%IP%']);
    }
  }), { numRuns: 2000 });
});

test('firewall: grant ids and addresses that are not canonical are refused before any command is built', () => {
  const base: Grant = { id: 'a1b2c3', key: 'k', family: 4, address: '198.18.0.2', services: [{ proto: 'tcp', port: 22 }], expiresAtMs: 1_764_150_000_000 };
  checkGrant(base);
  // A key name is not part of any rule: whatever it holds, the grant is valid.
  fc.assert(fc.property(metaString.filter((s) => /[^0-9a-z]/.test(s)), (s) => {
    checkGrant({ ...base, key: s });
    assert.throws(() => checkGrant({ ...base, id: `a${s}` }), FirewallValueError);
    assert.throws(() => checkGrant({ ...base, address: `198.18.0.2${s}` }), FirewallValueError);
  }), { numRuns: 2000 });
});

test('UCI: values full of metacharacters become the same JSON strings (procd init script path), or are refused', () => {
  fc.assert(fc.property(metaString, (s) => {
    const text = `config postern 'main'\n\toption device ${quoteUci(s)}\n\toption network ${quoteUci(s)}\n\tlist guarded 'tcp/22'\n`
      + `config key ${quoteUci('alice')}\n\toption credential '${cred}'\n\tlist service 'tcp/22'\n\tlist allowed_address ${quoteUci(s)}\n`;
    const r = translateUci(text);
    if (!r.ok) return;
    const cfg = JSON.parse(r.json) as { device: string; keys: { allowed_addresses: string[] }[] };
    assert.equal(cfg.device, s);
    assert.deepEqual(cfg.keys[0]?.allowed_addresses, [s]);
  }), { numRuns: 2000 });
});
