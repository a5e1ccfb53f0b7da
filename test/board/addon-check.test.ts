// SPDX-License-Identifier: MIT
// build.sh never ships an addon for the wrong arch, libc or glibc version (issue 8):
// board/build.sh's check_addon, run on the real better-sqlite3 prebuilds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PREBUILDS = 'node_modules/better-sqlite3/prebuilds';

function check(file: string, board: Record<string, string>): { code: number; out: string } {
  const script = `log() { echo "$*"; }; die() { echo "error: $*"; exit 1; }; . board/build.sh; check_addon "$1"`;
  const r = spawnSync('bash', ['-c', script, 'check', `${PREBUILDS}/${file}`], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, BOARD_NAME: 'test', ...board } });
  assert.equal(r.error, undefined, 'readelf missing (binutils)');
  return { code: r.status ?? -1, out: r.stdout + r.stderr };
}

const RPI = { BOARD_ARCH: 'aarch64', BOARD_LIBC: 'glibc', BOARD_MIN_GLIBC: '2.36' };
const OPENWRT = { BOARD_ARCH: 'aarch64', BOARD_LIBC: 'musl', BOARD_MIN_GLIBC: '' };

test('the right prebuild passes: glibc arm64 for the Pi, musl arm64 for OpenWrt', () => {
  assert.deepEqual([check('linux-arm64.node', RPI).code, check('linuxmusl-arm64.node', OPENWRT).code], [0, 0]);
});

test('a wrong arch, libc or glibc version is refused', () => {
  const cases: [string, Record<string, string>, RegExp][] = [
    ['linux-x64.node', RPI, /built for Advanced Micro Devices X86-64, board test is aarch64/],
    ['linuxmusl-arm64.node', RPI, /not linked against the board's libc \(glibc\)/],
    ['linux-arm64.node', OPENWRT, /not linked against the board's libc \(musl\)/],
    ['linux-arm64.node', { ...RPI, BOARD_MIN_GLIBC: '2.31' }, /needs glibc 2\.34, board test guarantees 2\.31/],
  ];
  for (const [file, board, re] of cases) {
    const r = check(file, board);
    assert.equal(r.code, 1, `${file} on ${JSON.stringify(board)}: ${r.out}`);
    assert.match(r.out, re);
  }
});
