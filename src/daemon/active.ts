// SPDX-License-Identifier: MIT
// The active configuration and what the firewall must look like for it: prepared keys and
// fwknop stanzas, the capture ports, and the guard spec. Pure functions of the config.

import type { Config, KeyConfig } from '../config/load.ts';
import type { GuardSpec } from '../firewall/types.ts';
import { buildKeyTable, prepareKey, type KeyTable } from '../spa/packet.ts';
import { stanzaReplayId, type FwknopStanza } from '../pipeline/fwknop.ts';
import { prepareFwknopKey } from '../fwknop/keys.ts';

export interface Active {
  readonly config: Config;
  readonly keys: KeyTable;
  readonly keyConfigs: ReadonlyMap<number, KeyConfig>;
  readonly fwknop: readonly FwknopStanza[];
}

export function activate(config: Config): Active {
  const keys = buildKeyTable(config.keys.map((k) => prepareKey(k.name, k.credential)));
  const fwknop = config.fwknop.map((st) => ({
    config: st, replayId: stanzaReplayId(st.name),
    key: prepareFwknopKey({ key: st.key, hmacKey: st.hmacKey, hmacType: st.hmacType }),
  }));
  return { config, keys, keyConfigs: new Map(config.keys.map((k) => [k.credential.keyId, k])), fwknop };
}

/** The UDP ports postern captures on: the SPA port, and the fwknop port when configured. */
export function capturePorts(config: Config): number[] {
  return config.fwknop.length > 0 ? [config.raw.spa.port, config.raw.fwknop.port] : [config.raw.spa.port];
}

export function guardSpec(config: Config): GuardSpec {
  // External ports of forwarding targets are guarded too: to everyone without a grant the
  // router is as silent there as on any guarded service (granted traffic is DNATed in
  // prerouting and never reaches the input hook).
  const external = [...config.keys, ...config.fwknop].flatMap((k) => k.forwards.map((f) => ({ proto: f.proto, port: f.externalPort })));
  const seen = new Set(config.guarded.map((s) => `${s.proto}/${s.port}`));
  const extra = external.filter((s) => !seen.has(`${s.proto}/${s.port}`) && seen.add(`${s.proto}/${s.port}`));
  return {
    guarded: [...config.guarded, ...extra],
    capture: capturePorts(config).map((port) => ({ proto: 'udp' as const, port })),
    forwarding: external.length > 0 || config.fwknop.some((st) => st.localNat),
  };
}
