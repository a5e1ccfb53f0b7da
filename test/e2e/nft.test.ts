// SPDX-License-Identifier: MIT
// The nft backend against the real kernel, in the namespace lab (test/lab/lab.ts: router,
// client, attacker on one segment, 198.18.0.0/24 and fd50:7374::/64, no route out; STYLE.md
// principle 12c). Every nft command runs through `ip netns exec <router>`, so the host
// ruleset is never touched; the lab (namespaces and processes) is removed in after(), even
// on failure. Runs as root (CI does); skips with the reason otherwise.
//
// What it proves: the ruleset is created once; grants are set elements with timeout and id
// comment; the kernel removes an element when it times out, even after the daemon that
// added it was SIGKILLed (DESIGN.md "A crash must never leave a port open"); extension,
// reconcile, revoke and stop; and, with a ruleset built like fw4's (policy drop, WAN
// rejected) loaded through our drop-in exactly as fw4 includes it, that real traffic gets
// through for the granted source only, before and after an fw4 reload (DESIGN.md fact 2).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { prefixRunner, spawnRunner } from '../../src/firewall/exec.ts';
import type { Runner } from '../../src/firewall/exec.ts';
import { NftBackend } from '../../src/firewall/nft.ts';
import { guardLines, parseGrantSet } from '../../src/firewall/nft-rules.ts';
import type { Family, Grant, GuardSpec } from '../../src/firewall/types.ts';
import { memoryLogger } from '../../src/log/logger.ts';
import { systemClock } from '../../src/platform/clock.ts';
import { createLab, IP_BIN, labSkipReason } from '../lab/lab.ts';
import type { Lab, LabHost, LabProcess } from '../lab/lab.ts';
import { probeArgv, runProbe, tcpConnect } from '../lab/net-probe.ts';

const SPA_PORT = 62201;
const SPEC: GuardSpec = { guarded: [{ proto: 'tcp', port: 22 }, { proto: 'tcp', port: 443 }], capture: [{ proto: 'udp', port: SPA_PORT }, { proto: 'tcp', port: 7000 }] };
const SSH = [{ proto: 'tcp', port: 22 }] as const;
const DROP_IN = fileURLToPath(new URL('../../rootfs-overlay/openwrt/usr/share/nftables.d/chain-pre/input/30-postern.nft', import.meta.url));
const SILENT_MS = 1_000;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

async function skipReason(): Promise<string | undefined> {
  const lab = labSkipReason();
  if (lab !== undefined) return lab;
  const v = await spawnRunner(['nft', '--version']).catch(() => undefined);
  if (v?.code !== 0) return 'nft is not installed (apt-get install -y nftables)';
  // Named like the lab's namespaces, so a later lab sweeps it if this run is killed here.
  const probe = `pst-${process.pid}-nftprobe`;
  try {
    if ((await spawnRunner([IP_BIN, 'netns', 'add', probe])).code !== 0) return 'cannot create a network namespace';
    const r = await spawnRunner([IP_BIN, 'netns', 'exec', probe, 'nft', 'list', 'ruleset']);
    return r.code === 0 ? undefined : `nft does not work here: ${r.stderr.trim()}`;
  } finally {
    await spawnRunner([IP_BIN, 'netns', 'del', probe]).catch(() => undefined);
  }
}

/** A ruleset shaped like fw4's (ruleset.uc): `flush table` + rebuild, input policy drop,
 *  WAN input rejected, and the drop-in included where fw4 puts chain-pre/input files. */
