#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Real boot firmware against our code: qemu (TCG) runs Debian's iPXE ROM, which sanhooks a tgtd
# target (no auth, CHAP, mutual CHAP) and writes an iBFT; the test dumps the guest's low memory
# through the qemu monitor and checks that `isbootctl ibft` finds and decodes the table iPXE
# wrote, then (when the session is built) that `isbootctl boot` with that table logs in to the
# same target.
#
# Everything runs in a network namespace this test creates: tgtd listens on the namespace's
# 127.0.0.1, and qemu's slirp maps the guest's 10.0.2.2 to it. Needs root (ip netns), qemu-system-x86,
# ipxe-qemu, tgt. Each step is bounded in time; qemu, tgtd and the namespace are removed on any exit.
#
# usage: tests/qemu/run.sh [VARIANT...]   (variants: nochap chap mutual; default all)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/tests/qemu/lib.sh"

STEP_TIMEOUT=${ISBOOT_QEMU_STEP_TIMEOUT:-180}
TOTAL_TIMEOUT=${ISBOOT_QEMU_TOTAL_TIMEOUT:-900}
ROM=/usr/lib/ipxe/qemu/pxe-e1000.rom
INITIATOR=iqn.2026-11.org.isboot:qemu-initiator
PORT=3260
USER_IN=qemuin SECRET_IN=qemuin-secret-12
USER_OUT=qemuout SECRET_OUT=qemuout-secret-12

# The whole run is bounded: the script runs itself under timeout(1), whose SIGTERM reaches the
# cleanup trap below.
if [ -z "${ISBOOT_QEMU_INNER:-}" ]; then
	ISBOOT_QEMU_INNER=1 exec timeout -k 30 "$TOTAL_TIMEOUT" "$0" "$@"
fi

if [ "$(id -u)" -ne 0 ]; then echo "qemu test: needs root for ip netns" >&2; exit 1; fi
for tool in qemu-system-x86_64 tgtd tgtadm ip ss socat python3 sgdisk makefs; do
	command -v "$tool" >/dev/null || { echo "qemu test: $tool missing (run tests/setup.sh)" >&2; exit 1; }
done
[ -r "$ROM" ] || { echo "qemu test: $ROM missing (Debian package ipxe-qemu)" >&2; exit 1; }

variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(nochap chap mutual)

