#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# build.sh RELEASE: links the gated target/kmod/freebsdRELEASE/isboot.ko (the very object
# tests/kmod-check.sh built and checked; never rebuilt here) into a Linux executable,
# target/kmodsim/freebsdRELEASE/kmodsim:
#
#   bsd/*.c     zig cc -target x86_64-freebsd with the module's preprocessor view (kmod-env.sh's
#               KMOD_PPFLAGS: -D_KERNEL -DKLD_MODULE, opt_global.h, __FreeBSD_version), so it
#               builds the kernel's real structures; user-space code generation
#   kernel.o    ld -r isboot.ko bsd/*.o: the module's imports bind to the emulation
#   localise    objcopy keeps only host_* and kpi_* global: the kernel's malloc, free, printf,
#               memcpy... can never meet glibc's
#   linux/*.c   gcc, then gcc -no-pie (the module's R_X86_64_32S relocations need the image
#               below 2 GiB)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
major=${1:?usage: build.sh 14|15}
out="${ISBOOT_KMODSIM_DIR:-$top/target/kmodsim}/freebsd$major"
export ISBOOT_KMOD_DIR="${ISBOOT_KMOD_DIR:-$top/target/kmod}"
ko="$ISBOOT_KMOD_DIR/freebsd$major/isboot.ko"

if [ ! -f "$ko" ]; then
  echo "kmodsim: $ko missing; building it with tests/kmod-check.sh" >&2
  ISBOOT_KMOD_VERSIONS="$major" "$top/tests/kmod-check.sh" >&2
fi

# shellcheck source=tests/kmod-env.sh
source "$top/tests/kmod-env.sh"
kmod_env "$major"
mkdir -p "$out/obj"

stamp="$out/obj/stamp"
newest=$(find "$here" "$ko" -newer "$stamp" -print -quit 2>/dev/null || echo rebuild)
if [ -f "$stamp" ] && [ -x "$out/kmodsim" ] && [ -z "$newest" ]; then
  exit 0
fi

bsd_flags=(-target x86_64-freebsd "${KMOD_PPFLAGS[@]}" -I "$here/bsd"
           -O1 -g -std=gnu11 -ffreestanding -fno-pic -fno-pie -fno-common -fno-strict-aliasing
           -fwrapv -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer -fno-stack-protector
           -fno-asynchronous-unwind-tables -fno-unwind-tables
           -Wall -Werror -Wno-unknown-pragmas -Wno-address-of-packed-member)
objs=()
for src in "$here"/bsd/*.c; do
  o="$out/obj/bsd-$(basename "${src%.c}").o"
  "$ZIG" cc "${bsd_flags[@]}" -c "$src" -o "$o"
  objs+=("$o")
done
ld -r -o "$out/obj/kernel.o" "$ko" "${objs[@]}"
objcopy --wildcard --keep-global-symbol='host_*' --keep-global-symbol='kpi_*' \
  "$out/obj/kernel.o" "$out/obj/kernel-local.o"
lobjs=()
for src in "$here"/linux/*.c; do
  o="$out/obj/linux-$(basename "${src%.c}").o"
  gcc -O1 -g -Wall -Werror -fno-omit-frame-pointer -fno-pie -c "$src" -o "$o"
  lobjs+=("$o")
done
gcc -no-pie -pthread -o "$out/kmodsim.tmp" "${lobjs[@]}" "$out/obj/kernel-local.o"
mv "$out/kmodsim.tmp" "$out/kmodsim"
touch "$stamp"
echo "kmodsim: built $out/kmodsim from $ko" >&2
