#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# End-to-end boot on a FreeBSD host: ctld exports a FreeBSD VM image over iSCSI on a private bhyve
# network and a bhyve VM boots with its root file system on it, through isboot.ko. Two ways in:
#
#   -m uefi       UEFI -> iPXE -> `sanboot`: iPXE loads the loader from the iSCSI disk and leaves
#                 an iBFT, from which isboot.ko takes the target (the default).
#   -m bhyveload  no firmware and no iBFT: bhyveload(8) runs the loader from a boot directory on
#                 the host and passes the target as loader tunables (net.isboot.root_path and
#                 friends, written by `isbootctl loader-conf --bhyveload`), the NIC either as
#                 net.isboot.nic_* (-n tunables) or as the boot.netif.* a network-booted loader
#                 exports (-n netif).
#
# A script inside the guest checks that root is on the iSCSI disk, that net.isboot is populated
# (net.isboot.device names that disk) and, without an iBFT, that no CHAP secret is left in the
# kernel environment; it prints ISBOOT-RESULT on the serial console and powers off. See
# tests/bhyve/README.md for the prerequisites.
#
# usage: tests/bhyve/run.sh [-m uefi|bhyveload] [-n tunables|netif] [-a none|chap|mutual] [-t SECONDS]
# environment: ISBOOT_KO, ISBOOTCTL, VM_IMAGE, IPXE_EFI, UEFI_FW (see README.md)
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
auth=chap
limit=600
mode=uefi
nicfrom=tunables
usage="usage: $0 [-m uefi|bhyveload] [-n tunables|netif] [-a none|chap|mutual] [-t SECONDS]"
while getopts a:m:n:t: opt; do
	case $opt in
	a) auth=$OPTARG ;;
	m) mode=$OPTARG ;;
	n) nicfrom=$OPTARG ;;
	t) limit=$OPTARG ;;
	*) echo "$usage" >&2; exit 2 ;;
	esac
done
case $auth in none|chap|mutual) ;; *) echo "bad -a $auth; $usage" >&2; exit 2 ;; esac
case $mode in uefi|bhyveload) ;; *) echo "bad -m $mode; $usage" >&2; exit 2 ;; esac
case $nicfrom in tunables|netif) ;; *) echo "bad -n $nicfrom; $usage" >&2; exit 2 ;; esac

ISBOOT_KO=${ISBOOT_KO:-$top/isboot.ko}
# Built by make (RUST_OUT in the Makefile), else the installed one.
ISBOOTCTL=${ISBOOTCTL:-$top/rust/host/release/isbootctl}
[ -x "$ISBOOTCTL" ] || ISBOOTCTL=$(command -v isbootctl || echo "$ISBOOTCTL")
VM_IMAGE=${VM_IMAGE:-}
IPXE_EFI=${IPXE_EFI:-/usr/local/share/ipxe/ipxe.efi}
UEFI_FW=${UEFI_FW:-/usr/local/share/uefi-firmware/BHYVE_UEFI.fd}
# A private /24 that only the bridge this script creates uses.
NET=${ISBOOT_BHYVE_NET:-10.213.77}
HOST_IP=$NET.1
GUEST_IP=$NET.10
GUEST_MAC=58:9c:fc:0b:00:01
TARGET_IQN=iqn.2026-11.org.isboot:bhyve-root
INITIATOR_IQN=iqn.2026-11.org.isboot:bhyve-guest
CHAP_USER=bhyvein CHAP_SECRET=bhyvein-secret-12
MUTUAL_USER=bhyveout MUTUAL_SECRET=bhyveout-secret-12
VM=isboot-test-$$

die() { echo "bhyve test: $*" >&2; exit 1; }

[ "$(uname -s)" = FreeBSD ] || die "runs on FreeBSD hosts only"
[ "$(id -u)" -eq 0 ] || die "needs root (bhyve, ctld, ifconfig, mdconfig)"
for t in bhyve bhyvectl ctld mdconfig makefs gpart; do
	command -v $t >/dev/null || die "$t missing"
done
[ -r "$ISBOOT_KO" ] || die "isboot.ko not found at $ISBOOT_KO (run make, or set ISBOOT_KO)"
[ -n "$VM_IMAGE" ] && [ -r "$VM_IMAGE" ] || die "set VM_IMAGE to a FreeBSD VM image (.raw, UFS), see README.md"
if [ "$mode" = uefi ]; then
	[ -r "$IPXE_EFI" ] || die "iPXE EFI binary not found at $IPXE_EFI (set IPXE_EFI)"
	[ -r "$UEFI_FW" ] || die "bhyve UEFI firmware not found at $UEFI_FW (pkg install edk2-bhyve)"
