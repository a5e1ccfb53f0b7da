// SPDX-License-Identifier: MIT
// The daemon side of port knocking: feeds captured TCP/UDP frames to the pure engine
// (knock/engine.ts) and acts on its events: a grant through the daemon's GrantManager
// (same path as SPA), the door's commands, the one-time file, counters and aggregated
// logs. Timeouts are reported by a 1 s timer, not when the next packet happens to come.

import type { Config } from '../config/load.ts';
import type { Runner } from '../firewall/exec.ts';
import type { DoorConfig, KnockPorts, TotpSource } from '../knock/door.ts';
import { knockPorts } from '../knock/door.ts';
import { KnockEngine, type KnockEvent, type KnockStats } from '../knock/engine.ts';
import type { OneTimeLine } from '../knock/sequence.ts';
import type { Logger } from '../log/logger.ts';
import type { Cancel, Clock } from '../platform/clock.ts';
import type { DropReason } from '../pipeline/reasons.ts';
import type { GrantPlan } from '../policy/decide.ts';
import { currentStep } from '../knock/totp.ts';
import type { Frame } from '../wire/frame.ts';
import { DoorCommands } from './knock-commands.ts';
import type { KnockSteps } from './knock-steps.ts';
import { consumeOneTimeLine, readOneTimeFile } from './one-time-file.ts';

const EXPIRE_INTERVAL_MS = 1000;
/** At most one "knock state full" line per this interval (a flood is one line, not 100,000). */
const FULL_LOG_INTERVAL_MS = 10_000;

export interface KnockDeps {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly runner: Runner;
  /** A refusal: count it and log it through the daemon's aggregator. */
  readonly refuse: (reason: DropReason, source: string, door?: string) => void;
  /** A completed knock (counted by the daemon). */
  readonly opened: () => void;
  /** Open a grant through the daemon's GrantManager (logs and counts like SPA grants). */
  readonly grant: (name: string, plan: GrantPlan, source: string) => Promise<void>;
  /** Used steps of time-derived doors, kept across reloads and restarts (none: memory only). */
  readonly steps?: KnockSteps;
}

/** Steps below current - 2 can never be accepted again (the current and previous steps are). */
const STEPS_KEPT_BEHIND = 2;

/** Unused lines of every one-time door's file (errors: every file that cannot be used). */
function readOneTime(doors: readonly DoorConfig[]): { lines: Map<string, OneTimeLine[]>; errors: string[] } {
  const lines = new Map<string, OneTimeLine[]>();
  const errors: string[] = [];
  for (const d of doors) {
    if (d.source.kind !== 'one_time') continue;
    const r = readOneTimeFile(d.source.path);
    if (r.ok) lines.set(d.name, r.value);
    else errors.push(`door ${d.name}: ${r.reason}`);
  }
  return { lines, errors };
}

/** Capture ports for the config's doors (one-time doors: every unused line of the file). */
export function doorPorts(config: Config, oneTime = readOneTime(config.doors).lines): KnockPorts {
  const fixed = config.doors.flatMap((d) => (d.source.kind === 'static' ? [d.source.sequence] : (oneTime.get(d.name) ?? []).map((l) => l.sequence)));
  const totp = config.doors.flatMap((d) => (d.source.kind === 'totp' ? [d.source as TotpSource] : []));
  return knockPorts(fixed, totp, config.raw.knock.guard_width);
}

/** What the capture sockets depend on: TCP capture at all, and the UDP sink ports. */
export function knockCaptureKey(config: Config): string {
  if (config.doors.length === 0) return '';
  const p = doorPorts(config);
  return [...p.sequence, ...p.guard].filter((q) => q.proto === 'udp').map((q) => q.port).sort((a, b) => a - b).join(',') || 'tcp';
}

export class KnockService {
  readonly #deps: KnockDeps;
  readonly #config: Config;
  readonly #engine: KnockEngine;
  readonly #commands: DoorCommands;
  #oneTime = new Map<string, OneTimeLine[]>();
  #timer: Cancel | undefined;
  #loggedEvicted = 0;
  #lastFullLogMs = -Infinity;
  #stepsRestored = false;

