# SPDX-License-Identifier: BSD-2-Clause
#
# isboot.ko for FreeBSD: `make && make install` (as root), then isboot_load="YES" in
# /boot/loader.conf.
#
# Needs the kernel sources (SYSDIR, default /usr/src/sys), Rust from rustup with the rust-src
# component (`rustup component add rust-src`), and libclang for bindgen (`pkg install llvm`;
# LIBCLANG_PATH is found under /usr/local/llvm*/lib unless given).
#
# bsd.kmod.mk compiles the C helpers; cargo builds the Rust static library for the kernel target
# (no SSE, no red zone, kernel code model, static relocations) with core and alloc rebuilt for it
# (-Zbuild-std, enabled on a stable toolchain by RUSTC_BOOTSTRAP=1, as Rust-for-Linux does);
# bindgen reads the same headers with the same preprocessor flags as the C compiler; the kernel
# module linker step of bsd.kmod.mk links both into isboot.ko.

KMOD=	isboot
SRCS=	helpers.c helpers_net_cam.c
SRCS+=	opt_inet.h opt_inet6.h opt_cam.h opt_scsi.h device_if.h bus_if.h
.PATH:	${.CURDIR}/bindings

KMODDIR?=	/boot/modules
CFLAGS+=	-I${.CURDIR}/bindings

.if !defined(KERNBUILDDIR)
# GENERIC kernels have VIMAGE since 13.0: CURVNET_SET and V_ variables must match the kernel.
CFLAGS+=	-DVIMAGE
opt_inet.h:
	echo "#define INET 1" > ${.TARGET}
opt_inet6.h:
	echo "#define INET6 1" > ${.TARGET}
.endif

CARGO?=		cargo
RUST_TARGET=	x86_64-unknown-freebsd-kernel
RUST_TARGET_JSON= ${.CURDIR}/driver/kmod/${RUST_TARGET}.json
RUST_OUT=	${.OBJDIR}/cargo
RUST_LIB=	${RUST_OUT}/${RUST_TARGET}/release/libisboot.a
# The Rust part enters the module as one relocatable object (ctfmerge and the kmod link take
# objects, not archives); the module handler's entry points pull in everything it needs.
RUST_ENTRY=	isboot_rust_load isboot_rust_quiesce isboot_rust_unload
OBJS+=		isboot_rust.o
CLEANFILES+=	isboot_rust.o

.if !defined(LIBCLANG_PATH)
LIBCLANG_PATH!=	ls -d /usr/local/llvm*/lib 2>/dev/null | sort -V | tail -n 1; echo
.endif
.if !empty(LIBCLANG_PATH)
ISBOOT_CARGO_ENV=	LIBCLANG_PATH=${LIBCLANG_PATH}
.endif
# Panic locations name source files: keep the build machine's paths out of the module.
ISBOOT_SYSROOT!=	rustc --print sysroot 2>/dev/null || true
ISBOOT_RUSTFLAGS=	--remap-path-prefix=${.CURDIR}=isboot
.if defined(HOME)
ISBOOT_RUSTFLAGS+=	--remap-path-prefix=${CARGO_HOME:U${HOME}/.cargo}=cargo
.endif
.if !empty(ISBOOT_SYSROOT)
ISBOOT_RUSTFLAGS+=	--remap-path-prefix=${ISBOOT_SYSROOT}=rust
.endif

ISBOOT_MANDIR?=	/usr/local/share/man/man4
ISBOOT_RCDIR?=	/usr/local/etc/rc.d

.include <bsd.kmod.mk>

.if ${MACHINE_CPUARCH} != "amd64"
.error "isboot's Rust part is built for amd64 only (driver/kmod/${RUST_TARGET}.json)"
.endif

# bindgen sees what the C compiler sees: kmod.mk's include directories (with the object
# directory, holding the machine/x86 links and option headers, for "-I."), defines and
# forced includes.
ISBOOT_BINDGEN_FLAGS=	--target=x86_64-unknown-freebsd -nostdinc \
	${CFLAGS:M-[IDU]*:S/^-I.$/-I${.OBJDIR}/} -ffreestanding -mcmodel=kernel \
	-mno-red-zone -mno-sse -msoft-float
.if defined(KERNBUILDDIR)
ISBOOT_BINDGEN_FLAGS+=	-include ${KERNBUILDDIR}/opt_global.h
.endif

# cargo decides what is stale; always ask it.
${RUST_LIB}: .PHONY ${_ILINKS} ${SRCS:M*.h}
	@command -v ${CARGO} >/dev/null || { echo "isboot: cargo not found (install Rust with rustup)"; exit 1; }
	cd ${.CURDIR}/driver/kmod && env RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=${RUST_OUT} \
	    ISBOOT_KMOD_CFLAGS="${ISBOOT_BINDGEN_FLAGS}" RUSTFLAGS="${ISBOOT_RUSTFLAGS}" \
	    ${ISBOOT_CARGO_ENV} \
	    ${CARGO} build --release -Zbuild-std=core,alloc -Zjson-target-spec \
	    --target ${RUST_TARGET_JSON}

isboot_rust.o: ${RUST_LIB}
	${LD} -r ${RUST_ENTRY:S/^/-u /} -o ${.TARGET} ${RUST_LIB}

afterinstall: _isboot_extras
_isboot_extras: .PHONY
	${INSTALL} -d ${DESTDIR}${ISBOOT_MANDIR} ${DESTDIR}${ISBOOT_RCDIR}
	${INSTALL} -m 444 ${.CURDIR}/contrib/isboot.4 ${DESTDIR}${ISBOOT_MANDIR}/isboot.4
	${INSTALL} -m 555 ${.CURDIR}/contrib/isbootifname ${DESTDIR}${ISBOOT_RCDIR}/isbootifname

cleandir: _isboot_cargo_clean
_isboot_cargo_clean: .PHONY
	rm -rf ${RUST_OUT}