function fw4Mimic(withDropIn: boolean): string {
  return [
    'table inet fw4',
    'flush table inet fw4',
    'table inet fw4 {',
    '  chain input {',
    '    type filter hook input priority filter; policy drop;',
    '    iifname "lo" accept comment "!fw4: Accept traffic from loopback"',
    ...(withDropIn ? [`    include "${DROP_IN}"`] : []),
    '    ct state established,related accept comment "!fw4: Allow inbound established and related flows"',
    '    iifname "eth0" jump input_wan comment "!fw4: Handle wan IPv4/IPv6 input traffic"',
    '  }',
    '  chain input_wan {',
    '    meta nfproto ipv6 icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept comment "!fw4: Allow-ICMPv6-Input"',
    '    jump reject_from_wan',
    '  }',
    '  chain reject_from_wan {',
    '    iifname "eth0" counter jump handle_reject comment "!fw4: reject wan IPv4/IPv6 traffic"',
    '  }',
    '  chain handle_reject {',
    '    meta l4proto tcp reject with tcp reset comment "!fw4: Reject TCP traffic"',
    '    reject with icmpx type port-unreachable comment "!fw4: Reject any other traffic"',
    '  }',
    '}',
    '',
  ].join('\n');
}

/** Prints `got <source> <hex>` per datagram: the daemon's sink socket on the SPA port. */
const UDP_SINK = `const s = require('node:dgram').createSocket({ type: 'udp6', ipv6Only: false });
s.on('message', (m, r) => console.log('got ' + r.address.replace(/^::ffff:/, '') + ' ' + m.toString('hex')));
s.bind(${SPA_PORT}, '::', () => console.log('ready'));
setTimeout(() => process.exit(0), 300000);`;

const skip = await skipReason();