  constructor(config: Config, deps: KnockDeps) {
    this.#deps = deps;
    this.#config = config;
    const k = config.raw.knock;
    this.#engine = new KnockEngine(config.doors, { maxSources: k.max_sources, guardWidth: k.guard_width, penaltyMs: k.penalty_s * 1000 });
    this.#commands = new DoorCommands({
      runner: deps.runner, clock: deps.clock, logger: deps.logger,
      onFailure: (door, address) => deps.refuse('command_error', address, door),
    });
  }

  get pendingCommands(): number {
    return this.#commands.pending;
  }

  get stats(): KnockStats {
    return this.#engine.stats;
  }

  /** Read one-time files. Returns every error (the daemon refuses to start with any). */
  load(): string[] {
    const { lines, errors } = readOneTime(this.#config.doors);
    this.#oneTime = lines;
    for (const [name, l] of lines) {
      this.#engine.setOneTime(name, l[0]?.sequence);
      if (l.length === 0) this.#deps.logger.warn('one-time door has no unused sequence left', { door: name });
    }
    return errors;
  }

  ports(): KnockPorts {
    return doorPorts(this.#config, this.#oneTime);
  }

  start(): void {
    const tick = (): void => {
      this.#handle(this.#engine.expire(this.#now()));
      this.#noteEvictions();
      this.#timer = this.#deps.clock.schedule(EXPIRE_INTERVAL_MS, tick);
    };
    this.#timer = this.#deps.clock.schedule(EXPIRE_INTERVAL_MS, tick);
  }

  /** A flood of new sources (spoofed first knocks) shows as evictions from the LRU. */
  #noteEvictions(): void {
    const { tracked, evicted, hits } = this.#engine.stats;
    const now = this.#deps.clock.monoMs();
    if (evicted === this.#loggedEvicted || now - this.#lastFullLogMs < FULL_LOG_INTERVAL_MS) return;
    this.#deps.logger.warn('knock state full: least recent sources forgotten', {
      tracked, max_sources: this.#config.raw.knock.max_sources, evicted: evicted - this.#loggedEvicted, hits,
    });
    this.#loggedEvicted = evicted;
    this.#lastFullLogMs = now;
  }

  #now(): { monoMs: number; wallMs: number } {
    return { monoMs: this.#deps.clock.monoMs(), wallMs: this.#deps.clock.wallMs() };
  }

  /** Before the first knock: the steps used before this service (restart, reload). Lazy,
   *  because at start the daemon builds this service before it opens the store. */
  #restoreSteps(): void {
    this.#stepsRestored = true;
    const wallMs = this.#deps.clock.wallMs();
    for (const d of this.#config.doors) {
      if (d.source.kind !== 'totp') continue;
      const min = currentStep(wallMs, d.source.stepS) - STEPS_KEPT_BEHIND;
      this.#engine.markUsed(d.name, this.#deps.steps?.steps(d.name, min) ?? []);
    }
  }

  onFrame(frame: Frame): void {
    if (frame.proto === 'icmp') return;
    if (!this.#stepsRestored) this.#restoreSteps();
    const hit = { src: frame.src, dst: frame.dst, proto: frame.proto, port: frame.dstPort, tcpFlags: frame.tcpFlags };
    this.#handle(this.#engine.hit(hit, this.#now()));
  }

  #handle(events: readonly KnockEvent[]): void {
    for (const e of events) {
      if (e.kind === 'refused') this.#deps.refuse(e.reason, e.source, e.door);
      else this.#open(e.door, e.source, e.step);
    }
  }

  #open(door: DoorConfig, source: string, step: number | undefined): void {
    // Committed before the grant and commands, like SPA replay state.
    if (step !== undefined && door.source.kind === 'totp') {
      const min = currentStep(this.#deps.clock.wallMs(), door.source.stepS) - STEPS_KEPT_BEHIND;
      this.#deps.steps?.record(door.name, step, min);
    }
    this.#deps.opened();
    this.#deps.logger.info('knock opened', { door: door.name, source, step });
    if (door.source.kind === 'one_time') this.#consume(door);
    if (door.services.length > 0) {
      const plan: GrantPlan = { family: source.includes(':') ? 6 : 4, address: source, services: door.services, durationS: door.durationS };
      void this.#deps.grant(`knock:${door.name}`, plan, source);
    }
    this.#commands.opened(door, source);
  }

  /** Mark the line used on disk, then hand the engine the next one. If the rewrite fails
   *  the door stays closed: a used sequence must never work twice. */
  #consume(door: DoorConfig): void {
    if (door.source.kind !== 'one_time') return;
    const used = this.#oneTime.get(door.name)?.[0];
    if (!used) return;
    const r = consumeOneTimeLine(door.source.path, used);
    if (!r.ok) {
      this.#oneTime.set(door.name, []);
      this.#deps.logger.error('one-time file not updated; door closed until restart', { door: door.name, error: r.reason });
      return;
    }
    this.#oneTime.set(door.name, r.value);
    this.#engine.setOneTime(door.name, r.value[0]?.sequence);
    if (r.value.length === 0) this.#deps.logger.warn('one-time door used up', { door: door.name });
  }

  /** Stop the timer (reload hands over to a new service; pending stop commands still run). */
  retire(): void {
    this.#timer?.();
    this.#timer = undefined;
  }

  /** Daemon exit: stop the timer and run pending stop commands now. */
  async stop(): Promise<void> {
    this.retire();
    await this.#commands.stopAll();
  }
}
