#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-2-Clause
"""Rewrites an iBFT image for the in-process harness (tests/kmodsim).

The fixtures in tests/data/ibft point at loopback (127.0.0.1; iPXE wrote 10.0.2.2, rewritten). The harness reaches
only loopback, so every target it may connect to is rewritten here:

    ibft.py IN OUT --target 0=127.0.0.1:3260[:LUN] [--target 1=...] [--vlan ID]
                   [--nic-ip ADDR/PREFIX] [--gateway ADDR]

Byte offsets are the iBFT specification's (1.03): control structure at 48 with the offsets
of nic0/target0/nic1/target1; a target's IP at +6 (16 bytes, IPv4 mapped), port at +22
(little endian), LUN at +24 (8 bytes, SAM); a NIC's IP at +6, prefix at +22, gateway at +24,
VLAN at +88. The checksum (byte 9) is recomputed.
"""
import ipaddress
import struct
import sys


def ip16(text):
    a = ipaddress.ip_address(text)
    if a.version == 4:
        return b"\0" * 10 + b"\xff\xff" + a.packed
    return a.packed


def lun8(n):
    if n < 256:
        return bytes([0, n, 0, 0, 0, 0, 0, 0])
    return bytes([0x40 | (n >> 8), n & 0xFF, 0, 0, 0, 0, 0, 0])


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    src, dst, args = argv[1], argv[2], argv[3:]
    t = bytearray(open(src, "rb").read())
    if t[0:4] != b"iBFT":
        sys.exit(f"{src}: not an iBFT")
    length = struct.unpack_from("<I", t, 4)[0]
    nic0, tgt0, nic1, tgt1 = struct.unpack_from("<HHHH", t, 48 + 10)
    targets = [tgt0, tgt1]
    nics = [nic0, nic1]
    i = 0
    while i < len(args):
        opt, val = args[i], args[i + 1]
        i += 2
        if opt == "--target":
            index, portal = val.split("=", 1)
            off = targets[int(index)]
            if off == 0:
                sys.exit(f"{src}: no target {index}")
            if portal.startswith("["):
                host, rest = portal[1:].split("]", 1)
                parts = [host] + rest.lstrip(":").split(":")
            else:
                parts = portal.split(":")
            t[off + 6:off + 22] = ip16(parts[0])
            struct.pack_into("<H", t, off + 22, int(parts[1]))
            if len(parts) > 2:
                t[off + 24:off + 32] = lun8(int(parts[2]))
        elif opt == "--vlan":
            struct.pack_into("<H", t, nics[0] + 88, int(val))
        elif opt == "--nic-ip":
            addr, prefix = val.split("/")
            t[nics[0] + 6:nics[0] + 22] = ip16(addr)
            t[nics[0] + 22] = int(prefix)
        elif opt == "--gateway":
            t[nics[0] + 24:nics[0] + 40] = ip16(val) if val != "none" else b"\0" * 16
        else:
            sys.exit(f"unknown option {opt}")
    t[9] = 0
    t[9] = (-sum(t[:length])) & 0xFF
    open(dst, "wb").write(bytes(t))


if __name__ == "__main__":
    main(sys.argv)
