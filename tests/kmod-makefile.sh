#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# Runs the top-level FreeBSD Makefile with bmake on Linux against a minimal stand-in for
# bsd.kmod.mk and checks:
#   - the build commands (dry run, `-n`): driver/kmod/build-rust.sh for the Rust library and for
#     isbootctl, bindgen fed kmod.mk's include and define flags (with "-I." made absolute), the
#     Rust archive pre-linked from the module handler's entry points, the C helpers, the link;
#   - the toolchain check: a rustc older than the floor, or one without its sources, stops the
#     build with a sentence naming what to install; the floor is the same number in
#     driver/kmod/Cargo.toml, the Makefile, README.md, driver/kmod/README.md and the port;
#   - `make vendor` and the refusal on other architectures;
#   - a real `make install DESTDIR=...`: the installed files are exactly contrib/port/pkg-plist,
#     and they agree with the FILES sections of isboot.4 and isbootctl.8;
#   - the port: CONFLICTS_INSTALL names net/isboot-kmod's package, Makefile.crates lists exactly
#     the crates.io packages of both Cargo.lock files.
# What bsd.kmod.mk itself does is only testable on FreeBSD. Skipped (exit 0, with a message) when
# bmake is not installed.
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
	${INSTALL} -d ${DESTDIR}${KMODDIR}
	${INSTALL} -m 555 ${KMOD}.ko ${DESTDIR}${KMODDIR}/
cleandir:
MK

# The caller's environment (kmod-offline sets ISBOOT_VENDOR_DIR, a port PREFIX...) stays out.
mk() { (cd "$work/obj" && env -u ISBOOT_VENDOR_DIR -u RUSTC -u CARGO -u LIBCLANG_PATH -u PREFIX \
  -u KMODDIR -u DESTDIR -u SYSDIR MAKEOBJDIR="$work/obj" bmake -m "$work/mk" -f "$top/Makefile" -C "$top" \
  SYSDIR=/usr/src/sys LIBCLANG_PATH=/usr/local/llvm19/lib "$@"); }

fails=0
fail() { echo "kmod-makefile: $*" >&2; fails=$((fails + 1)); }
has() { # description, text, pattern (fixed string)
  grep -qF -- "$3" <<<"$2" || fail "$1: missing '$3'"
}

script="$top/driver/kmod/build-rust.sh"
build=$(mk -n all 2>&1)
has "rust" "$build" "env RUSTC=rustc CARGO=cargo LIBCLANG_PATH=/usr/local/llvm19/lib ISBOOT_KMOD_CFLAGS="
has "rust" "$build" "sh $script build $work/obj/rust"
has "isbootctl" "$build" "sh $script isbootctl $work/obj/rust/host"
has "bindgen flags" "$build" "ISBOOT_KMOD_CFLAGS=\"--target=x86_64-unknown-freebsd -nostdinc"
has "bindgen flags" "$build" " -I$work/obj "
has "bindgen flags" "$build" "-I/usr/src/sys -I/usr/src/sys/contrib/ck/include"
has "bindgen flags" "$build" "-DVIMAGE"
has "bindgen flags" "$build" "-I$top/bindings"
has "pre-link" "$build" "-r -u isboot_rust_load -u isboot_rust_quiesce -u isboot_rust_unload -o isboot_rust.o $work/obj/rust/x86_64-unknown-freebsd-kernel/release/libisboot.a"
has "C helpers" "$build" "helpers.c -o helpers.o"
has "C helpers" "$build" "helpers_net_cam.c -o helpers_net_cam.o"
has "link" "$build" "-r -o isboot.ko isboot_rust.o helpers.o helpers_net_cam.o"
has "options" "$build" 'echo "#define INET6 1" > opt_inet6.h'
has "man pages" "$build" "gzip -cn $top/contrib/isboot.4 > isboot.4.gz"
has "man pages" "$build" "gzip -cn $top/contrib/isbootctl/isbootctl.8 > isbootctl.8.gz"
if grep -F ISBOOT_KMOD_CFLAGS <<<"$build" | grep -q -- "-I\. "; then
  fail "bindgen got a relative -I."
fi
if grep -q -- '-Zbuild-std' <<<"$build"; then fail "the build still uses cargo -Zbuild-std"; fi
vendored=$(mk -n all ISBOOT_VENDOR_DIR=/dist/vendor 2>&1)
has "vendor dir" "$vendored" "ISBOOT_VENDOR_DIR=/dist/vendor"
has "make vendor" "$(mk -n vendor 2>&1)" "sh $script vendor $top/vendor"

