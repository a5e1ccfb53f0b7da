// SPDX-License-Identifier: MIT
// The daemon's lifecycle: the constructor stores dependencies; start() brings up, in
// order, firewall guard -> reconcile leftovers -> capture; stop() takes them down in
// reverse. reload() (SIGHUP) applies a new config only if it validates completely.

import { loadConfigFile, type Config } from '../config/load.ts';
import type { FirewallBackend } from '../firewall/types.ts';
import { GrantManager } from '../grants/manager.ts';
import type { Logger } from '../log/logger.ts';
import { FailureAggregator } from '../log/aggregate.ts';
import type { Clock, Cancel } from '../platform/clock.ts';
import { clockTrusted } from '../platform/clock-sync.ts';
import { decideSpa, type SpaDecision } from '../pipeline/spa.ts';
import { Counters, type DropReason } from '../pipeline/reasons.ts';
import { MAX_PACKET, MIN_PACKET } from '../spa/constants.ts';
import { buildKeyTable, prepareKey, type KeyTable } from '../spa/packet.ts';
import { keyIdHex } from '../spa/credential.ts';
import type { KeyConfig, TechKeyConfig } from '../config/load.ts';
import { KeyBuckets } from '../pipeline/token-bucket.ts';
import type { DeviceKey } from '../spa/asym.ts';
import { deviceKeyFor } from './device-key.ts';
import type { Frame } from '../wire/frame.ts';
import type { PacketSource } from '../capture/raw.ts';
import { checkForwarding } from '../platform/ip-forward.ts';
import { ReplayDomain } from './replay-domain.ts';
import { decideFwknop, stanzaReplayId, type FwknopStanza } from '../pipeline/fwknop.ts';
import { prepareFwknopKey } from '../fwknop/keys.ts';
import type { GrantPlan } from '../policy/decide.ts';
import { spawnRunner, type Runner } from '../firewall/exec.ts';
import { KnockService, knockCaptureKey } from './knock.ts';
import { capturePorts, guardSpec, isKnockFrame } from './guard-spec.ts';

export { capturePorts, guardSpec } from './guard-spec.ts';

export interface DaemonDeps {
  readonly configPath: string;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly makeBackend: (config: Config) => FirewallBackend;
  readonly makeCapture: (config: Config) => PacketSource;
  /** Runs door commands (knock start/stop); default spawnRunner. */
  readonly runner?: Runner;
}

/** Live grants at most (a flood of valid packets cannot grow the ruleset without bound). */
const MAX_GRANTS = 4096;
const LOG_INTERVAL_MS = 10_000;
/** Counters are logged this often, when they changed. */
const STATS_INTERVAL_MS = 60_000;
const LOG_MAX_TRACKED = 32;

interface Active {
  readonly config: Config;
  readonly keys: KeyTable;
  readonly keyConfigs: ReadonlyMap<number, KeyConfig>;
  readonly fwknop: readonly FwknopStanza[];
  /** Technician keys and the device key; undefined when the config has no technician key. */
  readonly asym: { readonly keys: ReadonlyMap<number, TechKeyConfig>; readonly device: DeviceKey; readonly buckets: KeyBuckets } | undefined;
}

