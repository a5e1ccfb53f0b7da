// SPDX-License-Identifier: MIT
// knockd port syntax, one-time files and TCP flag filters (src/knock/sequence.ts), and the
// capture ports doors need (src/knock/door.ts). Parsers never throw on any text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  flagsMatch, markLineUsed, parseKnockPort, parseOneTimeFile, parseSequence, parseTcpFlags, splitSequenceLine,
} from '../../../src/knock/sequence.ts';
import { knockPorts } from '../../../src/knock/door.ts';

test('PORT[:tcp|udp]: tcp by default, ranges checked', () => {
  assert.deepEqual(parseKnockPort('7000'), { proto: 'tcp', port: 7000 });
  assert.deepEqual(parseKnockPort(' 8000:UDP '), { proto: 'udp', port: 8000 });
  for (const bad of ['0', '65536', '7000:icmp', '70 00', '', ':tcp', '-1']) assert.equal(parseKnockPort(bad), undefined, bad);
  assert.deepEqual(parseSequence([]), { ok: false, reason: 'empty sequence' });
  assert.equal(parseSequence(Array(33).fill('1')).ok, false);
  assert.deepEqual(splitSequenceLine(' 7000, 8000:udp  9000'), ['7000', '8000:udp', '9000']);
});

test('one-time files: unused lines in order; marking keeps line positions (knockd style)', () => {
  const text = ' 7000,8000,9000\n#1,2,3\n\n 7100:udp 7200\n';
  const r = parseOneTimeFile(text);
  assert.ok(r.ok);
  assert.deepEqual(r.value.map((l) => l.line), [0, 3]);
  const used = markLineUsed(text, 0);
  assert.equal(used, '#7000,8000,9000\n#1,2,3\n\n 7100:udp 7200\n');
  assert.equal(markLineUsed('7000\n', 0), '#7000\n', 'no leading space: # goes in front');
  const after = parseOneTimeFile(used);
  assert.ok(after.ok);
  assert.deepEqual(after.value.map((l) => l.line), [3]);
  assert.deepEqual(parseOneTimeFile('7000\nnot a port\n'), { ok: false, reason: 'line 2: not PORT[:tcp|udp] with PORT 1-65535: "not"' });
});

test('tcpflags: set and !clear bits; contradictions refused', () => {
  const f = parseTcpFlags(['syn', '!ack']);
  assert.ok(f.ok);
  assert.ok(flagsMatch(f.value, 0x02));
  assert.ok(!flagsMatch(f.value, 0x12));
  assert.ok(!flagsMatch(f.value, 0x01));
  assert.ok(flagsMatch(undefined, 0x10));
  assert.equal(parseTcpFlags(['syn', '!syn']).ok, false);
  assert.equal(parseTcpFlags(['ece']).ok, false);
});

test('guard ports surround sequence ports, never overlap them, stay in 1..65535', () => {
  const seqs = [parseSequence(['1', '3', '65535', '100:udp'])].flatMap((s) => (s.ok ? [s.value] : []));
  const p = knockPorts(seqs, [], 2);
  const g = p.guard.map((x) => `${x.proto}/${x.port}`).sort();
  assert.deepEqual(g, ['tcp/2', 'tcp/4', 'tcp/5', 'tcp/65533', 'tcp/65534', 'udp/101', 'udp/102', 'udp/98', 'udp/99']);
  assert.deepEqual(knockPorts(seqs, [], 0).guard, []);
});

test('parsers never throw on arbitrary text', () => {
  fc.assert(fc.property(fc.string({ maxLength: 200 }), (s) => {
    parseKnockPort(s);
    parseOneTimeFile(s);
    parseSequence(splitSequenceLine(s));
    parseTcpFlags(s.split(','));
    markLineUsed(s, 0);
  }), { numRuns: 2000 });
});
