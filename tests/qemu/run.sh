#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Real boot firmware against our code: qemu (TCG) runs Debian's iPXE, which sanhooks a target (no
# auth, CHAP, mutual CHAP) and writes an iBFT; the test reads the table iPXE wrote, checks that
# `isbootctl ibft` decodes what iPXE was told, then that `isbootctl boot` with that table logs in
# to the same target and finds the FreeBSD root partition.
#
#   BIOS (variants nochap chap mutual): SeaBIOS and iPXE's PXE ROM leave the table in low memory;
#     the test dumps the guest's first MiB through the qemu monitor and lets isbootctl scan it.
#   UEFI (variants uefi-nochap uefi-chap uefi-mutual): OVMF and iPXE's EFI ROM put the table among
#     the ACPI tables, out of reach of a low-memory scan. iPXE then boots the small Linux guest of
#     tests/lio (kernel and initramfs over qemu's TFTP), which prints the ACPI table, base64, on
#     its serial console, and Linux's own reading of it, which must agree with ours.
#
# The target is one of the Rust test harness's (tests/target/main.rs; tgtd unless
# ISBOOT_QEMU_TARGET=istgt|lio) serving a FreeBSD-style GPT/UFS disk. Everything runs in a network
# namespace this test creates: the target listens on the namespace's 127.0.0.1:3260, and qemu's
# slirp maps the guest's 10.0.2.2 to it. Needs root (ip netns), qemu-system-x86, ipxe-qemu, ovmf,
# and what tests/lio/image.sh needs. Each step is bounded in time; qemu, the targets and the
# namespace are removed on any exit.
#
# usage: tests/qemu/run.sh [VARIANT...]   (default: all six)
# ISBOOT_QEMU_FIXTURES=DIR also saves each UEFI table as DIR/ibft-uefi-ipxe-dhcp-AUTH.{bin,txt}.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
. "$top/tests/qemu/lib.sh"

STEP_TIMEOUT=${ISBOOT_QEMU_STEP_TIMEOUT:-180}
TOTAL_TIMEOUT=${ISBOOT_QEMU_TOTAL_TIMEOUT:-1200}
TARGET_KIND=${ISBOOT_QEMU_TARGET:-tgtd}
BIOS_ROM=/usr/lib/ipxe/qemu/pxe-e1000.rom
EFI_ROM=/usr/lib/ipxe/qemu/efi-virtio.rom
OVMF_CODE=/usr/share/OVMF/OVMF_CODE_4M.fd
OVMF_VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
INITIATOR=iqn.2026-11.org.isboot:qemu-initiator
MAC=52:54:00:12:34:56
PORT=3260
USER_IN=qemuin SECRET_IN=qemuin-secret-12
USER_OUT=qemuout SECRET_OUT=qemuout-secret-12

# The whole run is bounded: the script runs itself under timeout(1), whose SIGTERM reaches the
# cleanup trap below.
if [ -z "${ISBOOT_QEMU_INNER:-}" ]; then
	ISBOOT_QEMU_INNER=1 exec timeout -k 30 "$TOTAL_TIMEOUT" "$0" "$@"
fi

if [ "$(id -u)" -ne 0 ]; then echo "qemu test: needs root for ip netns" >&2; exit 1; fi
for tool in qemu-system-x86_64 ip socat python3 sgdisk makefs base64; do
	command -v "$tool" >/dev/null || { echo "qemu test: $tool missing (run tests/setup.sh)" >&2; exit 1; }
done

variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(nochap chap mutual uefi-nochap uefi-chap uefi-mutual)
uefi=""
for v in "${variants[@]}"; do
	case $v in
	nochap | chap | mutual) [ -r "$BIOS_ROM" ] || { echo "qemu test: $BIOS_ROM missing (ipxe-qemu)" >&2; exit 1; } ;;
	uefi-nochap | uefi-chap | uefi-mutual) uefi=1 ;;
	*) echo "unknown variant $v (nochap chap mutual uefi-nochap uefi-chap uefi-mutual)" >&2; exit 2 ;;
	esac
