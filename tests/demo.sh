#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# The demo: a FreeBSD boot disk served by a real iSCSI target on 127.0.0.1, and `isbootctl boot`
# doing what isboot.ko does at boot with a real iPXE iBFT pointed at that target.
#
#   1. installs what it needs (tests/setup.sh) and builds isbootctl;
#   2. builds a disk image laid out like a FreeBSD install: GPT with freebsd-boot and freebsd-ufs
#      partitions (sgdisk), the UFS file system made by makefs with /boot/loader.conf
#      (isboot_load="YES"), /etc/fstab and /etc/rc.conf (ifconfig_bootnet0="NOAUTO");
#   3. starts tgtd on 127.0.0.1 (a free port; set up by the test harness's isboot-target)
#      exporting it as LUN 1 with mutual CHAP (or ISBOOT_DEMO_AUTH=none|chap);
#   4. takes the iBFT iPXE wrote in qemu (tests/data/ibft/ibft-ipxe-dhcp-mutualchap.bin) and points
#      its boot target at the local tgtd (isbootctl ibft --rewrite, which uses the core's builder);
#   5. runs `isbootctl boot --ibft` with it and prints the boot transcript.
# Cleans up (tgtd, temporary files) on any exit. Needs root for apt and tgtd.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/tests/qemu/lib.sh"

# ISBOOT_DEMO_AUTH=none|chap|mutual picks the iPXE table (default mutual CHAP). The credentials are
# what iPXE was given when it wrote each table (tests/data/ibft/ibft-ipxe-dhcp-*.txt).
auth=${ISBOOT_DEMO_AUTH:-mutual}
USER_IN=rigin SECRET_IN=rigin-secret-12
USER_OUT=rigout SECRET_OUT=rigout-secret-12
case $auth in
none) FIXTURE=ibft-ipxe-dhcp-nochap.bin TARGET_IQN=iqn.2025-01.test.rig:tgt-nochap creds=() ;;
chap) FIXTURE=ibft-ipxe-dhcp-chap.bin TARGET_IQN=iqn.2025-01.test.rig:tgt-chap creds=(--chap "$USER_IN:$SECRET_IN") ;;
mutual) FIXTURE=ibft-ipxe-dhcp-mutualchap.bin TARGET_IQN=iqn.2025-01.test.rig:tgt-mutual
	creds=(--chap "$USER_IN:$SECRET_IN" --mutual "$USER_OUT:$SECRET_OUT") ;;
*) echo "ISBOOT_DEMO_AUTH must be none, chap or mutual" >&2; exit 2 ;;
esac
FIXTURE="$top/tests/data/ibft/$FIXTURE"

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

if [ -z "${ISBOOT_DEMO_NO_SETUP:-}" ]; then
	say "installing what the demo needs (tests/setup.sh)"
	"$top/tests/setup.sh"
fi

say "building isbootctl and isboot-target (cargo build --release)"
(cd "$top" && cargo build --release -q -p isbootctl -p isboot-tests --bin isbootctl --bin isboot-target)
ctl="${CARGO_TARGET_DIR:-$top/target}/release/isbootctl"
ISBOOT_TARGET="${CARGO_TARGET_DIR:-$top/target}/release/isboot-target"

work=$(mktemp -d /tmp/isboot-demo.XXXXXX)
cleanup() {
	rc=$?
	trap - EXIT INT TERM
	target_stop_all || true
	if [ "$rc" -ne 0 ] && [ -s "$work/target0.log" ]; then
		echo "--- tgtd log" >&2
		tail -n 20 "$work/target0.log" >&2
	fi
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "building a FreeBSD boot disk image (GPT: freebsd-boot + freebsd-ufs)"
disk="$work/disk.img"
make_freebsd_disk "$work" "$disk"
"$ctl" part "$disk"

say "starting tgtd on 127.0.0.1 (target $TARGET_IQN, LUN 1, auth $auth)"
target_start "$work" tgtd --iqn "$TARGET_IQN" --disk "$disk" ${creds[@]+"${creds[@]}"}
port=$TARGET_PORT
echo "tgtd listening on 127.0.0.1:$port"

say "the iBFT iPXE wrote in qemu ($(basename "$FIXTURE"))"
"$ctl" ibft "$FIXTURE"

say "pointing its boot target at 127.0.0.1:$port (isbootctl ibft --rewrite)"
"$ctl" ibft --rewrite "127.0.0.1:$port" --output "$work/ibft-local.bin" "$FIXTURE"

say "isbootctl boot --ibft ibft-local.bin: what isboot.ko does at boot"
"$ctl" boot --ibft "$work/ibft-local.bin"
