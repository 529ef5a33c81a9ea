#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Benchmark: isboot's initiator against libiscsi on the same tgtd and istgt targets (started on
# 127.0.0.1 by the harness): 1 MiB sequential write and read at queue depth 1 and 8, 4 KiB random
# read at 1 and 32. Prints a Markdown table of MB/s or IOPS and the ratio isboot / libiscsi.
#
#   tests/bench/compare.sh [SECONDS_PER_RUN] [tgtd|istgt ...]
#
# Needs root (tgtd), tgt, istgt, libiscsi-dev and a C compiler. Not a test: figures swing with
# the load of the machine, so both initiators run alternately in one invocation; see
# tests/README.md for ISBOOT_BENCH_REPS (medians of repeated runs), ISBOOT_BENCH_ONLY and
# ISBOOT_BENCH_AB.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-5}
shift || true
out=${CARGO_TARGET_DIR:-$top/target}
mkdir -p "$out/bench"
peer="$out/bench/libiscsi-peer"
cc -O2 -Wall -Wextra -o "$peer" "$top/tests/bench/libiscsi-peer.c" -liscsi
cargo build --release --quiet --manifest-path "$top/Cargo.toml" -p isboot-tests --bin isboot-bench
"$out/release/isboot-bench" compare "$peer" "$secs" "$@"
