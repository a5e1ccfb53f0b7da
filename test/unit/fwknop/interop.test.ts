// SPDX-License-Identifier: MIT
// Interop with the real fwknop 2.6.10 binaries (Debian fwknop-client / fwknop-server).
//  - client -> codec: fresh packets from `fwknop -T` (builds, prints, sends nothing) for
//    several option sets are decoded and compared with the client's own printout.
//  - encoder -> server: packets from encodeFwknop are written to a pcap file and read by
//    `fwknopd --test --pcap-file` (no firewall changes in --test; run inside a private network
//    namespace via `unshare --net` anyway, so nothing it might touch is the host's).
// Each part is skipped, with the reason, when its binary (or root for unshare) is missing.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { decodeFwknop } from '../../../src/fwknop/codec.ts';
import { encodeFwknop, type FwknopRequest } from '../../../src/fwknop/encode.ts';
import { prepareFwknopKey } from '../../../src/fwknop/keys.ts';

const K = 'jlB+K0V5xi17E6z2W7GjRTqC0dGv1K+mwqvoEIGtSQQ=';
const H = 'n3oYB/DtadNyE7IQulHVRUlkPr+vIGkjPCPX8SKQ6BFD7G5Z5hBkX/dn0xPcSxsaVuZZ1baTL/WJmqP49/xXkg==';
const K2 = Buffer.alloc(20, 0x42).toString('base64');
const H2 = Buffer.from(Array.from({ length: 128 }, (_, i) => i)).toString('base64');

function has(bin: string, args: string[]): boolean {
  const r = spawnSync(bin, args, { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', HOME: tmpdir() }, timeout: 5000 });
  return r.error === undefined;
}
const noClient = has('fwknop', ['--version']) ? false : 'fwknop client not installed (apt install fwknop-client)';
const isRoot = process.getuid?.() === 0;
const noServer = !has('fwknopd', ['--version']) ? 'fwknopd not installed (apt install fwknop-server)'
  : !isRoot || !has('unshare', ['--version']) ? 'needs root and unshare to run fwknopd in a private network namespace' : false;

function withTmp<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'postern-fwknop-'));
  try { return fn(dir); } finally { rmSync(dir, { recursive: true, force: true }); }
}

function printed(out: string, label: string): string | undefined {
  return new RegExp(`^\\s*${label}: (.*)$`, 'm').exec(out)?.[1];
}

