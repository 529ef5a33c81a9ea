#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# `isbootctl boot` against a real tgtd on 127.0.0.1: it must say "usable" (exit 0) exactly when a
# FreeBSD boot disk is reachable, and fail (exit 1) with a reason for each way it is not: wrong
# CHAP secret, wrong target, missing LUN, blank disk, nothing listening. Needs root (tgtd).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/tests/qemu/lib.sh"

for t in tgtd tgtadm sgdisk makefs python3; do
	command -v $t >/dev/null || { echo "boot-tgtd: $t missing (run tests/setup.sh)" >&2; exit 1; }
done
(cd "$top" && cargo build -q -p isbootctl)
ctl="${CARGO_TARGET_DIR:-$top/target}/debug/isbootctl"

work=$(mktemp -d /tmp/isboot-boottest.XXXXXX)
TGT_PID=""
trap 'tgt_stop || true; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM

make_freebsd_disk "$work" "$work/disk.img"
truncate -s 16M "$work/blank.img"
port=$(free_port)
tgt_start "$work" "$port"
P=iqn.2026-11.org.isboot:boottest
tgt_add 1 "$P-nochap" "$work/disk.img"
tgt_add 2 "$P-chap" "$work/disk.img" u1 secret-u1-1234
tgt_add 3 "$P-mutual" "$work/disk.img" u1 secret-u1-1234 u2 secret-u2-1234
tgt_add 4 "$P-blank" "$work/blank.img"
dead=$(free_port)

fails=0
# case NAME WANT_RC WANT_TEXT ARGS...: run boot, check the exit status and a line of the output.
case_() {
	name=$1 want_rc=$2 want=$3
	shift 3
	rc=0
	timeout 120 "$ctl" boot --timeout 15 "$@" > "$work/out" 2>&1 || rc=$?
	if [ "$rc" != "$want_rc" ] || ! grep -qF -- "$want" "$work/out"; then
		echo "FAIL: $name (exit $rc, want $want_rc; want text: $want)"
		sed 's/^/    /' "$work/out"
		fails=$((fails + 1))
	elif grep -q -e "secret-u1" -e "secret-u2" -e "wrong-secret" "$work/out"; then
		echo "FAIL: $name printed a CHAP secret"
		fails=$((fails + 1))
	else
		echo "ok: $name"
	fi
}
A=(--portal "127.0.0.1:$port" --lun 1)
case_ "no auth: usable" 0 "boot disk usable: $P-nochap LUN 1" "${A[@]}" --target "$P-nochap"
case_ "CHAP: usable" 0 "boot disk usable: $P-chap LUN 1" "${A[@]}" --target "$P-chap" --chap u1:secret-u1-1234
case_ "mutual CHAP: usable" 0 "boot disk usable: $P-mutual LUN 1" "${A[@]}" --target "$P-mutual" \
	--chap u1:secret-u1-1234 --mutual u2:secret-u2-1234
case_ "wrong CHAP secret: not usable" 1 "boot disk NOT usable: login to 127.0.0.1:$port failed" \
	"${A[@]}" --target "$P-chap" --chap u1:wrong-secret
case_ "CHAP target without credentials: not usable" 1 "boot disk NOT usable: login" "${A[@]}" --target "$P-chap"
case_ "unknown target: not usable" 1 "boot disk NOT usable: login" "${A[@]}" --target "$P-nonexistent"
case_ "LUN 7 absent: not usable" 1 "LUN 7: READ CAPACITY failed: ILLEGAL REQUEST, LOGICAL UNIT NOT SUPPORTED" \
	--portal "127.0.0.1:$port" --lun 7 --target "$P-nochap"
case_ "LUN 0 is tgt's controller: no capacity" 1 "LUN 0: READ CAPACITY failed: ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE" \
	--portal "127.0.0.1:$port" --lun 0 --target "$P-nochap"
case_ "blank disk: not usable" 1 "has no partition table" "${A[@]}" --target "$P-blank"
case_ "nothing listening: not usable" 1 "boot disk NOT usable: login to 127.0.0.1:$dead failed" \
	--portal "127.0.0.1:$dead" --lun 1 --target "$P-nochap"
case_ "iBFT rewritten to the target: usable" 0 "boot parameters from iBFT" \
	--ibft "$top/tests/data/ibft/ibft-ipxe-dhcp-nochap.bin" --portal "127.0.0.1:$port" --target "$P-nochap"
case_ "usage error: exit 2" 2 "usage:" --lun x --portal "127.0.0.1:$port" --target "$P-nochap"

if [ "$fails" -ne 0 ]; then echo "boot-tgtd: $fails failure(s)"; exit 1; fi
echo "boot-tgtd: all passed"