# The toolchain floor: one number, and the build refuses anything older.
floor=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$top/driver/kmod/Cargo.toml")
[ -n "$floor" ] || fail "no rust-version in driver/kmod/Cargo.toml"
grep -q "Needs Rust $floor or newer" "$top/Makefile" || fail "the Makefile does not state Rust $floor"
grep -q "Rust $floor or newer" "$top/README.md" || fail "README.md does not state Rust $floor"
grep -q "Rust $floor or newer" "$top/driver/kmod/README.md" || fail "driver/kmod/README.md does not state Rust $floor"
grep -q ">=$floor.0:lang/" "$top/contrib/port/Makefile" || fail "the port does not require Rust $floor"
grep -q "^rust-version = \"$floor\"" "$top/bindings/Cargo.toml" || fail "bindings/Cargo.toml's rust-version is not $floor"
# Stand-ins for an old rustc, and for a current one whose sysroot lacks the sources.
mkdir -p "$work/bin" "$work/sysroot"
major=${floor%%.*} minor=${floor#*.}
cat > "$work/bin/rustc-old" <<EOF
#!/bin/sh
case "\$1" in --version) echo "rustc $major.$((minor - 1)).0 (fake 2025-01-01)" ;; --print) echo $work/sysroot ;; esac
EOF
sed "s/$major\.$((minor - 1))\.0/$floor.0/" "$work/bin/rustc-old" > "$work/bin/rustc-nosrc"
chmod +x "$work/bin/rustc-old" "$work/bin/rustc-nosrc"
rc=0
old=$(mk -n all RUSTC="$work/bin/rustc-old" 2>&1) || rc=$?
[ "$rc" -ne 0 ] || fail "a rustc older than $floor was accepted"
has "old rustc" "$old" "rustc $major.$((minor - 1)).0 is too old: isboot needs Rust $floor or newer"
if grep -q 'gzip\|build-rust.sh build' <<<"$old"; then fail "the build went on after the toolchain check failed"; fi
rc=0
nosrc=$(mk -n all RUSTC="$work/bin/rustc-nosrc" 2>&1) || rc=$?
[ "$rc" -ne 0 ] || fail "a rustc without its sources was accepted"
has "no rust-src" "$nosrc" "rustup component add rust-src"
# Installing needs no compiler.
mk -n install DESTDIR=/stage RUSTC="$work/bin/rustc-old" >/dev/null 2>&1 || fail "make install ran the toolchain check"

rc=0
other=$(mk -n all MACHINE_CPUARCH=arm64 2>&1) || rc=$?
if [ "$rc" -eq 0 ]; then fail "arm64 build was not refused"; fi
has "arm64" "$other" "built for amd64 only"

# A real install into a staging directory, from stand-in build products.
: > "$work/obj/isboot.ko"
mkdir -p "$work/obj/rust/host/release"
printf '#!/bin/sh\n' > "$work/obj/rust/host/release/isbootctl"
mk isboot.4.gz isbootctl.8.gz >/dev/null
stage="$work/stage"
mk install DESTDIR="$stage" >/dev/null
installed=$(cd "$stage" && find . -type f | sed 's|^\./|/|' | sort)
plist=$(grep -v '^@' "$top/contrib/port/pkg-plist" \
  | sed -e 's|^/%%KMODDIR%%|/boot/modules|' -e '\|^/|!s|^|/usr/local/|' | sort)
if [ "$installed" != "$plist" ]; then
  fail "make install and contrib/port/pkg-plist differ:"
  diff <(echo "$plist") <(echo "$installed") | sed -n 's/^[<>]/  &/p' >&2 || true
fi
for f in $installed; do
  case "$f" in
  */man/*) gzip -t "$stage$f" || fail "$f is not gzip'ed" ;;
  *) [ -x "$stage$f" ] || fail "$f is not executable" ;;
  esac
done
# The man pages' FILES: every path of ours they name is installed there, and every installed
# program, module and script is named.
files_of() { # man page -> the paths of its FILES section
  awk '/^\.Sh /{ in_files = ($2 == "FILES") } in_files && /^\.It Pa /{ print $3 }' "$1"
}
named=$( (files_of "$top/contrib/isboot.4"; files_of "$top/contrib/isbootctl/isbootctl.8") | sort -u)
[ -n "$named" ] || fail "no FILES entries found in the man pages"
for p in $named; do
  case "$(basename "$p")" in
  isboot*) grep -qx -- "$p" <<<"$installed" || fail "a man page's FILES names $p, which make install does not install" ;;
  esac
done
for f in $installed; do
  case "$f" in
  */man/*) ;;
  *) grep -qx -- "$f" <<<"$named" || fail "$f is installed but no man page's FILES names it" ;;
  esac
done

# The port.
port="$top/contrib/port"
grep -Eq '^CONFLICTS_INSTALL=[[:space:]]+isboot-kmod$' "$port/Makefile" \
  || fail "contrib/port/Makefile: CONFLICTS_INSTALL must name isboot-kmod (net/isboot-kmod)"
if ! "$port/crates.sh" | cmp -s - "$port/Makefile.crates"; then
  fail "contrib/port/Makefile.crates is not what contrib/port/crates.sh makes of the Cargo.lock files"
fi

if [ "$fails" -ne 0 ]; then
  echo "kmod-makefile: $fails check(s) failed; the build expansion was:" >&2
  echo "$build" >&2
  exit 1
fi
echo "kmod-makefile: ok (build, toolchain floor $floor, vendor, install set = pkg-plist = man FILES, port crates)"
