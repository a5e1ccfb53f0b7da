// SPDX-License-Identifier: MIT
// The nft backend against the real kernel, in the namespace lab (test/lab/lab.ts: router,
// client, attacker on one segment, 198.18.0.0/24 and fd50:7374::/64; with `lan: true` a
// LAN host behind the router on 198.19.0.0/24 and fd50:7375::/64; no route out; STYLE.md
// principle 12c). Every nft command runs through `ip netns exec <router>`, so the host
// ruleset is never touched; each lab (namespaces, processes, the router's forwarding
// sysctls) is removed in after(), even on failure. Runs as root (CI does); skips with the
// reason otherwise.
//
// What it proves: the ruleset is created once; grants are set elements with timeout and id
// comment; the kernel removes an element when it times out, even after the daemon that
// added it was SIGKILLed (DESIGN.md "A crash must never leave a port open"); extension,
// reconcile, revoke and stop; network (prefix) grants, including a /64 inside a /56 whose
// pieces expire on their own; forwarding grants with real traffic through the router
// (DNAT to the LAN host, the client's own address kept, other sources filtered, closed
// again by the kernel with no daemon, a held connection surviving); and, with rulesets
// built like fw4's (policy drop, WAN rejected) loading our drop-ins exactly as fw4 includes
// them, that real traffic gets through for the granted source only, before and after an
// fw4 reload (DESIGN.md fact 2).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { prefixRunner, spawnRunner } from '../../src/firewall/exec.ts';
import type { Runner } from '../../src/firewall/exec.ts';
import { NftBackend } from '../../src/firewall/nft.ts';
import { sourceText } from '../../src/firewall/nft-elements.ts';
import type { SetId } from '../../src/firewall/nft-elements.ts';
import { parseListing } from '../../src/firewall/nft-listing.ts';
import { guardLines } from '../../src/firewall/nft-rules.ts';
import type { Family, Grant, GuardSpec, Service } from '../../src/firewall/types.ts';
import { memoryLogger } from '../../src/log/logger.ts';
import { systemClock } from '../../src/platform/clock.ts';
import { createLab, IP_BIN, labSkipReason } from '../lab/lab.ts';
import type { Lab, LabHost, LabProcess, LanLab } from '../lab/lab.ts';
import { probeArgv, runProbe, tcpConnect } from '../lab/net-probe.ts';
import type { TcpHoldResult } from '../lab/net-probe.ts';

const SPA_PORT = 62201;
const EXT_PORT = 2222;
const SPEC: GuardSpec = { guarded: [{ proto: 'tcp', port: 22 }, { proto: 'tcp', port: 443 }], capture: [{ proto: 'udp', port: SPA_PORT }, { proto: 'tcp', port: 7000 }] };
const FWD_SPEC: GuardSpec = { ...SPEC, guarded: [...SPEC.guarded, { proto: 'tcp', port: EXT_PORT }], forwarding: true };
const SSH: readonly Service[] = [{ proto: 'tcp', port: 22 }];
const dropIn = (chain: string): string => fileURLToPath(new URL(`../../rootfs-overlay/openwrt/usr/share/nftables.d/chain-pre/${chain}/30-postern.nft`, import.meta.url));
const SILENT_MS = 1_000;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const fmt = (xs: number[]): string => `median ${median(xs).toFixed(1)} ms (min ${Math.min(...xs).toFixed(1)}, max ${Math.max(...xs).toFixed(1)})`;
const setId = (name: string): SetId => {
  const m = /^(grants|dnat|fwd)([46])(net)?$/.exec(name);
  assert.ok(m, name);
  return { kind: m[1] as SetId['kind'], family: Number(m[2]) as Family, net: m[3] !== undefined };
};

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

/** A ruleset shaped like fw4's (ruleset.uc): `flush table` + rebuild, input and forward
 *  policy drop, WAN input rejected, WAN-to-LAN forwards dropped, masquerade towards WAN,
 *  and the drop-ins included where fw4 puts chain-pre/<chain> files. */
