// SPDX-License-Identifier: MIT
// The control socket for real: a unix socket in a temp dir, the CLI's client against it.
// Modes (dir 0700, socket 0600), in-order answers on one connection, typed errors, the
// line-length bound, a stale socket file replaced and a live one refused.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { controlRequest } from '../../../src/control/client.ts';
import { MAX_REQUEST_BYTES } from '../../../src/control/protocol.ts';
import { ControlServer, type ControlHandler } from '../../../src/control/server.ts';

const dir = mkdtempSync(join(tmpdir(), 'postern-control-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const handler: ControlHandler = async (req) => req.cmd === 'revoke'
  ? (req.id === 'abc' ? { ok: true, data: { revoked: 'abc' } } : { ok: false, error: 'not_found', message: 'no such grant' })
  : { ok: true, data: { cmd: req.cmd } };

function rawExchange(path: string, text: string, lines: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const s = createConnection(path, () => s.write(text));
    s.setEncoding('utf8');
    s.on('data', (c: string) => {
      buf += c;
      const got = buf.split('\n').filter(Boolean);
      if (got.length >= lines) { s.destroy(); resolve(got); }
    });
    s.on('error', reject);
    s.on('close', () => resolve(buf.split('\n').filter(Boolean)));
  });
}

test('socket 0600 in a 0700 directory; requests answered; typed errors', async () => {
  const path = join(dir, 'run', 'control.sock');
  const server = new ControlServer(path, handler);
  await server.start();
  try {
    assert.equal(statSync(join(dir, 'run')).mode & 0o777, 0o700);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.deepEqual(await controlRequest(path, { cmd: 'status' }), { ok: true, response: { ok: true, data: { cmd: 'status' } } });
    assert.deepEqual(await controlRequest(path, { cmd: 'revoke', id: 'zzz' }), { ok: true, response: { ok: false, error: 'not_found', message: 'no such grant' } });
    const lines = await rawExchange(path, '{"cmd":"keys"}\nnot json\n{"cmd":"revoke","id":"abc"}\n', 3);
    assert.deepEqual(lines.map((l) => JSON.parse(l) as unknown), [
      { ok: true, data: { cmd: 'keys' } }, { ok: false, error: 'bad_json', message: 'request is not JSON' }, { ok: true, data: { revoked: 'abc' } },
    ]);
    const long = await rawExchange(path, 'x'.repeat(MAX_REQUEST_BYTES * 4), 1);
    assert.equal((JSON.parse(long[0] ?? '{}') as { error?: string }).error, 'too_long');
    await assert.rejects(new ControlServer(path, handler).start(), /another postern daemon is listening/);
  } finally {
    server.stop();
  }
  const gone = await controlRequest(path, { cmd: 'status' });
  assert.equal(gone.ok, false);
  assert.ok(!gone.ok && gone.unavailable);
});

test('a stale socket file (no listener) is replaced', async () => {
  const path = join(dir, 'stale.sock');
  writeFileSync(path, '');
  const server = new ControlServer(path, handler);
  await server.start();
  try {
    assert.equal((await controlRequest(path, { cmd: 'grants' })).ok, true);
  } finally {
    server.stop();
  }
});
