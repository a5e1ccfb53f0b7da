// SPDX-License-Identifier: MIT
// knockd's port syntax (ref/knockd.md §2): `PORT[:tcp|udp]`, TCP when unmarked, and its
// one-time-sequence lines (ports separated by commas or spaces). Also TCPFlags: `flag` must
// be set, `!flag` must be clear. Pure; typed results, never a throw on input text.

import { fail, ok, type Decoded } from '../wire/result.ts';

export type KnockProto = 'tcp' | 'udp';

export interface KnockPort {
  readonly proto: KnockProto;
  readonly port: number;
}

/** knockd's SEQ_MAX. */
export const MAX_SEQUENCE = 32;

export function parseKnockPort(text: string): KnockPort | undefined {
  const m = /^([0-9]{1,5})(?::(tcp|udp))?$/.exec(text.trim().toLowerCase());
  const port = Number(m?.[1]);
  if (!m || port < 1 || port > 65535) return undefined;
  return { proto: m[2] === 'udp' ? 'udp' : 'tcp', port };
}

export const formatKnockPort = (p: KnockPort): string => `${p.port}:${p.proto}`;

export const samePort = (a: KnockPort, b: KnockPort): boolean => a.port === b.port && a.proto === b.proto;

/** One sequence, e.g. `7000,8000:udp 9000` or the entries of a `sequence` array. */
export function parseSequence(items: readonly string[]): Decoded<KnockPort[], string> {
  if (items.length === 0) return fail('empty sequence');
  if (items.length > MAX_SEQUENCE) return fail(`more than ${MAX_SEQUENCE} knocks`);
  const out: KnockPort[] = [];
  for (const item of items) {
    const p = parseKnockPort(item);
    if (!p) return fail(`not PORT[:tcp|udp] with PORT 1-65535: ${JSON.stringify(item.slice(0, 20))}`);
    out.push(p);
  }
  return ok(out);
}

export function splitSequenceLine(line: string): string[] {
  return line.split(/[,\s]+/).filter((s) => s !== '');
}

export interface OneTimeLine {
  /** 0-based line index in the file. */
  readonly line: number;
  readonly sequence: readonly KnockPort[];
}

/** The unused sequences of a one-time file, in order; lines starting with `#` (after
 *  optional spaces) are used or comments, blank lines are skipped. A malformed unused
 *  line is an error (the operator must see it, not have it skipped silently). */
export function parseOneTimeFile(text: string): Decoded<OneTimeLine[], string> {
  const out: OneTimeLine[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const body = (lines[i] ?? '').trim();
    if (body === '' || body.startsWith('#')) continue;
    const seq = parseSequence(splitSequenceLine(body));
    if (!seq.ok) return fail(`line ${i + 1}: ${seq.reason}`);
    out.push({ line: i, sequence: seq.value });
  }
  return ok(out);
}

/** The file with line `index` marked used, knockd-style: its first character becomes `#`
 *  when it is a space (the man page asks for a leading space), else `#` goes in front. */
export function markLineUsed(text: string, index: number): string {
  const lines = text.split('\n');
  const l = lines[index];
  if (l === undefined) return text;
  lines[index] = l.startsWith(' ') ? `#${l.slice(1)}` : `#${l}`;
  return lines.join('\n');
}

// TCP flag bits (RFC 9293 §3.1), as in Frame.tcpFlags.
const TCP_FLAG_BITS: Readonly<Record<string, number>> = { fin: 0x01, syn: 0x02, rst: 0x04, psh: 0x08, ack: 0x10, urg: 0x20 };
export const TCP_SYN = 0x02;
export const TCP_ACK = 0x10;

export interface TcpFlagFilter {
  /** Bits that must be set. */
  readonly set: number;
  /** Bits that must be clear. */
  readonly clear: number;
}

export function parseTcpFlags(items: readonly string[]): Decoded<TcpFlagFilter, string> {
  let set = 0;
  let clear = 0;
  for (const item of items) {
    const neg = item.startsWith('!');
    const bit = TCP_FLAG_BITS[(neg ? item.slice(1) : item).toLowerCase()];
    if (bit === undefined) return fail(`unknown TCP flag ${JSON.stringify(item.slice(0, 10))}`);
    if (neg) clear |= bit;
    else set |= bit;
  }
  if ((set & clear) !== 0) return fail('a flag is both required and forbidden');
  return ok({ set, clear });
}

export const flagsMatch = (f: TcpFlagFilter | undefined, flags: number): boolean =>
  f === undefined || ((flags & f.set) === f.set && (flags & f.clear) === 0);
