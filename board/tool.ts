// SPDX-License-Identifier: MIT
// Build-time helper for build.sh (runs on the pinned Node, never shipped):
//   node board/tool.ts validate            every board/*/board.json, every error listed
//   node board/tool.ts env NAME            the board's facts as shell assignments
//   node board/tool.ts default-config NAME the config the board's image ships
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { validateBoard, NODE_PACKAGE, type Board } from '../src/board/schema.ts';
import { defaultConfig } from '../src/board/default-config.ts';

const DIR = fileURLToPath(new URL('.', import.meta.url));

export function boardNames(): string[] {
  return readdirSync(DIR, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort();
}

function load(name: string): Board {
  const r = validateBoard(JSON.parse(readFileSync(join(DIR, name, 'board.json'), 'utf8')), name);
  if (!r.ok) {
    process.stderr.write(`board/${name}/board.json: ${r.errors.length} error(s)\n${r.errors.map((e) => `  ${e}\n`).join('')}`);
    process.exit(1);
  }
  return r.board;
}

/** Single-quoted for sh: every value is data, whatever it holds. */
const q = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;

function env(b: Board): string {
  const vars: Record<string, string> = {
    BOARD_ARCH: b.arch, BOARD_LIBC: b.libc, BOARD_MIN_GLIBC: b.min_glibc ?? '',
    BOARD_NODE_MAJOR: String(b.node.major), BOARD_NODE_SOURCE: b.node.source, BOARD_NODE_PATH: b.node.path,
    BOARD_NODE_FLAGS: b.node.flags.join(' '), BOARD_NODE_PACKAGE: NODE_PACKAGE[b.arch] ?? '',
    BOARD_SERVICE: b.service_manager, BOARD_PACKAGE: b.package, BOARD_DATABASE: b.database,
  };
  return Object.entries(vars).map(([k, v]) => `${k}=${q(v)}`).join('\n');
}

const [cmd, name] = process.argv.slice(2);
if (cmd === 'validate') {
  for (const n of boardNames()) load(n);
  process.stdout.write(`${boardNames().length} boards valid: ${boardNames().join(' ')}\n`);
} else if (cmd === 'env' && name) {
  process.stdout.write(env(load(name)) + '\n');
} else if (cmd === 'default-config' && name) {
  process.stdout.write(JSON.stringify(defaultConfig(load(name)), null, 2) + '\n');
} else {
  process.stderr.write('usage: node board/tool.ts validate | env NAME | default-config NAME\n');
  process.exit(2);
}