done
if [ -n "$uefi" ]; then
	for f in "$EFI_ROM" "$OVMF_CODE" "$OVMF_VARS"; do
		[ -r "$f" ] || { echo "qemu test: $f missing (ipxe-qemu, ovmf)" >&2; exit 1; }
	done
fi

work=$(mktemp -d /tmp/isboot-qemu.XXXXXX)
ns="isboot-q$$"
QEMU_PID=""
cleanup() {
	rc=$?
	trap - EXIT INT TERM
	if [ -n "$QEMU_PID" ]; then kill -KILL "$QEMU_PID" 2>/dev/null || true; wait "$QEMU_PID" 2>/dev/null || true; fi
	target_stop_all || true
	ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
	ip netns delete "$ns" 2>/dev/null || true
	if [ "$rc" -ne 0 ] && [ -z "${ISBOOT_KEEP:-}" ]; then
		echo "qemu test: FAILED (rc $rc); logs follow" >&2
		for f in "$work"/*.log; do [ -e "$f" ] && { echo "--- $f" >&2; tr -d '\r' < "$f" | tail -n 40 >&2; }; done
	fi
	if [ -n "${ISBOOT_KEEP:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'echo "qemu test: interrupted (overall limit ${TOTAL_TIMEOUT}s?)" >&2; exit 130' INT TERM

echo "==> building isbootctl and isboot-target"
target_dir=${CARGO_TARGET_DIR:-$top/target}
(cd "$top" && cargo build -q -p isbootctl -p isboot-tests --bin isbootctl --bin isboot-target)
ctl="$target_dir/debug/isbootctl"
ISBOOT_TARGET="$target_dir/debug/isboot-target"
if [ ! -x "$ctl" ] || [ ! -x "$ISBOOT_TARGET" ]; then
	echo "qemu test: $ctl or $ISBOOT_TARGET not built" >&2
	exit 1
fi

mkdir -p "$work/tftp"
if [ -n "$uefi" ] || [ "$TARGET_KIND" = lio ]; then
	echo "==> the small Linux guest (tests/lio/image.sh, cached)"
	image=$("$top/tests/lio/image.sh")
	cp "$image/vmlinuz" "$image/initrd.img" "$work/tftp/"
fi

echo "==> network namespace $ns (loopback only)"
ip netns add "$ns"
ip -n "$ns" link set lo up
TARGET_NETNS=$ns

disk="$work/disk.img"
make_freebsd_disk "$work" "$disk"

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

stop_qemu() {
	[ -n "$QEMU_PID" ] || return 0
	kill -KILL "$QEMU_PID" 2>/dev/null || true
	wait "$QEMU_PID" 2>/dev/null || true
	QEMU_PID=""
}

# bios VARIANT SCRIPT OUT: iPXE's PXE ROM under SeaBIOS runs SCRIPT; OUT is the guest's first MiB.
bios() {
	_v=$1 _script=$2 _out=$3
	rm -f "$work/qmon.sock"
	ip netns exec "$ns" qemu-system-x86_64 -machine pc,accel=tcg -cpu qemu64 -m 256 \
		-nographic -no-reboot -nodefaults -serial "file:$serial" \
		-monitor "unix:$work/qmon.sock,server=on,wait=off" \
		-netdev "user,id=n0,restrict=off,tftp=$work/tftp,bootfile=$_script" \
		-device "e1000,netdev=n0,mac=$MAC,romfile=$BIOS_ROM" -boot n \
		>"$work/qemu-$_v.log" 2>&1 </dev/null &
	QEMU_PID=$!
	sanhooked "$_v" || return 1
	wait_until 30 "qemu monitor socket" test -S "$work/qmon.sock"
	monitor "pmemsave 0 0x100000 \"$_out\""
	wait_until 30 "[$_v] 1 MiB memory dump" sh -c "[ \"\$(stat -c %s '$_out' 2>/dev/null)\" = 1048576 ]"
	monitor "quit" || true
	wait_until 30 "[$_v] qemu exit" sh -c "! kill -0 $QEMU_PID" || true
	stop_qemu
}

# uefi VARIANT SCRIPT OUT: iPXE's EFI ROM under OVMF runs SCRIPT, which boots the Linux guest in
# isboot.mode=ibft; OUT is the ACPI table it printed.
uefi() {
	_v=$1 _script=$2 _out=$3
	cp "$OVMF_VARS" "$work/vars-$_v.fd"
	ip netns exec "$ns" qemu-system-x86_64 -machine q35,accel=tcg -m 512 -smp 1 \
		-display none -no-reboot -nodefaults -serial "file:$serial" \
		-drive "if=pflash,format=raw,unit=0,readonly=on,file=$OVMF_CODE" \
		-drive "if=pflash,format=raw,unit=1,file=$work/vars-$_v.fd" \
		-netdev "user,id=n0,restrict=off,tftp=$work/tftp,bootfile=$_script" \
		-device "virtio-net-pci,netdev=n0,mac=$MAC,romfile=$EFI_ROM,bootindex=1" \
		>"$work/qemu-$_v.log" 2>&1 </dev/null &
	QEMU_PID=$!
	sanhooked "$_v" || return 1
	if ! wait_until "$STEP_TIMEOUT" "[$_v] the guest's iBFT dump" \
		grep -qa -e ISBOOT-IBFT-END -e ISBOOT-IBFT-NONE -e ISBOOT-LIO-FAILED "$serial"; then
		stop_qemu
		return 1
	fi
	# The guest powers off after the dump; -no-reboot ends qemu.
	wait_until 60 "[$_v] qemu exit" sh -c "! kill -0 $QEMU_PID" || true
	stop_qemu
	if ! grep -qa ISBOOT-IBFT-END "$serial"; then
		echo "FAIL [$_v]: the guest found no iBFT among the ACPI tables" >&2
		tr -d '\r' < "$serial" | grep -a ISBOOT >&2 || true
		return 1
	fi
	tr -d '\r' < "$serial" | sed -n '/^ISBOOT-IBFT-BEGIN/,/^ISBOOT-IBFT-END/p' | grep -v '^ISBOOT-IBFT-' |
		base64 -d > "$_out"
}

# sanhooked VARIANT: waits for iPXE's verdict on the sanhook.
sanhooked() {
	if ! wait_until "$STEP_TIMEOUT" "[$1] iPXE sanhook" grep -qa -e "sanhook ok" -e "sanhook FAILED" "$serial"; then
		stop_qemu
		return 1
	fi
	if grep -qa "sanhook FAILED" "$serial"; then
		echo "FAIL [$1]: iPXE could not sanhook the target" >&2
		tr -d '\r' < "$serial" | grep -a -v '^\s*$' | tail -n 15 >&2
		stop_qemu
		return 1
	fi
}

# linux_agrees VARIANT: Linux's iscsi_ibft read the same table; its view must match the checks.
linux_agrees() {
	_l=$(tr -d '\r' < "$serial" | sed -n 's/^ISBOOT-IBFT-LINUX //p')
	_bad=0
	for _want in "initiator/initiator-name=$INITIATOR" "ethernet0/mac=$MAC" "ethernet0/ip-addr=10.0.2.15" \
		"target0/target-name=$TARGET_IQN" "target0/ip-addr=10.0.2.2" "target0/port=$PORT" \
		"target0/chap-type=$1"; do
		grep -qxF -- "$_want" <<<"$_l" || { echo "  Linux's iscsi_ibft does not show $_want" >&2; _bad=1; }
	done
	[ "$_bad" = 0 ] || { echo "$_l" >&2; return 1; }
}

# fixture VARIANT TABLE: saves a UEFI table and its description under $ISBOOT_QEMU_FIXTURES.
fixture() {
	_auth=${1#uefi-}
	[ "$_auth" != mutual ] || _auth=mutualchap
	_name="ibft-uefi-ipxe-dhcp-$_auth"
	_dir=$ISBOOT_QEMU_FIXTURES
	mkdir -p "$_dir"
	cp "$2" "$_dir/$_name.bin"
	{
		echo "# $_name.bin: a real iBFT written by iPXE's EFI ROM under OVMF, read from ACPI by Linux"
		echo "# iPXE $(dpkg-query -W -f='${Version}' ipxe-qemu) ($EFI_ROM, Debian ipxe-qemu)," \
			"OVMF $(dpkg-query -W -f='${Version}' ovmf) ($OVMF_CODE)"
		echo "# qemu $(dpkg-query -W -f='${Version}' qemu-system-x86), TCG, q35, -m 512, virtio-net mac $MAC"
		echo "# target: $TARGET_KIND (tests/target/main.rs) $TARGET_IQN LUN $TARGET_LUN at 10.0.2.2:$PORT," \
			"auth $chap (credentials in the iPXE script below)"
		echo "# generated by tests/qemu/run.sh $1 on $(date -u +%Y-%m-%dT%H:%M:%SZ); size $(stat -c %s "$2") bytes"
		echo "# sha256 $(sha256sum < "$2" | cut -d' ' -f1)"
		echo
		echo "## isbootctl ibft --show-secrets $_name.bin"
		(cd "$_dir" && "$ctl" ibft --show-secrets "$_name.bin")
		echo
		echo "## Linux's reading (/sys/firmware/ibft, secrets left out)"
		tr -d '\r' < "$serial" | sed -n 's/^ISBOOT-IBFT-LINUX //p'
		echo
		echo "## iPXE script (TFTP bootfile)"
		cat "$work/tftp/$1.ipxe"
	} > "$_dir/$_name.txt"
	echo "saved $_dir/$_name.{bin,txt}"
}

fails=0
fail() { echo "FAIL [$v]: $*" >&2; fails=$((fails + 1)); }
for v in "${variants[@]}"; do
	auth=${v#uefi-}
	args=()
	case $auth in
	nochap) chap=none creds="" ;;
	chap) chap=chap args=(--chap "$USER_IN:$SECRET_IN")
		creds="set username $USER_IN
set password $SECRET_IN" ;;
	mutual) chap=mutual args=(--chap "$USER_IN:$SECRET_IN" --mutual "$USER_OUT:$SECRET_OUT")
		creds="set username $USER_IN
set password $SECRET_IN
set reverse-username $USER_OUT
set reverse-password $SECRET_OUT" ;;
	esac
	echo "==> [$v] $TARGET_KIND on $ns 127.0.0.1:$PORT (auth $chap)"
	target_start "$work" "$TARGET_KIND" --disk "$disk" --port "$PORT" ${args[@]+"${args[@]}"} ||
		{ fail "$TARGET_KIND did not start"; target_stop_all; continue; }
	iqn=$TARGET_IQN lun=$TARGET_LUN
	then_boot="shell"
	if [ "$v" != "$auth" ]; then
		then_boot="kernel vmlinuz initrd=initrd.img console=ttyS0 panic=-1 quiet isboot.mode=ibft || goto fail
initrd initrd.img || goto fail
boot || goto fail"
	fi
	echo "==> [$v] qemu + iPXE sanhook iscsi:10.0.2.2::$PORT:$lun:$iqn"
	cat > "$work/tftp/$v.ipxe" <<IPXE
#!ipxe
echo isboot-test: variant $v
dhcp || goto fail
set initiator-iqn $INITIATOR
$creds
sanhook --drive 0x80 iscsi:10.0.2.2::$PORT:$lun:$iqn || goto fail
echo isboot-test: sanhook ok
$then_boot
:fail
echo isboot-test: sanhook FAILED
shell
IPXE
	serial="$work/serial-$v.log"
	rm -f "$serial"
	if [ "$v" = "$auth" ]; then
		src="$work/mem-$v.bin"
		bios "$v" "$v.ipxe" "$src" || { fail "no memory dump"; target_stop_all; continue; }
	else
		src="$work/ibft-$v.bin"
		uefi "$v" "$v.ipxe" "$src" || { fail "no iBFT from the UEFI guest"; target_stop_all; continue; }
	fi

	echo "==> [$v] isbootctl ibft $(basename "$src")"
	if ! "$ctl" ibft "$src" | tee "$work/ibft-$v.txt"; then
		fail "isbootctl ibft failed on what the firmware left"; target_stop_all; continue
	fi
	"$ctl" ibft --json "$src" > "$work/ibft-$v.json"
	checks=(
		"j['initiator']['name'] == '$INITIATOR'"
		"j['boot'] == {'nic': 0, 'target': 0}"
		"j['nics'][0]['ip'] == '10.0.2.15'"
		"j['nics'][0]['mac'] == '$MAC'"
		"j['nics'][0]['gateway'] == '10.0.2.2'"
		"j['nics'][0]['prefix'] == 24"
		"j['targets'][0]['name'] == '$iqn'"
		"j['targets'][0]['ip'] == '10.0.2.2'"
		"j['targets'][0]['port'] == $PORT"
		"j['targets'][0]['lun'] == $lun"
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
		fail "decoded table differs from what iPXE was told"; target_stop_all; continue
	fi
	if [ "$chap" != none ]; then
		if grep -q -e "$SECRET_IN" -e "$SECRET_OUT" "$work/ibft-$v.txt" "$work/ibft-$v.json"; then
			fail "a CHAP secret was printed without --show-secrets"; target_stop_all; continue
		fi
		"$ctl" ibft --json --show-secrets "$src" > "$work/ibft-$v-secrets.json"
		if ! json_check "$work/ibft-$v-secrets.json" "j['targets'][0]['chap_secret'] == '$SECRET_IN'"; then
			fail "--show-secrets does not show the CHAP secret iPXE was given"; target_stop_all; continue
		fi
	fi
	if [ "$v" != "$auth" ]; then
		# Linux numbers the CHAP types as the table does: 0 none, 1 CHAP, 2 mutual.
		case $chap in none) ct=0 ;; chap) ct=1 ;; mutual) ct=2 ;; esac
		linux_agrees "$ct" || { fail "Linux reads the table differently"; target_stop_all; continue; }
		[ -z "${ISBOOT_QEMU_FIXTURES:-}" ] || fixture "$v" "$src"
	fi
	echo "ok [$v]: iPXE's iBFT decoded (initiator, NIC, target $iqn LUN $lun, chap=$chap)"

	# The guest reached the target as 10.0.2.2 through slirp; the namespace reaches it as
	# 127.0.0.1. The core's builder writes that change into a copy of iPXE's table.
	local_tbl="$work/ibft-$v-local.bin"
	if ! "$ctl" ibft --rewrite "127.0.0.1:$PORT" --output "$local_tbl" "$src" > "$work/rewrite-$v.txt"; then
		fail "isbootctl ibft --rewrite failed on iPXE's table"; target_stop_all; continue
	fi
	echo "==> [$v] isbootctl boot --ibft (iPXE's table, target rewritten to 127.0.0.1:$PORT; in $ns)"
	if ! ip netns exec "$ns" timeout "$STEP_TIMEOUT" "$ctl" boot --ibft "$local_tbl" \
		> "$work/boot-$v.log" 2>&1; then
		cat "$work/boot-$v.log" >&2
		fail "isbootctl boot with iPXE's table did not find a usable boot disk"; target_stop_all; continue
	fi
	cat "$work/boot-$v.log"
	target_stop_all
	if grep -q -e "$SECRET_IN" -e "$SECRET_OUT" "$work/boot-$v.log"; then
		fail "boot transcript shows a CHAP secret"; continue
	fi
	if ! grep -q "GEOM: da0p2: UFS" "$work/boot-$v.log"; then
		fail "boot transcript lacks the UFS root partition"; continue
	fi
	echo "ok [$v]: isbootctl boot logged in with iPXE's table and found the UFS root partition"
done

if [ "$fails" -ne 0 ]; then echo "qemu test: $fails failure(s)"; exit 1; fi
echo "qemu test: all ${#variants[@]} variant(s) passed"
