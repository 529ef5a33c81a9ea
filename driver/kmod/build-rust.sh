#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
#
# Builds isboot's Rust parts without network access. The FreeBSD Makefile and tests/kmod-check.sh
# (Linux) both call this script, so the module has one recipe.
#
# The kernel module's static library, libisboot.a:
#   1. core, compiler_builtins and alloc are compiled by rustc straight from the toolchain's
#      rust-src into a private sysroot (OUT/sysroot), as Rust-for-Linux builds its core. The
#      prebuilt ones use SSE and the red zone; cargo -Zbuild-std would resolve the standard
#      library's whole workspace, ~40 crates.io packages, at every build.
#   2. cargo builds driver/kmod for x86_64-unknown-freebsd-kernel.json against that sysroot.
# isbootctl: cargo builds it for the host.
# cargo always runs --locked. With a vendor directory (ISBOOT_VENDOR_DIR, else the top
# directory's vendor/ from `make vendor`) it also runs --offline with crates.io replaced by that
# directory; a port's USES=cargo configuration does the same replacement through CARGO_HOME.
#
# usage: build-rust.sh check                   toolchain new enough, rust-src installed
#        build-rust.sh sysroot OUT             step 1 (kept while compiler and recipe are the same)
#        build-rust.sh build OUT [ARGS...]     steps 1 and 2: OUT/x86_64-unknown-freebsd-kernel/release/libisboot.a
#        build-rust.sh cargo OUT SUB [ARGS...] step 1, then `cargo SUB` set up as step 2 (clippy)
#        build-rust.sh isbootctl OUT           OUT/release/isbootctl
#        build-rust.sh vendor DIR              (needs network) the crates of both into DIR
#
# Environment: RUSTC, CARGO (default rustc, cargo); ISBOOT_VENDOR_DIR; ISBOOT_SYSROOT (default
# OUT/sysroot: it depends on the compiler only, so several builds may share one); for bindgen
# ISBOOT_KMOD_CFLAGS or SYSDIR, and LIBCLANG_PATH (bindings/build.rs).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
target=x86_64-unknown-freebsd-kernel
target_json="$here/$target.json"
RUSTC=${RUSTC:-rustc}
CARGO=${CARGO:-cargo}
# Bump when the sysroot flags below change, so that existing sysroots are rebuilt.
recipe=3

die() {
	echo "isboot: $*" >&2
	exit 1
}

# The floor is driver/kmod/Cargo.toml's rust-version. cargo enforces it as well, but only after
# step 1, whose errors on an old compiler would say nothing about versions.
floor=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$here/Cargo.toml")
[ -n "$floor" ] || die "no rust-version in $here/Cargo.toml"

# "1.91.0" -> 1091, comparable as an integer.
vnum() {
	echo "$1" | awk -F. '{ printf "%d\n", $1 * 1000 + $2 }'
}

check() {
	for tool in "$RUSTC" "$CARGO"; do
		command -v "$tool" >/dev/null 2>&1 ||
			die "$tool not found: install Rust $floor or newer (pkg install rust, or https://rustup.rs)"
	done
	have=$("$RUSTC" --version | awk '{ print $2 }')
	if [ "$(vnum "${have%%-*}")" -lt "$(vnum "$floor")" ]; then
		die "rustc $have is too old: isboot needs Rust $floor or newer (pkg upgrade rust, or rustup update)"
	fi
	sysroot=$("$RUSTC" --print sysroot)
	library="$sysroot/lib/rustlib/src/rust/library"
	for c in core alloc compiler-builtins/compiler-builtins; do
		[ -f "$library/$c/src/lib.rs" ] ||
			die "$library/$c/src/lib.rs missing: the module is built from the Rust sources (the FreeBSD rust package installs them; with rustup: rustup component add rust-src)"
	done
}

vendor_dir() {
	vendor=${ISBOOT_VENDOR_DIR:-}
	if [ -z "$vendor" ] && [ -d "$top/vendor" ]; then
		vendor="$top/vendor"
	fi
	if [ -n "$vendor" ]; then
		[ -d "$vendor" ] || die "ISBOOT_VENDOR_DIR=$vendor is not a directory"
		vendor=$(cd "$vendor" && pwd)
	fi
}

