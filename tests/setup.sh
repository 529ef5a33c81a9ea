#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
# Installs everything the demo and the test suite need on a fresh Debian/Ubuntu machine.
# Idempotent: each step is skipped when what it provides is already there.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)

need_root() { if [ "$(id -u)" -ne 0 ]; then echo "sudo"; fi; }
SUDO=$(need_root)

# Debian packages: real iSCSI targets and peers, firmware for the qemu test (BIOS and UEFI), what
# the LIO guest's image is built with (tests/lio/image.sh), the kernel-header helpers, and the
# tools the scripts use.
pkgs=(tgt istgt libiscsi-bin qemu-system-x86 ipxe-qemu ovmf busybox-static cpio kmod makefs
      mandoc libclang-dev libck-dev freebsd-manpages socat iproute2 gdisk python3 python3-pip
      binutils lld llvm clang libiscsi-dev bmake)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # tgt's package starts a tgtd service; tests start their own, so keep the packaged one from running.
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Rust: the kernel build needs core/alloc sources; the executor's soundness check needs miri.
if command -v rustup >/dev/null; then
  rustup component list --installed 2>/dev/null | grep -q '^rust-src' || rustup component add rust-src
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
  rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
  if ! rustup toolchain list | grep -q '^nightly'; then rustup toolchain install nightly --profile minimal; fi
  rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^miri' \
    || rustup component add --toolchain nightly miri rust-src
fi
# The fuzz smoke run (tests/fuzz.sh) drives libFuzzer through cargo-fuzz.
if ! command -v cargo-fuzz >/dev/null; then cargo install --locked cargo-fuzz; fi

# FreeBSD kernel headers for the module build check (tests/kmod-check.sh unpacks them).
if [ -x "$top/tests/kmod-headers.sh" ]; then "$top/tests/kmod-headers.sh"; fi
# The LIO guest's kernel and initramfs (downloads Debian's cloud kernel once; cached outside the
# checkout), so that the tests themselves need no network.
"$top/tests/lio/image.sh" > /dev/null
echo "setup: done"
