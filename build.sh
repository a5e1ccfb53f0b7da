#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# postern build driver. Every subcommand bootstraps what it needs, is idempotent,
# and runs on the pinned Node (DESIGN.md fact 6), never on the machine's own Node.
#
#   ./build.sh deps          install Debian packages, the pinned Node and npm deps
#   ./build.sh bundle        type-check and bundle dist/postern.js (+ native addons)
#   ./build.sh test          the whole test suite (root runs the network-namespace tests)
#   ./build.sh demo          the self-contained demo in network namespaces (root; ~30 s, test/lab/demo.ts)
#   ./build.sh bench [NAME]  benchmarks: core, open, grants, all (open/grants take --backend all|nft|iptables)
#   ./build.sh fuzz [FILE..] the long fuzz run of test/fuzz (FUZZ_RUNS, default 100000; npm run fuzz)
#   ./build.sh node ARGS     run the pinned Node (e.g. ./build.sh node dist/postern.js --help)
#   ./build.sh BOARD [--no-test]  build out/BOARD/ for a board in board/ (docs/boards.md)
#   ./build.sh emulated-prep     out/rpi-arm64 + cached arm64 rootfs for test/board/emulated.test.ts
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$ROOT"
TOOLCHAIN="$ROOT/.toolchain"
NODE_VERSION=$(sed -n 's/.*"pinnedNode": *"\([0-9.]*\)".*/\1/p' package.json)
NODE_BIN="$TOOLCHAIN/node_modules/node/bin"

log() { printf '\033[1m[build]\033[0m %s\n' "$*" >&2; }
die() { printf '[build] error: %s\n' "$*" >&2; exit 1; }

# Debian packages, keyed by a binary each one provides. Installed only when missing,
# so the command is cheap on a machine that already has them.
APT_NEEDS=(
  "npm:npm" "ip:iproute2" "iptables:iptables" "ip6tables:iptables" "nft:nftables"
  "make:make" "g++:g++" "python3:python3" "fwknop:fwknop-client" "fwknopd:fwknop-server"
  "knock:knockd" "mosquitto:mosquitto" "ssh:openssh-client" "openssl:openssl" "fail2ban-regex:fail2ban"
)

