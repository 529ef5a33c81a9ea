#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Runs every cargo-fuzz target of the protocol core (driver/core/fuzz: ibft, pdu, text, chap,
# rootpath) for a number of seconds each, one after another:
#   tests/fuzz.sh [SECONDS] [TARGET...]   (default 60 s, all targets)
# Needs nightly Rust and cargo-fuzz (`cargo install cargo-fuzz`). Corpora persist in
# driver/core/fuzz/corpus/<target> (git-ignored); findings land in driver/core/fuzz/artifacts.
# Exits non-zero if any target found a crash.
set -euo pipefail

secs=${1:-60}
shift || true
root=$(cd "$(dirname "$0")/.." && pwd)
fuzz="$root/driver/core/fuzz"
cd "$fuzz"

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: needs nightly Rust and cargo-fuzz (rustup toolchain install nightly; cargo install cargo-fuzz)" >&2
    exit 2
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$fuzz/target}"

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

seed() {
    local target=$1 dir="corpus/$1"
    mkdir -p "$dir"
    if [ "$target" = ibft ]; then
        # Mode byte 0: the table as is; 1: the harness rewrites header and checksum.
        for f in "$root"/tests/data/ibft/*.bin; do
            b=$(basename "$f" .bin)
            { printf '\000'; cat "$f"; } >"$dir/seed-$b-raw"
            { printf '\001'; cat "$f"; } >"$dir/seed-$b-fix"
        done
    fi
    if [ -d "seeds/$target" ]; then
        cp -f "seeds/$target"/* "$dir/"
    fi
}

failed=()
for t in "${targets[@]}"; do
    seed "$t"
    log="$CARGO_TARGET_DIR/fuzz-$t.log"
    mkdir -p "$CARGO_TARGET_DIR"
    echo "== $t: ${secs}s"
    if cargo +nightly fuzz run "$t" "corpus/$t" -- \
        -max_total_time="$secs" -max_len=4096 -print_final_stats=1 >"$log" 2>&1; then
        status=ok
    else
        status=FAILED
        failed+=("$t")
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    echo "   $status: ${execs:-?} executions, corpus $(ls "corpus/$t" | wc -l) inputs (log: $log)"
    if [ "$status" = FAILED ]; then
        grep -E '^(==[0-9]+==ERROR|thread .* panicked|SUMMARY|artifact_prefix|Test unit written)' "$log" | head -10 || true
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz.sh: findings in: ${failed[*]} (artifacts in $fuzz/artifacts)" >&2
    exit 1
fi
