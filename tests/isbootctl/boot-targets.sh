#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# `isbootctl boot` against real targets on 127.0.0.1 (tgtd, and istgt, which unlike tgtd enforces
# mutual CHAP and serves the disk as LUN 0): it must say "usable" (exit 0) exactly when a FreeBSD
# boot disk is reachable, and fail (exit 1) with a reason for each way it is not: wrong CHAP
# secret, a target that cannot prove itself, wrong target, missing LUN, blank disk, nothing
# listening. The target comes from flags, an iBFT, an RFC 4173 root path or a loader.conf
# written by `isbootctl loader-conf`. With its default digest offer it boots istgt and LIO (a
# qemu guest) requiring CRC32C digests, with digests on; forbidding or requiring digests against
# a target that wants the other fails the login naming the digests. Needs root (tgtd's control
# socket) and qemu.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/tests/qemu/lib.sh"

for t in tgtd tgtadm istgt sgdisk makefs python3; do
	command -v $t >/dev/null || { echo "boot-targets: $t missing (run tests/setup.sh)" >&2; exit 1; }
done
(cd "$top" && cargo build -q -p isbootctl -p isboot-tests --bin isbootctl --bin isboot-target)
ctl="${CARGO_TARGET_DIR:-$top/target}/debug/isbootctl"
ISBOOT_TARGET="${CARGO_TARGET_DIR:-$top/target}/debug/isboot-target"

