// SPDX-License-Identifier: MIT
// A burst of valid packets (issue 9 `memory` scenario, scaled down): BURST packets for BURST
// distinct addresses within about a second, against the real bundle and each real backend,
// daemon non-root. Every grant must open, the client's own port among them while the rest
// are still arriving, and all must close on time so that the ruleset is empty again. Before
// GrantManager coalesced firewall changes (src/grants/manager.ts) each change was its own
// spawn, ~30/s: this burst would have taken ~10 s and expiries would have queued behind it.
// The addresses other than the client's are carried in the packets (require_source_address
// off, as the benchmark does); they never send traffic, so only their rules are checked.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { labSkipReason } from '../lab/lab.ts';
import { probeArgv, tcpConnect } from '../lab/net-probe.ts';
import { BACKENDS, SERVICE_PORT, SPA_PORT, bundleSkipReason, createWorld, eventually } from './harness.ts';

const skip = labSkipReason() ?? bundleSkipReason();
const BURST = 300;
const PPS = 300;
const DURATION_S = 4;
/** All BURST grants in the ruleset this long after the last packet at most. */
const OPEN_ALL_MS = 3_000;

/** 10.77.0.1, 10.77.0.2, ...: one allowed address per grant (RFC 1918, never routed here). */
const address = (i: number): string => `10.77.${((i + 1) >> 8) & 255}.${(i + 1) & 255}`;

for (const backend of BACKENDS) {
  test(`[${backend}] ${BURST} valid packets for ${BURST} addresses in ~1 s: every grant opens, then all expire`, { skip }, async (t) => {
    const w = await createWorld({ backend, keyExtra: { require_source_address: false } });
    t.after(() => w.close());
    await w.startDaemon();
    const { lab } = w;
    const addrs = Array.from({ length: BURST }, (_, i) => (i === BURST / 2 ? lab.client.ip4 : address(i)));
    const hex = addrs.map((a) => w.packet({ allowAddress: a, durationS: DURATION_S }).toString('hex'));
    const r = await lab.exec(lab.client, probeArgv(['udp-list', lab.router.ip4, SPA_PORT, PPS]), { input: `${hex.join('\n')}\n`, timeoutMs: 20_000 });
    assert.equal(r.code, 0, r.stderr);
    const sent = JSON.parse(r.stdout.trim()) as { sent: number; errors: number; ms: number };
    assert.equal(sent.sent, BURST);
    // The client's own grant, sent mid-burst, works while the rest are being applied.
    assert.equal((await tcpConnect(lab, lab.client, lab.router.ip4, SERVICE_PORT, 1_000)).result, 'connected');
    await eventually(async () => (await w.grantRules()).length === BURST, OPEN_ALL_MS, `all ${BURST} grants in the ruleset`);
    assert.doesNotMatch(w.daemon.output(), /grant_limit|grant batch failed|retrying one by one/);
    // The last grant ends DURATION_S after the last packet; the first ones already have.
    await eventually(async () => (await w.grantRules()).length === 0, DURATION_S * 1000 + 3_000, 'every grant expired');
    await eventually(() => (w.daemon.output().match(/msg="grant closed"/g) ?? []).length >= Math.min(BURST, 50), 3_000, 'the daemon closed them');
    assert.equal((await tcpConnect(lab, lab.client, lab.router.ip4, SERVICE_PORT, 500)).result, 'timeout');
  });
}
