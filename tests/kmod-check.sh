#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# Builds isboot.ko on Linux against FreeBSD 14 and 15 kernel headers, the way bsd.kmod.mk builds it
# on FreeBSD, and fails unless each object is kernel-clean and within its size limit
# (tests/kmod-gate.py).
#
#   C helpers   zig cc -target x86_64-freebsd with bsd.kmod.mk's amd64 flags and the real
#               __FreeBSD_version of each release (zig predefines major*100000+500)
#   Rust        driver/kmod/build-rust.sh, the FreeBSD Makefile's recipe: core, compiler_builtins
#               and alloc compiled by rustc from rust-src into a private sysroot, then cargo for
#               driver/kmod/x86_64-unknown-freebsd-kernel.json against it (vendored crates from
#               ISBOOT_VENDOR_DIR or vendor/ when present), bindgen seeing the same headers and
#               flags as the C compiler
#   link        ld.lld -m elf_x86_64_fbsd -r -T driver/kmod/ldscript.kmod.amd64, then every
#               global localised and debug info stripped (kmod.mk with EXPORT_SYMS=NO)
#
# Leaves target/kmod/freebsd14/isboot.ko and target/kmod/freebsd15/isboot.ko.
# ISBOOT_KMOD_VERSIONS="14" limits the releases; the gate's own test runs first.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out="${ISBOOT_KMOD_DIR:-$top/target/kmod}"
export ISBOOT_KMOD_DIR="$out"
read -r -a versions <<<"${ISBOOT_KMOD_VERSIONS:-14 15}"

# The most an isboot.ko may load (kmod-gate.py --max-loaded: code, read-only data and data as
# linked, page padding included): the issue's budget, 256 KiB. The module loads 258,280 bytes
# on FreeBSD 14 and 15 (driver/kmod/README.md, "Size").
max_loaded=$((256 * 1024))

for tool in ld.lld llvm-objcopy llvm-nm objdump python3 cargo; do
  command -v "$tool" >/dev/null || { echo "kmod-check: $tool missing (tests/setup.sh installs it)" >&2; exit 1; }
done

# shellcheck source=tests/kmod-env.sh
source "$top/tests/kmod-env.sh"
"$top/tests/kmod-headers.sh"
"$top/tests/kmod-gate-test.sh"
"$top/tests/kmod-contract-test.sh"
"$top/tests/kmod-makefile.sh"

# bindgen (libclang) and the C compiler must agree on every size, alignment and field offset the
# Rust side uses: bindings/build.rs writes them as C static assertions, compiled here with the
# module's flags. Types bindgen names but C cannot (tags nested inside another struct are at file
# scope in C) show up as incomplete or unknown types; only those lines are dropped, never a
# failed assertion.
check_layout() { # dir obj cflags...
  local dir=$1 obj=$2
  shift 2
  local src
  src=$(ls -t "$dir"/cargo/x86_64-unknown-freebsd-kernel/release/build/isboot-bindings-*/out/layout-check.c | head -n1)
  cp "$src" "$obj/layout-check.c"
  if ! "$ZIG" cc "$@" -c "$obj/layout-check.c" -o "$obj/layout-check.o" 2> "$obj/layout-check.err"; then
    local unnamed other
    unnamed=$(grep -E 'layout-check\.c:[0-9]+:[0-9]+: error: .*(incomplete type|unknown type name)' \
      "$obj/layout-check.err" | cut -d: -f2 | sort -un || true)
    other=$(grep -E 'layout-check\.c:[0-9]+:[0-9]+: error:' "$obj/layout-check.err" \
      | grep -vE 'incomplete type|unknown type name' || true)
    if [ -n "$other" ] || [ -z "$unnamed" ]; then
      echo "kmod-check: bindgen and the C compiler disagree on layouts:" >&2
      grep -E 'error' "$obj/layout-check.err" | head -n 20 >&2
      return 1
    fi
    sed -i "$(printf '%sd;' $unnamed)" "$obj/layout-check.c"
    "$ZIG" cc "$@" -c "$obj/layout-check.c" -o "$obj/layout-check.o"
  fi
  # The check must be able to fail: one size off by one has to be rejected.
  sed '0,/_Static_assert(sizeof(\(.*\)) == \([0-9]*\),/s//_Static_assert(sizeof(\1) == \2 + 1,/' \
    "$obj/layout-check.c" > "$obj/layout-tampered.c"
  if "$ZIG" cc "$@" -c "$obj/layout-tampered.c" -o "$obj/layout-tampered.o" 2>/dev/null; then
    echo "kmod-check: a wrong size in layout-check.c was accepted: the layout check is not working" >&2
    return 1
  fi
  echo "kmod-check: layouts agree ($(grep -c _Static_assert "$obj/layout-check.c") assertions)"
}

build_one() {
  local major=$1
  ( # a subshell: each release's environment stays its own
    kmod_env "$major"
    local dir="$KMOD_DIR" obj="$KMOD_DIR/obj"
    mkdir -p "$obj"
    local t0=$SECONDS src objs=()
    for src in "$top"/bindings/helpers*.c; do
      local o="$obj/$(basename "${src%.c}").o"
      "$ZIG" cc "${KMOD_CFLAGS[@]}" -c "$src" -o "$o"
      objs+=("$o")
    done

    local lib="$KMOD_RUST_OUT/x86_64-unknown-freebsd-kernel/release/libisboot.a"
    "$top/driver/kmod/build-rust.sh" build "$KMOD_RUST_OUT" --quiet

    check_layout "$dir" "$obj" "${KMOD_CFLAGS[@]}"

    # As the Makefile: the Rust archive becomes one object holding what the module handler's
    # entry points need, then kmod.mk's link.
    ld.lld -m elf_x86_64_fbsd -r -u isboot_rust_load -u isboot_rust_quiesce -u isboot_rust_unload \
      -o "$obj/isboot_rust.o" "$lib"
    local ko="$dir/isboot.ko"
    ld.lld -m elf_x86_64_fbsd -r -T "$top/driver/kmod/ldscript.kmod.amd64" -o "$ko.tmp" "${objs[@]}" \
      "$obj/isboot_rust.o"
    # The same object before stripping, for tests/kmodsim to resolve addresses to source lines;
    # never loaded, never gated.
    cp "$ko.tmp" "$dir/isboot.full.ko"
    llvm-nm --defined-only --extern-only --format=just-symbols "$ko.tmp" > "$obj/localize.txt"
    llvm-objcopy --strip-debug --localize-symbols="$obj/localize.txt" "$ko.tmp"
    mv "$ko.tmp" "$ko"
    echo "kmod-check: FreeBSD $major (__FreeBSD_version $FREEBSD_VERSION): built $ko in $((SECONDS - t0)) s"

    python3 "$top/tests/kmod-gate.py" "$ko" --max-loaded "$max_loaded" --headers "${INCLUDES[@]}"
    python3 "$top/tests/kmod-contract.py" "$ko" "$FREEBSD_VERSION"
  )
}

for v in "${versions[@]}"; do
  build_one "$v"
done
echo "kmod-check: ok (${versions[*]})"
