#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# rustfmt, clippy (-D warnings) and the host tests of the kernel module's crates, which the root
# workspace does not build: isboot-kmod for the kernel target (against FreeBSD 14 headers),
# isboot-kmod-logic and isboot-bindings' build script on the host.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=tests/kmod-env.sh
source "$top/tests/kmod-env.sh"
"$top/tests/kmod-headers.sh"
kmod_env 14

(cd "$top/driver/kmod" && cargo fmt --check -p isboot-kmod -p isboot-kmod-logic)
(cd "$top/bindings" && cargo fmt --check)
kmod_cargo clippy --quiet -- -D warnings

# Host builds: their own target directory, no kernel target or private sysroot.
export CARGO_TARGET_DIR="$KMOD_DIR/cargo-host"
(cd "$top/bindings" && cargo clippy --quiet --all-targets -- -D warnings)
(cd "$top/driver/kmod/logic" && cargo clippy --quiet --all-targets -- -D warnings)
(cd "$top/driver/kmod/logic" && cargo test --quiet)
echo "kmod-lint: ok (fmt, clippy for the kernel target and the host, logic tests)"
