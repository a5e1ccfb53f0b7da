// SPDX-License-Identifier: MIT
// A door's command action (docs/config.md "Knock doors"): `start` and `stop` argv
// templates run through the Runner (firewall/exec.ts: no shell, ever). `%IP%` is replaced
// inside each element and never splits one, so an address can only ever be one argument
// (knockd runs its commands through /bin/sh, ref/knockd.md §7 item 6). Each command is
// killed after COMMAND_TIMEOUT_MS. One (door, address) has at most one pending stop: a
// repeated knock while it is pending reschedules the stop instead of running start again
// (knockd #70: rules applied three times). stopAll() runs every pending stop at once, so
// a daemon that exits does not leave a start command's effect behind.

import type { Runner } from '../firewall/exec.ts';
import type { DoorConfig } from '../knock/door.ts';
import { IP_PLACEHOLDER } from '../config/doors.ts';
import type { Logger } from '../log/logger.ts';
import type { Cancel, Clock } from '../platform/clock.ts';

export const COMMAND_TIMEOUT_MS = 10_000;
/** Pending stops at most: a flood of valid knocks from many addresses cannot fork without bound. */
export const MAX_PENDING_STOPS = 1024;

interface Pending {
  readonly door: DoorConfig;
  readonly address: string;
  cancel: Cancel;
}

export function expandArgv(template: readonly string[], address: string): string[] {
  return template.map((a) => a.replaceAll(IP_PLACEHOLDER, address));
}

export class DoorCommands {
  readonly #runner: Runner;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #onFailure: (door: string, address: string) => void;
  readonly #pending = new Map<string, Pending>();

  constructor(deps: { runner: Runner; clock: Clock; logger: Logger; onFailure: (door: string, address: string) => void }) {
    this.#runner = deps.runner;
    this.#clock = deps.clock;
    this.#log = deps.logger;
    this.#onFailure = deps.onFailure;
  }

  get pending(): number {
    return this.#pending.size;
  }

  /** The door opened for `address`: run start (unless its stop is pending) and schedule stop. */
  opened(door: DoorConfig, address: string): void {
    if (!door.start) return;
    const id = `${door.name}|${address}`;
    const pending = this.#pending.get(id);
    if (pending) {
      pending.cancel();
      pending.cancel = this.#schedule(id, door);
      this.#log.info('knock command already active; stop rescheduled', { door: door.name, address });
      return;
    }
    if (door.stop && this.#pending.size >= MAX_PENDING_STOPS) {
      this.#log.error('too many pending stop commands; start not run', { door: door.name, address });
      this.#onFailure(door.name, address);
      return;
    }
    void this.#run(door, 'start', door.start, address);
    if (door.stop) this.#pending.set(id, { door, address, cancel: this.#schedule(id, door) });
  }

  #schedule(id: string, door: DoorConfig): Cancel {
    return this.#clock.schedule(door.cmdTimeoutS * 1000, () => {
      const p = this.#pending.get(id);
      this.#pending.delete(id);
      if (p && door.stop) void this.#run(door, 'stop', door.stop, p.address);
    });
  }

  async #run(door: DoorConfig, which: 'start' | 'stop', template: readonly string[], address: string): Promise<void> {
    const argv = expandArgv(template, address);
    try {
      const r = await this.#runner(argv, { timeoutMs: COMMAND_TIMEOUT_MS });
      if (r.code === 0) {
        this.#log.info(`knock ${which} command ran`, { door: door.name, address, program: argv[0] });
        return;
      }
      this.#log.error(`knock ${which} command failed`, { door: door.name, address, program: argv[0], code: r.code, stderr: r.stderr.slice(0, 200) });
    } catch (err) {
      this.#log.error(`knock ${which} command could not run`, { door: door.name, address, error: String(err) });
    }
    this.#onFailure(door.name, address);
  }

  /** Run every pending stop now (daemon exit) and wait for them. */
  async stopAll(): Promise<void> {
    const all = [...this.#pending.values()];
    this.#pending.clear();
    await Promise.all(all.map((p) => {
      p.cancel();
      return p.door.stop ? this.#run(p.door, 'stop', p.door.stop, p.address) : Promise.resolve();
    }));
  }
}
