// SPDX-License-Identifier: MIT
// The device-side CLI over the control socket, end to end: the real bundle as daemon and
// as CLI in the router namespace (issue 6 "Device-side CLI and control socket").

import assert from 'node:assert/strict';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { labSkipReason } from '../lab/lab.ts';
import { tcpConnect } from '../lab/net-probe.ts';
import { Credential, generateCredential } from '../../src/spa/credential.ts';
import { BUNDLE, SERVICE_PORT, bundleSkipReason, createWorld, eventually, keyFileArgs, type World } from './harness.ts';

const skip = labSkipReason() ?? bundleSkipReason();

async function run(w: World, args: string[], code: number) {
  const r = await w.postern(w.lab.router, [...args, '--config', w.configPath]);
  assert.equal(r.code, code, `postern ${args.join(' ')}: exit ${r.code}\n${r.stdout}${r.stderr}`);
  return r;
}

/** stdout and stderr together, for matching messages. */
async function cli(w: World, args: string[], code = 0): Promise<string> {
  const r = await run(w, args, code);
  return r.stdout + r.stderr;
}

/** stdout alone, for --json. */
async function cliJson<T>(w: World, args: string[], code = 0): Promise<T> {
  return JSON.parse((await run(w, args, code)).stdout) as T;
}

const json = <T>(text: string): T => JSON.parse(text) as T;

test('[nft] status, grants, grants revoke, keys add/list/revoke, log; status falls back to the database', { skip }, async (t) => {
  const w = await createWorld({ backend: 'nft' });
  t.after(() => w.close());
  const { lab } = w;
  w.writeConfig({ state: { database: join(w.dir, 'state.db'), flush_interval_s: 1 } });
  await w.startDaemon();
  assert.equal(statSync(join(w.dir, 'control.sock')).mode & 0o777, 0o600);

  const s = json<{ daemon: string; state: string; backend: string; clock: string; database: { state: string }; grantsOpen: number }>(await cli(w, ['status', '--json']));
  assert.deepEqual([s.daemon, s.state, s.backend, s.clock, s.database.state, s.grantsOpen], ['running', 'running', 'nft', 'trusted', 'ok', 0]);
  assert.match(await cli(w, ['status']), /postern: running .*\nbackend: nft {3}clock: trusted/);

  const opened = await w.postern(lab.client, ['open', lab.router.ip4, 'tcp/22', ...keyFileArgs(w), '--duration', '60', '--wait']);
  assert.equal(opened.code, 0, opened.stderr);
  const { grants } = json<{ grants: { id: string; key: string; services: string[] }[] }>(await cli(w, ['grants', '--json']));
  assert.equal(grants.length, 1);
  assert.deepEqual([grants[0]?.key, grants[0]?.services], ['tech', ['tcp/22']]);
  const id = grants[0]?.id ?? '';
  assert.match(await cli(w, ['grants', 'revoke', id]), new RegExp(`grant ${id} closed`));
  assert.equal((await w.grantRules()).length, 0);
  assert.equal((await tcpConnect(lab, lab.client, lab.router.ip4, SERVICE_PORT, 500)).result, 'timeout');
  assert.match(await cli(w, ['grants', 'revoke', id], 1), /no such grant/);

  const alice = generateCredential();
  const credFile = join(w.dir, 'alice.key');
  writeFileSync(credFile, alice.encode() + '\n', { mode: 0o600 });
  assert.match(await cli(w, ['keys', 'add', 'alice', '--credential-file', credFile, '--services', 'tcp/22']), /key alice added \(tcp\/22\); daemon reloaded/);
  assert.equal(statSync(w.configPath).mode & 0o777, 0o600, 'mode preserved');
  const { keys } = json<{ keys: { name: string; revoked: boolean }[] }>(await cli(w, ['keys', 'list', '--json']));
  assert.deepEqual(keys.map((k) => [k.name, k.revoked]), [['tech', false], ['alice', false]]);
  await w.sendRaw(lab.client, w.packet({ credential: alice, durationS: 30 }));
  await w.daemon.waitForOutput(/msg="grant opened" key=alice/, 3000);
  assert.match(await cli(w, ['keys', 'revoke', 'alice']), /key alice revoked; daemon reloaded/);
  await w.sendRaw(lab.client, w.packet({ credential: alice, durationS: 30 }));
  await w.daemon.waitForOutput(/msg=refused reason=revoked_key source=198\.18\.0\.2 key=alice/, 3000);
  assert.doesNotMatch(await cli(w, ['keys', 'list']), /postern1:/, 'list never shows credentials');

  await eventually(async () => (await cli(w, ['log', '--reason', 'revoked_key', '--json'])).includes('"kind":"revoked_key"'), 5000, 'audit row');
  const rows = (await cli(w, ['log', '--since', '10m', '--json'])).trim().split('\n').map((l) => json<{ kind: string; count: number }>(l));
  assert.ok(rows.some((r) => r.kind === 'accepted') && rows.some((r) => r.kind === 'closed'), JSON.stringify(rows));

  const follow = lab.spawn(lab.router, [process.execPath, BUNDLE, 'log', '--follow', '--json', '--since', '1s', '--config', w.configPath]);
  await w.sendRaw(lab.attacker, w.packet({ credential: new Credential(w.key.keyId, Buffer.alloc(32, 9)) }));
  await follow.waitForOutput(/"kind":"bad_auth","source":"198\.18\.0\.3"/, 5000);
  follow.kill();

  w.daemon.kill('SIGTERM');
  await w.daemon.exited();
  const down = json<{ daemon: string; database: { counters: Record<string, number> } }>(await cli(w, ['status', '--json'], 1));
  assert.equal(down.daemon, 'not running');
  assert.ok((down.database.counters['accepted'] ?? 0) >= 2, JSON.stringify(down.database));
  assert.match(await cli(w, ['log', '--reason', 'accepted']), /accepted {2}source=198\.18\.0\.2 key=tech/);
});