describe('nft backend in a network namespace', { skip: skip ?? false }, () => {
  let lab: Lab;
  let run: Runner;
  let backend: NftBackend;
  let echo: LabProcess;
  const address = (h: LabHost, f: Family): string => (f === 4 ? h.ip4 : h.ip6);
  const grantFor = (id: string, h: LabHost, f: Family, ttlMs: number, services: Grant['services'] = SSH): Grant =>
    ({ id, key: 'alice', family: f, address: address(h, f), services, expiresAtMs: systemClock.wallMs() + ttlMs });

  const nft = async (...args: string[]): Promise<string> => {
    const r = await run(['nft', ...args]);
    assert.equal(r.code, 0, `nft ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const load = async (script: string): Promise<void> => {
    const r = await run(['nft', '-f', '-'], { input: script });
    assert.equal(r.code, 0, `nft -f -: ${r.stderr}`);
  };
  /** Grant set elements as `addr . proto . port id`, with the remaining ms beside them. */
  const listed = async (f: Family) => {
    const parsed = parseGrantSet(await nft('-j', 'list', 'set', 'inet', 'postern', `grants${f}`), f);
    assert.ok(parsed.ok);
    assert.equal(parsed.value.foreign, 0);
    const els = [...parsed.value.elements].sort((a, b) => a.port - b.port || a.address.localeCompare(b.address));
    return { keys: els.map((e) => `${e.address} . ${e.proto} . ${e.port} ${e.grantId ?? '-'}`), left: els.map((e) => e.expiresInMs ?? -1) };
  };
  const connect = async (from: LabHost, f: Family, port = 22): Promise<string> =>
    (await tcpConnect(lab, from, address(lab.router, f), port, SILENT_MS)).result;

  before(async () => {
    lab = await createLab({ tag: 'nft' });
    run = prefixRunner([IP_BIN, 'netns', 'exec', lab.router.ns], spawnRunner);
    backend = new NftBackend({ runner: run, logger: memoryLogger(), clock: systemClock });
    echo = lab.spawn(lab.router, probeArgv(['echo-server', 22]));
    await echo.waitForOutput(/listening 22/, 10_000);
  });
  after(async () => {
    await lab?.close();
  });

  it('start creates the table once; a second start leaves the same ruleset; rules read as built', async () => {
    assert.equal(await nft('list', 'ruleset'), '');
    await backend.start(SPEC);
    const first = await nft('list', 'ruleset');
    await backend.start(SPEC);
    assert.equal(await nft('list', 'ruleset'), first);
    const items = (JSON.parse(await nft('-j', 'list', 'table', 'inet', 'postern')) as { nftables: Record<string, { name?: string }>[] }).nftables;
    const names = (kind: string) => items.flatMap((i) => (i[kind]?.name === undefined ? [] : [i[kind].name])).sort();
    assert.deepEqual(names('set'), ['capture', 'grants4', 'grants6', 'guarded']);
    assert.deepEqual(names('chain'), ['input', 'output']);
    // nft lists every rule exactly as guardLines wrote it.
    for (const chain of ['input', 'output']) {
      const listedRules = (await nft('list', 'chain', 'inet', 'postern', chain)).split('\n').map((l) => l.trim())
        .filter((l) => l !== '' && !/^(table|chain|type|})/.test(l));
      const head = `add rule inet postern ${chain} `;
      assert.deepEqual(listedRules, guardLines(SPEC, 0x10000000).filter((l) => l.startsWith(head)).map((l) => l.slice(head.length)));
    }
  });

  it('a grant adds one element per service with its timeout and postern:<id> comment (IPv4, IPv6)', async () => {
    for (const f of [4, 6] as const) {
      await backend.applyGrant(grantFor(`g${f}`, lab.client, f, 30_000, [{ proto: 'tcp', port: 22 }, { proto: 'tcp', port: 443 }]));
      const { keys, left } = await listed(f);
      const a = address(lab.client, f);
      assert.deepEqual(keys, [`${a} . tcp . 22 g${f}`, `${a} . tcp . 443 g${f}`]);
      for (const ms of left) assert.ok(ms >= 28_000 && ms <= 30_000, `expires in ${ms} ms`);
    }
  });

  it('extension raises the timeout and keeps one element per tuple; a shared tuple survives revoking one grant', async () => {
    for (const f of [4, 6] as const) {
      const services = [{ proto: 'tcp', port: 22 }, { proto: 'tcp', port: 443 }] as const;
      const old = grantFor(`g${f}`, lab.client, f, 30_000, services);
      const longer = { ...old, expiresAtMs: systemClock.wallMs() + 90_000 };
      await backend.applyGrant(longer, old);
      await backend.applyGrant(longer, longer);
      const { keys, left } = await listed(f);
      assert.equal(keys.length, 2);
      for (const ms of left) assert.ok(ms >= 88_000 && ms <= 90_000, `expires in ${ms} ms`);
      // A second key opens ssh for the same address for less time, then is revoked early.
      const other = grantFor(`o${f}`, lab.client, f, 20_000);
      await backend.applyGrant(other);
      await backend.revokeGrant(other);
      assert.deepEqual((await listed(f)).keys, keys);
    }
  });

  it('reconcile removes unknown-id and untagged elements and restores missing live ones', async () => {
    const live = [grantFor('g4', lab.client, 4, 60_000, [{ proto: 'tcp', port: 22 }, { proto: 'tcp', port: 443 }]),
      grantFor('g6', lab.client, 6, 60_000, [{ proto: 'tcp', port: 22 }, { proto: 'tcp', port: 443 }])];
    await load([
      'add element inet postern grants4 { 198.18.0.9 . tcp . 22 timeout 500s comment "postern:ghost" }',
      'add element inet postern grants6 { fd50:7374::9 . tcp . 22 timeout 500s comment "postern:ghost" }',
      'add element inet postern grants4 { 198.18.0.8 . udp . 53 }',
      `delete element inet postern grants4 { ${lab.client.ip4} . tcp . 443 }`,
      `delete element inet postern grants6 { ${lab.client.ip6} . tcp . 22 }`, ''].join('\n'));
    const report = await backend.reconcile(live, systemClock.wallMs());
    assert.deepEqual(report.removed, ['ghost']);
    assert.deepEqual([...report.restored].sort(), ['g4', 'g6']);
    for (const f of [4, 6] as const) {
      const a = address(lab.client, f);
      assert.deepEqual((await listed(f)).keys, [`${a} . tcp . 22 g${f}`, `${a} . tcp . 443 g${f}`]);
    }
    assert.deepEqual(await backend.reconcile(live, systemClock.wallMs()), { removed: [], restored: [] });
  });

  it('stop keepGuarding empties the grant sets and keeps guarding; stop removes the table', async () => {
    const guard = await nft('list', 'chain', 'inet', 'postern', 'input');
    await backend.stop({ keepGuarding: true });
    assert.deepEqual([(await listed(4)).keys, (await listed(6)).keys], [[], []]);
    assert.equal(await nft('list', 'chain', 'inet', 'postern', 'input'), guard);
    assert.equal(await connect(lab.client, 4), 'timeout');
    await backend.stop({ keepGuarding: false });
    await backend.stop({ keepGuarding: false });
    await backend.stop({ keepGuarding: true });
    assert.equal(await nft('list', 'ruleset'), '');
    assert.equal(await connect(lab.client, 4), 'connected');
  });

  it('the kernel closes a grant by itself: a SIGKILLed daemon leaves no port open (2 s grant)', async () => {
    await backend.start(SPEC);
    const grants = [grantFor('k4', lab.client, 4, 2_000), grantFor('k6', lab.client, 6, 2_000)];
    const url = (p: string) => JSON.stringify(new URL(p, import.meta.url).href);
    const daemon = `
      const { NftBackend } = await import(${url('../../src/firewall/nft.ts')});
      const { prefixRunner, spawnRunner } = await import(${url('../../src/firewall/exec.ts')});
      const { memoryLogger } = await import(${url('../../src/log/logger.ts')});
      const { systemClock } = await import(${url('../../src/platform/clock.ts')});
      const runner = prefixRunner(${JSON.stringify([IP_BIN, 'netns', 'exec', lab.router.ns])}, spawnRunner);
      const backend = new NftBackend({ runner, logger: memoryLogger(), clock: systemClock });
      for (const g of ${JSON.stringify(grants)}) await backend.applyGrant(g);
      process.stdout.write('applied\\n');
      process.kill(process.pid, 'SIGKILL');`;
    const r = await spawnRunner([process.execPath, '--input-type=module', '-e', daemon], { timeoutMs: 10_000 });
    assert.deepEqual([r.code, r.stdout], [137, 'applied\n'], r.stderr);
    assert.deepEqual([await connect(lab.client, 4), await connect(lab.client, 6)], ['connected', 'connected']);
    assert.equal(await connect(lab.attacker, 4), 'timeout');
    await sleep(Math.max(0, Math.max(...grants.map((g) => g.expiresAtMs)) - systemClock.wallMs()) + 1_000);
    assert.deepEqual([(await listed(4)).keys, (await listed(6)).keys], [[], []]);
    assert.deepEqual([await connect(lab.client, 4), await connect(lab.client, 6)], ['timeout', 'timeout']);
  });

  describe('with a ruleset shaped like OpenWrt fw4 (policy drop, WAN rejected)', () => {
    let sink: LabProcess;
    const sendSpa = async (hex: string): Promise<void> => {
      const sent = await runProbe<{ result: string }>(lab, lab.attacker, ['udp-send', lab.router.ip4, SPA_PORT, hex]);
      assert.equal(sent.result, 'sent');
      await sink.waitForOutput(new RegExp(`got ${lab.attacker.ip4.replaceAll('.', '\\.')} ${hex}`), 3_000);
    };

    before(async () => {
      sink = lab.spawn(lab.router, [process.execPath, '-e', UDP_SINK]);
      await sink.waitForOutput(/ready/, 10_000);
      await backend.start(SPEC);
      for (const f of [4, 6] as const) await backend.applyGrant(grantFor(`w${f}`, lab.client, f, 120_000));
    });

    it('without the drop-in fw4 rejects what postern accepted (accept ends only its own chain)', async () => {
      await load(fw4Mimic(false));
      assert.equal(await connect(lab.client, 4), 'refused');
    });

    it('with the drop-in: the granted source connects, others see nothing, the SPA port is reached', async () => {
      await load(fw4Mimic(true));
      for (const f of [4, 6] as const) {
        assert.equal(await connect(lab.client, f), 'connected', `client IPv${f}`);
        assert.equal(await connect(lab.attacker, f), 'timeout', `attacker IPv${f}`);
      }
      await sendSpa('c0ffee01');
      assert.equal(await connect(lab.attacker, 4, 7000), 'timeout', 'TCP capture port: RST suppressed');
      assert.equal(await connect(lab.client, 4, 8080), 'refused', 'fw4 still rejects what postern did not accept');
    });

    it('an fw4 reload (flush table inet fw4 + rebuild) changes nothing for postern', async () => {
      const ours = await nft('list', 'table', 'inet', 'postern');
      await load(fw4Mimic(true));
      assert.match(await nft('list', 'chain', 'inet', 'fw4', 'input'), /meta mark & 0x10000000 == 0x10000000 accept/);
      assert.equal((await nft('list', 'table', 'inet', 'postern')).replace(/expires \S+/g, ''), ours.replace(/expires \S+/g, ''));
      for (const f of [4, 6] as const) assert.equal(await connect(lab.client, f), 'connected', `client IPv${f}`);
      assert.equal(await connect(lab.attacker, 4), 'timeout');
      await sendSpa('c0ffee02');
    });
  });

  it('measures applyGrant: new grants and extensions (median of 50 each)', async (t) => {
    await backend.start(SPEC);
    const time = async (op: () => Promise<unknown>): Promise<number> => {
      const t0 = performance.now();
      await op();
      return performance.now() - t0;
    };
    const baseline: number[] = [];
    for (let i = 0; i < 20; i++) baseline.push(await time(() => run(['true'])));
    const fresh: number[] = [];
    for (let i = 0; i < 50; i++) {
      const g: Grant = { ...grantFor(`m${i}`, lab.client, 4, 300_000, [{ proto: 'tcp', port: 22 }, { proto: 'tcp', port: 443 }]), address: `198.18.0.${100 + i}` };
      fresh.push(await time(() => backend.applyGrant(g)));
    }
    // An address no other grant covers: a shared tuple would (rightly) keep the longer cover.
    let cur: Grant = { ...grantFor('x', lab.client, 6, 60_000, [{ proto: 'tcp', port: 22 }, { proto: 'tcp', port: 443 }]), address: 'fd50:7374::99' };
    await backend.applyGrant(cur);
    const ext: number[] = [];
    for (let i = 0; i < 50; i++) {
      const next = { ...cur, expiresAtMs: cur.expiresAtMs + 1_000 };
      ext.push(await time(() => backend.applyGrant(next, cur)));
      cur = next;
    }
    assert.equal((await listed(4)).keys.filter((k) => / m\d+$/.test(k)).length, 100);
    assert.equal((await listed(6)).keys.filter((k) => k.endsWith(' x')).length, 2);
    const fmt = (xs: number[]) => `median ${median(xs).toFixed(1)} ms (min ${Math.min(...xs).toFixed(1)}, max ${Math.max(...xs).toFixed(1)})`;
    t.diagnostic(`applyGrant new (2 services): ${fmt(fresh)}`);
    t.diagnostic(`applyGrant extension (2 services): ${fmt(ext)}`);
    t.diagnostic(`of which \`ip netns exec <ns> true\` (spawn + setns): ${fmt(baseline)}`);
    assert.ok(median(fresh) < 1_000 && median(ext) < 1_000, 'one nft spawn per operation');
    await backend.stop({ keepGuarding: false });
  });
});
