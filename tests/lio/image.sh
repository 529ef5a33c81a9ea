#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Builds the small Linux guest that serves LIO (the Linux kernel iSCSI target) to the tests, and
# the UEFI firmware test's iBFT reader: Debian's cloud kernel plus a busybox-static initramfs whose
# /init (tests/lio/init) configures LIO through configfs.
#
# The result is cached outside the checkout, keyed by the kernel package's version, the busybox
# version and this script's and /init's contents, so a warm call only checks the key. Prints the
# directory holding `vmlinuz` and `initrd.img` as its last line.
#
#   tests/lio/image.sh            # build if missing, print the directory
#   tests/lio/image.sh --rebuild  # build even when cached
#
# Environment: ISBOOT_CACHE_DIR (default ${XDG_CACHE_HOME:-$HOME/.cache}/isboot-rs);
# ISBOOT_LIO_KERNEL_DEB=FILE builds from that linux-image-*.deb instead of asking apt.
# Needs dpkg-deb, apt-get (download only; no root), depmod/modprobe (kmod), cpio, busybox-static.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rebuild=""
case ${1:-} in
--rebuild) rebuild=1 ;;
"") ;;
*) echo "usage: $0 [--rebuild]" >&2; exit 2 ;;
esac

say() { echo "lio image: $*" >&2; }
die() { say "$*"; exit 1; }

cache=${ISBOOT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/isboot-rs}/lio
mkdir -p "$cache/debs"

for tool in dpkg-deb depmod modprobe cpio gzip flock sha256sum; do
	command -v "$tool" >/dev/null || die "$tool missing (run tests/setup.sh)"
done
busybox=/bin/busybox
# The initramfs has no libc: the busybox-static package's binary, not the dynamic one.
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed" ||
	die "busybox-static is not installed (run tests/setup.sh)"
bb_version=$(dpkg-query -W -f='${Version}' busybox-static)

# The kernel package: the one the cloud metapackage depends on now, at its candidate version. Both
# come from the local package lists, so a warm cache needs no network.
if [ -n "${ISBOOT_LIO_KERNEL_DEB:-}" ]; then
	deb=$ISBOOT_LIO_KERNEL_DEB
	[ -r "$deb" ] || die "ISBOOT_LIO_KERNEL_DEB=$deb is not readable"
	pkg=$(dpkg-deb -f "$deb" Package) ver=$(dpkg-deb -f "$deb" Version)
else
	deb=""
	# The candidate's record: "Depends: linux-image-6.1.0-57-cloud-amd64 (= 6.1.192-3)".
	dep=$(apt-cache show --no-all-versions linux-image-cloud-amd64 2>/dev/null |
		sed -n 's/^Depends: \(linux-image-[0-9][^ ]*-cloud-amd64\) (= \([^)]*\)).*/\1 \2/p' | head -n1)
	[ -n "$dep" ] || die "apt knows no linux-image-cloud-amd64 (a Debian amd64 package list is needed)"
	pkg=${dep% *} ver=${dep#* }
fi
inputs=$(cat "$here/image.sh" "$here/init" | sha256sum | cut -c1-12)
key="${pkg}_${ver}-bb${bb_version}-${inputs}"
key=${key//[^A-Za-z0-9._+-]/_}
out="$cache/$key"

# One builder at a time (tests start several guests at once); the others wait and reuse its result.
exec 9>"$cache/.lock"
flock -w 900 9 || die "waited 900 s for another build (lock $cache/.lock)"

if [ -z "$rebuild" ] && [ -s "$out/vmlinuz" ] && [ -s "$out/initrd.img" ]; then
	echo "$out"
	exit 0
fi

say "building $key"
if [ -z "$deb" ]; then
	# apt-get download names the file PACKAGE_VERSION_ARCH.deb, the epoch's colon as %3a.
	pattern="$cache/debs/${pkg}_${ver//:/%3a}_*.deb"
	deb=$(ls $pattern 2>/dev/null | head -n1 || true)
	if [ -z "$deb" ]; then
		say "downloading $pkg=$ver"
		sandbox=()
		# apt drops to user _apt for downloads, which cannot write to root's cache.
		[ "$(id -u)" -ne 0 ] || sandbox=(-o APT::Sandbox::User=root)
		if ! (cd "$cache/debs" && timeout 600 apt-get download -q "${sandbox[@]}" "$pkg=$ver" >&2); then
			# Offline with a newer package list: an older build still serves the tests.
			old=$(ls -dt "$cache"/linux-image-*/ 2>/dev/null | head -n1 || true)
			if [ -n "$old" ] && [ -s "$old/initrd.img" ]; then
				say "download failed; using the older build ${old%/}"
				echo "${old%/}"
				exit 0
			fi
			die "apt-get download $pkg=$ver failed"
		fi
		deb=$(ls $pattern | head -n1)
	fi
fi

work=$(mktemp -d "$cache/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work/pkg"
kv=$(ls "$work/pkg/lib/modules")
[ "$(echo "$kv" | wc -l)" = 1 ] || die "expected one kernel in $deb, found: $kv"
# The package ships no modules.dep (its postinst makes one).
depmod -b "$work/pkg" "$kv"

root="$work/root"
mkdir -p "$root"/{bin,dev,proc,sys,run,tmp,lib/modules}
cp "$busybox" "$root/bin/busybox"
"$root/bin/busybox" --list | while read -r applet; do
	# `busybox --list` names busybox itself: a link would replace the binary with a loop.
	[ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
# LIO with the iblock backstore, virtio for the disk and NIC, fw_cfg for the configuration, the
# kernel's iBFT reader (a second opinion in the UEFI test), hardware CRC32C for digests. Load
# order from modprobe, dependencies first.
: > "$root/modules.order"
for m in configfs target_core_iblock iscsi_target_mod virtio_pci virtio_net virtio_blk \
	qemu_fw_cfg iscsi_ibft crc32c_intel; do
	modprobe -d "$work/pkg" -S "$kv" --show-depends "$m"
done | awk '$1 == "insmod" && !seen[$2]++ { print $2 }' | while read -r ko; do
	cp "$ko" "$root/lib/modules/"
	basename "$ko" >> "$root/modules.order"
done
install -m 755 "$here/init" "$root/init"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -6 > "$work/initrd.img"
cp "$work/pkg/boot/vmlinuz-$kv" "$work/vmlinuz"
{
	echo "kernel $pkg $ver ($kv) from $(basename "$deb")"
	echo "busybox-static $bb_version"
	echo "inputs $inputs (sha256 of tests/lio/image.sh and tests/lio/init)"
	echo "modules $(tr '\n' ' ' < "$root/modules.order")"
} > "$work/manifest"

rm -rf "$out"
mkdir -p "$out"
mv "$work/vmlinuz" "$work/initrd.img" "$work/manifest" "$out/"
# Keep the three newest builds (checkouts of different ages may share the cache) and the
# packages they came from.
ls -dt "$cache"/linux-image-*/ | tail -n +4 | xargs -r rm -rf
ls -t "$cache"/debs/*.deb 2>/dev/null | tail -n +4 | xargs -r rm -f
say "built $out ($(du -sh "$out" | cut -f1))"
echo "$out"
