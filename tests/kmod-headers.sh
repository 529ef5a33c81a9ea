#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# Prepares FreeBSD kernel header trees for building isboot.ko on Linux (tests/kmod-check.sh).
#
# FreeBSD's headers, _KERNEL parts included, ship in PyPI's `ziglang` wheels: 0.15.2 carries FreeBSD
# 14.x, 0.17.1 carries 15.0. The wheel's zig also serves as the C compiler (`zig cc`). What the wheels
# lack is supplied here: Concurrency Kit headers (Debian libck-dev) with a kernel ck_md.h, the
# generated opt_*.h of a GENERIC-like kernel, empty kobj interface headers, and the few ACPICA
# declarations FreeBSD's ACPI headers expect.
#
# Result, per version V in 14 15:
#   target/kmod/freebsdV/env      shell fragment: ZIG, FREEBSD_VERSION, INCLUDES (ordered -isystem dirs)
#   target/kmod/freebsdV/extra/   the supplied headers
#   target/kmod/zig-X.Y.Z/        the unpacked wheel (zig binary and the FreeBSD headers)
# Idempotent: wheels are cached in target/kmod/dl and a stamp records each completed tree.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out="${ISBOOT_KMOD_DIR:-$top/target/kmod}"
dl="$out/dl"
# Bump when what this script generates changes, so cached trees are rebuilt.
layout=3

# version  ziglang  __FreeBSD_version (14.3-RELEASE, 15.0-RELEASE)
versions=("14 0.15.2 1403000" "15 0.17.1 1500068")

ck_src=/usr/include
if [ ! -f "$ck_src/ck_pr.h" ] || [ ! -d "$ck_src/gcc" ]; then
  echo "kmod-headers: Concurrency Kit headers missing ($ck_src/ck_pr.h): install Debian libck-dev" >&2
  exit 1
fi

wheel_of() { compgen -G "$dl/ziglang-$1-*.whl" | head -n1 || true; }

unpack_wheel() { # $1 zig version -> $out/zig-$1
  local zv=$1 dest="$out/zig-$1" whl
  [ -f "$dest/.complete" ] && return 0
  whl=$(wheel_of "$zv")
  if [ -z "$whl" ]; then
    mkdir -p "$dl"
    echo "kmod-headers: downloading ziglang==$zv"
    python3 -m pip download --quiet --no-deps --only-binary=:all: "ziglang==$zv" -d "$dl"
    whl=$(wheel_of "$zv")
    [ -n "$whl" ] || { echo "kmod-headers: pip left no ziglang-$zv wheel in $dl" >&2; exit 1; }
  fi
  rm -rf "$dest" "$dest.tmp"
  mkdir -p "$dest.tmp"
  # Only what `zig cc -c` for x86_64-freebsd needs: the binary, its std lib (zig locates its lib
  # directory by lib/std), clang's builtin headers, and FreeBSD's headers.
  python3 - "$whl" "$dest.tmp" <<'EOF'
import os, sys, zipfile
whl, dest = sys.argv[1], sys.argv[2]
keep = ("ziglang/zig", "ziglang/lib/std/", "ziglang/lib/include/",
        "ziglang/lib/libc/include/generic-freebsd/", "ziglang/lib/libc/include/x86_64-freebsd-none/")
with zipfile.ZipFile(whl) as z:
    for info in z.infolist():
        if not info.filename.startswith(keep) or info.is_dir():
            continue
        path = z.extract(info, dest)
        mode = (info.external_attr >> 16) & 0o777
        if mode:
            os.chmod(path, mode)
EOF
  chmod +x "$dest.tmp/ziglang/zig"
  touch "$dest.tmp/.complete"
  mv "$dest.tmp" "$dest"
}