describe('real fwknop client -> decodeFwknop', { skip: noClient }, () => {
  const combos: { args: string[]; hmacType: 'sha256' | 'sha512' | 'sha3_256'; key?: string; hmac?: string }[] = [
    { args: ['-A', 'tcp/22'], hmacType: 'sha256' },
    { args: ['-A', 'tcp/22', '-f', '120', '-m', 'sha3_512', '-U', 'dave'], hmacType: 'sha256' },
    { args: ['-A', 'udp/1194', '-N', '198.19.0.10:22', '--hmac-digest-type', 'sha512'], hmacType: 'sha512' },
    { args: ['-A', 'tcp/22,tcp/443', '-N', '198.19.0.10:443', '-f', '45', '-m', 'md5', '--hmac-digest-type', 'sha3_256'], hmacType: 'sha3_256' },
    { args: ['-A', 'tcp/22', '--nat-local', '--nat-port', '55000', '-f', '30', '-s'], hmacType: 'sha256', key: K2, hmac: H2 },
  ];
  for (const c of combos) {
    it(`fwknop ${c.args.join(' ')} (hmac ${c.hmacType})`, () => withTmp((home) => {
      const key = c.key ?? K;
      const hmac = c.hmac ?? H;
      const file = join(home, 'spa.pkt');
      const r = spawnSync('fwknop', [...c.args, '-a', '198.18.0.2', '-D', '127.0.0.1', '--use-hmac', '--key-base64-rijndael', key,
        '--key-base64-hmac', hmac, '-T', '-B', file, '--no-rc-file'], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', HOME: home }, timeout: 10_000 });
      assert.equal(r.status, 0, r.stderr);
      const wire = (printed(r.stdout, 'Final SPA Data') ?? '').trim();
      const fkey = prepareFwknopKey({ key: Buffer.from(key, 'base64'), hmacKey: Buffer.from(hmac, 'base64'), hmacType: c.hmacType });
      const got = decodeFwknop(Buffer.from(wire, 'latin1'), fkey);
      assert.ok(got.ok, JSON.stringify(got));
      const m = got.value;
      assert.equal(m.random, printed(r.stdout, 'Random Value'));
      assert.equal(m.username, printed(r.stdout, 'Username'));
      assert.equal(String(m.timestampS), printed(r.stdout, 'Timestamp'));
      assert.equal(String(m.type), printed(r.stdout, 'Message Type')?.split(' ')[0]);
      assert.equal([m.allowIp, ...m.access.map((a) => `${a.proto}/${a.port}`)].join(','), printed(r.stdout, 'Message String'));
      assert.equal(m.nat === undefined ? '<NULL>' : `${m.nat.host},${m.nat.port}`, printed(r.stdout, 'Nat Access'));
      assert.equal(String(m.clientTimeoutS ?? 0), printed(r.stdout, 'Client Timeout'));
      assert.equal(m.digest, printed(r.stdout, 'SPA Data Digest'));
    }));
  }
});

/** Ethernet + IPv4 + UDP frames to port 62201 from 198.18.0.2, in a pcap file. */
function pcap(payloads: readonly string[]): Buffer {
  const g = Buffer.alloc(24);
  g.writeUInt32LE(0xa1b2c3d4, 0); g.writeUInt16LE(2, 4); g.writeUInt16LE(4, 6); g.writeUInt32LE(65535, 16); g.writeUInt32LE(1, 20);
  const recs = payloads.map((p, i) => {
    const pl = Buffer.from(p, 'latin1');
    const udp = Buffer.alloc(8);
    udp.writeUInt16BE(40000 + i, 0); udp.writeUInt16BE(62201, 2); udp.writeUInt16BE(8 + pl.length, 4);
    const ip = Buffer.alloc(20);
    ip[0] = 0x45; ip.writeUInt16BE(28 + pl.length, 2); ip[8] = 64; ip[9] = 17;
    ip.set([198, 18, 0, 2], 12); ip.set([198, 18, 0, 1], 16);
    let s = 0;
    for (let j = 0; j < 20; j += 2) s += ip.readUInt16BE(j);
    while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
    ip.writeUInt16BE(~s & 0xffff, 10);
    const frame = Buffer.concat([Buffer.alloc(12, 2), Buffer.from([8, 0]), ip, udp, pl]);
    const h = Buffer.alloc(16);
    h.writeUInt32LE(1700000000 + i, 0); h.writeUInt32LE(frame.length, 8); h.writeUInt32LE(frame.length, 12);
    return Buffer.concat([h, frame]);
  });
  return Buffer.concat([g, ...recs]);
}

describe('encodeFwknop -> real fwknopd --test', { skip: noServer }, () => {
  it('fwknopd decodes every encoder packet (types 1-6, three HMAC types) and refuses a tampered one', () => withTmp((dir) => {
    const k1 = prepareFwknopKey({ key: Buffer.from(K, 'base64'), hmacKey: Buffer.from(H, 'base64'), hmacType: 'sha256' });
    const k2 = prepareFwknopKey({ key: Buffer.from(K2, 'base64'), hmacKey: Buffer.from(H2, 'base64'), hmacType: 'sha3_512' });
    const base = { username: 'alice', timestampS: 1700000000, allowIp: '203.0.113.5', access: [{ proto: 'tcp' as const, port: 22 }] };
    const nat = { host: '192.168.1.10', port: 22 };
    const reqs: [FwknopRequest, typeof k1][] = [
      [{ ...base, type: 1 }, k1],
      [{ ...base, type: 2, nat, digestType: 'sha512' }, k1],
      [{ ...base, type: 3, clientTimeoutS: 77, digestType: 'md5' }, k2],
      [{ ...base, type: 4, nat, clientTimeoutS: 45, access: [{ proto: 'udp', port: 1194 }] }, k2],
      [{ ...base, type: 5, nat, username: 'bob', digestType: 'sha3_256' }, k1],
      [{ ...base, type: 6, nat, clientTimeoutS: 30, digestType: 'sha1' }, k2],
    ];
    const wires = reqs.map(([req, key], i) => encodeFwknop(req, key, { salt: Buffer.alloc(8, i + 1), random16: `${i + 1}`.repeat(16) }));
    const tampered = wires[0]!.slice(0, 60) + (wires[0]![60] === 'A' ? 'B' : 'A') + wires[0]!.slice(61);
    writeFileSync(join(dir, 'p.pcap'), pcap([...wires, tampered]));
    writeFileSync(join(dir, 'fwknopd.conf'), `FWKNOP_RUN_DIR ${dir};\nENABLE_SPA_PACKET_AGING N;\nENABLE_DIGEST_PERSISTENCE N;\n`);
    writeFileSync(join(dir, 'access.conf'), `SOURCE ANY\nKEY_BASE64 ${K}\nHMAC_KEY_BASE64 ${H}\n\nSOURCE ANY\nKEY_BASE64 ${K2}\nHMAC_KEY_BASE64 ${H2}\nHMAC_DIGEST_TYPE SHA3_512\n`);
    for (const f of ['fwknopd.conf', 'access.conf']) chmodSync(join(dir, f), 0o600);
    const r = spawnSync('unshare', ['--net', 'fwknopd', '-c', join(dir, 'fwknopd.conf'), '-a', join(dir, 'access.conf'), '-d', join(dir, 'digest.cache'),
      '-p', join(dir, 'pid'), '-r', dir, '--pcap-file', join(dir, 'p.pcap'), '--pcap-any-direction', '-f', '-t', '-v', '-v', '-C', String(wires.length + 1)],
    { encoding: 'utf8', timeout: 20_000 });
    const out = r.stdout + r.stderr;
    assert.equal(r.status, 0, out);
    const decoded = [...out.matchAll(/SPA Decode \(res=0\)[\s\S]*?Random Value: (\d+)[\s\S]*?Message Type: (\d)/g)].map((m) => [m[1], Number(m[2])]);
    assert.deepEqual(decoded, reqs.map(([req], i) => [`${i + 1}`.repeat(16), req.type]));
    assert.match(out, /Client Timeout: 77/);
    assert.match(out, /Nat Access: 192\.168\.1\.10,22/);
    assert.match(out, /Packet count limit \(7\) reached/);
  }));
});