# Panic locations name source files: the build machine's paths stay out of the module. rustc
# lets the last matching prefix win, so the vendor directory (maybe inside the top directory)
# comes after the top directory.
remaps() {
	r_top="--remap-path-prefix=$top=isboot"
	r_cargo="--remap-path-prefix=${CARGO_HOME:-${HOME:-/nonexistent}/.cargo}=cargo"
	r_vendor="--remap-path-prefix=${vendor:-$top/vendor}=vendor"
	r_rust="--remap-path-prefix=$sysroot=rust"
}

# Each library crate's edition, as its own manifest states it.
edition_of() {
	sed -n 's/^edition *= *"\([0-9]*\)".*/\1/p' "$1/Cargo.toml" | head -n 1
}

sysroot() {
	out=$1
	check
	dest=${ISBOOT_SYSROOT:-$out/sysroot}
	cfgs=$(RUSTC_BOOTSTRAP=1 "$RUSTC" -Zunstable-options --print cfg --target "$target_json")
	# compiler_builtins' build script enables f16/f128 where the compiler calls them reliable.
	fcfg=""
	for f in f16 f128; do
		if printf '%s\n' "$cfgs" | grep -qx "target_has_reliable_$f"; then
			fcfg="$fcfg --cfg ${f}_enabled"
		fi
	done
	# driver/kmod's release profile, which fat-LTOs these crates into the module: abort on panic,
	# one codegen unit. The rlibs hold object code as well as bitcode, so a build without LTO
	# (clippy, a debug build) links too. core and alloc are built for size: their generic code is
	# compiled by LLVM in the module's crate, at its opt-level 2 (only its MIR comes from here);
	# what remains is formatting, parsing and allocation growth, none of it per I/O (README.md
	# "Size"). compiler_builtins keeps opt-level 2.
	common="-Zunstable-options -Zforce-unstable-if-unmarked -Copt-level=z -Cpanic=abort
		-Ccodegen-units=1 -Cdebuginfo=0 --crate-type rlib --emit=link --cap-lints allow"
	remaps
	stamp_text=$(printf 'recipe %s\n%s\n%s\n%s\n%s\n' "$recipe" "$("$RUSTC" -vV)" \
		"$(cksum <"$target_json")" "$common $fcfg" "$r_rust")
	if [ -f "$dest/stamp" ] && [ "$(cat "$dest/stamp")" = "$stamp_text" ]; then
		return 0
	fi
	t0=$(date +%s)
	rm -rf "$dest" "$dest.tmp"
	tmp="$dest.tmp/lib/rustlib/$target/lib"
	mkdir -p "$tmp"
	rc() { # crate-name source-dir extra-flags...
		name=$1
		dir=$2
		shift 2
		set -- --crate-name "$name" --edition="$(edition_of "$dir")" --target "$target_json" \
			-Cmetadata="isboot-$name" --out-dir "$tmp" -L "dependency=$tmp" "$r_rust" \
			"$@" "$dir/src/lib.rs"
		# $common holds no paths: split at blanks on purpose.
		# shellcheck disable=SC2086
		RUSTC_BOOTSTRAP=1 "$RUSTC" $common "$@"
	}
	echo "isboot: building core, compiler_builtins and alloc for $target from $library"
	rc core "$library/core"
	# The cfgs compiler_builtins' build script sets for x86_64 (the mem feature stays off: the
	# kernel has memcpy and friends). It is never LTO'd: as in the standard library's own build,
	# one codegen unit per function, so that the link takes only the helpers the module calls
	# (one object holding all of them brings ~60 KiB of libm along with a single __ashlti3), and
	# no bitcode, which nothing reads.
	# shellcheck disable=SC2086
	rc compiler_builtins "$library/compiler-builtins/compiler-builtins" \
		--extern "core=$tmp/libcore.rlib" \
		--cfg 'feature="compiler-builtins"' --cfg 'feature="rustc-dep-of-std"' \
		--cfg 'feature="unstable-intrinsics"' --cfg 'feature="mem-unaligned"' \
		--cfg intrinsics_enabled --cfg arch_enabled --cfg optimizations_enabled $fcfg \
		-Ccodegen-units=10000 -Cembed-bitcode=no -Copt-level=2
	rc alloc "$library/alloc" \
		--extern "core=$tmp/libcore.rlib" \
		--extern "priv:compiler_builtins=$tmp/libcompiler_builtins.rlib"
	printf '%s\n' "$stamp_text" >"$dest.tmp/stamp"
	mv "$dest.tmp" "$dest"
	echo "isboot: sysroot ready in $(($(date +%s) - t0)) s ($dest)"
}

