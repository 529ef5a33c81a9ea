#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Runs every test of the project: formatting, lints, unit and integration tests against real
# targets (tgtd, istgt, and LIO in a qemu guest), the interoperability table, the executor under
# miri, the kernel-module build check, and the firmware test in qemu (BIOS and UEFI).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

"$top/tests/setup.sh"

steps=0 step_start=$SECONDS
# step DESCRIPTION: announces the next step and how long the previous one took.
step() {
	[ "$steps" -eq 0 ] || printf '<== %d s\n' $((SECONDS - step_start))
	steps=$((steps + 1)) step_start=$SECONDS
	printf '\n==> %s\n' "$*"
}

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo doc --workspace (intra-doc links resolve)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

step "cargo test --workspace (the LIO share and the interop matrix are the next steps)"
cargo test --workspace -- --skip lio --skip interop

step "LIO, the Linux kernel target in a qemu guest: integration, fault and harness tests"
cargo test -p isboot-tests lio -- --skip interop

step "interoperability matrix (tgtd, istgt, LIO x auth x digests); README.md's table must match"
tests/interop.sh --check

step "executor under miri"
CARGO_TARGET_DIR="$top/target/miri" MIRIFLAGS="-Zmiri-strict-provenance" \
  cargo +nightly miri test -p isboot-executor

step "kernel module: fmt, clippy (kernel target), glue logic host tests"
tests/kmod-lint.sh

step "kernel module: isboot.ko for FreeBSD 14 and 15 built without network, linked and gated"
# kmod-offline runs tests/kmod-check.sh (same outputs, target/kmod/freebsd{14,15}/isboot.ko, and
# the same gates) inside a network namespace with an empty CARGO_HOME.
tests/kmod-offline.sh

step "kernel module in a Linux process (tests/kmodsim): FreeBSD 14 and 15, side by side"
# The two releases share nothing (own harness binaries, work directories, targets on free
# ports); their scenarios mostly wait on timers and sockets, so together they take about the
# time of one. Each one's output is printed whole once both have ended.
kmodsim_log="$top/target/kmodsim"
mkdir -p "$kmodsim_log"
tests/kmodsim/run.sh 14 > "$kmodsim_log/run-14.log" 2>&1 & kmodsim14=$!
tests/kmodsim/run.sh 15 > "$kmodsim_log/run-15.log" 2>&1 & kmodsim15=$!
rc14=0 rc15=0
wait "$kmodsim14" || rc14=$?
wait "$kmodsim15" || rc15=$?
cat "$kmodsim_log/run-14.log" "$kmodsim_log/run-15.log"
if [ "$rc14" != 0 ] || [ "$rc15" != 0 ]; then
	echo "kmodsim: FreeBSD 14 exit $rc14, FreeBSD 15 exit $rc15" >&2
	exit 1
fi

step "fuzz smoke run: every cargo-fuzz target for 20 s"
CARGO_TARGET_DIR="$top/target/fuzz" tests/fuzz.sh 20

step "rc.d script, man pages, bhyve script syntax"
tests/rc/test-isbootifname.sh
tests/man/check-isboot4.sh
sh -n tests/bhyve/run.sh

step "isbootctl boot preflight against tgtd and istgt"
tests/isbootctl/boot-targets.sh

step "real firmware: iPXE in qemu (BIOS and UEFI) writes the iBFT, isbootctl reads and boots it"
tests/qemu/run.sh

step "the demo (README's first command)"
tests/demo.sh

# Every step above stops the run on failure (set -e), so reaching this line means all passed.
printf '<== %d s\n\nrun-all: %d passed, 0 failed (%d s)\n' $((SECONDS - step_start)) "$steps" "$SECONDS"
