#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""Resolves return addresses of the harness binary to function names.

    symbolize.py BINARY [--first-module] ADDR...

The module's functions keep their (local) symbols in the gated isboot.ko: kmod-check strips
debug sections only, and the Rust side is built without debug info, so names are all there is
and all that is needed. Names are demangled with llvm-cxxfilt (Rust v0 and legacy). With
--first-module, frames of the allocator plumbing (malloc, kalloc, __rust_alloc, alloc::,
core::, handle_alloc_error, panic machinery) are skipped and the first caller in the module
is printed, followed by the chain that led to it.
"""
import bisect
import subprocess
import sys

SKIP = ("malloc", "kalloc", "realloc", "free", "isboot_malloc", "isboot_realloc",
        "__rust_", "__rdl_", "__rg_", "host_", "panic", "kmodsim", "rust_begin_unwind",
        "alloc::", "core::", "<alloc::", "<core::", "isboot::kalloc", "isboot::panic",
        "isboot_panic", "handle_alloc_error")


def symbols(binary):
    out = subprocess.run(["nm", "-n", "--defined-only", binary], capture_output=True,
                         text=True, check=True).stdout
    addrs, names = [], []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "tTwW":
            addrs.append(int(parts[0], 16))
            names.append(parts[2])
    return addrs, names


def demangle(names):
    if not names:
        return []
    out = subprocess.run(["llvm-cxxfilt"], input="\n".join(names), capture_output=True,
                         text=True).stdout.splitlines()
    return out if len(out) == len(names) else names


def main(argv):
    binary, rest = argv[1], argv[2:]
    first = "--first-module" in rest
    addrs_in = [int(a, 16) for a in rest if a != "--first-module"]
    addrs, names = symbols(binary)
    resolved = []
    for a in addrs_in:
        i = bisect.bisect_right(addrs, a) - 1
        resolved.append(names[i] if i >= 0 else hex(a))
    pretty = demangle(resolved)
    # Drop hashes and generic noise to keep a line readable.
    pretty = [p.split("::h")[0] if "::h" in p else p for p in pretty]
    if not first:
        print("\n".join(pretty))
        return
    for i, p in enumerate(pretty):
        if not p.startswith(SKIP) and "kalloc" not in p and "alloc::" not in p[:20]:
            print(" <- ".join(pretty[i:i + 4]))
            return
    print(" <- ".join(pretty[:4]))


if __name__ == "__main__":
    main(sys.argv)
