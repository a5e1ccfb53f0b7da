// SPDX-License-Identifier: MIT
// The knock engine (DESIGN.md "Port knocking"; docs/config.md "Knock doors"): per-source
// progress on every door, in a bounded LRU, with sweep resistance, duplicate tolerance,
// timer-driven timeouts and once-only time-derived sequences. Pure: hits and times in,
// events out; the daemon acts on them (grants, commands, one-time file, logs, counters).
//
// Why each rule (ref/knockd.md §7): knockd opens an ascending sequence to an ordered sweep
// (K8) because ports outside the sequences never reset progress; it keeps one attempt per
// source without bound (K9); it never logs wrong-order knocks and notices timeouts only
// when another packet arrives (K3, K4). Here:
//   - a hit on a guard port (within guard_width of a sequence port), on a time-derived
//     range port that is not the next knock, or a wrong in-sequence hit resets every door
//     of the source and starts a penalty (knock.penalty_s) during which its knocks are
//     refused; a TCP SYN to any other port seen from a source with progress counts too;
//   - sources live in an LRU capped at knock.max_sources, in arrays allocated once
//     (source-table.ts), so a spoofed flood costs no memory;
//   - a repeat of the knock just matched is a duplicate, not a reset; a knock of the other
//     protocol may arrive early (two raw sockets, door-runtime.ts advanceAttempt);
//   - expire() is called on a timer and reports every timed-out attempt.

import { cidrContains } from '../wire/address.ts';
import { knockPorts, inRange, type PortRange } from './door.ts';
import type { DoorConfig, TotpSource } from './door.ts';
import { DoorRuntime, stepDoor } from './door-runtime.ts';
import { NONE, SourceTable } from './source-table.ts';
import { flagsMatch, TCP_ACK, TCP_SYN, type KnockPort, type KnockProto } from './sequence.ts';

export interface KnockHit {
  readonly src: string;
  /** Destination address; '' when unknown (IPv6 raw sockets give none). */
  readonly dst: string;
  readonly proto: KnockProto;
  readonly port: number;
  /** TCP flag byte; 0 for UDP. */
  readonly tcpFlags: number;
}

export interface KnockNow {
  /** Monotonic ms: timeouts and penalties. */
  readonly monoMs: number;
  /** Wall-clock ms: the step of time-derived doors. */
  readonly wallMs: number;
}

export type KnockReason = 'knock_wrong' | 'knock_guard' | 'knock_timeout' | 'knock_replay';

export type KnockEvent =
  | { readonly kind: 'open'; readonly door: DoorConfig; readonly source: string; readonly step?: number }
  | { readonly kind: 'refused'; readonly reason: KnockReason; readonly source: string; readonly door?: string };

export interface KnockOptions {
  readonly maxSources: number;
  readonly guardWidth: number;
  readonly penaltyMs: number;
}

type Relevance = 'seq' | 'guard' | 'range';

export interface KnockStats {
  /** Packets seen on capture ports (sequence, guard, range). */
  readonly hits: number;
  readonly tracked: number;
  readonly evicted: number;
  readonly duplicates: number;
}

const UDP_KEY_OFFSET = 65536;
const portKey = (proto: KnockProto, port: number): number => (proto === 'udp' ? UDP_KEY_OFFSET + port : port);

export class KnockEngine {
  readonly #opts: KnockOptions;
  readonly #doors: DoorRuntime[];
  readonly #sources: SourceTable;
  /** Keyed by portKey (tcp: port, udp: 65536 + port). */
  #relevant = new Map<number, Relevance>();
  #ranges: readonly PortRange[] = [];
  #duplicates = 0;
  #hits = 0;

  constructor(doors: readonly DoorConfig[], opts: KnockOptions) {
    this.#opts = opts;
    this.#doors = doors.map((d) => new DoorRuntime(d));
    this.#sources = new SourceTable(opts.maxSources, doors.length);
    this.#rebuild();
  }

  get stats(): KnockStats {
    return { hits: this.#hits, tracked: this.#sources.size, evicted: this.#sources.evicted, duplicates: this.#duplicates };
  }

  /** Hand a one-time door its live sequence (undefined: used up). */
  setOneTime(name: string, seq: readonly KnockPort[] | undefined): void {
    const rt = this.#doors.find((d) => d.config.name === name);
    if (!rt || rt.config.source.kind !== 'one_time') return;
    rt.setOneTime(seq);
    this.#rebuild();
  }

  /** Steps of a time-derived door already used (before a restart or reload). */
  markUsed(name: string, steps: readonly number[]): void {
    this.#doors.find((d) => d.config.name === name && d.config.source.kind === 'totp')?.markUsed(steps);
  }

  #rebuild(): void {
    const fixed = this.#doors.flatMap((d) => d.fixedSequence() ?? []).map((p) => [p]);
    const totp = this.#doors.flatMap((d) => (d.config.source.kind === 'totp' ? [d.config.source as TotpSource] : []));
    const ports = knockPorts(fixed, totp, this.#opts.guardWidth);
    const rel = new Map<number, Relevance>();
    for (const p of ports.guard) rel.set(portKey(p.proto, p.port), 'guard');
    for (const p of ports.sequence) rel.set(portKey(p.proto, p.port), 'seq');
    this.#relevant = rel;
    this.#ranges = ports.ranges;
  }

  #relevance(p: KnockPort): Relevance | undefined {
    return this.#relevant.get(portKey(p.proto, p.port)) ?? (this.#ranges.some((r) => inRange(r, p)) ? 'range' : undefined);
  }

