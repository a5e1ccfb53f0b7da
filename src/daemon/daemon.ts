// SPDX-License-Identifier: MIT
// The daemon's lifecycle: the constructor stores dependencies; start() brings up, in
// order, state store -> firewall guard -> restore grants + reconcile leftovers -> capture
// -> control socket; stop() takes them down in reverse. reload() (SIGHUP, or `reload` on
// the control socket) applies a new config only if it validates completely.

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
import { keyIdHex } from '../spa/credential.ts';
import type { DeviceKey } from '../spa/asym.ts';
import { deviceKeyFor } from './device-key.ts';
import type { Frame } from '../wire/frame.ts';
import type { PacketSource } from '../capture/raw.ts';
import { checkForwarding } from '../platform/ip-forward.ts';
import { ReplayDomain } from './replay-domain.ts';
import { decideFwknop } from '../pipeline/fwknop.ts';
import { activate, type Active } from './active.ts';
import type { GrantPlan } from '../policy/decide.ts';
import { spawnRunner, type Runner } from '../firewall/exec.ts';
import { KnockService, knockCaptureKey } from './knock.ts';
import { KnockStepLedger } from './knock-steps.ts';
import { capturePorts, guardSpec, isKnockFrame } from './guard-spec.ts';
import type { EventSink } from '../alert/events.ts';
import type { Grant, PrefilterStatus } from '../firewall/types.ts';
import type { Store } from '../store/store.ts';
import type { ControlServer } from '../control/server.ts';
import { controlHandler } from './control.ts';
import { grantView, keyViews, type DaemonStatus, type KeyView } from './status.ts';
import { openStore, restoreGrants, startControl, storeJournal } from './state.ts';
import { HeapCompactor } from './heap-compactor.ts';

export { capturePorts, guardSpec } from './guard-spec.ts';

export interface DaemonDeps {
  readonly configPath: string;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly makeBackend: (config: Config) => FirewallBackend;
  readonly makeCapture: (config: Config) => PacketSource;
  /** Runs door commands (knock start/stop); default spawnRunner. */
  readonly runner?: Runner;
  /** Told about every refusal, grant change and database state change (MQTT alerts). */
  readonly events?: EventSink;
  /** Listen on control.socket (default true; unit tests with fakes turn it off). */
  readonly control?: boolean;
  /** Runs in stop() while the store is still open (alerts drain their outbox into it). */
  readonly beforeStoreClose?: () => Promise<void>;
}

/** Live grants at most (a flood of valid packets cannot grow the ruleset without bound). */
const MAX_GRANTS = 4096;
const LOG_INTERVAL_MS = 10_000;
/** Counters are logged this often, when they changed. */
const STATS_INTERVAL_MS = 60_000;
/** How often the heap is looked at after bursts (heap-compactor.ts). */
const COMPACT_CHECK_MS = 1_000;
const LOG_MAX_TRACKED = 32;

/** Refusals that, over ICMP, mean "an ordinary ping", not "a bad SPA packet". */
const NOT_OURS_OVER_ICMP: ReadonlySet<DropReason> = new Set(['too_short', 'too_long', 'unknown_key', 'fwknop_malformed']);

/** Where the daemon's memory is (issue 9: RSS growth must be explained), in KiB. RSS beyond
 *  heapTotal + external is the runtime itself: code pages of node, malloc arenas, stacks. */
