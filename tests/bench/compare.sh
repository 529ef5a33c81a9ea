#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Benchmark: isboot's initiator against libiscsi on the same targets (started on 127.0.0.1 by the
# harness): tgtd with a file, tgtd with its null backing store and istgt, each with target PDUs
# (MaxRecvDataSegmentLength, with tgtd also MaxXmitDataSegmentLength) of 8 KiB and 256 KiB;
# 1 MiB sequential write and read at queue depth 1 and 8, 4 KiB random read at 1 and 32. Prints
# a Markdown table: MB/s or IOPS and the ratio isboot / libiscsi, CPU µs per I/O of each
# initiator and of the target serving it (with the target's busy share: near 100 % it is the
# target that bounds the rate), and from one counted run per initiator (tests/bench/count.c
# preloaded) allocations per I/O and bytes copied and zero-filled per payload byte.
#
#   tests/bench/compare.sh [SECONDS_PER_RUN] [tgtd|tgtd-null|istgt ...]
#
# Needs root (tgtd), tgt, istgt, libiscsi-dev and a C compiler. Not a test: figures swing with
# the load of the machine, so both initiators run alternately in one invocation; see
# tests/README.md for ISBOOT_BENCH_REPS (medians of repeated runs), ISBOOT_BENCH_ONLY,
# ISBOOT_BENCH_PDU, ISBOOT_BENCH_LOG and ISBOOT_BENCH_NOCOUNT.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-5}
shift || true
out=${CARGO_TARGET_DIR:-$top/target}
mkdir -p "$out/bench"
peer="$out/bench/libiscsi-peer"
cc -O2 -Wall -Wextra -o "$peer" "$top/tests/bench/libiscsi-peer.c" -liscsi
# The counting library must not count its own fallback copies as calls to itself.
cc -O2 -Wall -Wextra -shared -fPIC -fno-builtin -fno-tree-loop-distribute-patterns \
    -o "$out/bench/libisboot-count.so" "$top/tests/bench/count.c" -ldl
if [ -z "${ISBOOT_BENCH_NOCOUNT:-}" ]; then
    export ISBOOT_BENCH_COUNT_LIB="$out/bench/libisboot-count.so"
fi
cargo build --release --quiet --manifest-path "$top/Cargo.toml" -p isboot-tests --bin isboot-bench
"$out/release/isboot-bench" compare "$peer" "$secs" "$@"
