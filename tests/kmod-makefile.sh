#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# Expands the top-level FreeBSD Makefile with bmake on Linux (dry run, `-n`) against a minimal
# stand-in for bsd.kmod.mk, and checks the commands it would run: cargo for the kernel target with
# -Zbuild-std, bindgen fed kmod.mk's include and define flags (with "-I." made absolute), the Rust
# archive pre-linked from the module handler's entry points, the install destinations, and the
# refusal on other architectures. What bsd.kmod.mk itself does is only testable on FreeBSD.
# Skipped (exit 0, with a message) when bmake is not installed.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v bmake >/dev/null; then
  echo "kmod-makefile: bmake not installed; skipped"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/mk" "$work/obj"
echo '.MAIN: all' > "$work/mk/sys.mk"
cat > "$work/mk/bsd.kmod.mk" <<'MK'
# Stand-in for FreeBSD's bsd.kmod.mk: the variables and targets isboot's Makefile builds on.
CFLAGS+=	-O2 -D_KERNEL -DKLD_MODULE -nostdinc -I. -I${SYSDIR} -I${SYSDIR}/contrib/ck/include -Wall
MACHINE_CPUARCH?=	amd64
LD?=	ld.lld
INSTALL?=	install
_ILINKS=	machine x86
OBJS+=	${SRCS:N*.h:R:S/$/.o/g}
all: ${KMOD}.ko
${KMOD}.ko: ${OBJS}
	${LD} -r -o ${.TARGET} ${OBJS}
.for _s in ${SRCS:M*.c}
${_s:R}.o: ${_s}
	${CC} ${CFLAGS} -c ${.ALLSRC} -o ${.TARGET}
.endfor
${_ILINKS}:
	ln -sf ${SYSDIR}/${.TARGET} ${.TARGET}
.for _src in ${SRCS:M*.h}
.if !target(${_src})
${_src}:
	: > ${.TARGET}
.endif
.endfor
install: afterinstall
	${INSTALL} ${KMOD}.ko ${DESTDIR}${KMODDIR}/
cleandir:
MK

mk() { (cd "$work/obj" && bmake -m "$work/mk" -f "$top/Makefile" -C "$top" .OBJDIR="$work/obj" \
  SYSDIR=/usr/src/sys LIBCLANG_PATH=/usr/local/llvm19/lib "$@"); }

fails=0
has() { # description, text, pattern (fixed string)
  if ! grep -qF -- "$3" <<<"$2"; then
    echo "kmod-makefile: $1: missing '$3'" >&2
    fails=$((fails + 1))
  fi
}

build=$(mk -n all 2>&1)
has "cargo" "$build" "env RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=$work/obj/cargo"
has "cargo" "$build" "cargo build --release -Zbuild-std=core,alloc -Zjson-target-spec"
has "cargo" "$build" "--target $top/driver/kmod/x86_64-unknown-freebsd-kernel.json"
has "libclang" "$build" "LIBCLANG_PATH=/usr/local/llvm19/lib"
has "rustflags" "$build" "RUSTFLAGS=\"--remap-path-prefix=$top=isboot"
has "bindgen flags" "$build" "ISBOOT_KMOD_CFLAGS=\"--target=x86_64-unknown-freebsd -nostdinc"
has "bindgen flags" "$build" " -I$work/obj "
has "bindgen flags" "$build" "-I/usr/src/sys -I/usr/src/sys/contrib/ck/include"
has "bindgen flags" "$build" "-DVIMAGE"
has "bindgen flags" "$build" "-I$top/bindings"
has "pre-link" "$build" "-r -u isboot_rust_load -u isboot_rust_quiesce -u isboot_rust_unload -o isboot_rust.o $work/obj/cargo/x86_64-unknown-freebsd-kernel/release/libisboot.a"
has "C helpers" "$build" "helpers.c -o helpers.o"
has "C helpers" "$build" "helpers_net_cam.c -o helpers_net_cam.o"
has "link" "$build" "-r -o isboot.ko isboot_rust.o helpers.o helpers_net_cam.o"
has "options" "$build" 'echo "#define INET6 1" > opt_inet6.h'
if grep -F ISBOOT_KMOD_CFLAGS <<<"$build" | grep -q -- "-I\. "; then
  echo "kmod-makefile: bindgen got a relative -I." >&2
  fails=$((fails + 1))
fi

install=$(mk -n install DESTDIR=/stage 2>&1)
has "install" "$install" "isboot.ko /stage/boot/modules/"
has "install" "$install" "/stage/usr/local/share/man/man4/isboot.4"
has "install" "$install" "/stage/usr/local/etc/rc.d/isbootifname"

rc=0
other=$(mk -n all MACHINE_CPUARCH=arm64 2>&1) || rc=$?
if [ "$rc" -eq 0 ]; then echo "kmod-makefile: arm64 build was not refused" >&2; fails=$((fails + 1)); fi
has "arm64" "$other" "built for amd64 only"

if [ "$fails" -ne 0 ]; then
  echo "kmod-makefile: $fails check(s) failed; the expansion was:" >&2
  echo "$build" >&2
  exit 1
fi
echo "kmod-makefile: ok (cargo, bindgen flags, pre-link, link and install expand as intended)"