function memoryFields(): Record<string, number> {
  const m = process.memoryUsage();
  const kib = (n: number): number => Math.round(n / 1024);
  return { rss_kib: kib(m.rss), heap_total_kib: kib(m.heapTotal), heap_used_kib: kib(m.heapUsed), external_kib: kib(m.external), array_buffers_kib: kib(m.arrayBuffers) };
}

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
  /** The prefilter as the last maintenance read it, for the MQTT stats (status reads it fresh). */
  #prefilterSeen: PrefilterStatus | undefined;
  /** Services replaced by a reload: their pending stop commands still run at exit. */
  #retiredKnock: KnockService[] = [];
  #started = false;
  /** Public-key operations counted by buckets of earlier configs (buckets restart on reload). */
  #pkOpsBefore = 0;
  #stopping = false;
  #startedMs = 0;
  #store: Store | undefined;
  /** Used time-derived knock steps: outlive reloads, written through to the store. */
  readonly #knockSteps = new KnockStepLedger(() => this.#store);
  #control: ControlServer | undefined;
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
    this.#startedMs = this.#deps.clock.wallMs();
    const store = this.#openState(config);
    this.#backend = this.#deps.makeBackend(config);
    this.#grants = new GrantManager({
      backend: this.#backend, clock: this.#deps.clock, logger: this.#log.child('grant'),
      maxGrants: Math.min(MAX_GRANTS, config.raw.state.grant_rows), journal: storeJournal(store, this.#deps.clock),
      onClose: (g, why) => this.#closed(g, why),
    });
    checkForwarding(config, this.#log);
    await this.#backend.start(guardSpec(config, this.#knock?.ports()));
    await restoreGrants(this.#grants, store, this.#log);
    // Removes every rule a crashed daemon left that is not a restored grant.
    await this.#grants.reconcile();
    await this.#startCapture(config);
    this.#startTimers(config);
    this.#knock?.start();
    await this.#startControl(config);
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
      // Knock refusals take the same path as SPA ones: counted, logged, audited, alerted.
      refuse: (reason, source, door) => this.#refused(reason, source, door),
      opened: () => { this.counters.knocks++; },
      grant: (name, plan, source) => this.#open(name, plan, source, {}),
      steps: this.#knockSteps,
    });
  }

  #openState(config: Config): Store {
    const log = this.#log.child('state');
    const store = openStore(config, log, this.#deps.clock, this.#deps.events);
    this.#store = store;
    this.#replay = ReplayDomain.open(store, 'replay', { capacity: config.raw.spa.replay_ring, windowMs: config.raw.spa.window_s * 1000 }, log);
    // fwknop's age window (MAX_SPA_PACKET_AGE) is its own, so its ring is too.
    this.#fwknopReplay = ReplayDomain.open(store, 'fwknop_replay', { capacity: config.raw.spa.replay_ring, windowMs: config.raw.fwknop.max_age_s * 1000 }, log);
    return store;
  }

  async #startControl(config: Config): Promise<void> {
    if (this.#deps.control !== false) this.#control = await startControl(config.raw.control.socket, controlHandler(this), this.#log);
  }

  #closed(g: Grant, why: string): void {
    const atMs = this.#deps.clock.wallMs();
    this.#store?.audit('closed', g.address, g.key, atMs);
    this.#deps.events?.emit({
      type: 'grant', action: 'closed', grantId: g.id, key: g.key, source: g.address, address: g.address,
      services: g.services.map((x) => `${x.proto}/${x.port}`), atMs,
    });
    this.#log.debug(() => `grant ${g.id} closed: ${why}`);
  }

  async #startCapture(config: Config): Promise<void> {
    this.#capture = this.#deps.makeCapture(config);
    await this.#capture.start((f) => this.#onFrame(f), () => this.counters.drop('malformed'));
  }

  #startTimers(config: Config): void {
    // One slot per periodic job, overwritten on every tick: the array never grows.
    const every = (ms: number, fn: () => void) => {
      const slot = this.#timers.length;
      const tick = () => { fn(); this.#timers[slot] = this.#deps.clock.schedule(ms, tick); };
      this.#timers[slot] = this.#deps.clock.schedule(ms, tick);
    };
    every(LOG_INTERVAL_MS, () => this.#aggregator.flush());
    every(config.raw.state.flush_interval_s * 1000, () => {
      this.#store?.setCounters(this.counters.snapshot());
      this.#store?.flush();
    });
    let last = '';
    every(STATS_INTERVAL_MS, () => {
      const snap = this.counters.snapshot();
      const text = JSON.stringify(snap);
      if (text !== last) this.#log.info('stats', { ...snap, grants: this.#grants?.size ?? 0, ...this.#knockStats() });
      last = text;
      this.#log.debug('memory', memoryFields);
    });
    const compactor = new HeapCompactor();
    if (compactor.active) every(COMPACT_CHECK_MS, () => { if (compactor.tick()) this.#log.debug('heap compacted after a burst', memoryFields); });
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
      this.#prefilterSeen = await this.#backend.prefilterStatus();
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
      this.#refused(d.reason, source, d.key);
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

  /** Every classified refusal: counter, log aggregator, audit buffer, alert event. */
  #refused(reason: DropReason, source: string, key: string | undefined): void {
    this.counters.drop(reason);
    this.#aggregator.record(reason, source, key);
    const atMs = this.#deps.clock.wallMs();
    this.#store?.audit(reason, source, key, atMs);
    this.#deps.events?.emit({ type: 'failure', reason, source, key, atMs });
  }

  async #open(name: string, plan: GrantPlan, source: string, fields: Record<string, string>): Promise<void> {
    try {
      const ev = await this.#grants?.grant(name, plan, source);
      if (!ev) return this.#refused('grant_limit', source, name);
      if (ev.extended) this.counters.extended++;
      else this.counters.accepted++;
      const atMs = this.#deps.clock.wallMs();
      this.#store?.audit(ev.extended ? 'extended' : 'accepted', source, name, atMs);
      this.#deps.events?.emit({
        type: 'grant', action: ev.extended ? 'extended' : 'opened', grantId: ev.grant.id, key: name, source, address: plan.address,
        services: plan.services.map((s) => `${s.proto}/${s.port}`), expiresMs: ev.grant.expiresAtMs, atMs,
      });
      this.#log.info(ev.extended ? 'grant extended' : 'grant opened', {
        key: name, ...fields, source, address: plan.address,
        services: plan.services.map((s) => `${s.proto}/${s.port}`).join(','), duration_s: plan.durationS, grant: ev.grant.id,
        prefix: plan.prefix, forward_to: plan.forward ? `${plan.forward.address}:${plan.forward.port}` : undefined,
      });
    } catch (err) {
      this.#refused('firewall_error', source, name);
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

  status(): DaemonStatus {
    const grants = this.#grants?.list() ?? [];
    return {
      version: 1, device: this.#active?.config.device ?? '', state: this.#stopping ? 'stopping' : this.#started ? 'running' : 'starting',
      pid: process.pid, startedMs: this.#startedMs, backend: this.#backend?.name ?? '', clock: this.#clockTrusted() ? 'trusted' : 'untrusted',
      database: this.#store?.status() ?? { state: 'memory', path: '', reason: 'not started', writes: 0, bytes: 0 },
      counters: this.counters.snapshot(), grantsOpen: grants.length, grants: grants.map(grantView), rssBytes: process.memoryUsage.rss(),
      ...(this.#prefilterSeen && { prefilter: this.#prefilterSeen }),
    };
  }

  /** The kernel-side prefilter as the backend has it (firewall/prefilter.ts). */
  prefilter(): Promise<PrefilterStatus> {
    return this.#backend?.prefilterStatus() ?? Promise.resolve({ state: 'off' });
  }

  keys(): KeyView[] {
    return keyViews(this.#active?.config.keys ?? []);
  }

  /** The outbox MQTT alerts go through: SQLite, or memory while the database is unusable. */
  outbox(): ReturnType<Store['outbox']> | undefined {
    return this.#store?.outbox();
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    this.#control?.stop();
    for (const cancel of this.#timers) cancel();
    this.#timers = [];
    this.#capture?.stop();
    // Pending stop commands run now: a start command's effect must not outlive the daemon.
    await Promise.all([this.#knock, ...this.#retiredKnock].map((k) => k?.stop()));
    this.#aggregator.flush();
    await this.#grants?.stop();
    const keep = this.#active?.config.raw.firewall.keep_guarding_on_exit ?? false;
    await this.#backend?.stop({ keepGuarding: keep });
    await this.#deps.beforeStoreClose?.().catch(() => undefined);
    this.#store?.setCounters(this.counters.snapshot());
    this.#store?.close();
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
