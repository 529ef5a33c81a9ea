# SPDX-License-Identifier: BSD-2-Clause
#
# isboot for FreeBSD/amd64: `make && make install` (as root) builds and installs the kernel
# module isboot.ko, the tool isbootctl, their man pages isboot(4) and isbootctl(8), and the rc.d
# script isbootifname. Then isboot_load="YES" in /boot/loader.conf.
#
# Needs Rust 1.91 or newer with its sources (FreeBSD's rust package includes them; with rustup,
# `rustup component add rust-src`), libclang for bindgen (`pkg install llvm`; LIBCLANG_PATH is
# found under /usr/local/llvm*/lib unless given) and the kernel sources (SYSDIR, default
# /usr/src/sys). The build checks the Rust version first and says what is missing.
#
# Offline: `make vendor` (once, with network) copies every crate the build needs into vendor/;
# from then on nothing is fetched. A port gets the same crates as distfiles (contrib/port).
#
# bsd.kmod.mk compiles the C helpers. driver/kmod/build-rust.sh builds the Rust static library:
# core, compiler_builtins and alloc compiled by rustc from the Rust sources for the kernel target
# (no SSE, no red zone, kernel code model, static relocations), then cargo --locked for
# driver/kmod against them (no -Zbuild-std, hence no crates.io for the standard library);
# bindgen reads the same headers with the same preprocessor flags as the C compiler. The kernel
# module linker step of bsd.kmod.mk links both into isboot.ko. tests/kmod-check.sh runs the same
# script on Linux.

KMOD=	isboot
SRCS=	helpers.c helpers_net_cam.c
SRCS+=	opt_inet.h opt_inet6.h opt_cam.h opt_scsi.h device_if.h bus_if.h
.PATH:	${.CURDIR}/bindings

KMODDIR?=	/boot/modules
PREFIX?=	/usr/local
CFLAGS+=	-I${.CURDIR}/bindings

.if !defined(KERNBUILDDIR)
# GENERIC kernels have VIMAGE since 13.0: CURVNET_SET and V_ variables must match the kernel.
CFLAGS+=	-DVIMAGE
opt_inet.h:
	echo "#define INET 1" > ${.TARGET}
opt_inet6.h:
	echo "#define INET6 1" > ${.TARGET}
.endif

RUSTC?=		rustc
CARGO?=		cargo
RUST_TARGET=	x86_64-unknown-freebsd-kernel
RUST_OUT=	${.OBJDIR}/rust
RUST_LIB=	${RUST_OUT}/${RUST_TARGET}/release/libisboot.a
ISBOOTCTL=	${RUST_OUT}/host/release/isbootctl
ISBOOT_RUST_SH=	${.CURDIR}/driver/kmod/build-rust.sh
# The Rust part enters the module as one relocatable object (ctfmerge and the kmod link take
# objects, not archives); the module handler's entry points pull in everything it needs.
RUST_ENTRY=	isboot_rust_load isboot_rust_quiesce isboot_rust_unload
OBJS+=		isboot_rust.o
CLEANFILES+=	isboot_rust.o isboot.4.gz isbootctl.8.gz

.if !defined(LIBCLANG_PATH)
LIBCLANG_PATH!=	ls -d /usr/local/llvm*/lib 2>/dev/null | sort -V | tail -n 1; echo
.endif
ISBOOT_RUST_ENV=	RUSTC=${RUSTC} CARGO=${CARGO}
.if !empty(LIBCLANG_PATH)
ISBOOT_RUST_ENV+=	LIBCLANG_PATH=${LIBCLANG_PATH}
.endif
.if defined(ISBOOT_VENDOR_DIR)
ISBOOT_RUST_ENV+=	ISBOOT_VENDOR_DIR=${ISBOOT_VENDOR_DIR}
.endif

# A build starts by checking the toolchain (version floor: driver/kmod/Cargo.toml's
# rust-version), so an old or incomplete Rust stops it with a sentence instead of a compiler
# error from deep inside core.
.if empty(.TARGETS) || make(all) || make(${KMOD}.ko) || make(isbootctl)
_ISBOOT_TOOLCHAIN!=	env ${ISBOOT_RUST_ENV} sh ${ISBOOT_RUST_SH} check 2>&1 || echo ISBOOT-FAILED
.if !empty(_ISBOOT_TOOLCHAIN:tW:M*ISBOOT-FAILED)
.error ${_ISBOOT_TOOLCHAIN:S/ISBOOT-FAILED//}
.endif
.endif

ISBOOT_SBINDIR?=	${PREFIX}/sbin
ISBOOT_MANDIR?=		${PREFIX}/share/man/man
ISBOOT_RCDIR?=		${PREFIX}/etc/rc.d

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
	env ${ISBOOT_RUST_ENV} ISBOOT_KMOD_CFLAGS="${ISBOOT_BINDGEN_FLAGS}" \
	    sh ${ISBOOT_RUST_SH} build ${RUST_OUT}

isboot_rust.o: ${RUST_LIB}
	${LD} -r ${RUST_ENTRY:S/^/-u /} -o ${.TARGET} ${RUST_LIB}

all: isbootctl isboot.4.gz isbootctl.8.gz
isbootctl: .PHONY
	env ${ISBOOT_RUST_ENV} sh ${ISBOOT_RUST_SH} isbootctl ${RUST_OUT}/host

isboot.4.gz: ${.CURDIR}/contrib/isboot.4
	gzip -cn ${.ALLSRC} > ${.TARGET}
isbootctl.8.gz: ${.CURDIR}/contrib/isbootctl/isbootctl.8
	gzip -cn ${.ALLSRC} > ${.TARGET}

# The same set as contrib/port/pkg-plist (tests/install-set.sh compares them).
afterinstall: _isboot_extras
_isboot_extras: .PHONY
	${INSTALL} -d ${DESTDIR}${ISBOOT_SBINDIR} ${DESTDIR}${ISBOOT_MANDIR}4 \
	    ${DESTDIR}${ISBOOT_MANDIR}8 ${DESTDIR}${ISBOOT_RCDIR}
	${INSTALL} ${STRIP} -m 555 ${ISBOOTCTL} ${DESTDIR}${ISBOOT_SBINDIR}/isbootctl
	${INSTALL} -m 444 isboot.4.gz ${DESTDIR}${ISBOOT_MANDIR}4/isboot.4.gz
	${INSTALL} -m 444 isbootctl.8.gz ${DESTDIR}${ISBOOT_MANDIR}8/isbootctl.8.gz
	${INSTALL} -m 555 ${.CURDIR}/contrib/isbootifname ${DESTDIR}${ISBOOT_RCDIR}/isbootifname

# Needs network: every crate of the module (bindgen included) and of isbootctl, for `make`
# without network afterwards.
vendor: .PHONY
	env ${ISBOOT_RUST_ENV} sh ${ISBOOT_RUST_SH} vendor ${ISBOOT_VENDOR_DIR:U${.CURDIR}/vendor}

cleandir: _isboot_rust_clean
_isboot_rust_clean: .PHONY
	rm -rf ${RUST_OUT}
