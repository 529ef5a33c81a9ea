#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""Kernel-cleanliness gate for a FreeBSD/amd64 kernel module object (isboot.ko).

    kmod-gate.py OBJ [--max-loaded BYTES] [--headers DIR ...] [--quiet]

Fails (exit 1) and says why when the object
  * uses SSE/AVX/MMX registers or x87/FPU-state instructions (the kernel does not save user FPU
    state around kernel code: such code corrupts user processes),
  * touches the red zone (interrupts on the kernel stack overwrite the 128 bytes below %rsp),
  * has a stack frame larger than a page (kernel stacks are 16 KiB for the whole call chain),
  * has relocations in loaded (SHF_ALLOC) sections other than R_X86_64_{NONE,64,PC32,PLT32,32S},
    the types FreeBSD's amd64 kernel linker applies (sys/amd64/amd64/elf_machdep.c),
  * has sections the kernel linker never runs or supports (TLS, constructors),
  * leaves Rust runtime, unwinder or C++/libc runtime symbols undefined,
  * leaves undefined a symbol that no FreeBSD kernel header under --headers declares (a typo, or
    a function that exists only in userland, would make kldload fail with "undefined symbol");
    only the kernel's include directories count (sys/, net/, cam/, vm/, machine/, dev/, contrib/,
    ...), not userland headers such as stdio.h that a libc header tree also holds,
  * with --max-loaded, loads more than BYTES: the sum of its SHF_ALLOC sections that occupy file
    space (code, read-only data and data as linked, page padding included; not .bss), what the
    kernel linker copies in and keeps for the module's lifetime.