test('device commands: argument errors print usage and exit 2', { skip: bundleSkipReason() }, async (t) => {
  const w = await createWorld({ backend: 'nft' });
  t.after(() => w.close());
  for (const args of [['grants', 'frob'], ['grants', 'revoke'], ['log', '--since', 'yesterday'], ['log', '--reason', 'nope'], ['keys'], ['keys', 'add'], ['status', 'x']]) {
    const out = await cli(w, args, 2);
    assert.match(out, /usage: postern/, args.join(' '));
  }
});

test('[nft] doctor: database, daemon and broker checks, each failure with its fix', { skip }, async (t) => {
  const w = await createWorld({ backend: 'nft' });
  t.after(() => w.close());
  // Nothing listens on port 1 of the router's loopback: the broker check must fail, quickly.
  w.writeConfig({ state: { database: join(w.dir, 'state.db') }, mqtt: { url: 'mqtt://127.0.0.1:1' } });
  type Checks = { checks: { name: string; status: string; detail: string; fix?: string }[] };
  const before = (await cliJson<Checks>(w, ['doctor', '--json'], 1)).checks;
  const byName = (cs: Checks['checks'], n: string) => cs.find((c) => c.name === n);
  assert.equal(byName(before, 'database')?.status, 'ok');
  assert.equal(byName(before, 'daemon')?.status, 'warn');
  assert.equal(byName(before, 'broker')?.status, 'fail');
  for (const c of before) if (c.status !== 'ok') assert.ok(c.fix, `${c.name} says how to fix it`);
  w.writeConfig({ state: { database: join(w.dir, 'state.db') } });
  await w.startDaemon();
  const running = (await cliJson<Checks>(w, ['doctor', '--json'])).checks;
  assert.equal(byName(running, 'daemon')?.status, 'ok');
  assert.match(byName(running, 'database')?.detail ?? '', /schema \d+\/\d+/);
  assert.equal(byName(running, 'broker'), undefined, 'no mqtt, no broker check');
});
