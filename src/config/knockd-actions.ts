// SPDX-License-Identifier: MIT
// What a knockd door does, as postern door actions (docs/config.md "Knock doors").
// knockd runs Start_Command through /bin/sh with %IP% replaced, Stop_Command Cmd_Timeout
// seconds later, and for IPv6 knocks the *_6 variants (falling back to the IPv4 ones; an
// empty *_6 value means "nothing"). postern runs argv arrays without a shell, so a command
// converts only when sh would merely split it into words (shell-words.ts); an iptables
// add/delete pair of one port becomes a grant. Pure.

import { iptablesGrant, parseIptablesRule } from './knockd-iptables.ts';
import { lastEntry, type KnockdEntry } from './knockd-conf.ts';
import { shellWords } from './shell-words.ts';

export const IP_PLACEHOLDER = '%IP%';
const DEFAULT_CMD_TIMEOUT_S = 10;
const MAX_CMD_TIMEOUT_S = 86400;

export type DoorAction =
  | { readonly kind: 'grant'; readonly services: string[]; readonly duration_s: number }
  | { readonly kind: 'command'; readonly start: string[]; readonly stop?: string[]; readonly cmd_timeout_s?: number };

/** Per family: the action, or null when knockd ran nothing for that family. */
export type FamilyAction = DoorAction | null;

export interface ActionResult {
  readonly v4: FamilyAction;
  readonly v6: FamilyAction;
  readonly notes: { readonly entry: KnockdEntry | undefined; readonly message: string }[];
}

interface CommandText { readonly entry: KnockdEntry; readonly text: string }

/** knockd's choice for one family: the *_6 entry if present (empty = nothing), else the v4 one. */
function pick(entries: readonly KnockdEntry[], key: string, v6: boolean): CommandText | null {
  const e = (v6 ? lastEntry(entries, `${key}_6`) : undefined) ?? lastEntry(entries, key);
  return e?.value ? { entry: e, text: e.value } : null;
}

function cmdTimeout(entries: readonly KnockdEntry[]): number | string {
  const e = lastEntry(entries, 'CMD_TIMEOUT');
  if (e?.value === undefined) return DEFAULT_CMD_TIMEOUT_S;
  const n = /^[0-9]{1,6}$/.test(e.value) ? Number(e.value) : NaN;
  return n >= 1 && n <= MAX_CMD_TIMEOUT_S ? n : `Cmd_Timeout must be 1-${MAX_CMD_TIMEOUT_S} seconds for postern (got ${JSON.stringify(e.value.slice(0, 20))})`;
}

function argv(c: CommandText): string[] | string {
  const words = shellWords(c.text);
  if (!words.ok) return `${c.entry.written} cannot run without a shell: ${words.reason}`;
  if (words.value[0]?.includes(IP_PLACEHOLDER)) return `${c.entry.written}: the program itself contains %IP%`;
  return words.value;
}

/** One family's action. A string is a refusal reason for the whole door. */
function familyAction(entries: readonly KnockdEntry[], v6: boolean, notes: ActionResult['notes']): FamilyAction | string {
  const start = pick(entries, 'START_COMMAND', v6);
  const stop = pick(entries, 'STOP_COMMAND', v6);
  if (start === null) return stop === null ? null : `${stop.entry.written} without a start command: postern runs stop only after start`;
  const startArgv = argv(start);
  if (typeof startArgv === 'string') return startArgv;
  const stopArgv = stop === null ? undefined : argv(stop);
  if (typeof stopArgv === 'string') return stopArgv;
  const timeout = cmdTimeout(entries);
  if (typeof timeout === 'string' && stopArgv !== undefined) return timeout;
  const grant = iptablesGrant(startArgv, stopArgv);
  if (grant && typeof timeout === 'number') {
    // An IPv4 rule with an IPv6 address fails in iptables: knockd opened nothing for v6 here.
    if (grant.family !== (v6 ? 6 : 4)) {
      notes.push({ entry: start.entry, message: `for IPv6 knocks knockd ran this ${grant.family === 4 ? 'iptables' : 'ip6tables'} rule with an address of the other family, which fails: converted for IPv${grant.family} knocks only` });
      return null;
    }
    return { kind: 'grant', services: [`${grant.proto}/${grant.port}`], duration_s: timeout };
  }
  const rule = parseIptablesRule(startArgv);
  if (rule?.op === 'add' && stopArgv === undefined && !v6) {
    notes.push({ entry: start.entry, message: `adds an iptables rule that only a later command removes; consider "services": ["${rule.proto}/${rule.port}"] with a duration_s instead, which the kernel expires` });
  }
  return { kind: 'command', start: startArgv, ...(stopArgv && { stop: stopArgv, cmd_timeout_s: timeout as number }) };
}

export function doorActions(entries: readonly KnockdEntry[]): ActionResult | string {
  const notes: ActionResult['notes'] = [];
  const v4 = familyAction(entries, false, notes);
  if (typeof v4 === 'string') return v4;
  const v6 = familyAction(entries, true, notes);
  if (typeof v6 === 'string') return v6;
  if (v4 === null && v6 === null) return 'no Start_Command: the door does nothing in knockd, and a postern door needs an action';
  return { v4, v6, notes };
}

export function sameAction(a: FamilyAction, b: FamilyAction): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
