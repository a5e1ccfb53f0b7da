// SPDX-License-Identifier: MIT
// Every authenticated fwknop packet enters the replay ring before any refusal (issue 9):
// a captured packet that the daemon refused by policy, replayed from spoofed addresses,
// must come back as `replay` (which docs/fail2ban.md never bans on), not as the policy
// reason again once per spoofed address. Also: junk and HMAC failures never move the ring.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { buildFwknopPlaintext, encodeFwknop, sealFwknopPlaintext } from '../../../src/fwknop/encode.ts';
import { decodeFwknop } from '../../../src/fwknop/codec.ts';
import { decideFwknop, type FwknopContext } from '../../../src/pipeline/fwknop.ts';
import { ReplayGuard } from '../../../src/spa/replay.ts';
import { benchStanza } from '../../bench/fwknop-bench.ts';
import { withDigest } from '../fwknop/oracle.ts';

const NOW_S = 1_700_000_000;
const CLIENT = '198.18.0.2';
const SPOOFED = ['198.18.0.2', '203.0.113.7', '192.0.2.1', '2001:db8::5'];
const R = '1234567890123456';
const b64 = (s: string) => Buffer.from(s, 'latin1').toString('base64').replace(/=+$/, '');

function world(clockTrusted = true): { ctx: FwknopContext; st: ReturnType<typeof benchStanza> } {
  const st = benchStanza(); // opens tcp/22 only
  return { st, ctx: { stanzas: [st], replay: new ReplayGuard({ capacity: 64, windowMs: 120_000 }), nowMs: NOW_S * 1000 + 500, clockTrusted } };
}

/** A sealed plaintext from raw fields (the encoder refuses icmp and type 0, a client may not). */
function sealFields(st: ReturnType<typeof benchStanza>, type: string, message: string, tsS = NOW_S): Buffer {
  const body = [R, b64('alice'), String(tsS), '3.0.0', type, b64(message)].join(':');
  return Buffer.from(sealFwknopPlaintext(withDigest(body), st.key, randomBytes(8)), 'latin1');
}

function access(st: ReturnType<typeof benchStanza>, port: number, tsS = NOW_S): Buffer {
  const req = { username: 'alice', timestampS: tsS, type: 1 as const, allowIp: '0.0.0.0', access: [{ proto: 'tcp' as const, port }] };
  return Buffer.from(encodeFwknop(req, st.key, { salt: randomBytes(8), random16: R }), 'latin1');
}

function reasonsOf(payload: Buffer, ctx: FwknopContext): string[] {
  return SPOOFED.map((src) => {
    const d = decideFwknop(payload, src, ctx);
    return d.kind === 'drop' ? d.reason : d.kind;
  });
}

test('codec: by-design refusals carry the authenticated timestamp', () => {
  const { st } = world();
  for (const [type, msg, reason] of [['0', '0.0.0.0,touch /tmp/x', 'command_refused'], ['1', '0.0.0.0,icmp/0', 'unsupported_proto']] as const) {
    assert.deepEqual(decodeFwknop(sealFields(st, type, msg, NOW_S - 7), st.key), { ok: false, reason, timestampS: NOW_S - 7 });
  }
  assert.ok(buildFwknopPlaintext({ username: 'a', timestampS: 1, type: 1, allowIp: '0.0.0.0', access: [{ proto: 'tcp', port: 22 }] }, R).includes(':1:'));
});

const REFUSED: [string, (st: ReturnType<typeof benchStanza>) => Buffer, string][] = [
  ['unsupported protocol (icmp)', (st) => sealFields(st, '1', '0.0.0.0,icmp/0'), 'denied_service'],
  ['command message (type 0)', (st) => sealFields(st, '0', '0.0.0.0,echo hi'), 'fwknop_command'],
  ['port outside OPEN_PORTS', (st) => access(st, 443), 'denied_service'],
];

for (const [what, make, reason] of REFUSED) {
  test(`${what}: refused once as ${reason}, then every replay from any address is 'replay'`, () => {
    for (const trusted of [true, false]) {
      const { st, ctx } = world(trusted);
      const p = make(st);
      const first = decideFwknop(p, CLIENT, ctx);
      assert.equal(first.kind === 'drop' && first.reason, reason);
      assert.ok(first.kind === 'drop' && first.accepted, 'the refusal carries the packet to persist');
      assert.equal(ctx.replay.size, 1, 'committed before the refusal');
      assert.deepEqual(reasonsOf(p, ctx), SPOOFED.map(() => 'replay'));
    }
  });
}

test('a stale refused packet is `stale`, never its policy reason, and is not committed', () => {
  const { st, ctx } = world();
  const old = sealFields(st, '1', '0.0.0.0,icmp/0', NOW_S - 600);
  assert.deepEqual(reasonsOf(old, ctx), SPOOFED.map(() => 'stale'));
  assert.equal(ctx.replay.size, 0);
});

test('the client\'s valid packet still opens after its refused packets were replayed', () => {
  const { st, ctx } = world();
  const refused = sealFields(st, '1', '0.0.0.0,icmp/0');
  reasonsOf(refused, ctx);
  reasonsOf(refused, ctx);
  const d = decideFwknop(access(st, 22), CLIENT, ctx);
  assert.equal(d.kind, 'fwknop');
});

test('junk and HMAC failures never enter the ring', () => {
  const { st, ctx } = world();
  const other = benchStanza();
  for (let i = 0; i < 50; i++) {
    decideFwknop(randomBytes(200), CLIENT, ctx);
    decideFwknop(Buffer.from(randomBytes(150).toString('base64').replace(/[=]/g, '').replace(/^./, '8')), CLIENT, ctx);
    decideFwknop(access(other, 22), CLIENT, ctx); // authenticated by another stanza's key only
  }
  assert.equal(ctx.replay.size, 0);
  assert.equal(decideFwknop(access(st, 22), CLIENT, ctx).kind, 'fwknop');
});
