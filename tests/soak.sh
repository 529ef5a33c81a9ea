#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# The soak, not part of CI: tests/soak.sh MINUTES [tgtd] [istgt] [lio]   (default: all three)
#
# For MINUTES, against each target at once (tgtd, istgt, and LIO in a qemu guest): random writes
# and verified reads with eight commands in flight, while the target is killed and restarted
# (every 30 s; LIO every 90 s) and the connection is reset through a relay (every 3 s; LIO 6 s).
# Every command must complete with the right bytes; at the end everything is read back and the
# targets' backing files are compared too (tests/soak/main.rs). The last line is
#   soak: W MiB written, V MiB verified, R resets, K restarts, E errors, C corrupt, peak RSS M MiB
# and the exit status is 0 only without errors and corrupt bytes. A log is kept in
# target/soak/soak-DATE.log. Needs what the tests need (root for tgtd; qemu for LIO).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -lt 1 ] || ! [[ $1 =~ ^[0-9]+([.][0-9]+)?$ ]]; then
	echo "usage: $0 MINUTES [tgtd] [istgt] [lio]" >&2
	exit 2
fi
cd "$top"
cargo build -q --release -p isboot-tests --bin isboot-soak
dir=${CARGO_TARGET_DIR:-$top/target}
mkdir -p "$dir/soak"
log="$dir/soak/soak-$(date +%Y%m%d-%H%M%S).log"
echo "soak: $1 minute(s); log in $log"
set +e
"$dir/release/isboot-soak" "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
exit "$rc"
