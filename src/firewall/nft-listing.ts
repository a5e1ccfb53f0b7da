// SPDX-License-Identifier: MIT
// Parser for `nft -j list table inet postern` (nft.ts reconcile; STYLE.md principles 1, 9).
// Pure and never throws: the output of a binary is not ours to trust; a failure reason
// means reconcile must not act on it. Shapes below were captured from nft 1.0.6 (Debian 12,
// Linux 6.x; fixtures in test/unit/firewall/nft-listing.test.ts):
//   set element   {"concat": [...]} when it has neither timeout nor comment, else
//                 {"elem": {"val": {"concat": [...]}, "timeout": s, "expires": s, "comment": "..."}}
//   map element   [<set element>, {"concat": [address, port]}]
//   source field  "addr" | {"prefix": {"addr": "...", "len": n}} | {"range": ["lo", "hi"]}
// `timeout` and `expires` are whole seconds (truncated).

import { fail, ok } from '../wire/result.ts';
import type { Decoded } from '../wire/result.ts';
import { PROTO_RE, addressToBig, bigToAddress, networkRange, setName } from './nft-elements.ts';
import type { Element, SetId } from './nft-elements.ts';
import type { Family, ForwardTarget } from './types.ts';

/** One element of one of our sets, as listed. */
export interface ListedElement extends Element {
  /** From a `postern:<id>` comment; null for any other comment or none. */
  readonly grantId: string | null;
  /** Remaining lifetime (the kernel's `expires`, truncated to seconds); null: no timeout. */
  readonly expiresInMs: number | null;
}

export type ListingFailure = 'bad_json' | 'bad_shape' | 'no_set';

export interface TableListing {
  readonly elements: readonly ListedElement[];
  /** Elements whose key postern cannot read (left alone, reported). */
  readonly foreign: number;
}

const COMMENT_RE = /^postern:([a-z0-9]{1,16})$/;
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function readProto(p: unknown): string | null {
  if (typeof p === 'number') return Number.isInteger(p) && p >= 0 && p <= 255 ? ({ 6: 'tcp', 17: 'udp' }[p] ?? String(p)) : null;
  return typeof p === 'string' && PROTO_RE.test(p) ? p : null;
}

function readPort(n: unknown): number | null {
  const v = typeof n === 'string' && /^[0-9]{1,5}$/.test(n) ? Number(n) : n;
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 65535 ? v : null;
}

function readSeconds(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.round(v * 1000) : null;
}

/** Canonical text of a listed address of `family`, or null. */
function readAddress(a: unknown, family: Family): string | null {
  const n = readBig(a, family);
  return n === null ? null : bigToAddress(n, family);
}

function readBig(a: unknown, family: Family): bigint | null {
  if (typeof a !== 'string') return null;
  try {
    return addressToBig(a, family);
  } catch {
    return null;
  }
}

function readSource(s: unknown, family: Family): { lo: bigint; hi: bigint } | null {
  if (typeof s === 'string') {
    const n = readBig(s, family);
    return n === null ? null : { lo: n, hi: n };
  }
  if (isRecord(s) && isRecord(s.prefix)) {
    const { addr, len } = s.prefix;
    if (typeof addr !== 'string' || typeof len !== 'number' || !Number.isInteger(len) || len < 0 || len > (family === 4 ? 32 : 128)) return null;
    try {
      return networkRange(addr, family, len);
    } catch {
      return null;
    }
  }
  if (isRecord(s) && Array.isArray(s.range) && s.range.length === 2) {
    const lo = readBig(s.range[0], family);
    const hi = readBig(s.range[1], family);
    return lo === null || hi === null || lo > hi ? null : { lo, hi };
  }
  return null;
}

function readData(raw: unknown, family: Family): ForwardTarget | null {
  const parts = isRecord(raw) && Array.isArray(raw.concat) ? raw.concat : undefined;
  if (parts?.length !== 2) return null;
  const address = readAddress(parts[0], family);
  const port = readPort(parts[1]);
  return address === null || port === null ? null : { address, port };
}

/** The key fields, in order: source, [target,] proto, port. */
function readKey(parts: readonly unknown[], set: SetId): Omit<Element, 'data'> | null {
  const fwd = set.kind === 'fwd';
  if (parts.length !== (fwd ? 4 : 3)) return null;
  const src = readSource(parts[0], set.family);
  const target = fwd ? readAddress(parts[1], set.family) : null;
  const proto = readProto(parts[fwd ? 2 : 1]);
  const port = readPort(parts[fwd ? 3 : 2]);
  if (src === null || (fwd && target === null) || proto === null || port === null) return null;
  if (!set.net && src.lo !== src.hi) return null;
  return { set, lo: src.lo, hi: src.hi, target, proto, port };
}

function readElement(raw: unknown, set: SetId): ListedElement | null {
  const isMap = set.kind === 'dnat';
  if (isMap !== Array.isArray(raw)) return null;
  const [keyPart, dataPart] = isMap ? (raw as unknown[]) : [raw, undefined];
  const data = isMap ? readData(dataPart, set.family) : null;
  if (isMap && data === null) return null;
  const wrapped = isRecord(keyPart) && isRecord(keyPart.elem) ? keyPart.elem : undefined;
  const val = wrapped === undefined ? keyPart : wrapped.val;
  const parts = isRecord(val) && Array.isArray(val.concat) ? val.concat : undefined;
  const key = parts === undefined ? null : readKey(parts, set);
  if (key === null) return null;
  const comment = typeof wrapped?.comment === 'string' ? wrapped.comment : '';
  const expiresInMs = readSeconds(wrapped?.expires) ?? readSeconds(wrapped?.timeout);
  return { ...key, data, grantId: COMMENT_RE.exec(comment)?.[1] ?? null, expiresInMs };
}

function findSet(items: readonly unknown[], set: SetId): Record<string, unknown> | undefined {
  const kind = set.kind === 'dnat' ? 'map' : 'set';
  for (const item of items) {
    const s = isRecord(item) ? item[kind] : undefined;
    if (isRecord(s) && s.family === 'inet' && s.table === 'postern' && s.name === setName(set)) return s;
  }
  return undefined;
}

/** The elements of `sets` in a listing of table inet postern (or of one set or map). */
export function parseListing(json: string, sets: readonly SetId[]): Decoded<TableListing, ListingFailure> {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch {
    return fail('bad_json');
  }
  if (!isRecord(doc) || !Array.isArray(doc.nftables)) return fail('bad_shape');
  const elements: ListedElement[] = [];
  let foreign = 0;
  for (const id of sets) {
    const s = findSet(doc.nftables, id);
    if (s === undefined) return fail('no_set');
    const raw = s.elem ?? [];
    if (!Array.isArray(raw)) return fail('bad_shape');
    for (const r of raw) {
      const e = readElement(r, id);
      if (e === null) foreign++;
      else elements.push(e);
    }
  }
  return ok({ elements, foreign });
}
