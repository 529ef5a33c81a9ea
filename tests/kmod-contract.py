#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""Checks the user-visible contract of a built isboot.ko (the names README.md promises to keep).

    kmod-contract.py OBJ FREEBSD_VERSION

* module metadata (set_modmetadata_set, decoded through the relocations as the kernel linker
  does): module `isboot`, MODULE_VERSION(isboot, 1), MODULE_DEPEND on exactly cam, ether and
  acpi with version range 1..1, and never icl (isboot does not use the iSCSI initiator's ICL);
  the implicit dependency on the kernel spans FREEBSD_VERSION to the end of that major release;
* the sysctl and tunable names the documentation and contrib/isbootifname rely on are compiled
  in (hw.ibft.*, net.isboot.*, net.isboot.session.*).
Exit status 0 when all hold, 1 with the differences printed, 2 on unreadable input.
"""
import importlib.util
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("kmod_gate", os.path.join(HERE, "kmod-gate.py"))
kmod_gate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kmod_gate)

MDT_DEPEND, MDT_MODULE, MDT_VERSION = 1, 2, 3
WANT_DEPENDS = {"cam": (1, 1, 1), "ether": (1, 1, 1), "acpi": (1, 1, 1)}
FORBIDDEN_DEPENDS = {"icl"}
SYSCTL_NAMES = {
    "ibft": ["initiator_name", "initiator_address", "target_name", "target_address",
             "target_port", "target_lun", "nic_prefix", "nic_gateway", "acpi_table", "verbose"],
    "isboot": ["version", "nic", "device", "debug", "session", "connect_timeout",
               "login_timeout", "nop_interval", "nop_timeout", "command_timeout", "root_wait"],
    "session": ["state", "reconnects", "commands", "bytes_in", "bytes_out", "last_error"],
}


class Image:
    """Section contents plus relocations, enough to follow pointers in a relocatable object."""

    def __init__(self, path):
        self.elf = kmod_gate.Elf(path)
        self.syms = self.elf.symbols()
        self.relocs = {}  # section index -> {offset: (symbol index, addend)}
        for s in self.elf.sections:
            if s["type"] != kmod_gate.SHT_RELA:
                continue
            table = self.relocs.setdefault(s["info"], {})
            for i in range(s["size"] // 24):
                off, info, addend = struct.unpack_from("<QQq", self.elf.data, s["off"] + i * 24)
                table[off] = (info >> 32, addend)

    def section(self, name):
        for i, s in enumerate(self.elf.sections):
            if s["name"] == name:
                return i, s
        return None, None

    def pointer(self, sec, off):
        """(section index, offset) a relocated pointer at sec+off refers to, or None."""
        r = self.relocs.get(sec, {}).get(off)
        if r is None:
            return None
        sym = self.syms[r[0]]
        return sym["shndx"], sym["value"] + r[1]

    def read(self, sec, off, n):
        s = self.elf.sections[sec]
        if s["type"] == kmod_gate.SHT_NOBITS:
            return bytes(n)
        return self.elf.data[s["off"] + off:s["off"] + off + n]

    def cstring(self, sec, off):
        s = self.elf.sections[sec]
        start = s["off"] + off
        return self.elf.data[start:self.elf.data.index(b"\0", start)].decode("ascii", "replace")


def metadata(img):
    sec, s = img.section("set_modmetadata_set")
    if s is None:
        return None
    out = []
    for slot in range(0, s["size"], 8):
        target = img.pointer(sec, slot)
        if target is None:
            continue
        msec, moff = target
        version, mtype = struct.unpack("<ii", img.read(msec, moff, 8))
        cval = img.pointer(msec, moff + 16)
        name = img.cstring(*cval) if cval else None
        data = img.pointer(msec, moff + 8)
        extra = None
        if mtype == MDT_DEPEND and data:
            extra = struct.unpack("<iii", img.read(data[0], data[1], 12))
        elif mtype == MDT_VERSION and data:
            extra = struct.unpack("<i", img.read(data[0], data[1], 4))[0]
        out.append((mtype, name, extra))
    return out


def main(argv):
    if len(argv) != 2 or not argv[1].isdigit():
        print(__doc__, file=sys.stderr)
        return 2
    try:
        img = Image(argv[0])
    except (OSError, ValueError) as e:
        print(f"kmod-contract: {argv[0]}: {e}", file=sys.stderr)
        return 2
    problems = []
    md = metadata(img)
    if md is None:
        problems.append("no set_modmetadata_set: not a kernel module")
        md = []
    modules = [n for t, n, _ in md if t == MDT_MODULE]
    versions = {n: v for t, n, v in md if t == MDT_VERSION}
    depends = {n: v for t, n, v in md if t == MDT_DEPEND}
    fbv = int(argv[1])
    want_kernel = (fbv, fbv, fbv // 100000 * 100000 + 99999)
    kernel = depends.pop("kernel", None)
    if kernel != want_kernel:
        problems.append(f"kernel dependency {kernel}, want {want_kernel}")
    if modules != ["isboot"]:
        problems.append(f"modules declared: {modules}, want ['isboot']")
    if versions != {"isboot": 1}:
        problems.append(f"module versions: {versions}, want {{'isboot': 1}}")
    if depends != WANT_DEPENDS:
        problems.append(f"module dependencies: {depends}, want {WANT_DEPENDS}")
    for bad in FORBIDDEN_DEPENDS & set(depends):
        problems.append(f"depends on {bad}, which isboot does not use")

    # Names may share storage with longer strings that end the same way (linker string tail
    # merging), so a name counts when some string ends with it.
    for parent, names in SYSCTL_NAMES.items():
        for n in [parent] + names:
            if n.encode() + b"\0" not in img.elf.data:
                problems.append(f"sysctl name {n!r} (under {parent}) not in the object")

    for p in problems:
        print(f"kmod-contract: FAIL {argv[0]}: {p}")
    if not problems:
        deps = ", ".join(sorted(depends))
        print(f"kmod-contract: {argv[0]}: module isboot v1, kernel {kernel[0]}..{kernel[2]}, "
              f"depends on {deps}; sysctl names present")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
