#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Runs every test of the project: formatting, lints, unit and integration tests against real
# targets, the executor under miri, the kernel-module build check, and the firmware test in qemu.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

"$top/tests/setup.sh"

steps=0
step() { steps=$((steps + 1)); printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo doc --workspace (intra-doc links resolve)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

step "cargo test --workspace"
cargo test --workspace

step "executor under miri"
CARGO_TARGET_DIR="$top/target/miri" MIRIFLAGS="-Zmiri-strict-provenance" \
  cargo +nightly miri test -p isboot-executor

step "kernel module: fmt, clippy (kernel target), glue logic host tests"
tests/kmod-lint.sh

step "kernel module: isboot.ko for FreeBSD 14 and 15, linked and gated (kernel-clean object)"
tests/kmod-check.sh

step "kernel module in a Linux process (tests/kmodsim): FreeBSD 14 and 15"
tests/kmodsim/run.sh 14
tests/kmodsim/run.sh 15

step "fuzz smoke run: every cargo-fuzz target for 20 s"
CARGO_TARGET_DIR="$top/target/fuzz" tests/fuzz.sh 20

step "rc.d script, man pages, bhyve script syntax"
tests/rc/test-isbootifname.sh
tests/man/check-isboot4.sh
sh -n tests/bhyve/run.sh

step "isbootctl boot preflight against tgtd and istgt"
tests/isbootctl/boot-targets.sh

step "real firmware: iPXE in qemu writes the iBFT, isbootctl reads it and boots from it"
tests/qemu/run.sh

step "the demo (README's first command)"
tests/demo.sh

# Every step above stops the run on failure (set -e), so reaching this line means all passed.
printf '\nrun-all: %d passed, 0 failed\n' "$steps"
