#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# Tests tests/kmod-gate.py itself: a clean object passes, and each kind of kernel-unsafe object
# (SSE, x87, red zone, GOT relocation, constructor, unwinder symbol, undeclared symbol, too large)
# fails with the finding that names it. A gate that cannot fail would let a broken isboot.ko through.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
gate="$top/tests/kmod-gate.py"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/include/sys"
cat > "$work/include/sys/systm.h" <<'H'
int printf(const char *, ...);
extern int kernel_counter;
static __inline int kernel_inline(int x) { return (x + 1); }
H
# Userland headers sit beside the kernel's in a libc header tree; they must not count.
cat > "$work/include/stdio.h" <<'H'
struct FILE;
struct FILE *fopen(const char *, const char *);
H
mkdir -p "$work/include/arpa"
echo 'unsigned int inet_addr(const char *);' > "$work/include/arpa/inet.h"

obj() { # name, assembly -> object
  printf '%s\n' "$2" > "$work/$1.s"
  clang -target x86_64-unknown-freebsd -c "$work/$1.s" -o "$work/$1.o"
}

fails=0
expect() { # name, expected exit, expected text (for failures), extra gate arguments...
  local out rc=0
  out=$(python3 "$gate" "$work/$1.o" "${@:4}" --headers "$work/include" 2>&1) || rc=$?
  if [ "$rc" -ne "$2" ] || ! grep -qF -- "$3" <<<"$out"; then
    echo "kmod-gate-test: $1: expected exit $2 and '$3', got exit $rc:" >&2
    echo "$out" >&2
    fails=$((fails + 1))
  fi
}

# A kernel-style function: frame pointer, stack lowered before use, a call through the PLT,
# a PC-relative data reference and an absolute 64-bit pointer.
obj good '
	.text
	.globl f
	.type f,@function
f:	push %rbp
	mov %rsp,%rbp
	sub $0x10,%rsp
	mov %rdi,-0x8(%rbp)
	mov kernel_counter(%rip),%eax
	leaq msg(%rip),%rdi
	call printf@PLT
	add $0x10,%rsp
	pop %rbp
	ret
	.section .rodata
msg:	.asciz "hello"
	.data
ptr:	.quad f'
expect good 0 "clean"

obj sse '
	.text
	.globl g
g:	movaps %xmm0,(%rdi)
	ret'
expect sse 1 "SIMD/FPU instruction"

obj x87 '
	.text
	.globl g
g:	fldz
	fstp %st(0)
	ret'
expect x87 1 "SIMD/FPU instruction"

obj redzone_rsp '
	.text
	.globl g
g:	mov %rdi,-0x8(%rsp)
	ret'
expect redzone_rsp 1 "access below %rsp"

obj redzone_rbp '
	.text
	.globl g
g:	push %rbp
	mov %rsp,%rbp
	mov %rdi,-0x10(%rbp)
	pop %rbp
	ret'
expect redzone_rbp 1 "red zone"

obj gotpcrel '
	.text
	.globl g
g:	movq kernel_counter@GOTPCREL(%rip),%rax
	ret'
expect gotpcrel 1 "relocation R_X86_64_REX_GOTPCRELX"

obj abs32 '
	.text
	.globl g
g:	movl $kernel_counter,%eax
	ret'
expect abs32 1 "relocation R_X86_64_32 "

obj ctor '
	.text
	.globl g
g:	ret
	.section .init_array,"aw"
	.quad g'
expect ctor 1 "never runs constructors"

obj unwind '
	.text
	.globl g
g:	call _Unwind_Resume@PLT
	ret'
expect unwind 1 "undefined runtime symbol _Unwind_Resume"

obj undeclared '
	.text
	.globl g
g:	call strdup_from_userland@PLT
	ret'
expect undeclared 1 "strdup_from_userland is declared in no FreeBSD header"

obj userland '
	.text
	.globl g
g:	call fopen@PLT
	call inet_addr@PLT
	ret'
expect userland 1 "fopen is declared in no FreeBSD header"
expect userland 1 "inet_addr is declared in no FreeBSD header"

obj inline '
	.text
	.globl g
g:	call kernel_inline@PLT
	ret'
expect inline 1 "kernel_inline is a static inline function"

obj bigframe '
	.text
	.globl g
g:	push %rbp
	mov %rsp,%rbp
	sub $0x2008,%rsp
	movq $0,-0x8(%rbp)
	add $0x2008,%rsp
	pop %rbp
	ret'
expect bigframe 1 "stack frame of 8200 bytes"

# A frame of whole pages, lowered by LLVM's probe loop: one `sub $0x1000,%rsp` in the code,
# 64 KiB on the stack.
obj probedframe '
	.text
	.globl g
g:	push %rbp
	mov %rsp,%rbp
	mov %rsp,%r11
	sub $0x10000,%r11
1:	sub $0x1000,%rsp
	movq $0,(%rsp)
	cmp %r11,%rsp
	jne 1b
	movq $0,-0x8(%rbp)
	mov %rbp,%rsp
	pop %rbp
	ret'
expect probedframe 1 "stack frame of 65536 bytes"

# The size limit: an object of exactly the limit passes, one byte more of data fails, and
# .bss (no file space) does not count.
obj sized '
	.text
	.globl g
g:	ret
	.section .rodata
	.zero 5000
	.bss
	.zero 100000'
size=$(python3 "$gate" "$work/sized.o" | sed -n 's/.* \([0-9][0-9]*\) loaded bytes.*/\1/p')
if [ -z "$size" ] || [ "$size" -lt 5001 ] || [ "$size" -gt 6000 ]; then
  echo "kmod-gate-test: sized: expected 5001..6000 loaded bytes, got '$size'" >&2
  fails=$((fails + 1))
else
  expect sized 0 "clean" --max-loaded "$size"
  expect sized 1 "$size loaded bytes, more than the limit of $((size - 1))" --max-loaded "$((size - 1))"
fi

if [ "$fails" -ne 0 ]; then
  echo "kmod-gate-test: $fails case(s) failed" >&2
  exit 1
fi
echo "kmod-gate-test: ok (1 clean object passes, 13 unsafe objects fail, the size limit holds)"