work=$(mktemp -d /tmp/isboot-qemu.XXXXXX)
ns="isboot-q$$"
QEMU_PID=""
TGT_PID=""
cleanup() {
	rc=$?
	trap - EXIT INT TERM
	if [ -n "$QEMU_PID" ]; then kill -KILL "$QEMU_PID" 2>/dev/null || true; wait "$QEMU_PID" 2>/dev/null || true; fi
	tgt_stop || true
	ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
	ip netns delete "$ns" 2>/dev/null || true
	if [ "$rc" -ne 0 ] && [ -z "${ISBOOT_KEEP:-}" ]; then
		echo "qemu test: FAILED (rc $rc); logs follow" >&2
		for f in "$work"/*.log; do [ -e "$f" ] && { echo "--- $f" >&2; tail -n 40 "$f" >&2; }; done
	fi
	if [ -n "${ISBOOT_KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'echo "qemu test: interrupted (overall limit ${TOTAL_TIMEOUT}s?)" >&2; exit 130' INT TERM


echo "==> building isbootctl"
target_dir=${CARGO_TARGET_DIR:-$top/target}
(cd "$top" && cargo build -q -p isbootctl)
ctl="$target_dir/debug/isbootctl"
[ -x "$ctl" ] || { echo "qemu test: $ctl not built" >&2; exit 1; }

echo "==> network namespace $ns (loopback only)"
ip netns add "$ns"
ip -n "$ns" link set lo up

echo "==> tgtd on $ns 127.0.0.1:$PORT with a GPT disk"
disk="$work/disk.img"
make_freebsd_disk "$work" "$disk"
tgt_start "$work" "$PORT" "$ns"
tgt_add 1 iqn.2026-11.org.isboot:qemu-nochap "$disk"
tgt_add 2 iqn.2026-11.org.isboot:qemu-chap "$disk" "$USER_IN" "$SECRET_IN"
tgt_add 3 iqn.2026-11.org.isboot:qemu-mutual "$disk" "$USER_IN" "$SECRET_IN" "$USER_OUT" "$SECRET_OUT"

mkdir -p "$work/tftp"

# json_check FILE PYTHON_EXPR...: each expression, with `j` the decoded object, must be true.
json_check() {
	python3 - "$@" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
bad = [e for e in sys.argv[2:] if not eval(e, {"j": j})]
for e in bad:
    print("  check failed:", e, file=sys.stderr)
if bad:
    print(json.dumps(j, indent=1), file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}

monitor() {
	printf '%s\n' "$1" | timeout 20 socat -t 2 - "UNIX-CONNECT:$work/qmon.sock" >>"$work/monitor.log" 2>&1
}

fails=0
for v in "${variants[@]}"; do
	case $v in
	nochap) iqn=iqn.2026-11.org.isboot:qemu-nochap chap=none
		creds="" ;;
	chap) iqn=iqn.2026-11.org.isboot:qemu-chap chap=chap
		creds="set username $USER_IN
set password $SECRET_IN" ;;
	mutual) iqn=iqn.2026-11.org.isboot:qemu-mutual chap=mutual
		creds="set username $USER_IN
set password $SECRET_IN
set reverse-username $USER_OUT
set reverse-password $SECRET_OUT" ;;
	*) echo "unknown variant $v" >&2; exit 2 ;;
	esac
	echo "==> [$v] qemu + iPXE sanhook iscsi:10.0.2.2::$PORT:1:$iqn"
	cat > "$work/tftp/$v.ipxe" <<IPXE
#!ipxe
echo isboot-test: variant $v
dhcp || goto fail
set initiator-iqn $INITIATOR
$creds
sanhook --drive 0x80 iscsi:10.0.2.2::$PORT:1:$iqn || goto fail
echo isboot-test: sanhook ok
shell
:fail
echo isboot-test: sanhook FAILED
shell
IPXE
	serial="$work/serial-$v.log"
	rm -f "$work/qmon.sock" "$serial"
	ip netns exec "$ns" qemu-system-x86_64 -machine pc,accel=tcg -cpu qemu64 -m 256 \
		-nographic -no-reboot -nodefaults -serial "file:$serial" \
		-monitor "unix:$work/qmon.sock,server=on,wait=off" \
		-netdev "user,id=n0,restrict=off,tftp=$work/tftp,bootfile=$v.ipxe" \
		-device "e1000,netdev=n0,mac=52:54:00:12:34:56,romfile=$ROM" -boot n \
		>"$work/qemu-$v.log" 2>&1 </dev/null &
	QEMU_PID=$!
	if ! wait_until "$STEP_TIMEOUT" "[$v] iPXE sanhook" grep -qa -e "sanhook ok" -e "sanhook FAILED" "$serial"; then
		fails=$((fails + 1)); kill -KILL "$QEMU_PID"; wait "$QEMU_PID" 2>/dev/null || true; QEMU_PID=""; continue
	fi
	if grep -qa "sanhook FAILED" "$serial"; then
		echo "FAIL [$v]: iPXE could not sanhook the target" >&2
		tr -d '\r' < "$serial" | grep -a -v '^\s*$' | tail -n 15 >&2
		fails=$((fails + 1)); kill -KILL "$QEMU_PID"; wait "$QEMU_PID" 2>/dev/null || true; QEMU_PID=""; continue
	fi
	mem="$work/mem-$v.bin"
	wait_until 30 "qemu monitor socket" test -S "$work/qmon.sock"
	monitor "pmemsave 0 0x100000 \"$mem\""
	wait_until 30 "[$v] 1 MiB memory dump" sh -c "[ \"\$(stat -c %s '$mem' 2>/dev/null)\" = 1048576 ]"
	monitor "quit" || true
	wait_until 30 "[$v] qemu exit" sh -c "! kill -0 $QEMU_PID" || kill -KILL "$QEMU_PID" 2>/dev/null || true
	wait "$QEMU_PID" 2>/dev/null || true
	QEMU_PID=""

	echo "==> [$v] isbootctl ibft $mem"
	if ! "$ctl" ibft "$mem" | tee "$work/ibft-$v.txt"; then
		echo "FAIL [$v]: isbootctl ibft failed on the memory image" >&2; fails=$((fails + 1)); continue
	fi
	"$ctl" ibft --json "$mem" > "$work/ibft-$v.json"
	checks=(
		"j['initiator']['name'] == '$INITIATOR'"
		"j['boot'] == {'nic': 0, 'target': 0}"
		"j['nics'][0]['ip'] == '10.0.2.15'"
		"j['nics'][0]['mac'] == '52:54:00:12:34:56'"
		"j['nics'][0]['gateway'] == '10.0.2.2'"
		"j['nics'][0]['prefix'] == 24"
		"j['targets'][0]['name'] == '$iqn'"
		"j['targets'][0]['ip'] == '10.0.2.2'"
		"j['targets'][0]['port'] == $PORT"
		"j['targets'][0]['lun'] == 1"
		"j['targets'][0]['chap'] == '$chap'"
		"len(j['targets']) == 1"
	)
	case $chap in
	none) checks+=("j['targets'][0]['chap_name'] is None") ;;
	chap) checks+=("j['targets'][0]['chap_name'] == '$USER_IN'" "j['targets'][0]['chap_secret'] == '<redacted>'") ;;
	mutual) checks+=("j['targets'][0]['chap_name'] == '$USER_IN'" "j['targets'][0]['chap_secret'] == '<redacted>'"
		"j['targets'][0]['reverse_chap_name'] == '$USER_OUT'" "j['targets'][0]['reverse_chap_secret'] == '<redacted>'") ;;
	esac
	if ! json_check "$work/ibft-$v.json" "${checks[@]}"; then
		echo "FAIL [$v]: decoded table differs from what iPXE was told" >&2; fails=$((fails + 1)); continue
	fi
	if [ "$chap" != none ]; then
		if grep -q -e "$SECRET_IN" -e "$SECRET_OUT" "$work/ibft-$v.txt" "$work/ibft-$v.json"; then
			echo "FAIL [$v]: a CHAP secret was printed without --show-secrets" >&2; fails=$((fails + 1)); continue
		fi
		"$ctl" ibft --json --show-secrets "$mem" > "$work/ibft-$v-secrets.json"
		if ! json_check "$work/ibft-$v-secrets.json" "j['targets'][0]['chap_secret'] == '$SECRET_IN'"; then
			echo "FAIL [$v]: --show-secrets does not show the CHAP secret iPXE was given" >&2; fails=$((fails + 1)); continue
		fi
	fi
	echo "ok [$v]: iPXE's iBFT decoded (initiator, NIC, target $iqn LUN 1, chap=$chap)"

	# The guest reached the target as 10.0.2.2 through slirp; the namespace reaches it as
	# 127.0.0.1. The core's builder writes that change into a copy of iPXE's table.
	local_tbl="$work/ibft-$v-local.bin"
	if ! "$ctl" ibft --rewrite "127.0.0.1:$PORT" --output "$local_tbl" "$mem" > "$work/rewrite-$v.txt"; then
		echo "FAIL [$v]: isbootctl ibft --rewrite failed on iPXE's table" >&2; fails=$((fails + 1)); continue
	fi
	echo "==> [$v] isbootctl boot --ibft (iPXE's table, target rewritten to 127.0.0.1:$PORT; in $ns)"
	if ! ip netns exec "$ns" timeout "$STEP_TIMEOUT" "$ctl" boot --ibft "$local_tbl" \
		> "$work/boot-$v.log" 2>&1; then
		cat "$work/boot-$v.log" >&2
		echo "FAIL [$v]: isbootctl boot with iPXE's table did not find a usable boot disk" >&2; fails=$((fails + 1)); continue
	fi
	cat "$work/boot-$v.log"
	if grep -q -e "$SECRET_IN" -e "$SECRET_OUT" "$work/boot-$v.log"; then
		echo "FAIL [$v]: boot transcript shows a CHAP secret" >&2; fails=$((fails + 1)); continue
	fi
	if ! grep -q "GEOM: da0p2: UFS" "$work/boot-$v.log"; then
		echo "FAIL [$v]: boot transcript lacks the UFS root partition" >&2; fails=$((fails + 1)); continue
	fi
	echo "ok [$v]: isbootctl boot logged in with iPXE's table and found the UFS root partition"
done

if [ "$fails" -ne 0 ]; then echo "qemu test: $fails failure(s)"; exit 1; fi
echo "qemu test: all ${#variants[@]} variant(s) passed"