make_extra() { # $1 dir
  local x=$1
  rm -rf "$x"
  mkdir -p "$x/gcc"
  # Concurrency Kit: the portable headers from libck-dev, the x86_64 gcc-style primitives, and a
  # ck_md.h matching the kernel's (sys/contrib/ck/include/ck_md.h): no SSE, no double-width CAS
  # helpers that need SSE registers, memory model RMO as the kernel assumes.
  cp "$ck_src"/ck_*.h "$x/"
  cp -r "$ck_src"/gcc/. "$x/gcc/"
  cat > "$x/ck_md.h" <<'EOF'
/* SPDX-License-Identifier: BSD-2-Clause */
/* Kernel configuration of Concurrency Kit, as FreeBSD's sys/contrib/ck/include/ck_md.h. */
#ifndef CK_MD_H
#define CK_MD_H
#define CK_MD_CACHELINE (64)
#define CK_MD_PAGESIZE (4096)
#define CK_MD_RTM_DISABLE
#define CK_MD_POINTER_PACK_DISABLE
#define CK_MD_VMA_BITS_UNKNOWN
#define CK_MD_RMO
#define CK_VERSION "0.7.1"
#define CK_GIT_SHA ""
#endif
EOF
  # Kernel options of GENERIC that change the headers' meaning (VIMAGE makes CURVNET_SET real).
  cat > "$x/opt_global.h" <<'EOF'
/* SPDX-License-Identifier: BSD-2-Clause */
#define SMP 1
#define MAC 1
#define VIMAGE 1
EOF
  echo '#define INET 1' > "$x/opt_inet.h"
  echo '#define INET6 1' > "$x/opt_inet6.h"
  for f in opt_cam.h opt_scsi.h opt_acpi.h opt_ddb.h opt_kstack_pages.h opt_vm.h opt_route.h \
           opt_ratelimit.h opt_kern_tls.h opt_ipsec.h opt_sctp.h opt_tcpdebug.h opt_rss.h \
           device_if.h bus_if.h; do
    : > "$x/$f"
  done
  # ACPICA is not in the wheels. FreeBSD's x86 ACPI helpers need only the table header and the
  # physical address type; declared here with ACPICA's names and layout (36-byte header).
  mkdir -p "$x/contrib/dev/acpica/include"
  cat > "$x/contrib/dev/acpica/include/acpi.h" <<'EOF'
/* SPDX-License-Identifier: BSD-2-Clause */
/* The subset of ACPICA's acpi.h that isboot's ACPI table lookup uses. */
#ifndef ISBOOT_ACPI_SUBSET_H
#define ISBOOT_ACPI_SUBSET_H
#include <sys/types.h>
typedef uint8_t UINT8;
typedef uint16_t UINT16;
typedef uint32_t UINT32;
typedef uint64_t UINT64;
typedef int32_t INT32;
typedef uint32_t ACPI_STATUS;
typedef uint64_t ACPI_PHYSICAL_ADDRESS;
typedef char *ACPI_STRING;
#define ACPI_NAMESEG_SIZE 4
#define ACPI_OEM_ID_SIZE 6
#define ACPI_OEM_TABLE_ID_SIZE 8
#define AE_OK ((ACPI_STATUS)0)
#define ACPI_SUCCESS(a) (!(a))
#define ACPI_FAILURE(a) (a)
typedef struct acpi_table_header {
	char Signature[ACPI_NAMESEG_SIZE];
	UINT32 Length;
	UINT8 Revision;
	UINT8 Checksum;
	char OemId[ACPI_OEM_ID_SIZE];
	char OemTableId[ACPI_OEM_TABLE_ID_SIZE];
	UINT32 OemRevision;
	char AslCompilerId[ACPI_NAMESEG_SIZE];
	UINT32 AslCompilerRevision;
} ACPI_TABLE_HEADER;
ACPI_STATUS AcpiGetTable(ACPI_STRING Signature, UINT32 Instance, ACPI_TABLE_HEADER **OutTable);
void AcpiPutTable(ACPI_TABLE_HEADER *Table);
#endif
EOF
}

for entry in "${versions[@]}"; do
  read -r major zv fbv <<<"$entry"
  dir="$out/freebsd$major"
  stamp="$dir/.stamp"
  want="layout=$layout zig=$zv version=$fbv"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f "$out/zig-$zv/.complete" ]; then
    continue
  fi
  unpack_wheel "$zv"
  libc="$out/zig-$zv/ziglang/lib/libc/include"
  for d in x86_64-freebsd-none generic-freebsd; do
    [ -f "$libc/$d/sys/param.h" ] || [ -d "$libc/$d/machine" ] \
      || { echo "kmod-headers: $libc/$d is not a FreeBSD header tree" >&2; exit 1; }
  done
  grep -q '_KERNEL' "$libc/generic-freebsd/sys/mutex.h" \
    || { echo "kmod-headers: ziglang $zv headers lack the kernel parts" >&2; exit 1; }
  mkdir -p "$dir"
  make_extra "$dir/extra"
  cat > "$dir/env" <<EOF
# Generated by tests/kmod-headers.sh: FreeBSD $major kernel headers from ziglang $zv.
ZIG='$out/zig-$zv/ziglang/zig'
FREEBSD_MAJOR=$major
FREEBSD_VERSION=$fbv
INCLUDES=('$dir/extra' '$libc/x86_64-freebsd-none' '$libc/generic-freebsd')
EOF
  echo "$want" > "$stamp"
  echo "kmod-headers: FreeBSD $major headers ready in $dir"
done
