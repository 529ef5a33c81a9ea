#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# Proves that isboot.ko builds without network access, as ports and poudriere build it.
#
#   with network     tests/kmod-headers.sh (FreeBSD headers and zig, cached) and
#                    `driver/kmod/build-rust.sh vendor` (what `make vendor` runs)
#   without network  inside `unshare --net` (a namespace whose only interface is a down
#                    loopback), with an empty CARGO_HOME: tests/kmod-check.sh builds both
#                    releases from a clean cargo directory and gates them. Its output paths
#                    are the usual ones, target/kmod/freebsd{14,15}/isboot.ko.
#
# Fails unless the namespace really has no network (a connection to a public address must fail)
# and cargo left CARGO_HOME without a registry. The toolchain (rustup's, or the system's) is the
# compiler, not a download, and stays as it is. Needs root for unshare.
# ISBOOT_KMOD_VERSIONS limits the releases, as for kmod-check.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out="${ISBOOT_KMOD_DIR:-$top/target/kmod}"
vendor="$out/vendor"
read -r -a versions <<<"${ISBOOT_KMOD_VERSIONS:-14 15}"

command -v unshare >/dev/null || { echo "kmod-offline: unshare missing (util-linux)" >&2; exit 1; }
if ! unshare --net true 2>/dev/null; then
  echo "kmod-offline: unshare --net failed (needs root)" >&2
  exit 1
fi

# 1. With network: everything the build will need.
"$top/tests/kmod-headers.sh"
rm -rf "$vendor"
"$top/driver/kmod/build-rust.sh" vendor "$vendor"

# 2. Without network.
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
rm -rf "$out/sysroot"
for v in "${versions[@]}"; do rm -rf "$out/freebsd$v/cargo" "$out/freebsd$v/isboot.ko"; done

# The namespace must have no interface but loopback, and no route out.
probe='import socket, sys
names = [n for _, n in socket.if_nameindex()]
if names != ["lo"]:
    sys.exit("kmod-offline: the namespace has interfaces %s: not an offline build" % names)
try:
    socket.create_connection(("1.1.1.1", 443), timeout=3)
except OSError as e:
    print("kmod-offline: namespace with loopback only, 1.1.1.1:443 unreachable (%s)" % e.strerror)
    sys.exit(0)
sys.exit("kmod-offline: the namespace reached 1.1.1.1:443: not an offline build")'

t0=$SECONDS
unshare --net -- env CARGO_HOME="$home" ISBOOT_VENDOR_DIR="$vendor" \
  ISBOOT_KMOD_VERSIONS="${versions[*]}" bash -c '
    set -euo pipefail
    python3 -c "$1"
    "$2/tests/kmod-check.sh"' _ "$probe" "$top"
elapsed=$((SECONDS - t0))

if [ -e "$home/registry" ] || [ -e "$home/git" ]; then
  echo "kmod-offline: cargo populated CARGO_HOME ($(ls "$home")): something was fetched" >&2
  exit 1
fi
for v in "${versions[@]}"; do
  [ -s "$out/freebsd$v/isboot.ko" ] || { echo "kmod-offline: no isboot.ko for $v" >&2; exit 1; }
done
echo "kmod-offline: ok (${versions[*]} built and gated without network in ${elapsed} s)"
