// SPDX-License-Identifier: MIT
// The active configuration: prepared symmetric keys, technician keys with their token
// buckets and the device key, and fwknop stanzas. A pure function of the config (and of
// the device key read at start or reload). What the firewall must look like for it is in
// guard-spec.ts.

import type { Config, KeyConfig, TechKeyConfig } from '../config/load.ts';
import { buildKeyTable, prepareKey, type KeyTable } from '../spa/packet.ts';
import { stanzaReplayId, type FwknopStanza } from '../pipeline/fwknop.ts';
import { prepareFwknopKey } from '../fwknop/keys.ts';
import { KeyBuckets } from '../pipeline/token-bucket.ts';
import type { DeviceKey } from '../spa/asym.ts';

export interface Active {
  readonly config: Config;
  readonly keys: KeyTable;
  readonly keyConfigs: ReadonlyMap<number, KeyConfig>;
  readonly fwknop: readonly FwknopStanza[];
  /** Technician keys and the device key; undefined when the config has no technician key. */
  readonly asym: { readonly keys: ReadonlyMap<number, TechKeyConfig>; readonly device: DeviceKey; readonly buckets: KeyBuckets } | undefined;
}

export function activate(config: Config, device: DeviceKey | undefined): Active {
  const keys = buildKeyTable(config.keys.map((k) => prepareKey(k.name, k.credential)));
  const fwknop = config.fwknop.map((st) => ({
    config: st, replayId: stanzaReplayId(st.name),
    key: prepareFwknopKey({ key: st.key, hmacKey: st.hmacKey, hmacType: st.hmacType }),
  }));
  const asym = device && config.techKeys.length > 0 ? {
    keys: new Map(config.techKeys.map((k) => [k.keyId, k])), device,
    buckets: new KeyBuckets({ burst: config.raw.spa.asym_burst, perSecond: config.raw.spa.asym_rate }),
  } : undefined;
  return { config, keys, keyConfigs: new Map(config.keys.map((k) => [k.credential.keyId, k])), fwknop, asym };
}
