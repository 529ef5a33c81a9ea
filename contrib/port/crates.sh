#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# Prints Makefile.crates for the port: every crates.io package of both lock files, isbootctl's
# (Cargo.lock) and the kernel module's (driver/kmod/Cargo.lock, bindgen included), once each,
# as USES=cargo wants them (name-version). After a lock file changes:
#   contrib/port/crates.sh > contrib/port/Makefile.crates
# (tests/kmod-makefile.sh fails while the two disagree.)
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
awk '
	/^\[\[package\]\]/ { name = ""; version = "" }
	/^name = /    { name = $3; gsub(/"/, "", name) }
	/^version = / { version = $3; gsub(/"/, "", version) }
	/^source = "registry\+https:\/\/github.com\/rust-lang\/crates.io-index"/ {
		print name "-" version
	}
' "$top/Cargo.lock" "$top/driver/kmod/Cargo.lock" | sort -u | awk '
	{ crates[NR] = $0 }
	END {
		for (i = 1; i <= NR; i++)
			printf "%s%s%s\n", (i == 1 ? "CARGO_CRATES=\t" : "\t\t"), crates[i], (i < NR ? " \\" : "")
	}
'
