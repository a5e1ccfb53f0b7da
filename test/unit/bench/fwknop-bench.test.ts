// SPDX-License-Identifier: MIT
// The fwknop benchmark's pure parts (test/bench/fwknop-bench.ts). `core` times the paths it
// claims only if its packets are what it says (distinct, fresh, each one taking the full path
// even with the ring full); `open` compares postern with fwknopd fairly only if both get the
// same policy and the same bytes, and the real client's packets are ones postern accepts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validateConfig } from '../../../src/config/load.ts';
import type { FwknopStanzaConfig } from '../../../src/config/fwknop.ts';
import { decodeFwknop } from '../../../src/fwknop/codec.ts';
import { prepareFwknopKey } from '../../../src/fwknop/keys.ts';
import { decideFwknop, stanzaReplayId, type FwknopStanza } from '../../../src/pipeline/fwknop.ts';
import { ReplayGuard } from '../../../src/spa/replay.ts';
import {
  FW_ACCESS_TIMEOUT_S, accessConf, benchStanza, fwknopBenchPackets, fwknopClientArgs, newFwknopKeys, posternStanza,
  sharedPackets, type FwknopKeys,
} from '../../bench/fwknop-bench.ts';

const NOW = 1_700_000_000_500;
const SOURCE = '198.18.0.2';
const WINDOW_MS = 120_000;

function guard(capacity: number): ReplayGuard {
  return new ReplayGuard({ capacity, windowMs: WINDOW_MS });
}

test('fwknopBenchPackets: distinct, one second per ring generation, ending now, each decodes', () => {
  const st = benchStanza();
  const capacity = 16;
  const pkts = fwknopBenchPackets(st.key, 50, { nowMs: NOW, capacity });
  assert.equal(new Set(pkts.map((p) => p.toString('latin1'))).size, 50);
  const secs = pkts.map((p) => {
    const m = decodeFwknop(p, st.key);
    assert.ok(m.ok, m.ok ? '' : m.reason);
    assert.equal(m.value.allowIp, SOURCE);
    assert.deepEqual(m.value.access, [{ proto: 'tcp', port: 22 }]);
    return m.value.timestampS;
  });
  const last = Math.floor(NOW / 1000);
  // 50 packets over generations of 16: seconds last-3 (16), last-2 (16), last-1 (16), last (2).
  assert.deepEqual(secs, Array.from({ length: 50 }, (_, i) => last - 3 + Math.floor(i / capacity)));
});

test('fwknopBenchPackets: with the ring full, every packet still takes the whole path to a grant', () => {
  const st = benchStanza();
  const capacity = 16;
  const ctx = { stanzas: [st], replay: guard(capacity), nowMs: NOW, clockTrusted: true };
  for (const p of fwknopBenchPackets(st.key, 5 * capacity, { nowMs: NOW, capacity })) {
    const d = decideFwknop(p, SOURCE, ctx);
    assert.equal(d.kind, 'fwknop', d.kind === 'drop' ? d.reason : '');
  }
  assert.equal(ctx.replay.size, capacity);
});

test('why the seconds step: same-second packets past a full ring are refused as stale', () => {
  const st = benchStanza();
  const capacity = 16;
  const ctx = { stanzas: [st], replay: guard(capacity), nowMs: NOW, clockTrusted: true };
  // One generation as long as the whole set: every packet carries the same second. Packet
  // capacity + 1 is granted and evicts the first, raising the floor to that second; the next
  // one, of the same second, is refused.
  const count = capacity + 2;
  const pkts = fwknopBenchPackets(st.key, count, { nowMs: NOW, capacity: count });
  const kinds = pkts.map((p) => { const d = decideFwknop(p, SOURCE, ctx); return d.kind === 'drop' ? d.reason : d.kind; });
  assert.deepEqual(kinds, [...Array.from({ length: capacity + 1 }, () => 'fwknop'), 'stale']);
});

test('benchStanza: fresh keys each time, one SOURCE ANY stanza for tcp/22 with HMAC-SHA256', () => {
  const [a, b] = [benchStanza(), benchStanza()];
  assert.ok(!a.config.key.equals(b.config.key));
  assert.equal(a.config.sources, undefined);
  assert.deepEqual(a.config.openPorts, [{ proto: 'tcp', port: 22 }]);
  assert.equal(a.key.hmacType, 'sha256');
  assert.equal(a.replayId, stanzaReplayId(a.config.name));
});

/** access.conf text as KEY -> value (one stanza, "KEY value" lines). */
function parseAccessConf(text: string): Map<string, string> {
  return new Map(text.split('\n').filter((l) => l !== '').map((l) => {
    const [k, ...v] = l.split(' ');
    return [k!, v.join(' ')];
  }));
}

function posternConfig(keys: FwknopKeys): FwknopStanzaConfig {
  const r = validateConfig({ device: 'bench', guarded: ['tcp/22'], keys: [], fwknop: { stanzas: [posternStanza(keys, 22)] } });
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  assert.equal(r.config.raw.fwknop.max_age_s, 120, 'the same packet age limit as fwknopd (MAX_SPA_PACKET_AGE 120)');
  return r.config.fwknop[0]!;
}

