// SPDX-License-Identifier: MIT
// docs/protocol.md is part of the spec: its vectors must be what the code produces.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseCredential } from '../../../src/spa/credential.ts';
import { encodeMessage, type SpaMessage } from '../../../src/spa/message.ts';
import { buildKeyTable, openPacket, prepareKey, sealPacket } from '../../../src/spa/packet.ts';
import { parseService } from '../../../src/config/load.ts';

const doc = readFileSync(new URL('../../../docs/protocol.md', import.meta.url), 'utf8');
const CRED = /```\n(postern1:[A-Za-z0-9_-]+)\n```/.exec(doc)?.[1] ?? '';

interface DocVector {
  message: { type: SpaMessage['type']; timestampMs: number; nonce: string; durationS: number; address?: string; services: string[] };
  padding: string;
  plaintext: string;
  packet: string;
}

const vectors: DocVector[] = [...doc.matchAll(/```spa-vector\n([\s\S]*?)```/g)].map((m) => JSON.parse(m[1] ?? '') as DocVector);

function toMessage(v: DocVector): SpaMessage {
  return {
    type: v.message.type, timestampMs: v.message.timestampMs, nonce: Buffer.from(v.message.nonce, 'hex'),
    durationS: v.message.durationS, address: v.message.address,
    services: v.message.services.map((s) => parseService(s) ?? assert.fail(s)), nat: undefined,
  };
}

test('docs/protocol.md has a credential and at least three vectors', () => {
  assert.ok(parseCredential(CRED).ok);
  assert.ok(vectors.length >= 3);
});

for (const [i, v] of vectors.entries()) {
  test(`protocol vector ${i + 1}: plaintext, packet and decode match the doc`, () => {
    const cred = parseCredential(CRED);
    assert.ok(cred.ok);
    const key = prepareKey('doc', cred.value);
    const msg = toMessage(v);
    assert.equal(encodeMessage(msg, Buffer.from(v.padding, 'hex')).toString('hex'), v.plaintext);
    assert.equal(sealPacket(key, msg, Buffer.from(v.padding, 'hex')).toString('hex'), v.packet);
    const opened = openPacket(Buffer.from(v.packet, 'hex'), buildKeyTable([key]));
    assert.ok(opened.ok, 'the documented packet opens');
    assert.deepEqual({ ...opened.value.message, nonce: opened.value.message.nonce.toString('hex') }, { ...msg, nonce: v.message.nonce });
  });
}
