// SPDX-License-Identifier: MIT
// keys[].revoked (postern keys revoke): an authenticated packet of a revoked key is refused
// as revoked_key and records nothing in the replay ring; a packet that only carries the
// key id (a spoofer without the key) is bad_auth, so revoked_key is never forgeable.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildPacket } from '../../../src/cli/spa-client.ts';
import { validateConfig } from '../../../src/config/load.ts';
import { decideSpa } from '../../../src/pipeline/spa.ts';
import { generateCredential } from '../../../src/spa/credential.ts';
import { buildKeyTable, prepareKey } from '../../../src/spa/packet.ts';
import { ReplayGuard } from '../../../src/spa/replay.ts';

const NOW = 1_700_000_000_000;

function setup(revoked: boolean) {
  const cred = generateCredential();
  const loaded = validateConfig({
    device: 'd', guarded: ['tcp/22'], keys: [{ name: 'alice', credential: cred.encode(), services: ['tcp/22'], revoked }],
  });
  assert.ok(loaded.ok);
  const keys = loaded.config.keys;
  const ctx = {
    keys: buildKeyTable(keys.map((k) => prepareKey(k.name, k.credential))),
    keyConfigs: new Map(keys.map((k) => [k.credential.keyId, k])),
    replay: new ReplayGuard(), windowMs: 60_000, nowMs: NOW, clockTrusted: true,
  };
  const packet = buildPacket({ credential: cred, type: 'open', services: [], durationS: 0, allowAddress: undefined, nowMs: NOW });
  return { ctx, packet };
}

test('a revoked key is refused after authentication and the replay commit; a replay of it is replay', () => {
  const { ctx, packet } = setup(true);
  const d = decideSpa(packet, '198.18.0.2', ctx);
  assert.deepEqual([d.kind, d.kind === 'drop' && d.reason, d.kind === 'drop' && d.key], ['drop', 'revoked_key', 'alice']);
  // Recorded, so a captured copy sent again (from any spoofed source) cannot produce a
  // second revoked_key: it is a replay, which fail2ban never matches.
  assert.equal(ctx.replay.size, 1);
  const again = decideSpa(packet, '198.18.0.3', ctx);
  assert.equal(again.kind === 'drop' && again.reason, 'replay');
});

test('the same key not revoked opens; a tampered packet of a revoked key is bad_auth', () => {
  const ok = setup(false);
  assert.equal(decideSpa(ok.packet, '198.18.0.2', ok.ctx).kind, 'open');
  const { ctx, packet } = setup(true);
  const tampered = Buffer.from(packet);
  tampered[tampered.length - 1]! ^= 1;
  const d = decideSpa(tampered, '198.18.0.2', ctx);
  assert.equal(d.kind === 'drop' && d.reason, 'bad_auth');
});