  /** One captured packet. Returns what happened that the daemon must act on or log. */
  hit(h: KnockHit, now: KnockNow): KnockEvent[] {
    const port: KnockPort = { proto: h.proto, port: h.port };
    const rel = this.#relevance(port);
    const events: KnockEvent[] = [];
    if (rel === undefined) {
      this.#unrelated(h, now, events);
      return events;
    }
    this.#hits++;
    const slot = this.#sources.touch(h.src);
    if (slot === NONE) return events; // not an address text: frames never carry one
    this.#expireSource(slot, now, events, h.src);
    if (now.monoMs < this.#sources.penaltyUntil(slot)) {
      // Seq ports do not extend the penalty, so a user who waits it out is let in.
      if (rel !== 'seq') this.#sources.setPenalty(slot, now.monoMs + this.#opts.penaltyMs);
      events.push({ kind: 'refused', reason: rel === 'seq' ? 'knock_wrong' : 'knock_guard', source: h.src });
      return events;
    }
    const r = this.#stepAll(h, port, slot, now, events);
    if (r === 'moved') return events;
    if (rel === 'guard' || r === 'reset') {
      this.#penalize(slot, now);
      events.push({ kind: 'refused', reason: rel === 'seq' ? 'knock_wrong' : 'knock_guard', source: h.src });
    }
    return events;
  }

  /** Step every door the hit applies to. 'moved': some door advanced, opened or saw a
   *  duplicate; 'reset': nothing moved and the hit broke an attempt or was a door's knock
   *  out of order; else 'none' (another door's port, for a door the hit does not apply to). */
  #stepAll(h: KnockHit, port: KnockPort, slot: number, now: KnockNow, events: KnockEvent[]): 'moved' | 'reset' | 'none' {
    let moved = false;
    let broken = false;
    let opened = false;
    this.#doors.forEach((rt, idx) => {
      if (!this.#applies(rt.config, h)) return;
      const r = stepDoor(rt, this.#sources, { slot, door: idx }, port, now);
      if (r.r === 'reset') broken = true;
      if (r.r === 'duplicate') this.#duplicates++;
      if (r.r === 'advance' || r.r === 'duplicate') moved = true;
      if (r.r !== 'open') return;
      moved = true;
      if (r.step !== undefined && !rt.useStep(r.step)) {
        events.push({ kind: 'refused', reason: 'knock_replay', source: h.src, door: rt.config.name });
        return;
      }
      opened = true;
      events.push({ kind: 'open', door: rt.config, source: h.src, ...(r.step !== undefined && { step: r.step }) });
      if (rt.config.source.kind === 'one_time') {
        rt.setOneTime(undefined); // consumed until the daemon hands over the next line
        this.#rebuild();
      }
    });
    // A completed knock ends every other attempt of the source (no stray timeouts later).
    if (opened) this.#sources.clearProgress(slot);
    return moved ? 'moved' : broken ? 'reset' : 'none';
  }

  #applies(d: DoorConfig, h: KnockHit): boolean {
    if (h.proto === 'tcp' && !flagsMatch(d.tcpFlags, h.tcpFlags)) return false;
    if (d.target !== undefined && h.dst !== d.target) return false;
    return d.allowedAddresses.some((c) => cidrContains(c, h.src));
  }

  /** A connection attempt to an unrelated port, from a source in the middle of a knock:
   *  only a scanner does that (seen only where the host lets it reach the raw socket). */
  #unrelated(h: KnockHit, now: KnockNow, events: KnockEvent[]): void {
    if (h.proto !== 'tcp' || (h.tcpFlags & (TCP_SYN | TCP_ACK)) !== TCP_SYN) return;
    const slot = this.#sources.find(h.src);
    if (slot < 0 || this.#sources.active(slot) === 0) return;
    this.#penalize(slot, now);
    events.push({ kind: 'refused', reason: 'knock_guard', source: h.src });
  }

  #penalize(slot: number, now: KnockNow): void {
    this.#sources.clearProgress(slot);
    this.#sources.setPenalty(slot, now.monoMs + this.#opts.penaltyMs);
  }

  /** `src`: the source's text when the caller has it; else made from the table, and only
   *  when there is an event to report. */
  #expireSource(slot: number, now: KnockNow, events: KnockEvent[], src?: string): void {
    if (this.#sources.active(slot) === 0) return;
    this.#doors.forEach((rt, idx) => {
      if (!this.#sources.inAttempt(slot, idx) || now.monoMs - this.#sources.firstMs(slot, idx) <= rt.config.seqTimeoutS * 1000) return;
      this.#sources.end(slot, idx);
      events.push({ kind: 'refused', reason: 'knock_timeout', source: src ?? this.#sources.text(slot), door: rt.config.name });
    });
  }

  /** Timer-driven: report timed-out attempts and forget idle sources. */
  expire(now: KnockNow): KnockEvent[] {
    const events: KnockEvent[] = [];
    for (const slot of this.#sources.slots()) {
      this.#expireSource(slot, now, events);
      if (this.#sources.active(slot) === 0 && now.monoMs >= this.#sources.penaltyUntil(slot)) this.#sources.release(slot);
    }
    return events;
  }
}