test('accessConf and posternStanza give both daemons the same policy', () => {
  const keys = newFwknopKeys();
  const fwknopd = parseAccessConf(accessConf(keys, 22));
  assert.deepEqual([...fwknopd.keys()], ['SOURCE', 'KEY_BASE64', 'HMAC_KEY_BASE64', 'OPEN_PORTS', 'FW_ACCESS_TIMEOUT']);
  const st = posternConfig(keys);
  assert.equal(fwknopd.get('SOURCE'), 'ANY');
  assert.equal(st.sources, undefined, 'ANY');
  assert.ok(st.key.equals(Buffer.from(fwknopd.get('KEY_BASE64')!, 'base64')));
  assert.ok(st.hmacKey.equals(Buffer.from(fwknopd.get('HMAC_KEY_BASE64')!, 'base64')));
  assert.equal(st.hmacType, 'sha256', "fwknopd's default HMAC_DIGEST_TYPE");
  assert.equal(fwknopd.get('OPEN_PORTS'), 'tcp/22');
  assert.deepEqual(st.openPorts, [{ proto: 'tcp', port: 22 }]);
  assert.equal(Number(fwknopd.get('FW_ACCESS_TIMEOUT')), FW_ACCESS_TIMEOUT_S);
  assert.equal(st.fwAccessTimeoutS, FW_ACCESS_TIMEOUT_S);
  assert.equal(st.requireSourceAddress, false, "fwknopd's default REQUIRE_SOURCE_ADDRESS N");
  assert.equal(st.requireUsername, undefined);
});

test('fwknopClientArgs: builds without sending, reads no rc file, names the source as allow IP', () => {
  const keys = newFwknopKeys();
  const args = fwknopClientArgs(keys, { source: '198.18.0.100', dest: '198.18.0.1', port: 22, file: '/tmp/x' });
  for (const flag of ['--no-rc-file', '--no-save-args', '-T', '--use-hmac']) assert.ok(args.includes(flag), flag);
  const after = (flag: string): string | undefined => args[args.indexOf(flag) + 1];
  assert.equal(after('-a'), '198.18.0.100');
  assert.equal(after('-A'), 'tcp/22');
  assert.equal(after('-B'), '/tmp/x');
  assert.equal(after('--key-base64-rijndael'), keys.key);
  assert.equal(after('--key-base64-hmac'), keys.hmac);
});

const noClient = spawnSync('fwknop', ['--no-rc-file', '--help'], { env: { PATH: process.env.PATH ?? '', HOME: tmpdir() }, timeout: 5_000 }).error
  ? 'fwknop client not installed (apt install fwknop-client)' : false;

test("the real client's packet, made with the bench's argv, is granted by the bench's postern stanza", { skip: noClient }, () => {
  const home = mkdtempSync(join(tmpdir(), 'postern-bench-fwknop-test-'));
  try {
    const keys = newFwknopKeys();
    const file = join(home, 'spa.pkt');
    const r = spawnSync('fwknop', fwknopClientArgs(keys, { source: '198.18.0.100', dest: '198.18.0.1', port: 22, file }),
      { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', HOME: home }, timeout: 10_000 });
    assert.equal(r.status, 0, r.stderr);
    const config = posternConfig(keys);
    const stanza: FwknopStanza = {
      config, key: prepareFwknopKey({ key: config.key, hmacKey: config.hmacKey, hmacType: config.hmacType }), replayId: stanzaReplayId(config.name),
    };
    const wire = Buffer.from(readFileSync(file, 'ascii').trim(), 'ascii');
    const d = decideFwknop(wire, '198.18.0.100', { stanzas: [stanza], replay: guard(16), nowMs: Date.now(), clockTrusted: true });
    assert.equal(d.kind, 'fwknop', d.kind === 'drop' ? d.reason : '');
    assert.ok(d.kind === 'fwknop');
    assert.deepEqual(d.plans[0], { family: 4, address: '198.18.0.100', services: [{ proto: 'tcp', port: 22 }], durationS: FW_ACCESS_TIMEOUT_S });
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test('sharedPackets: built once, the same set while young, built again once too old', async () => {
  let now = 0;
  let builds = 0;
  const get = sharedPackets(60_000, () => now);
  const build = async (): Promise<string[]> => [`set${++builds}`];
  const first = await get(build);
  assert.deepEqual(first, { packets: ['set1'], rebuilt: false });
  now = 60_000;
  const same = await get(build);
  assert.equal(same.packets, first.packets, 'the very same array: identical bytes for the next daemon');
  assert.equal(same.rebuilt, false);
  now = 60_001;
  assert.deepEqual(await get(build), { packets: ['set2'], rebuilt: true });
  now = 60_002;
  assert.deepEqual(await get(build), { packets: ['set2'], rebuilt: false });
  assert.equal(builds, 2);
});