apt_deps() {
  local missing=()
  for pair in "${APT_NEEDS[@]}"; do
    local bin=${pair%%:*} pkg=${pair#*:}
    if ! command -v "$bin" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$bin" ]; then missing+=("$pkg"); fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    log "missing Debian packages (need root to install): ${missing[*]}"
    return 0
  fi
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # knockd and fwknop-server ship services; policy-rc.d keeps them from starting.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
}

# The pinned Node comes from the npm registry (package `node`, which installs the
# official node-linux-<arch> build with its headers).
node_toolchain() {
  if [ -x "$NODE_BIN/node" ] && [ "$("$NODE_BIN/node" --version)" = "v$NODE_VERSION" ]; then return 0; fi
  log "installing pinned Node $NODE_VERSION into .toolchain/"
  rm -rf "$TOOLCHAIN"; mkdir -p "$TOOLCHAIN"
  cat >"$TOOLCHAIN/package.json" <<EOF
{ "name": "postern-toolchain", "private": true,
  "dependencies": { "node": "$NODE_VERSION" }, "allowScripts": { "node": true } }
EOF
  (cd "$TOOLCHAIN" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
  [ -x "$NODE_BIN/node" ] || die "pinned Node did not install"
  # node-gyp wants <devdir>/<version>/include/node and an installVersion marker.
  local inc
  inc=$(find "$TOOLCHAIN/node_modules/node/node_modules" -maxdepth 2 -type d -name include | head -1)
  mkdir -p "$TOOLCHAIN/devdir/$NODE_VERSION"
  cp -r "$inc" "$TOOLCHAIN/devdir/$NODE_VERSION/"
  echo 11 >"$TOOLCHAIN/devdir/$NODE_VERSION/installVersion"
}

use_pinned_node() {
  export PATH="$NODE_BIN:$PATH"
  export npm_config_devdir="$TOOLCHAIN/devdir"
}

npm_deps() {
  local stamp="node_modules/.postern-stamp" want
  want="$NODE_VERSION $(sha256sum package-lock.json | cut -c1-16)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  log "installing npm dependencies (native addons built for Node $NODE_VERSION)"
  # --nodedir= clears this machine's npmrc nodedir=/usr (Node 20 headers).
  npm ci --nodedir= --no-audit --no-fund --loglevel=error
  node -e "require('raw-socket'); new (require('better-sqlite3'))(':memory:').close()" \
    || die "native addons do not load on the pinned Node"
  echo "$want" >"$stamp"
}

deps() { apt_deps; node_toolchain; use_pinned_node; npm_deps; }

typecheck() { log "type-checking"; node node_modules/typescript/bin/tsc --noEmit -p tsconfig.json; }

# Native addons are never inlined (DESIGN.md fact 6): they ship beside the bundle in
# dist/node_modules/, which is where Node resolves the bundle's external requires.
NATIVE_EXTERNALS=(raw-socket better-sqlite3)
NATIVE_FILES=(
  raw-socket/package.json raw-socket/index.js raw-socket/build/Release/raw.node
  better-sqlite3/package.json better-sqlite3/lib
  "better-sqlite3/prebuilds/linux-$(case $(uname -m) in aarch64) echo arm64 ;; *) echo x64 ;; esac).node"
)

# Size (issue 8: postern.js <= 600 KB minified). mqtt.js's readable-stream is a copy of
# node:stream (v4 mirrors Node 18+ streams); its SOCKS proxy and browser worker timers are not
# used by postern (src/bundle/*-stub.ts); qrcode: only its encoder (we render to the
# terminal ourselves), not its PNG/SVG renderers.
BUNDLE_ALIASES=(
  "--alias:readable-stream=stream"
  "--alias:socks=./src/bundle/socks-stub.ts"
  "--alias:worker-timers=./src/bundle/worker-timers-stub.ts"
  "--alias:qrcode=qrcode/lib/core/qrcode.js"
)

bundle() {
  # POSTERN_NO_TYPECHECK=1 skips tsc for a quick rebuild while iterating; test and CI never set it.
  [ "${POSTERN_NO_TYPECHECK:-}" = 1 ] || typecheck
  log "bundling dist/postern.js"
  rm -rf dist; mkdir -p dist/node_modules
  local externals=()
  for m in "${NATIVE_EXTERNALS[@]}"; do externals+=("--external:$m"); done
  # ESM output; the banner gives bundled CommonJS dependencies a real require().
  node_modules/.bin/esbuild src/main.ts --bundle --platform=node --target=node22 \
    --format=esm --minify --legal-comments=none --log-level=warning "${externals[@]}" \
    "${BUNDLE_ALIASES[@]}" \
    --define:POSTERN_VERSION="\"$(sed -n 's/^  "version": "\([^"]*\)".*/\1/p' package.json)\"" \
    --banner:js='#!/usr/bin/env node
import{createRequire as __pcr}from"node:module";const require=__pcr(import.meta.url);' \
    --outfile=dist/postern.js
  echo '{"type":"module"}' >dist/package.json
  chmod +x dist/postern.js
  for f in "${NATIVE_FILES[@]}"; do
    [ -e "node_modules/$f" ] || continue
    mkdir -p "dist/node_modules/$(dirname "$f")"
    cp -r "node_modules/$f" "dist/node_modules/$f"
  done
  log "dist/postern.js: $(stat -c %s dist/postern.js) bytes; with addons: $(du -sh dist | cut -f1)"
}

# The suite runs each fuzzer briefly; this runs them long (test/fuzz/runs.ts reads FUZZ_RUNS).
run_fuzz() {
  export FUZZ_RUNS="${FUZZ_RUNS:-100000}"
  log "fuzzing with FUZZ_RUNS=$FUZZ_RUNS on $(node --version)"
  if [ $# -eq 0 ]; then set -- test/fuzz/*.test.ts; fi
  node --test --test-concurrency=1 --test-timeout=0 --test-reporter=spec "$@"
}

# The end-to-end tests run the daemon as a non-root user (test/e2e/harness.ts DAEMON_USER):
# it must be able to reach the pinned Node and dist/ inside this checkout. A checkout under
# a 0700 directory (mktemp -d, /root) is unreachable for it, so, as root, grant traversal
# only (o+x, never read) on each directory above the checkout that lacks it.
daemon_user_can_reach_checkout() {
  [ "$(id -u)" -eq 0 ] || return 0
  local d=$ROOT
  while [ "$d" != / ]; do
    if [ $(( $(stat -c '%#a' "$d") & 1 )) -eq 0 ]; then
      log "granting traversal (o+x) on $d so the tests' non-root daemon can reach the checkout"
      chmod o+x "$d"
    fi
    d=$(dirname "$d")
  done
}

run_tests() {
  bundle
  daemon_user_can_reach_checkout
  log "running tests on $(node --version)"
  node --test --test-concurrency=1 --test-reporter=spec "test/**/*.test.ts"
}

# shellcheck source=board/build.sh
. "$ROOT/board/build.sh"

cmd=${1:-help}; shift || true
case "$cmd" in
  deps) deps ;;
  bundle) deps; bundle ;;
  test) deps; run_tests ;;
  demo) deps; bundle; node test/lab/demo.ts "$@" ;;
  bench) deps; bundle; node test/bench/run.ts "$@" ;;
  fuzz) deps; run_fuzz "$@" ;;
  node) deps >&2; node "$@" ;;
  emulated-prep) deps >&2; emulated_prep ;;
  help|-h|--help) sed -n '4,15p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) if [ -f "board/$cmd/board.json" ]; then deps; board_build "$cmd" "$@"; exit 0; fi
     sed -n '4,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