function fw4Mimic(dropIns: { input: boolean; forward: boolean }): string {
  return [
    'table inet fw4',
    'flush table inet fw4',
    'table inet fw4 {',
    '  chain input {',
    '    type filter hook input priority filter; policy drop;',
    '    iifname "lo" accept comment "!fw4: Accept traffic from loopback"',
    ...(dropIns.input ? [`    include "${dropIn('input')}"`] : []),
    '    ct state established,related accept comment "!fw4: Allow inbound established and related flows"',
    '    iifname "eth0" jump input_wan comment "!fw4: Handle wan IPv4/IPv6 input traffic"',
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy drop;',
    ...(dropIns.forward ? [`    include "${dropIn('forward')}"`] : []),
    '    ct state established,related accept comment "!fw4: Allow forwarded established and related flows"',
    '    iifname "eth0" jump forward_wan comment "!fw4: Handle wan IPv4/IPv6 forward traffic"',
    '  }',
    '  chain input_wan {',
    '    meta nfproto ipv6 icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept comment "!fw4: Allow-ICMPv6-Input"',
    '    jump reject_from_wan',
    '  }',
    '  chain forward_wan {',
    '    jump reject_to_wan',
    '  }',
    '  chain reject_from_wan {',
    '    iifname "eth0" counter jump handle_reject comment "!fw4: reject wan IPv4/IPv6 traffic"',
    '  }',
    '  chain reject_to_wan {',
    '    oifname "eth0" counter jump handle_reject comment "!fw4: reject wan IPv4/IPv6 traffic"',
    '  }',
    '  chain handle_reject {',
    '    meta l4proto tcp reject with tcp reset comment "!fw4: Reject TCP traffic"',
    '    reject with icmpx type port-unreachable comment "!fw4: Reject any other traffic"',
    '  }',
    '  chain dstnat {',
    '    type nat hook prerouting priority dstnat; policy accept;',
    '    iifname "eth0" jump dstnat_wan comment "!fw4: Handle wan IPv4/IPv6 dstnat traffic"',
    '  }',
    '  chain dstnat_wan {',
    '  }',
    '  chain srcnat {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    '    oifname "eth0" jump srcnat_wan comment "!fw4: Handle wan IPv4/IPv6 srcnat traffic"',
    '  }',
    '  chain srcnat_wan {',
    '    meta nfproto ipv4 masquerade comment "!fw4: Masquerade IPv4 wan traffic"',
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

/** Helpers bound to one lab and one backend in its router. */
function kit(get: () => { lab: Lab; run: Runner }) {
  const nft = async (...args: string[]): Promise<string> => {
    const r = await get().run(['nft', ...args]);
    assert.equal(r.code, 0, `nft ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  return {
    nft,
    load: async (script: string): Promise<void> => {
      const r = await get().run(['nft', '-f', '-'], { input: script });
      assert.equal(r.code, 0, `nft -f -: ${r.stderr}`);
    },
    /** One set's elements as `src . ... id [-> data]`, sorted, with the remaining ms beside them. */
    listed: async (set: string) => {
      const id = setId(set);
      const parsed = parseListing(await nft('-j', 'list', 'table', 'inet', 'postern'), [id]);
      assert.ok(parsed.ok);
      assert.equal(parsed.value.foreign, 0);
      const els = [...parsed.value.elements].sort((a, b) => a.port - b.port || (a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : 0));
      const keys = els.map((e) => `${sourceText(e.lo, e.hi, id.family)} . ${e.target === null ? '' : `${e.target} . `}${e.proto} . ${e.port} ${e.grantId ?? '-'}${e.data === null ? '' : ` -> ${e.data.address}:${e.data.port}`}`);
      return { keys, left: els.map((e) => e.expiresInMs ?? -1) };
    },
    /** Runs a throwaway "daemon" that applies grants and SIGKILLs itself. */
    applyAndDie: async (grants: readonly Grant[], spec: GuardSpec): Promise<void> => {
      const url = (p: string) => JSON.stringify(new URL(p, import.meta.url).href);
      const daemon = `
        const { NftBackend } = await import(${url('../../src/firewall/nft.ts')});
        const { prefixRunner, spawnRunner } = await import(${url('../../src/firewall/exec.ts')});
        const { memoryLogger } = await import(${url('../../src/log/logger.ts')});
        const { systemClock } = await import(${url('../../src/platform/clock.ts')});
        const runner = prefixRunner(${JSON.stringify([IP_BIN, 'netns', 'exec', get().lab.router.ns])}, spawnRunner);
        const backend = new NftBackend({ runner, logger: memoryLogger(), clock: systemClock });
        await backend.start(${JSON.stringify(spec)});
        for (const g of ${JSON.stringify(grants)}) await backend.applyGrant(g);
        process.stdout.write('applied\\n');
        process.kill(process.pid, 'SIGKILL');`;
      const r = await spawnRunner([process.execPath, '--input-type=module', '-e', daemon], { timeoutMs: 10_000 });
      assert.deepEqual([r.code, r.stdout], [137, 'applied\n'], r.stderr);
    },
  };
}

async function timeIt(op: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await op();
  return performance.now() - t0;
}

const skip = await skipReason();

describe('nft backend in a network namespace', { skip: skip ?? false }, () => {
  let lab: Lab;
  let run: Runner;
  let backend: NftBackend;
  let echo: LabProcess;
  const { nft, load, listed, applyAndDie } = kit(() => ({ lab, run }));
  const address = (h: LabHost, f: Family): string => (f === 4 ? h.ip4 : h.ip6);
  const grantFor = (id: string, h: LabHost, f: Family, ttlMs: number, services: Grant['services'] = SSH): Grant =>
    ({ id, key: 'alice', family: f, address: address(h, f), services, expiresAtMs: systemClock.wallMs() + ttlMs });
  const netGrant = (id: string, network: string, prefix: number, ttlMs: number): Grant =>
    ({ id, key: 'bob', family: network.includes(':') ? 6 : 4, address: network, prefix, services: SSH, expiresAtMs: systemClock.wallMs() + ttlMs });
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
    assert.deepEqual(names('set'), ['capture', 'grants4', 'grants4net', 'grants6', 'grants6net', 'guarded']);
    assert.deepEqual([names('chain'), names('map')], [['input', 'output'], []]);
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
      const { keys, left } = await listed(`grants${f}`);
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
      const { keys, left } = await listed(`grants${f}`);
      assert.equal(keys.length, 2);
      for (const ms of left) assert.ok(ms >= 88_000 && ms <= 90_000, `expires in ${ms} ms`);
      // A second key opens ssh for the same address for less time, then is revoked early.
      const other = grantFor(`o${f}`, lab.client, f, 20_000);
      await backend.applyGrant(other);
      await backend.revokeGrant(other);
      assert.deepEqual((await listed(`grants${f}`)).keys, keys);
    }
  });

  it('reconcile removes unknown-id and untagged elements and restores missing live ones', async () => {
    const live = [grantFor('g4', lab.client, 4, 60_000, [{ proto: 'tcp', port: 22 }, { proto: 'tcp', port: 443 }]),
      grantFor('g6', lab.client, 6, 60_000, [{ proto: 'tcp', port: 22 }, { proto: 'tcp', port: 443 }])];
    await load([
      'add element inet postern grants4 { 198.18.0.9 . tcp . 22 timeout 500s comment "postern:ghost" }',
      'add element inet postern grants6 { fd50:7374::9 . tcp . 22 timeout 500s comment "postern:ghost" }',
      'add element inet postern grants6net { fd50:7374:9::/64 . tcp . 22 timeout 500s comment "postern:ghost" }',
      'add element inet postern grants4 { 198.18.0.8 . udp . 53 }',
      `delete element inet postern grants4 { ${lab.client.ip4} . tcp . 443 }`,
      `delete element inet postern grants6 { ${lab.client.ip6} . tcp . 22 }`, ''].join('\n'));
    const report = await backend.reconcile(live, systemClock.wallMs());
    assert.deepEqual(report.removed, ['ghost']);
    assert.deepEqual([...report.restored].sort(), ['g4', 'g6']);
    for (const f of [4, 6] as const) {
      const a = address(lab.client, f);
      assert.deepEqual((await listed(`grants${f}`)).keys, [`${a} . tcp . 22 g${f}`, `${a} . tcp . 443 g${f}`]);
    }
    assert.deepEqual((await listed('grants6net')).keys, []);
    assert.deepEqual(await backend.reconcile(live, systemClock.wallMs()), { removed: [], restored: [] });
  });

  it('stop keepGuarding empties the grant sets and keeps guarding; stop removes the table', async () => {
    const guard = await nft('list', 'chain', 'inet', 'postern', 'input');
    await backend.stop({ keepGuarding: true });
    assert.deepEqual([(await listed('grants4')).keys, (await listed('grants6')).keys], [[], []]);
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
    await applyAndDie(grants, SPEC);
    assert.deepEqual(await Promise.all([connect(lab.client, 4), connect(lab.client, 6), connect(lab.attacker, 4)]), ['connected', 'connected', 'timeout']);
    await sleep(Math.max(0, Math.max(...grants.map((g) => g.expiresAtMs)) - systemClock.wallMs()) + 1_000);
    assert.deepEqual([(await listed('grants4')).keys, (await listed('grants6')).keys], [[], []]);
    assert.deepEqual(await Promise.all([connect(lab.client, 4), connect(lab.client, 6)]), ['timeout', 'timeout']);
  });

  describe('network (prefix) grants', () => {
    it('a /64 grant opens its whole network (client and attacker share fd50:7374::/64), and nothing else', async () => {
      await backend.start(SPEC);
      const g = netGrant('p64', 'fd50:7374::', 64, 30_000);
      await backend.applyGrant(g);
      assert.deepEqual((await listed('grants6net')).keys, ['fd50:7374::/64 . tcp . 22 p64']);
      assert.deepEqual(await Promise.all([connect(lab.client, 6), connect(lab.attacker, 6), connect(lab.client, 4), connect(lab.client, 6, 443)]),
        ['connected', 'connected', 'timeout', 'timeout']);
      await backend.revokeGrant(g);
      await backend.applyGrant(netGrant('o64', 'fd50:7374:0:1::', 64, 30_000));
      assert.equal(await connect(lab.client, 6), 'timeout');
      await backend.applyGrant(netGrant('p24', '198.18.0.0', 24, 30_000));
      assert.deepEqual([await connect(lab.client, 4), (await listed('grants4net')).keys.join()], ['connected', '198.18.0.0/24 . tcp . 22 p24']);
    });

    it('a /64 inside a /56 (two keys): disjoint pieces; with no daemon the /56 rest expires and the /64 stays open', async () => {
      await backend.stop({ keepGuarding: true });
      const outer = netGrant('p56', 'fd50:7374::', 56, 2_000);
      const inner = netGrant('p64', 'fd50:7374::', 64, 30_000);
      await applyAndDie([outer, inner], SPEC);
      assert.deepEqual((await listed('grants6net')).keys, [
        'fd50:7374::/64 . tcp . 22 p64', 'fd50:7374:0:1::-fd50:7374:0:ff:ffff:ffff:ffff:ffff . tcp . 22 p56',
      ]);
      await sleep(Math.max(0, outer.expiresAtMs - systemClock.wallMs()) + 1_000);
      assert.deepEqual((await listed('grants6net')).keys, ['fd50:7374::/64 . tcp . 22 p64']);
      assert.equal(await connect(lab.client, 6), 'connected');
      // A fresh backend (a restarted daemon) reconciles to the live grants.
      const restarted = new NftBackend({ runner: run, logger: memoryLogger(), clock: systemClock });
      await restarted.start(SPEC);
      assert.deepEqual(await restarted.reconcile([inner], systemClock.wallMs()), { removed: [], restored: [] });
      assert.deepEqual(await restarted.reconcile([], systemClock.wallMs()), { removed: ['p64'], restored: [] });
      assert.equal(await connect(lab.client, 6), 'timeout');
    });
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
      await load(fw4Mimic({ input: false, forward: false }));
      assert.equal(await connect(lab.client, 4), 'refused');
    });

    it('with the drop-in: the granted source connects, others see nothing, the SPA port is reached', async () => {
      await load(fw4Mimic({ input: true, forward: true }));
      assert.deepEqual(await Promise.all([connect(lab.client, 4), connect(lab.client, 6), connect(lab.attacker, 4), connect(lab.attacker, 6)]),
        ['connected', 'connected', 'timeout', 'timeout']);
      await sendSpa('c0ffee01');
      assert.equal(await connect(lab.attacker, 4, 7000), 'timeout', 'TCP capture port: RST suppressed');
      assert.equal(await connect(lab.client, 4, 8080), 'refused', 'fw4 still rejects what postern did not accept');
    });

    it('an fw4 reload (flush table inet fw4 + rebuild) changes nothing for postern', async () => {
      const ours = await nft('list', 'table', 'inet', 'postern');
      await load(fw4Mimic({ input: true, forward: true }));
      assert.match(await nft('list', 'chain', 'inet', 'fw4', 'input'), /meta mark & 0x10000000 == 0x10000000 accept/);
      assert.equal((await nft('list', 'table', 'inet', 'postern')).replace(/expires \S+/g, ''), ours.replace(/expires \S+/g, ''));
      assert.deepEqual(await Promise.all([connect(lab.client, 4), connect(lab.client, 6), connect(lab.attacker, 4)]), ['connected', 'connected', 'timeout']);
      await sendSpa('c0ffee02');
    });
  });

  it('measures applyGrant: new grants, network grants and extensions (median of 50 each)', async (t) => {
    await run(['nft', 'delete', 'table', 'inet', 'fw4']);
    await backend.start(SPEC);
    const baseline: number[] = [];
    for (let i = 0; i < 20; i++) baseline.push(await timeIt(() => run(['true'])));
    const fresh: number[] = [];
    for (let i = 0; i < 50; i++) {
      const g: Grant = { ...grantFor(`m${i}`, lab.client, 4, 300_000, [{ proto: 'tcp', port: 22 }, { proto: 'tcp', port: 443 }]), address: `198.18.0.${100 + i}` };
      fresh.push(await timeIt(() => backend.applyGrant(g)));
    }
    const nets: number[] = [];
    for (let i = 0; i < 50; i++) nets.push(await timeIt(() => backend.applyGrant(netGrant(`n${i}`, `fd50:7374:${(i + 16).toString(16)}::`, 64, 300_000))));
    // An address no other grant covers: a shared tuple would (rightly) keep the longer cover.
    let cur: Grant = { ...grantFor('x', lab.client, 6, 60_000, [{ proto: 'tcp', port: 22 }, { proto: 'tcp', port: 443 }]), address: 'fd50:7374::99' };
    await backend.applyGrant(cur);
    const ext: number[] = [];
    for (let i = 0; i < 50; i++) {
      const next = { ...cur, expiresAtMs: cur.expiresAtMs + 1_000 };
      ext.push(await timeIt(() => backend.applyGrant(next, cur)));
      cur = next;
    }
    assert.equal((await listed('grants4')).keys.filter((k) => / m\d+$/.test(k)).length, 100);
    assert.equal((await listed('grants6net')).keys.filter((k) => / n\d+$/.test(k)).length, 50);
    assert.equal((await listed('grants6')).keys.filter((k) => k.endsWith(' x')).length, 2);
    t.diagnostic(`applyGrant new host grant (2 services): ${fmt(fresh)}`);
    t.diagnostic(`applyGrant new /64 grant (interval set, growing to 50): ${fmt(nets)}`);
    t.diagnostic(`applyGrant extension (2 services): ${fmt(ext)}`);
    t.diagnostic(`of which \`ip netns exec <ns> true\` (spawn + setns): ${fmt(baseline)}`);
    assert.ok(median(fresh) < 1_000 && median(ext) < 1_000 && median(nets) < 1_000, 'one nft spawn per operation');
    await backend.stop({ keepGuarding: false });
  });
});

