// SPDX-License-Identifier: MIT
// Public face of firewall/ (DESIGN.md "Firewall model"). The backend factory that picks
// nft, iptables or dry-run from the board file and config comes with the daemon wiring.

export type { Family, FirewallBackend, Grant, GuardSpec, Proto, ReconcileReport, Service, TaggedRule } from './types.ts';
export { DEFAULT_TIMEOUT_MS, prefixRunner, spawnRunner } from './exec.ts';
export type { RunOptions, RunResult, Runner } from './exec.ts';
export { DEFAULT_IPTABLES_BINARIES, IptablesBackend } from './iptables.ts';
export type { IptablesBackendOptions, IptablesBinaries } from './iptables.ts';
export { DryRunBackend, SimulatedTable, simulatedRunner } from './dry-run.ts';
export type { DryRunBackendOptions } from './dry-run.ts';
export { FirewallValueError, chainNames, grantTag, parseGrantRules } from './iptables-rules.ts';
export type { ChainNames, GrantRule } from './iptables-rules.ts';
export { DEFAULT_NFT_MARK, NftBackend, NftCommandError, type NftBackendOptions } from './nft.ts';