function activate(config: Config, device: DeviceKey | undefined): Active {
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

/** Refusals that, over ICMP, mean "an ordinary ping", not "a bad SPA packet". */
const NOT_OURS_OVER_ICMP: ReadonlySet<DropReason> = new Set(['too_short', 'too_long', 'unknown_key', 'fwknop_malformed']);

export class Daemon {
  readonly #deps: DaemonDeps;
  readonly counters = new Counters();
  #active: Active | undefined;
  #backend: FirewallBackend | undefined;
  #capture: PacketSource | undefined;
  #grants: GrantManager | undefined;
  #replay: ReplayDomain | undefined;
  #fwknopReplay: ReplayDomain | undefined;
  #knock: KnockService | undefined;
  /** Services replaced by a reload: their pending stop commands still run at exit. */
  #retiredKnock: KnockService[] = [];
  #started = false;
  /** Public-key operations counted by buckets of earlier configs (buckets restart on reload). */
  #pkOpsBefore = 0;
  #aggregator: FailureAggregator;
  #timers: Cancel[] = [];
  #log: Logger;

  constructor(deps: DaemonDeps) {
    this.#deps = deps;
    this.#log = deps.logger;
    this.#aggregator = new FailureAggregator({
      maxTracked: LOG_MAX_TRACKED,
      emit: (l) => this.#log.warn(l.first ? 'refused' : 'refused (repeats)', {
        reason: l.reason, source: l.source, key: l.key, count: l.first ? undefined : l.count,
      }),
      emitOverflow: (o) => this.#log.warn('refused (more sources)', { count: o.count, sources: o.sources }),
    });
  }

  get grants(): GrantManager | undefined {
    return this.#grants;
  }

  /** Load and apply the config. Throws with every config error listed when invalid. */
  async start(): Promise<void> {
    const loaded = loadConfigFile(this.#deps.configPath);
    if (!loaded.ok) throw new ConfigError(loaded.errors);
    const { config } = loaded;
    this.#active = activate(config, deviceKeyFor(config, this.#log));
    this.#knock = this.#makeKnock(config);
    const knockErrors = this.#knock?.load() ?? [];
    if (knockErrors.length > 0) throw new ConfigError(knockErrors);
    this.#openState(config);
    this.#backend = this.#deps.makeBackend(config);
    this.#grants = new GrantManager({ backend: this.#backend, clock: this.#deps.clock, logger: this.#log.child('grant'), maxGrants: MAX_GRANTS });
    checkForwarding(config, this.#log);
    await this.#backend.start(guardSpec(config, this.#knock?.ports()));
    // Removes every rule a crashed daemon left: nothing is live yet, so all tagged rules go.
    await this.#grants.reconcile();
    await this.#startCapture(config);
    this.#startTimers(config);
    this.#knock?.start();
    this.#started = true;
    this.#log.info('postern started', {
      device: config.device, backend: this.#backend.name, spa_port: config.raw.spa.port,
      keys: config.keys.length, technician_keys: config.techKeys.length, doors: config.doors.length, guarded: config.raw.guarded.join(','), clock: this.#clockTrusted() ? 'trusted' : 'untrusted',
    });
  }

  #knockStats(): Record<string, number> {
    const k = this.#knock?.stats;
    return k ? { knock_hits: k.hits, knock_tracked: k.tracked, knock_evicted: k.evicted, knock_duplicates: k.duplicates } : {};
  }

  #makeKnock(config: Config): KnockService | undefined {
    if (config.doors.length === 0) return undefined;
    return new KnockService(config, {
      clock: this.#deps.clock, logger: this.#log.child('knock'), runner: this.#deps.runner ?? spawnRunner,
      refuse: (reason, source, door) => {
        this.counters.drop(reason);
        this.#aggregator.record(reason, source, door);
      },
      opened: () => { this.counters.knocks++; },
      grant: (name, plan, source) => this.#open(name, plan, source, {}),
    });
  }

  #openState(config: Config): void {
    const log = this.#log.child('state');
    const db = config.raw.state.database;
    this.#replay = ReplayDomain.open(db, 'replay', { capacity: config.raw.spa.replay_ring, windowMs: config.raw.spa.window_s * 1000 }, log);
    // fwknop's age window (MAX_SPA_PACKET_AGE) is its own, so its ring is too.
    this.#fwknopReplay = ReplayDomain.open(db, 'fwknop_replay', { capacity: config.raw.spa.replay_ring, windowMs: config.raw.fwknop.max_age_s * 1000 }, log);
  }

  async #startCapture(config: Config): Promise<void> {
    this.#capture = this.#deps.makeCapture(config);
    await this.#capture.start((f) => this.#onFrame(f), () => this.counters.drop('malformed'));
  }

  #startTimers(config: Config): void {
    const every = (ms: number, fn: () => void) => {
      const tick = () => { fn(); this.#timers.push(this.#deps.clock.schedule(ms, tick)); };
      this.#timers.push(this.#deps.clock.schedule(ms, tick));
    };
    every(LOG_INTERVAL_MS, () => this.#aggregator.flush());
    let last = '';
    every(STATS_INTERVAL_MS, () => {
      const snap = this.counters.snapshot();
      const text = JSON.stringify(snap);
      if (text !== last) this.#log.info('stats', { ...snap, grants: this.#grants?.size ?? 0, ...this.#knockStats() });
      last = text;
    });
    every(config.raw.firewall.reconcile_interval_s * 1000, () => {
      void this.#maintain();
      for (const d of [this.#replay, this.#fwknopReplay]) d?.guard.prune(this.#deps.clock.wallMs(), this.#clockTrusted());
    });
  }

  /** Re-assert the guard rules, then reconcile grants. Something else may have flushed
   *  them: an fw3 reload drops the jumps from INPUT, restarting Debian's nftables.service
   *  runs `flush ruleset`. Both backends' start() is idempotent and leaves grants alone. */
  async #maintain(): Promise<void> {
    const config = this.#active?.config;
    if (!config || !this.#backend || !this.#grants) return;
    try {
      await this.#backend.start(guardSpec(config, this.#knock?.ports()));
      await this.#grants.reconcile();
    } catch (err) {
      this.#log.error('firewall maintenance failed; retrying next interval', { error: String(err) });
    }
  }

  #clockTrusted(): boolean {
    return clockTrusted(this.#active?.config.raw.spa.clock ?? 'auto');
  }

  #onFrame(frame: Frame): void {
    const active = this.#active;
    if (active && isKnockFrame(active.config, frame)) {
      if (this.#knock) this.#knock.onFrame(frame);
      else this.counters.ignored++;
      return;
    }
    if (!active || !this.#replay || !this.#fwknopReplay || (frame.proto !== 'udp' && frame.proto !== 'icmp')) {
      this.counters.ignored++;
      return;
    }
    const domains = { spa: this.#replay, fwknop: this.#fwknopReplay };
    const d = frame.proto === 'icmp' ? this.#decideIcmp(active, frame, domains)
      : frame.dstPort === active.config.raw.spa.port ? this.#decideSpa(active, frame, domains.spa)
        : active.fwknop.length > 0 && frame.dstPort === active.config.raw.fwknop.port ? this.#decideFwknop(active, frame, domains.fwknop) : undefined;
    // Over ICMP most traffic is ordinary pings: a payload that is not recognisably ours
    // (no known key id, not fwknop-shaped) is ignored, not refused and logged.
    if (!d || (frame.proto === 'icmp' && d.kind === 'drop' && NOT_OURS_OVER_ICMP.has(d.reason))) {
      this.counters.ignored++;
      return;
    }
    this.#act(d, frame.src);
  }

  /** An ICMP echo has no port to say which format it carries (DESIGN.md "SPA protocol v1",
   *  opt-in ICMP transport), and both formats are cheap to reject: native first when the
   *  length fits (its key id lookup comes before any crypto), else fwknop when stanzas exist. */
  #decideIcmp(active: Active, frame: Frame, domains: { spa: ReplayDomain; fwknop: ReplayDomain }): SpaDecision | undefined {
    const n = frame.payload.length;
    if (n >= MIN_PACKET && n <= MAX_PACKET) {
      const d = this.#decideSpa(active, frame, domains.spa);
      if (d.kind !== 'drop' || !NOT_OURS_OVER_ICMP.has(d.reason)) return d;
    }
    return active.fwknop.length > 0 ? this.#decideFwknop(active, frame, domains.fwknop) : undefined;
  }

  #decideSpa(active: Active, frame: Frame, replay: ReplayDomain): SpaDecision {
    const d = decideSpa(frame.payload, frame.src, {
      keys: active.keys, keyConfigs: active.keyConfigs, replay: replay.guard,
      windowMs: active.config.raw.spa.window_s * 1000, nowMs: this.#deps.clock.wallMs(), clockTrusted: this.#clockTrusted(),
      ...(active.asym && { asym: { ...active.asym, monoMs: this.#deps.clock.monoMs() } }),
    });
    if (active.asym) this.counters.publicKeyOps = active.asym.buckets.spent + this.#pkOpsBefore;
    if (d.accepted) replay.persist(d.accepted);
    return d;
  }

  #decideFwknop(active: Active, frame: Frame, replay: ReplayDomain): SpaDecision {
    const d = decideFwknop(frame.payload, frame.src, {
      stanzas: active.fwknop, replay: replay.guard, nowMs: this.#deps.clock.wallMs(), clockTrusted: this.#clockTrusted(),
    }, frame.dst);
    if (d.accepted) replay.persist(d.accepted);
    return d;
  }

  #act(d: SpaDecision, source: string): void {
    if (d.kind === 'drop') {
      this.counters.drop(d.reason);
      this.#aggregator.record(d.reason, source, d.key);
    } else if (d.kind === 'close') {
      void this.#grants?.revokeMatching(d.key.name, d.address).then((n) => {
        this.counters.closed += n;
        this.#log.info('closed by client', { key: d.key.name, source, address: d.address, grants: n });
      });
    } else if (d.kind === 'fwknop') {
      for (const plan of d.plans) void this.#open(`fwknop:${d.stanza.name}`, plan, source, { format: 'fwknop' });
    } else {
      void this.#open(d.key.name, d.plan, source, { key_id: keyIdHex(d.key.keyId) });
    }
  }

  async #open(name: string, plan: GrantPlan, source: string, fields: Record<string, string>): Promise<void> {
    try {
      const ev = await this.#grants?.grant(name, plan);
      if (!ev) {
        this.counters.drop('grant_limit');
        this.#aggregator.record('grant_limit', source, name);
        return;
      }
      if (ev.extended) this.counters.extended++;
      else this.counters.accepted++;
      this.#log.info(ev.extended ? 'grant extended' : 'grant opened', {
        key: name, ...fields, source, address: plan.address,
        services: plan.services.map((s) => `${s.proto}/${s.port}`).join(','), duration_s: plan.durationS, grant: ev.grant.id,
        prefix: plan.prefix, forward_to: plan.forward ? `${plan.forward.address}:${plan.forward.port}` : undefined,
      });
    } catch (err) {
      this.counters.drop('firewall_error');
      this.#log.error('grant failed', { key: name, source, error: String(err) });
    }
  }

  /** SIGHUP: apply a new config only if it is entirely valid. */
  async reload(): Promise<boolean> {
    if (!this.#started) return false;
    const loaded = loadConfigFile(this.#deps.configPath);
    if (!loaded.ok) {
      for (const e of loaded.errors) this.#log.error('reload refused: config error', { error: e });
      return false;
    }
    const old = this.#active?.config;
    const { config } = loaded;
    let device: DeviceKey | undefined;
    try {
      device = deviceKeyFor(config, this.#log);
    } catch (err) {
      this.#log.error('reload refused: device key', { error: String(err) });
      return false;
    }
    if (!this.#swapKnock(config)) return false;
    this.#pkOpsBefore = this.counters.publicKeyOps;
    this.#active = activate(config, device);
    // A technician key removed from the file is simply unknown from now on (issue 10:
    // revocation takes effect on reload, no restart); `revoked: true` keeps it known and refused.
    const kept = new Set([...config.keys, ...config.techKeys].map((k) => k.keyId));
    for (const k of [...old?.keys ?? [], ...old?.techKeys ?? []]) if (!kept.has(k.keyId)) this.#replay?.guard.forgetKey(k.keyId);
    await this.#backend?.update(guardSpec(config, this.#knock?.ports()));
    if (old && (capturePorts(old).join() !== capturePorts(config).join() || old.raw.spa.ipv6 !== config.raw.spa.ipv6
      || old.raw.spa.icmp !== config.raw.spa.icmp || knockCaptureKey(old) !== knockCaptureKey(config))) {
      this.#capture?.stop();
      await this.#startCapture(config);
    }
    this.#log.info('config reloaded', { keys: config.keys.length, doors: config.doors.length, guarded: config.raw.guarded.join(',') });
    return true;
  }

  /** Reload: a new knock service for the new doors (progress starts afresh). The old one's
   *  pending stop commands still run on time; it is kept until they have. */
  #swapKnock(config: Config): boolean {
    const knock = this.#makeKnock(config);
    const errors = knock?.load() ?? [];
    if (errors.length > 0) {
      for (const e of errors) this.#log.error('reload refused: config error', { error: e });
      return false;
    }
    if (this.#knock) {
      this.#knock.retire();
      this.#retiredKnock = [...this.#retiredKnock.filter((k) => k.pendingCommands > 0), this.#knock];
    }
    this.#knock = knock;
    knock?.start();
    return true;
  }

  async stop(): Promise<void> {
    for (const cancel of this.#timers) cancel();
    this.#timers = [];
    this.#capture?.stop();
    // Pending stop commands run now: a start command's effect must not outlive the daemon.
    await Promise.all([this.#knock, ...this.#retiredKnock].map((k) => k?.stop()));
    this.#aggregator.flush();
    await this.#grants?.stop();
    const keep = this.#active?.config.raw.firewall.keep_guarding_on_exit ?? false;
    await this.#backend?.stop({ keepGuarding: keep });
    this.#replay?.close();
    this.#fwknopReplay?.close();
    this.#log.info('postern stopped', { ...this.counters.snapshot(), ...this.#knockStats(), kept_guarding: keep });
  }
}

export class ConfigError extends Error {
  readonly errors: readonly string[];
  constructor(errors: readonly string[]) {
    super(`invalid config:\n  ${errors.join('\n  ')}`);
    this.errors = errors;
  }
}