# cargo SUB [vendor options] ARGS...: --locked always, offline from the vendor directory if any.
cargo_run() {
	sub=$1
	shift
	set -- --locked "$@"
	if [ -n "$vendor" ]; then
		set -- --offline --config "source.crates-io.replace-with=\"isboot-vendor\"" \
			--config "source.isboot-vendor.directory=\"$vendor\"" "$@"
	fi
	"$CARGO" "$sub" "$@"
}

# cargo SUB for the kernel target against the private sysroot.
kernel_cargo() {
	out=$1
	sub=$2
	shift 2
	sysroot "$out"
	vendor_dir
	set -- --release --target "$target_json" "$@"
	# cargo from 1.95 takes a target JSON only behind this flag; older ones do not know it.
	if RUSTC_BOOTSTRAP=1 "$CARGO" -Z help 2>/dev/null | grep -q 'json-target-spec'; then
		set -- -Zjson-target-spec "$@"
	fi
	# CARGO_ENCODED_RUSTFLAGS (separator 0x1f) keeps paths with blanks whole and overrides
	# RUSTFLAGS; with --target it reaches the kernel crates only, not build scripts (bindgen).
	remaps
	sep=$(printf '\037')
	sysroot_dir=${ISBOOT_SYSROOT:-$out/sysroot}
	flags="--sysroot=$sysroot_dir$sep$r_top$sep$r_cargo$sep$r_vendor$sep$r_rust"
	# cargo does not look at the sysroot's files: a rebuilt sysroot (new recipe) would leave
	# crates compiled against the old core in OUT ("can't find crate"). Its stamp in the flags
	# makes cargo rebuild them.
	flags="$flags$sep-Cmetadata=isboot-sysroot-$(cksum <"$sysroot_dir/stamp" | awk '{ print $1 }')"
	# isboot-core builds its cold generic code (login, recovery, shutdown, control PDUs) for
	# size under this cfg: instantiated here, it would otherwise get this crate's opt-level 2.
	flags="$flags$sep--cfg${sep}isboot_kernel"
	cd "$here"
	export RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$out" CARGO_ENCODED_RUSTFLAGS="$flags" RUSTC
	cargo_run "$sub" "$@"
}

case "${1:-}" in
check)
	[ $# -eq 1 ] || die "usage: $0 check"
	check
	echo "isboot: rustc $have with its sources: ok (isboot needs $floor or newer)"
	;;
sysroot)
	[ $# -eq 2 ] || die "usage: $0 sysroot OUT"
	sysroot "$2"
	;;
build)
	[ $# -ge 2 ] || die "usage: $0 build OUT [CARGO-ARGS...]"
	out=$2
	shift 2
	kernel_cargo "$out" build "$@"
	;;
cargo)
	[ $# -ge 3 ] || die "usage: $0 cargo OUT SUBCOMMAND [ARGS...]"
	out=$2
	shift 2
	kernel_cargo "$out" "$@"
	;;
isbootctl)
	[ $# -eq 2 ] || die "usage: $0 isbootctl OUT"
	out=$2
	check
	vendor_dir
	cd "$top"
	# A port's CARGO_BUILD_TARGET would move the binary to OUT/TRIPLE/release.
	unset CARGO_BUILD_TARGET
	export CARGO_TARGET_DIR="$out" RUSTC
	cargo_run build --release -p isbootctl
	;;
vendor)
	[ $# -eq 2 ] || die "usage: $0 vendor DIR"
	command -v "$CARGO" >/dev/null 2>&1 || die "$CARGO not found"
	mkdir -p "$2"
	dir=$(cd "$2" && pwd)
	cd "$top"
	# Both workspaces: the module's (driver/kmod, with bindgen for the build) and isbootctl's.
	"$CARGO" vendor --quiet --locked --versioned-dirs --sync driver/kmod/Cargo.toml "$dir" >/dev/null
	echo "isboot: crates for the module and isbootctl vendored in $dir ($(ls "$dir" | wc -l | tr -d ' ') crates)"
	;;
*)
	die "usage: $0 check | sysroot OUT | build OUT [ARGS...] | cargo OUT SUBCOMMAND [ARGS...] | isbootctl OUT | vendor DIR"
	;;
esac
