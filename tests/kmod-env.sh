# SPDX-License-Identifier: BSD-2-Clause
# Sourced by tests/kmod-check.sh and tests/kmod-lint.sh: the compiler view of one FreeBSD release.
#
#   kmod_env MAJOR   (after tests/kmod-headers.sh) sets
#     KMOD_DIR            target/kmod/freebsdMAJOR
#     ZIG, FREEBSD_VERSION, INCLUDES   from the release's env file
#     KMOD_CFLAGS         zig cc flags for the C helpers (bsd.kmod.mk's amd64 set, kern.mk warnings)
#     KMOD_PPFLAGS        the preprocessor part of KMOD_CFLAGS alone (tests/kmodsim builds the
#                         FreeBSD half of its harness with the module's view of the headers)
#     ISBOOT_KMOD_CFLAGS  (exported) what bindgen sees: the same preprocessor view
#     KMOD_RUST_OUT       driver/kmod/build-rust.sh's cargo target directory
#     ISBOOT_SYSROOT      (exported) its core/alloc sysroot, shared by the releases
#   kmod_cargo SUBCOMMAND ARGS...   cargo for the kernel target as the FreeBSD Makefile runs it
#                                   (driver/kmod/build-rust.sh: private sysroot, vendored crates)
kmod_env() {
  local major=$1 d inc=()
  local out="${ISBOOT_KMOD_DIR:-$top/target/kmod}"
  KMOD_DIR="$out/freebsd$major"
  # shellcheck source=/dev/null
  source "$KMOD_DIR/env"
  for d in "${INCLUDES[@]}"; do inc+=(-isystem "$d"); done
  # What both the C compiler and bindgen see.
  local pp=(-D_KERNEL -DKLD_MODULE -nostdinc "${inc[@]}" -include opt_global.h
            -U__FreeBSD_version "-D__FreeBSD_version=$FREEBSD_VERSION")
  KMOD_PPFLAGS=("${pp[@]}")
  # bsd.kmod.mk's amd64 code generation flags; -mcpu keeps zig from re-enabling SSE, and
  # -fno-unwind-tables keeps it from emitting .eh_frame.
  KMOD_CFLAGS=(-target x86_64-freebsd -mcpu=x86_64-sse-sse2-mmx "${pp[@]}" -I "$top/bindings"
               -O2 -pipe -std=gnu99 -ffreestanding -fwrapv -fno-common -fno-strict-aliasing
               -mcmodel=kernel -mno-red-zone -mno-mmx -mno-sse -msoft-float
               -fno-asynchronous-unwind-tables -fno-unwind-tables -fno-omit-frame-pointer
               -mno-omit-leaf-frame-pointer -fstack-protector -fno-sanitize=undefined -g0
               "-ffile-prefix-map=$top=isboot"
               # sys/conf/kern.mk's warning set for kernel code, as errors.
               -Wall -Werror -Wredundant-decls -Wnested-externs -Wstrict-prototypes
               -Wmissing-prototypes -Wpointer-arith -Wcast-qual -Wundef -Wno-pointer-sign
               -D__printf__=__freebsd_kprintf__ -Wmissing-include-dirs -Wno-unknown-pragmas)
  export ISBOOT_KMOD_CFLAGS="--target=x86_64-unknown-freebsd$major ${pp[*]} -ffreestanding -mcmodel=kernel -mno-red-zone -mno-sse -msoft-float"
  KMOD_RUST_OUT="$KMOD_DIR/cargo"
  # core/alloc for the kernel target depend on the compiler, not on the release: one for both.
  export ISBOOT_SYSROOT="$out/sysroot"
}

kmod_cargo() {
  "$top/driver/kmod/build-rust.sh" cargo "$KMOD_RUST_OUT" "$@"
}
