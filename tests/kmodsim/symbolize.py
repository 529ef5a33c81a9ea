#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""Resolves return addresses of the harness binary to functions and source lines.

    symbolize.py BINARY [--ko FULL_KO] [--first-module] ADDR...

BINARY is target/kmodsim/freebsdV/kmodsim; its symbol table has the module's functions (the
gated isboot.ko keeps its symbols, local). FULL_KO is the unstripped link kmod-check keeps
beside the gated object (isboot.full.ko, same code, with the Rust line tables): an address
inside a module function is moved to that function in FULL_KO and resolved there with
addr2line, inlined frames included, so a failing allocation inlined into isboot_rust_load
still names its source line.

With --first-module, the allocator and panic plumbing (malloc, kalloc, __rust_alloc, alloc::,
core::, the panic handler) is skipped: the first frame after it is the call site.

    symbolize.py --summary SITES

groups the panicking runs of a failmalloc sites file (lines "N=n PANIC: ... | frame <- ...")
by their call site: the first frame with a source line in the project, one line per site with
its count and the runs (N) that hit it, most frequent first.
"""
import bisect
import re
import subprocess
import sys

PLUMBING = re.compile(
    r"^(<?(alloc|core)::|__rustc::|__rust_|__rdl_|__rg_|isboot::kalloc|isboot::panic|"
    r"<isboot::kalloc|rust_begin_unwind|malloc|kalloc|realloc|free$|isboot_malloc|"
    r"isboot_realloc|isboot_panic|panic$|host_panic|handle_alloc_error)")


def plumbing(frame):
    """Allocator, panic and standard-library frames: not the call site being looked for."""
    loc = frame[frame.find("(") + 1:-1] if frame.endswith(")") else ""
    return (PLUMBING.match(frame) is not None or "rustlib/src/rust/library" in loc
            or loc.endswith(("kalloc.rs", "panic.rs")) or "-cgu." in loc
            or "/kalloc.rs:" in loc or "/panic.rs:" in loc)


def nm(path):
    out = subprocess.run(["nm", "--defined-only", path], capture_output=True, text=True,
                         check=True).stdout
    syms = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "tTwW":
            syms.append((int(parts[0], 16), parts[2]))
    syms.sort()
    return syms


def demangle(names):
    if not names:
        return []
    out = subprocess.run(["llvm-cxxfilt"], input="\n".join(names), capture_output=True,
                         text=True).stdout.splitlines()
    out = out if len(out) == len(names) else list(names)
    # Drop the hash suffix of legacy-mangled Rust names.
    return [re.sub(r"::h[0-9a-f]{16}$", "", n) for n in out]


def lines_in_ko(ko, offset):
    """Inlined frames (innermost first) at .text offset of the unstripped module."""
    out = subprocess.run(["addr2line", "-e", ko, "-j", ".text", "-f", "-i", "-C",
                          hex(offset)], capture_output=True, text=True).stdout.splitlines()
    frames = []
    for fn, loc in zip(out[0::2], out[1::2]):
        if loc.startswith("??"):
            continue
        loc = re.sub(r"^.*(rust/lib/rustlib|driver/core/|driver/kmod/src/|driver/kmod/logic/|"
                     r"executor/|bindings/)", r"\1", loc)
        frames.append(f"{fn} ({loc})")
    return frames


def strip_generics(name):
    """`push<isboot::X, Y>` -> `push`, `<isboot_core::text::Offer>::encode` -> `Offer::encode`:
    the call site reads without type arguments."""
    m = re.match(r"^<([A-Za-z0-9_:]+)>::(.*)$", name)
    if m:
        return m.group(1).split("::")[-1] + "::" + strip_generics(m.group(2))
    out, depth = [], 0
    for c in name:
        if c == "<":
            depth += 1
        elif c == ">" and depth:
            depth -= 1
        elif depth == 0:
            out.append(c)
    return "".join(out).strip() or name


PROJECT = re.compile(r"^(.*) \(((?:driver|executor|bindings)/[^ :]*):([0-9]+|\?)\)$")


def call_site(chain):
    """The innermost frame in the project's sources; if its line is unknown (code the
    compiler merged), its caller's line too."""
    frames = [PROJECT.match(f) for f in chain.split(" <- ")]
    frames = [m for m in frames if m]
    if not frames:
        first = chain.split(" <- ")[0]
        return strip_generics(first) if first else "?"
    fn, path, line = frames[0].groups()
    site = f"{path}:{line} in {strip_generics(fn)}"
    if line == "?" and len(frames) > 1:
        cfn, cpath, cline = frames[1].groups()
        site += f", from {cpath}:{cline} in {strip_generics(cfn)}"
    return site


def summary(path):
    sites = {}
    for line in open(path, encoding="utf-8", errors="replace"):
        m = re.match(r"^N=([0-9]+) PANIC.*? \| (.*)$", line.rstrip("\n"))
        if m:
            sites.setdefault(call_site(m.group(2)), []).append(m.group(1))
    for site, runs in sorted(sites.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        shown = ",".join(runs[:12]) + (",..." if len(runs) > 12 else "")
        print(f"  {len(runs):3d}x {site} (N={shown})")


def main(argv):
    args = argv[1:]
    if args and args[0] == "--summary":
        summary(args[1])
        return
    binary = args.pop(0)
    ko = None
    first = False
    addrs = []
    while args:
        a = args.pop(0)
        if a == "--ko":
            ko = args.pop(0)
        elif a == "--first-module":
            first = True
        else:
            addrs.append(int(a, 16))
    exe = nm(binary)
    exe_addrs = [a for a, _ in exe]
    ko_syms = {}
    if ko:
        for value, name in nm(ko):
            ko_syms.setdefault(name, value)
    chain = []
    for a in addrs:
        i = bisect.bisect_right(exe_addrs, a - 1) - 1
        if i < 0:
            chain.append(hex(a))
            continue
        start, name = exe[i]
        frames = []
        if ko and name in ko_syms:
            frames = lines_in_ko(ko, ko_syms[name] + (a - 1 - start))
        chain.extend(frames if frames else demangle([name]))
    if first:
        for i, f in enumerate(chain):
            if not plumbing(f):
                print(" <- ".join(chain[i:i + 4]))
                return
    print("\n".join(chain) if not first else " <- ".join(chain[:4]))


if __name__ == "__main__":
    main(sys.argv)