work=$(mktemp -d /tmp/isboot-boottest.XXXXXX)
stop_all() {
	target_stop_all || true
	rm -rf "$work"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

make_freebsd_disk "$work" "$work/disk.img"
truncate -s 16M "$work/blank.img"
# The test harness's targets (tests/target/main.rs), one per configuration: tgtd serves the disk
# as LUN 1 (LUN 0 is its controller), istgt as LUN 0.
P=iqn.2026-11.org.isboot:boottest
C1=(--chap u1:secret-u1-1234) C2=(--mutual u2:secret-u2-1234)
declare -A port iport
start() { # start NAME ARGS...: remembers the target's port as port[NAME]
	_name=$1
	shift
	target_start "$work" "$@"
	port[$_name]=$TARGET_PORT
}
start nochap tgtd --iqn "$P-nochap" --disk "$work/disk.img"
start chap tgtd --iqn "$P-chap" --disk "$work/disk.img" "${C1[@]}"
start mutual tgtd --iqn "$P-mutual" --disk "$work/disk.img" "${C1[@]}" "${C2[@]}"
start blank tgtd --iqn "$P-blank" --disk "$work/blank.img"
# istgt enforces mutual CHAP, unlike tgtd.
start i-none istgt --iqn "$P:istgt" --disk "$work/disk.img"
start i-chap istgt --iqn "$P:istgt" --disk "$work/disk.img" "${C1[@]}"
start i-mutual istgt --iqn "$P:istgt" --disk "$work/disk.img" "${C1[@]}" "${C2[@]}"
iport[None]=${port[i-none]} iport[CHAP]=${port[i-chap]} iport[CHAP Mutual]=${port[i-mutual]}
# Targets that require CRC32C header and data digests.
start i-digests istgt --iqn "$P:istgt" --disk "$work/disk.img" --digests
start lio-digests lio --iqn "$P:lio" --disk "$work/disk.img" --digests
lio_lun=$TARGET_LUN
dead=$(free_port)

fails=0
# case NAME WANT_RC WANT_TEXT ARGS...: run boot, check the exit status and a line of the output.
case_() {
	name=$1 want_rc=$2 want=$3
	shift 3
	rc=0
	timeout 120 "$ctl" boot --timeout 15 "$@" > "$work/out" 2>&1 || rc=$?
	if [ -n "${VERBOSE:-}" ]; then sed "s|^|    |" "$work/out"; fi
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
# tgt NAME: the portal and LUN of the tgtd target NAME.
tgt() { echo "--portal 127.0.0.1:${port[$1]} --lun 1"; }
# shellcheck disable=SC2046 # tgt's output is meant to split into arguments
{
case_ "no auth: usable" 0 "boot disk usable: $P-nochap LUN 1" $(tgt nochap) --target "$P-nochap"
case_ "CHAP: usable" 0 "boot disk usable: $P-chap LUN 1" $(tgt chap) --target "$P-chap" --chap u1:secret-u1-1234
case_ "mutual CHAP: usable" 0 "boot disk usable: $P-mutual LUN 1" $(tgt mutual) --target "$P-mutual" \
	--chap u1:secret-u1-1234 --mutual u2:secret-u2-1234
case_ "wrong CHAP secret: not usable" 1 "authentication failed" \
	$(tgt chap) --target "$P-chap" --chap u1:wrong-secret
case_ "CHAP target without credentials: not usable" 1 "boot disk NOT usable: login" $(tgt chap) --target "$P-chap"
case_ "unknown target: not usable" 1 "boot disk NOT usable: login" $(tgt nochap) --target "$P-nonexistent"
case_ "LUN 7 absent: not usable" 1 "LUN 7: READ CAPACITY failed: ILLEGAL REQUEST, LOGICAL UNIT NOT SUPPORTED" \
	--portal "127.0.0.1:${port[nochap]}" --lun 7 --target "$P-nochap"
case_ "LUN 0 is tgt's controller: no capacity" 1 "LUN 0: READ CAPACITY failed: ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE" \
	--portal "127.0.0.1:${port[nochap]}" --lun 0 --target "$P-nochap"
case_ "blank disk: not usable" 1 "has no partition table" $(tgt blank) --target "$P-blank"
case_ "nothing listening: not usable" 1 "boot disk NOT usable: login to 127.0.0.1:$dead failed" \
	--portal "127.0.0.1:$dead" --lun 1 --target "$P-nochap"
case_ "iBFT rewritten to the target: usable" 0 "boot parameters from iBFT" \
	--ibft "$top/tests/data/ibft/ibft-ipxe-dhcp-nochap.bin" --portal "127.0.0.1:${port[nochap]}" --target "$P-nochap"
}
I=(--lun 0 --target "$P:istgt")
case_ "istgt, no auth, LUN 0: usable" 0 "boot disk usable: $P:istgt LUN 0" \
	--portal "127.0.0.1:${iport[None]}" "${I[@]}"
case_ "istgt, CHAP: usable" 0 "boot disk usable: $P:istgt LUN 0" \
	--portal "127.0.0.1:${iport[CHAP]}" "${I[@]}" --chap u1:secret-u1-1234
case_ "istgt, mutual CHAP: usable" 0 "boot disk usable: $P:istgt LUN 0" \
	--portal "127.0.0.1:${iport[CHAP Mutual]}" "${I[@]}" --chap u1:secret-u1-1234 --mutual u2:secret-u2-1234
case_ "istgt, mutual CHAP, target proves the wrong secret: not usable" 1 "target's CHAP_R is wrong" \
	--portal "127.0.0.1:${iport[CHAP Mutual]}" "${I[@]}" --chap u1:secret-u1-1234 --mutual u2:wrong-secret
case_ "istgt demands mutual CHAP, one-way offered: not usable" 1 "authentication failed" \
	--portal "127.0.0.1:${iport[CHAP Mutual]}" "${I[@]}" --chap u1:secret-u1-1234
D=(--portal "127.0.0.1:${port[i-digests]}" "${I[@]}")
case_ "istgt requiring digests, default offer: usable, digests on" 0 "HeaderDigest true, DataDigest true" "${D[@]}"
case_ "istgt requiring digests, --digests=forbid: the login names the digests" 1 \
	"HeaderDigest: target answered Reject to our offer None" "${D[@]}" --digests=forbid
L=(--portal "127.0.0.1:${port[lio-digests]}" --lun "$lio_lun" --target "$P:lio")
case_ "LIO requiring digests, default offer: usable, digests on" 0 "HeaderDigest true, DataDigest true" "${L[@]}"
case_ "LIO requiring digests, --digests=forbid: the login names the digests" 1 \
	"a target that requires digests answers this way; allow CRC32C" "${L[@]}" --digests=forbid
# shellcheck disable=SC2046 # tgt's output is meant to split into arguments
case_ "tgtd without digests, --digests=require: the login names the digests" 1 \
	"HeaderDigest: target answered None, outside our offer CRC32C" $(tgt nochap) --target "$P-nochap" --digests=require
# Without an iBFT: the target as an RFC 4173 root path (LUN in hex; empty LUN is 0), and the
# loader.conf lines loader-conf writes, read back through the kernel's checks.
case_ "root path, mutual CHAP: usable" 0 "boot disk usable: $P-mutual LUN 1" \
	--root-path "iscsi:127.0.0.1::${port[mutual]}:1:$P-mutual" --chap u1:secret-u1-1234 --mutual u2:secret-u2-1234
case_ "root path, istgt LUN 0 left empty: usable" 0 "boot disk usable: $P:istgt LUN 0" \
	--root-path "iscsi:127.0.0.1::${iport[None]}::$P:istgt"
"$ctl" loader-conf --portal "127.0.0.1:${port[mutual]}" --target "$P-mutual" --lun 1 \
	--initiator iqn.2026-11.org.isboot:boottest-host --chap u1:secret-u1-1234 --mutual u2:secret-u2-1234 \
	--nic lo0 --address 127.0.0.2/8 > "$work/loader.conf"
case_ "loader.conf from loader-conf, mutual CHAP: usable" 0 "boot disk usable: $P-mutual LUN 1" \
	--loader-conf "$work/loader.conf"
sed 's/secret-u2-1234/wrong-secret-9/' "$work/loader.conf" > "$work/wrong.conf"
case_ "loader.conf with the target's wrong secret: not usable" 1 "target's CHAP_R is wrong" \
	--loader-conf "$work/wrong.conf" --portal "127.0.0.1:${iport[CHAP Mutual]}" --target "$P:istgt" --lun 0
case_ "usage error: exit 64 (EX_USAGE)" 64 "usage:" --lun x --portal "127.0.0.1:${port[nochap]}" --target "$P-nochap"

if [ "$fails" -ne 0 ]; then echo "boot-targets: $fails failure(s)"; exit 1; fi
echo "boot-targets: all passed"