else
	command -v bhyveload >/dev/null || die "bhyveload missing"
	[ -x "$ISBOOTCTL" ] || die "isbootctl not found at $ISBOOTCTL (run make, or set ISBOOTCTL)"
fi
if pgrep -x ctld >/dev/null; then die "ctld is already running; this test starts its own"; fi

work=$(mktemp -d /tmp/isboot-bhyve.XXXXXX)
md="" bridge="" tap="" ctld_pid="" bhyve_pid="" mnt="$work/mnt"

cleanup() {
	rc=$?
	trap - EXIT INT TERM
	if [ -n "$bhyve_pid" ]; then kill "$bhyve_pid" 2>/dev/null || true; fi
	bhyvectl --destroy --vm="$VM" >/dev/null 2>&1 || true
	if [ -n "$ctld_pid" ]; then
		kill "$ctld_pid" 2>/dev/null || true
		i=0
		while [ $i -lt 50 ] && kill -0 "$ctld_pid" 2>/dev/null; do sleep 0.2; i=$((i + 1)); done
		kill -9 "$ctld_pid" 2>/dev/null || true
		# ctld leaves its LUNs and ports in CTL when killed hard; remove ours by target name.
		ctladm portlist -q 2>/dev/null | awk -v t="$TARGET_IQN" '$0 ~ t {print $1}' |
			while read -r p; do ctladm port -r -p "$p" >/dev/null 2>&1 || true; done
	fi
	if mount | grep -q " on $mnt "; then umount -f "$mnt" || true; fi
	if [ -n "$md" ]; then mdconfig -d -u "$md" || true; fi
	if [ -n "$tap" ]; then ifconfig "$tap" destroy || true; fi
	if [ -n "$bridge" ]; then ifconfig "$bridge" destroy || true; fi
	if [ "$rc" -ne 0 ] && [ -r "$work/console.log" ]; then
		echo "--- guest console (last 60 lines)" >&2
		tail -n 60 "$work/console.log" >&2
	fi
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# tap(4) lives in if_tuntap since FreeBSD 12 (GENERIC has it built in; -n then does nothing).
for m in vmm if_bridge if_tuntap ctl; do kldload -n $m || die "cannot load kernel module $m"; done

echo "==> preparing the root disk from $VM_IMAGE"
cp "$VM_IMAGE" "$work/root.img"
truncate -s +512m "$work/root.img"
md=$(mdconfig -a -t vnode -f "$work/root.img")
gpart recover "$md" >/dev/null 2>&1 || true
rootpart=$(gpart show -p "$md" | awk '$4 == "freebsd-ufs" {print $3; exit}')
[ -n "$rootpart" ] || die "no freebsd-ufs partition in $VM_IMAGE"
mkdir -p "$mnt"
mount "/dev/$rootpart" "$mnt"
rootlabel=$(gpart show -l "$md" | awk '$4 ~ /rootfs/ {print $4; exit}')
# The guest sees the disk as daN, not as this md or the vtbdN the image was made for: root is
# mounted by its GPT label.
[ -n "$rootlabel" ] || die "the root partition of $VM_IMAGE has no GPT label rootfs"
rootspec="ufs:/dev/gpt/$rootlabel"
sed -i '' -E "s|^/dev/[a-z0-9]+p[0-9]+([[:space:]]+/[[:space:]])|/dev/gpt/$rootlabel\\1|" "$mnt/etc/fstab"
sed -i '' -e '/swap/d' "$mnt/etc/fstab"
mkdir -p "$mnt/boot/modules" "$mnt/usr/local/etc/rc.d"
cp "$ISBOOT_KO" "$mnt/boot/modules/isboot.ko"
install -m 555 "$top/contrib/isbootifname" "$mnt/usr/local/etc/rc.d/isbootifname"
cat >> "$mnt/boot/loader.conf" <<CONF
isboot_load="YES"
net.isboot.debug="1"
hw.ibft.verbose="1"
vfs.root.mountfrom="$rootspec"
console="comconsole,efi"
autoboot_delay="1"
CONF
if [ "$mode" = bhyveload ]; then
	# bhyveload's loader reads /boot from this directory on the host; the kernel then mounts
	# root from the iSCSI disk. Modules to load must be named in a loader.conf (the loader
	# does not take *_load from its environment, which is all -e sets).
	mkdir -p "$work/hostboot"
	cp -Rp "$mnt/boot" "$work/hostboot/boot"
	sed -i '' -e '/^console=/d' "$work/hostboot/boot/loader.conf"
fi
cat >> "$mnt/etc/rc.conf" <<'CONF'
ifconfig_bootnet0="NOAUTO"
ifconfig_DEFAULT=""
sendmail_enable="NONE"
CONF
# Runs last in the guest's boot: the verdict goes to the serial console, then power off.
cat > "$mnt/etc/rc.local" <<'CHECK'
#!/bin/sh
fail() { echo "ISBOOT-RESULT: FAIL $*" > /dev/console; shutdown -p now; exit 0; }
nic=$(sysctl -n net.isboot.nic 2>/dev/null) || fail "net.isboot.nic missing (isboot not loaded?)"
[ -n "$nic" ] || fail "net.isboot.nic is empty"
ver=$(sysctl -n net.isboot.version 2>/dev/null) || fail "net.isboot.version missing"
sysctl net.isboot hw.ibft > /dev/console 2>&1
rootdev=$(mount -p | awk '$2 == "/" {print $1; exit}')
prov=${rootdev#/dev/}
case $prov in
gpt/*|ufs/*|ufsid/*) prov=$(glabel status -s | awk -v l="$prov" '$1 == l {print $3; exit}') ;;
esac
disk=$(echo "$prov" | sed -E 's/(p|s)[0-9]+[a-h]?$//')
case $disk in da[0-9]*) ;; *) fail "root is on $rootdev ($prov), not on a da disk" ;; esac
bus=$(camcontrol devlist -v | awk -v d="$disk" '/^scbus/ {bus = $0} $0 ~ "[(,]" d "[,)]" {print bus; exit}')
case $bus in *isboot*) ;; *) fail "root disk $disk is on \"$bus\", not on isboot's SIM" ;; esac
ifconfig bootnet0 >/dev/null 2>&1 || fail "isbootifname did not rename $nic to bootnet0"
dev=$(sysctl -n net.isboot.device 2>/dev/null) || fail "net.isboot.device missing"
[ "$dev" = "$disk" ] || fail "net.isboot.device is \"$dev\", root is on $disk"
for v in net.isboot.chap_secret net.isboot.reverse_chap_secret; do
	if kenv -q "$v" >/dev/null 2>&1; then fail "$v is still in the kernel environment"; fi
done
echo "ISBOOT-RESULT: PASS root=$rootdev disk=$disk device=$dev nic=$nic version=$ver" > /dev/console
shutdown -p now
CHECK
chmod 555 "$mnt/etc/rc.local"
umount "$mnt"
mdconfig -d -u "$md"
md=""

echo "==> private network: bridge with $HOST_IP/24 and a tap for the VM"
bridge=$(ifconfig bridge create)
tap=$(ifconfig tap create)
ifconfig "$bridge" inet "$HOST_IP/24" addm "$tap" up
ifconfig "$tap" up

echo "==> ctld exporting $TARGET_IQN on $HOST_IP:3260 (auth $auth)"
case $auth in
none) authblock="	auth-type none" ;;
chap) authblock="	chap $CHAP_USER $CHAP_SECRET" ;;
mutual) authblock="	chap-mutual $CHAP_USER $CHAP_SECRET $MUTUAL_USER $MUTUAL_SECRET" ;;
esac
cat > "$work/ctl.conf" <<CONF
pidfile $work/ctld.pid
auth-group ag-isboot {
$authblock
}
portal-group pg-isboot {
	discovery-auth-group no-authentication
	listen $HOST_IP:3260
}
target $TARGET_IQN {
	auth-group ag-isboot
	portal-group pg-isboot
	lun 0 {
		path $work/root.img
		blocksize 512
	}
}
CONF
chmod 600 "$work/ctl.conf"
ctld -d -f "$work/ctl.conf" > "$work/ctld.log" 2>&1 &
ctld_pid=$!
i=0
until sockstat -4l -p 3260 | grep -q "$HOST_IP:3260"; do
	i=$((i + 1))
	[ $i -lt 50 ] || die "ctld did not listen on $HOST_IP:3260: $(cat "$work/ctld.log")"
	kill -0 "$ctld_pid" 2>/dev/null || die "ctld exited: $(cat "$work/ctld.log")"
	sleep 0.2
done

# boot_uefi: an EFI system partition with iPXE and its script; bhyve boots UEFI -> iPXE ->
# sanboot -> loader -> isboot.ko, which finds the iBFT iPXE left.
boot_uefi() {
echo "==> EFI system partition with iPXE and its script"
creds=""
case $auth in
chap) creds="set username $CHAP_USER
set password $CHAP_SECRET" ;;
mutual) creds="set username $CHAP_USER
set password $CHAP_SECRET
set reverse-username $MUTUAL_USER
set reverse-password $MUTUAL_SECRET" ;;
esac
mkdir -p "$work/esp/EFI/BOOT"
cp "$IPXE_EFI" "$work/esp/EFI/BOOT/BOOTX64.EFI"
# iPXE (1.21.1 and later) runs autoexec.ipxe from the file system it was loaded from.
cat > "$work/esp/autoexec.ipxe" <<IPXE
#!ipxe
set net0/ip $GUEST_IP
set net0/netmask 255.255.255.0
set net0/gateway $HOST_IP
ifopen net0
set initiator-iqn $INITIATOR_IQN
$creds
sanboot iscsi:$HOST_IP::3260:0:$TARGET_IQN || shell
IPXE
makefs -t msdos -o fat_type=16 -s 32m "$work/esp.img" "$work/esp" >/dev/null

echo "==> booting $VM (bhyve, UEFI -> iPXE -> sanboot -> loader -> isboot.ko), limit ${limit}s"
: > "$work/console.log"
bhyve -c 2 -m 2G -H -A -P \
	-s 0,hostbridge -s 2,virtio-net,"$tap",mac=$GUEST_MAC -s 3,ahci-hd,"$work/esp.img" \
	-s 31,lpc -l com1,stdio -l bootrom,"$UEFI_FW" "$VM" < /dev/null > "$work/console.log" 2>&1 &
bhyve_pid=$!
}

# boot_bhyveload: no firmware, no iBFT. The loader runs under bhyveload from the host's copy of
# /boot and hands the kernel the target as tunables; bhyve then runs the kernel.
boot_bhyveload() {
echo "==> loader tunables for $TARGET_IQN (isbootctl loader-conf, NIC from $nicfrom)"
set -- --portal "$HOST_IP:3260" --target "$TARGET_IQN" --lun 0 --initiator "$INITIATOR_IQN" \
	--source loader --mountfrom "$rootspec"
case $auth in
chap) set -- "$@" --chap "$CHAP_USER:$CHAP_SECRET" ;;
mutual) set -- "$@" --chap "$CHAP_USER:$CHAP_SECRET" --mutual "$MUTUAL_USER:$MUTUAL_SECRET" ;;
esac
if [ "$nicfrom" = tunables ]; then
	set -- "$@" --nic vtnet0 --address "$GUEST_IP/24" --gateway "$HOST_IP"
fi
tunables=$("$ISBOOTCTL" loader-conf "$@" --bhyveload) || die "isbootctl loader-conf failed"
if [ "$nicfrom" = netif ]; then
	# What stand/common/dev_net.c exports after a PXE boot of the loader.
	tunables="$tunables -e boot.netif.hwaddr=$GUEST_MAC -e boot.netif.ip=$GUEST_IP"
	tunables="$tunables -e boot.netif.netmask=255.255.255.0 -e boot.netif.gateway=0.0.0.0"
fi
echo "==> bhyveload from $work/hostboot with the tunables, then bhyve, limit ${limit}s"
: > "$work/console.log"
# isbootctl quoted every value for sh(1); eval undoes exactly that quoting.
eval "bhyveload -m 2G -h \"\$work/hostboot\" $tunables -e autoboot_delay=1 \"\$VM\"" \
	< /dev/null > "$work/loader.log" 2>&1 || { cat "$work/loader.log" >&2; die "bhyveload failed"; }
bhyve -c 2 -m 2G -H -A -P \
	-s 0,hostbridge -s 2,virtio-net,"$tap",mac=$GUEST_MAC \
	-s 31,lpc -l com1,stdio "$VM" < /dev/null > "$work/console.log" 2>&1 &
bhyve_pid=$!
}

if [ "$mode" = uefi ]; then boot_uefi; else boot_bhyveload; fi
i=0
while ! grep -q "ISBOOT-RESULT:" "$work/console.log"; do
	if ! kill -0 "$bhyve_pid" 2>/dev/null; then die "the VM stopped without a result"; fi
	i=$((i + 1))
	[ $i -lt $((limit)) ] || die "no result within ${limit}s"
	sleep 1
done
result=$(grep -a "ISBOOT-RESULT:" "$work/console.log" | head -n 1 | tr -d '\r')
echo "$result"
i=0
while kill -0 "$bhyve_pid" 2>/dev/null && [ $i -lt 120 ]; do sleep 1; i=$((i + 1)); done
case $result in
*PASS*) echo "bhyve test: passed ($mode, auth $auth$([ "$mode" = bhyveload ] && echo ", NIC from $nicfrom"))" ;;
*) die "guest reported failure" ;;
esac