describe('nft forwarding grants through a router (client -> router:2222 -> lan:22)', { skip: skip ?? false }, () => {
  let lab: LanLab;
  let run: Runner;
  let backend: NftBackend;
  let lanEcho: LabProcess;
  const { nft, load, listed, applyAndDie } = kit(() => ({ lab, run }));
  const fwdGrant = (id: string, from: LabHost, f: Family, ttlMs: number, prefix?: number): Grant => ({
    id, key: 'tech', family: f, address: prefix === undefined ? (f === 4 ? from.ip4 : from.ip6) : 'fd50:7374::', ...(prefix === undefined ? {} : { prefix }),
    services: [{ proto: 'tcp', port: EXT_PORT }], forward: { address: f === 4 ? lab.lan.ip4 : lab.lan.ip6, port: 22 }, expiresAtMs: systemClock.wallMs() + ttlMs,
  });
  const ext = async (from: LabHost, f: Family): Promise<string> =>
    (await tcpConnect(lab, from, f === 4 ? lab.router.ip4 : lab.router.ip6, EXT_PORT, SILENT_MS)).result;

  before(async () => {
    lab = await createLab({ tag: 'nftfwd', lan: true });
    // Forwarding only inside the router's own namespace (a fresh namespace starts at 0).
    const sysctl = await lab.exec(lab.router, ['tee', '/proc/sys/net/ipv4/ip_forward', '/proc/sys/net/ipv6/conf/all/forwarding'], { input: '1\n' });
    assert.equal(sysctl.code, 0, sysctl.stderr);
    run = prefixRunner([IP_BIN, 'netns', 'exec', lab.router.ns], spawnRunner);
    backend = new NftBackend({ runner: run, logger: memoryLogger(), clock: systemClock });
    lanEcho = lab.spawn(lab.lan, probeArgv(['echo-server', 22]));
    await lanEcho.waitForOutput(/listening 22/, 10_000);
    await backend.start(FWD_SPEC);
  });
  after(async () => {
    await lab?.close();
  });

  it('creates the nat and forward chains; without a grant the external port is filtered for everyone', async () => {
    const items = (JSON.parse(await nft('-j', 'list', 'table', 'inet', 'postern')) as { nftables: Record<string, { name?: string }>[] }).nftables;
    const names = (kind: string) => items.flatMap((i) => (i[kind]?.name === undefined ? [] : [i[kind].name])).sort();
    assert.deepEqual(names('chain'), ['forward', 'input', 'output', 'prerouting']);
    assert.deepEqual(names('map'), ['dnat4', 'dnat4net', 'dnat6', 'dnat6net']);
    for (const chain of ['prerouting', 'forward']) {
      const listedRules = (await nft('list', 'chain', 'inet', 'postern', chain)).split('\n').map((l) => l.trim())
        .filter((l) => l !== '' && !/^(table|chain|type|})/.test(l));
      const head = `add rule inet postern ${chain} `;
      assert.deepEqual(listedRules, guardLines(FWD_SPEC, 0x10000000).filter((l) => l.startsWith(head)).map((l) => l.slice(head.length)));
    }
    assert.deepEqual(await Promise.all([ext(lab.client, 4), ext(lab.client, 6)]), ['timeout', 'timeout']);
  });

  it('a forward grant: map and fwd elements with timeout and comment; the client reaches the LAN host with its own address, others do not', async () => {
    for (const f of [4, 6] as const) {
      await backend.applyGrant(fwdGrant(`f${f}`, lab.client, f, 60_000));
      const target = f === 4 ? lab.lan.ip4 : lab.lan.ip6;
      const src = f === 4 ? lab.client.ip4 : lab.client.ip6;
      const dnat = await listed(`dnat${f}`);
      assert.deepEqual(dnat.keys, [`${src} . tcp . ${EXT_PORT} f${f} -> ${target}:22`]);
      assert.deepEqual((await listed(`fwd${f}`)).keys, [`${src} . ${target} . tcp . 22 f${f}`]);
      for (const ms of dnat.left) assert.ok(ms >= 58_000 && ms <= 60_000, `expires in ${ms} ms`);
      assert.equal(await ext(lab.client, f), 'connected', `client IPv${f}`);
      await lanEcho.waitForOutput(new RegExp(`accepted ${src.replaceAll('.', '\\.')}\\b`), 3_000);
      assert.equal(await ext(lab.attacker, f), 'timeout', `attacker IPv${f}`);
    }
    assert.deepEqual((await listed('grants4')).keys, [], 'no input accept for a forwarding grant');
  });

  it('a network forwarding grant (IPv6 /64) lets every source of the /64 through', async () => {
    await backend.revokeGrant(fwdGrant('f6', lab.client, 6, 60_000));
    assert.equal(await ext(lab.client, 6), 'timeout');
    await backend.applyGrant(fwdGrant('p6', lab.client, 6, 60_000, 64));
    assert.deepEqual((await listed('dnat6net')).keys, [`fd50:7374::/64 . tcp . ${EXT_PORT} p6 -> ${lab.lan.ip6}:22`]);
    assert.deepEqual([await ext(lab.client, 6), await ext(lab.attacker, 6)], ['connected', 'connected']);
  });

  it('with no daemon the kernel closes a forwarding grant; a connection held across the expiry survives', async () => {
    await backend.stop({ keepGuarding: true });
    const g = fwdGrant('k4', lab.client, 4, 2_500);
    await applyAndDie([g], FWD_SPEC);
    const hold = runProbe<TcpHoldResult>(lab, lab.client, ['tcp-hold', lab.router.ip4, EXT_PORT, 5]);
    await sleep(Math.max(0, g.expiresAtMs - systemClock.wallMs()) + 1_000);
    assert.deepEqual([(await listed('dnat4')).keys, (await listed('fwd4')).keys], [[], []]);
    assert.equal(await ext(lab.client, 4), 'timeout');
    const held = await hold;
    assert.equal(held.result, 'ok', JSON.stringify(held));
    assert.ok(held.echoes >= 20, `echoes ${held.echoes}`);
  });

  describe('behind a ruleset shaped like fw4 (forward policy drop)', () => {
    before(async () => {
      await backend.start(FWD_SPEC);
      for (const f of [4, 6] as const) await backend.applyGrant(fwdGrant(`w${f}`, lab.client, f, 120_000));
    });

    it('without the forward drop-in fw4 drops what postern forwarded', async () => {
      await load(fw4Mimic({ input: true, forward: false }));
      assert.equal(await ext(lab.client, 4), 'timeout');
    });

    it('with it: the granted source is forwarded, others are not, before and after an fw4 reload', async () => {
      for (let reload = 0; reload < 2; reload++) {
        await load(fw4Mimic({ input: true, forward: true }));
        assert.match(await nft('list', 'chain', 'inet', 'fw4', 'forward'), /meta mark & 0x10000000 == 0x10000000 ct status dnat accept/);
        assert.deepEqual(await Promise.all([ext(lab.client, 4), ext(lab.client, 6), ext(lab.attacker, 4), ext(lab.attacker, 6)]),
          ['connected', 'connected', 'timeout', 'timeout'], `reload ${reload}`);
      }
    });

    it('measures applyGrant of new forwarding grants (median of 50)', async (t) => {
      const times: number[] = [];
      for (let i = 0; i < 50; i++) {
        const g: Grant = { ...fwdGrant(`m${i}`, lab.client, 4, 300_000), address: `198.18.0.${100 + i}` };
        times.push(await timeIt(() => backend.applyGrant(g)));
      }
      assert.equal((await listed('dnat4')).keys.filter((k) => / m\d+ ->/.test(k)).length, 50);
      t.diagnostic(`applyGrant new forwarding grant (map + fwd element): ${fmt(times)}`);
      assert.ok(median(times) < 1_000, 'one nft spawn per operation');
      await backend.stop({ keepGuarding: false });
      assert.equal((await nft('list', 'table', 'inet', 'fw4')).includes('postern'), true, 'fw4 keeps its drop-ins');
    });
  });
});