ELF structures are read directly (no GNU nm: it chokes on LLVM bitcode); instructions come from
objdump. Exit status: 0 clean, 1 findings, 2 usage or unreadable input.
"""
import os
import re
import struct
import subprocess
import sys

SHT_SYMTAB, SHT_RELA, SHT_REL, SHT_NOBITS = 2, 4, 9, 8
SHF_ALLOC, SHF_TLS = 0x2, 0x400
R_X86_64 = {0: "NONE", 1: "64", 2: "PC32", 3: "GOT32", 4: "PLT32", 5: "COPY", 6: "GLOB_DAT",
            7: "JUMP_SLOT", 8: "RELATIVE", 9: "GOTPCREL", 10: "32", 11: "32S", 12: "16",
            13: "PC16", 14: "8", 15: "PC8", 16: "DTPMOD64", 17: "DTPOFF64", 18: "TPOFF64",
            19: "TLSGD", 20: "TLSLD", 21: "DTPOFF32", 22: "GOTTPOFF", 23: "TPOFF32", 24: "PC64",
            25: "GOTOFF64", 26: "GOTPC32", 41: "GOTPCRELX", 42: "REX_GOTPCRELX"}
ALLOWED_RELOCS = {0, 1, 2, 4, 11}

# Undefined names that mean a runtime the kernel does not have.
RUNTIME = re.compile(r"^(_Unwind_|__rust_|rust_(begin_unwind|eh_personality|panic)|__gcc_personality|"
                     r"__cxa_|__gxx_|_GLOBAL_OFFSET_TABLE_$|__tls_get_addr$|_ZN|_R[A-Z])")
# Undefined names the kernel linker or the compiler provides without a header declaration.
LINKER_PROVIDED = re.compile(r"^(__start_set_|__stop_set_)|^__stack_chk_(guard|fail)$")

# Top-level directories of a FreeBSD kernel include path (sys/ of the source tree, the machine
# links, the generated and supplied headers at the top of a prepared tree are not used for this).
KERNEL_DIRS = {"sys", "net", "netinet", "netinet6", "netpfil", "net80211", "netgraph", "cam",
               "vm", "machine", "x86", "amd64", "i386", "dev", "contrib", "geom", "crypto",
               "opencrypto", "fs", "ufs", "nfs", "security", "bsm", "ddb", "xdr", "rpc", "libkern",
               "kern", "compat"}

SIMD_REG = re.compile(r"%(x|y|z)mm\d|%mm[0-7]\b|%st(\(\d\))?\b|%k[0-7]\b|%mxcsr")
FPU_STATE = {"emms", "femms", "fxsave", "fxsave64", "fxrstor", "fxrstor64", "xsave", "xsave64",
             "xsaveopt", "xsaveopt64", "xsavec", "xsavec64", "xsaves", "xsaves64", "xrstor",
             "xrstor64", "xrstors", "xrstors64", "ldmxcsr", "stmxcsr", "vldmxcsr", "vstmxcsr"}


class Elf:
    def __init__(self, path):
        with open(path, "rb") as f:
            self.data = f.read()
        d = self.data
        if d[:4] != b"\x7fELF" or d[4] != 2 or d[5] != 1:
            raise ValueError("not a little-endian ELF64 file")
        (self.e_type, self.e_machine, _, _, _, shoff, _, _, _, _, shentsize, shnum,
         shstrndx) = struct.unpack_from("<HHIQQQIHHHHHH", d, 16)
        if self.e_machine != 62:
            raise ValueError(f"not x86_64 (e_machine {self.e_machine})")
        self.sections = []
        for i in range(shnum):
            (name, stype, flags, _addr, off, size, link, info, _align,
             entsize) = struct.unpack_from("<IIQQQQIIQQ", d, shoff + i * shentsize)
            self.sections.append(dict(name_off=name, type=stype, flags=flags, off=off, size=size,
                                      link=link, info=info, entsize=entsize))
        strtab = self.sections[shstrndx]
        for s in self.sections:
            s["name"] = self.cstr(strtab["off"] + s["name_off"])

    def cstr(self, off):
        end = self.data.index(b"\0", off)
        return self.data[off:end].decode("utf-8", "replace")

    def symbols(self):
        out = []
        for s in self.sections:
            if s["type"] != SHT_SYMTAB:
                continue
            strtab = self.sections[s["link"]]
            for i in range(s["size"] // 24):
                name, info, _other, shndx, value, size = struct.unpack_from(
                    "<IBBHQQ", self.data, s["off"] + i * 24)
                out.append(dict(name=self.cstr(strtab["off"] + name), bind=info >> 4,
                                type=info & 0xF, shndx=shndx, value=value, size=size))
        return out

    def relocations(self):
        """(target section name, target flags, type) for every relocation entry."""
        for s in self.sections:
            if s["type"] not in (SHT_RELA, SHT_REL):
                continue
            target = self.sections[s["info"]]
            step = 24 if s["type"] == SHT_RELA else 16
            for i in range(s["size"] // step):
                (r_info,) = struct.unpack_from("<Q", self.data, s["off"] + i * step + 8)
                yield target["name"], target["flags"], r_info & 0xFFFFFFFF


def header_declarations(dirs):
    """(declared, inline): every identifier a kernel header declares as a function, variable or
    array, plus the names FreeBSD's declaration macros paste together (SYSCTL_DECL,
    VNET_DECLARE, DPCPU_DECLARE, MALLOC_DECLARE); and the functions headers define
    `static inline`, which no kernel exports."""
    declared, inline = set(), set()
    static_inline = re.compile(r"\bstatic\s+(?:__inline|inline|__inline__|__always_inline)\b"
                               r"[^;{=]*?\b(\w+)\s*\(")
    word_call = re.compile(r"\b([A-Za-z_]\w*)\s*(?:\(|\[|;|,|=)")
    pasted = [(re.compile(r"\bSYSCTL_DECL\(\s*(\w+)\s*\)"), "sysctl__{}"),
              (re.compile(r"\bVNET_DECLARE\([^;]*?,\s*(\w+)\s*\)"), "vnet_entry_{}"),
              (re.compile(r"\bDPCPU_DECLARE\([^;]*?,\s*(\w+)\s*\)"), "pcpu_entry_{}"),
              (re.compile(r"\bMALLOC_DECLARE\(\s*(\w+)\s*\)"), "{}")]
    comment = re.compile(r"/\*.*?\*/|//[^\n]*", re.S)
    for top in dirs:
        for root, _dirs, files in os.walk(top):
            rel = os.path.relpath(root, top)
            if rel.split(os.sep)[0] not in KERNEL_DIRS:
                # Header trees from a libc (the ziglang wheels) also hold userland headers
                # (stdio.h, arpa/): what they declare does not exist in the kernel.
                continue
            for fn in files:
                if not fn.endswith(".h"):
                    continue
                try:
                    with open(os.path.join(root, fn), encoding="latin-1") as f:
                        text = comment.sub(" ", f.read())
                except OSError:
                    continue
                declared.update(word_call.findall(text))
                inline.update(static_inline.findall(text))
                for rx, fmt in pasted:
                    declared.update(fmt.format(m) for m in rx.findall(text))
    return declared, inline


def disassembly(path):
    """{function: [(mnemonic, operands)]} from objdump (AT&T syntax)."""
    res = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-M", "att", path],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise ValueError(f"objdump failed: {res.stderr.strip()}")
    funcs, cur = {}, None
    for line in res.stdout.splitlines():
        m = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if m:
            cur = funcs.setdefault(m.group(1), [])
            continue
        m = re.match(r"^\s+[0-9a-f]+:\s+(\S+)\s*(.*)$", line)
        if cur is not None and m:
            mnem = m.group(1)
            ops = m.group(2)
            if mnem in ("rex", "rex.W", "lock", "rep", "repz", "repnz", "data16", "cs", "ds",
                        "notrack", "bnd") and ops:
                mnem, _, ops = ops.partition(" ")
            cur.append((mnem, ops.split("#")[0].strip()))
    return funcs


def fpu_findings(funcs):
    out = []
    for f, insns in funcs.items():
        bad = [f"{m} {o}".strip() for m, o in insns
               if SIMD_REG.search(o) or m in FPU_STATE or (m.startswith("f") and m != "fs")]
        if bad:
            out.append(f"{f}: {len(bad)} SIMD/FPU instruction(s), e.g. {bad[0]!r}")
    return out


def redzone_findings(funcs):
    """Stores or loads below %rsp, or below the pushed registers of a frame that never moves
    %rsp down (a leaf function using the red zone through %rbp)."""
    out = []
    for f, insns in funcs.items():
        below_rsp = [o for _m, o in insns if re.search(r"(?<![\w$])-0x[0-9a-f]+\(%rsp\)", o)]
        if below_rsp:
            out.append(f"{f}: access below %rsp: {below_rsp[0]!r}")
            continue
        has_fp = lowers_rsp = False
        pushes = 0
        deepest = 0
        for m, o in insns:
            if m.startswith("mov") and o == "%rsp,%rbp":
                has_fp = True
                continue
            if has_fp and m.startswith("push"):
                pushes += 1
            if m.startswith(("sub", "and", "lea")) and o.endswith(",%rsp"):
                lowers_rsp = True
            for off in re.findall(r"(?<![\w$])-0x([0-9a-f]+)\(%rbp\)", o):
                deepest = max(deepest, int(off, 16))
        if has_fp and not lowers_rsp and deepest > 8 * pushes:
            out.append(f"{f}: uses {deepest} bytes below %rbp with only {8 * pushes} pushed "
                       f"and %rsp never lowered (red zone)")
    return out


# Kernel thread stacks are KSTACK_PAGES (4 on amd64) pages, shared by every frame of a call chain
# and by interrupts: one frame above a page is a design error (a large future or buffer on the
# stack), not a tuning matter.
MAX_FRAME = 4096


def frame_findings(funcs):
    """(findings, largest frame, its function) from each function's stack adjustment.

    A frame of several pages is lowered by LLVM's stack-probe loop (`mov %rsp,%r11;
    sub $SIZE,%r11; 1: sub $0x1000,%rsp; movq $0,(%rsp); cmp %r11,%rsp; jne 1b`): SIZE
    counts, not the loop's one page (a 64 KiB frame would otherwise read as 4096 bytes)."""
    out, largest, where = [], 0, None
    for f, insns in funcs.items():
        size = 0
        probed = False
        for m, o in insns:
            g = re.match(r"\$0x([0-9a-f]+),%r11$", o)
            if m.startswith("sub") and g:
                size += int(g.group(1), 16)
                probed = True
                continue
            g = re.match(r"\$0x([0-9a-f]+),%rsp$", o)
            if m.startswith("sub") and g:
                if probed and g.group(1) == "1000":
                    # The probe loop's page, already counted in the %r11 bound.
                    probed = False
                    continue
                size += int(g.group(1), 16)
        if size > largest:
            largest, where = size, f
        if size > MAX_FRAME:
            out.append(f"{f}: stack frame of {size} bytes (limit {MAX_FRAME}; kernel stacks are 16 KiB)")
    return out, largest, where


def loaded_bytes(elf):
    """What the kernel linker loads from the file (see the module documentation)."""
    return sum(s["size"] for s in elf.sections
               if s["flags"] & SHF_ALLOC and s["type"] != SHT_NOBITS)


def main(argv):
    argv = list(argv)
    max_loaded = None
    if "--max-loaded" in argv:
        i = argv.index("--max-loaded")
        try:
            max_loaded = int(argv[i + 1])
        except (IndexError, ValueError):
            print(__doc__, file=sys.stderr)
            return 2
        del argv[i:i + 2]
    args = [a for a in argv if not a.startswith("--")]
    quiet = "--quiet" in argv
    headers = []
    if "--headers" in argv:
        i = argv.index("--headers")
        headers = [a for a in argv[i + 1:] if not a.startswith("--")]
        args = [a for a in argv[:i] if not a.startswith("--")]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    path = args[0]
    try:
        elf = Elf(path)
        funcs = disassembly(path)
    except (OSError, ValueError) as e:
        print(f"kmod-gate: {path}: {e}", file=sys.stderr)
        return 2

    findings = []
    if elf.e_type != 1:
        findings.append(f"ELF type {elf.e_type}: a kernel module is a relocatable object (ET_REL)")
    for s in elf.sections:
        if s["flags"] & SHF_TLS:
            findings.append(f"section {s['name']}: thread-local storage does not exist in the kernel")
        if s["name"].startswith((".init_array", ".fini_array", ".ctors", ".dtors")):
            findings.append(f"section {s['name']}: the kernel linker never runs constructors")

    hist = {}
    for tname, tflags, rtype in elf.relocations():
        if tflags & SHF_ALLOC:
            hist[rtype] = hist.get(rtype, 0) + 1
            if rtype not in ALLOWED_RELOCS:
                findings.append(f"relocation R_X86_64_{R_X86_64.get(rtype, rtype)} in {tname}")
    findings = sorted(set(findings), key=findings.index)

    syms = elf.symbols()
    undefined = sorted({s["name"] for s in syms if s["shndx"] == 0 and s["name"]})
    for name in undefined:
        if RUNTIME.search(name):
            findings.append(f"undefined runtime symbol {name}")
    if headers:
        declared, inline = header_declarations(headers)
        for name in undefined:
            if LINKER_PROVIDED.search(name) or RUNTIME.search(name):
                continue
            if name in inline:
                findings.append(f"undefined symbol {name} is a static inline function in the "
                                f"headers, not a kernel symbol: call it through a C wrapper")
            elif name not in declared:
                findings.append(f"undefined symbol {name} is declared in no FreeBSD header")

    findings += fpu_findings(funcs)
    findings += redzone_findings(funcs)
    frames, largest, largest_fn = frame_findings(funcs)
    findings += frames
    text = loaded_bytes(elf)
    if max_loaded is not None and text > max_loaded:
        findings.append(f"{text} loaded bytes, more than the limit of {max_loaded} "
                        f"(driver/kmod/README.md, Size)")

    if not quiet:
        rel = ", ".join(f"{R_X86_64.get(t, t)}={n}" for t, n in sorted(hist.items()))
        print(f"kmod-gate: {path}: {len(funcs)} functions, {text} loaded bytes, "
              f"{len(undefined)} undefined symbols, largest stack frame {largest} bytes, "
              f"relocations {rel or 'none'}")
    if findings:
        for f in findings:
            print(f"kmod-gate: FAIL {path}: {f}")
        return 1
    if not quiet:
        print(f"kmod-gate: {path}: clean")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
