// SPDX-License-Identifier: BSD-2-Clause
//! Where the running system keeps its iBFT.
//!
//! - Linux exports ACPI tables as files: /sys/firmware/acpi/tables/iBFT (or IBFT/BIFT). A BIOS
//!   boot by iPXE leaves no ACPI table, only the copy in low memory, which /dev/mem still shows
//!   (x86 STRICT_DEVMEM allows the first megabyte).
//! - FreeBSD has no table files. `sysctl machdep.acpi_root` gives the RSDP's physical address; we
//!   walk the XSDT (or RSDT) through /dev/mem to the iBFT, exactly as the kernel's
//!   `hw.ibft.acpi_table` lookup does, and fall back to the legacy low-memory scan.
//!
//! Every pointer read from firmware tables is checked against a size limit before it is followed.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Longest ACPI table we read: an iBFT is a few hundred bytes; no real table nears this.
const MAX_TABLE: u32 = 1 << 20;
/// Most SDT entries followed (the RSDT/XSDT of a real machine lists a few dozen).
const MAX_SDT_ENTRIES: usize = 4096;
/// Physical range of the legacy scan (the core skips the VGA hole inside it).
pub const LOW_MEM: u64 = 0x10_0000;

/// Reads physical memory.
pub trait PhysRead {
    fn read_phys(&self, addr: u64, len: usize) -> io::Result<Vec<u8>>;
}

/// /dev/mem: offsets are physical addresses.
pub struct DevMem(File);

impl DevMem {
    pub fn open() -> io::Result<DevMem> {
        File::open("/dev/mem").map(DevMem)
    }
}

impl PhysRead for DevMem {
    fn read_phys(&self, addr: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut b = vec![0u8; len];
        self.0.read_exact_at(&mut b, addr)?;
        Ok(b)
    }
}

/// Where a table came from, for the human output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub bytes: Vec<u8>,
    pub source: String,
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    b.get(off..off + 8).map_or(0, |s| {
        let mut v = [0u8; 8];
        v.copy_from_slice(s);
        u64::from_le_bytes(v)
    })
}

fn sum(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
}

/// Reads a whole ACPI table at `addr` (header first, to learn its length).
fn read_table(mem: &dyn PhysRead, addr: u64) -> io::Result<Vec<u8>> {
    let hdr = mem.read_phys(addr, 36)?;
    let len = u32_at(&hdr, 4);
    if !(36..=MAX_TABLE).contains(&len) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("ACPI table at {addr:#x} has length {len}"),
        ));
    }
    mem.read_phys(addr, len as usize)
}

/// Finds the `instance`-th (1-based) table whose signature is one of `sigs`, starting from the RSDP.
pub fn acpi_find(
    mem: &dyn PhysRead,
    rsdp_addr: u64,
    sigs: &[[u8; 4]],
    instance: usize,
) -> io::Result<Option<(u64, Vec<u8>)>> {
    let rsdp = mem.read_phys(rsdp_addr, 36)?;
    if !rsdp.starts_with(b"RSD PTR ") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("no RSDP signature at {rsdp_addr:#x}"),
        ));
    }
    if sum(&rsdp[..20]) != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "RSDP checksum wrong",
        ));
    }
    let revision = rsdp[15];
    let xsdt = u64_at(&rsdp, 24);
    let (sdt_addr, entry) = if revision >= 2 && xsdt != 0 {
        (xsdt, 8)
    } else {
        (u64::from(u32_at(&rsdp, 16)), 4)
    };
    let sdt = read_table(mem, sdt_addr)?;
    if sum(&sdt) != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("root table at {sdt_addr:#x}: checksum wrong"),
        ));
    }
    let mut seen = 0;
    for i in 0..((sdt.len() - 36) / entry).min(MAX_SDT_ENTRIES) {
        let off = 36 + i * entry;
        let addr = if entry == 8 {
            u64_at(&sdt, off)
        } else {
            u64::from(u32_at(&sdt, off))
        };
        if addr == 0 {
            continue;
        }
        let Ok(hdr) = mem.read_phys(addr, 4) else {
            continue;
        };
        if sigs.iter().any(|s| hdr.as_slice() == s) {
            seen += 1;
            if seen == instance {
                return read_table(mem, addr).map(|t| Some((addr, t)));
            }
        }
    }
    Ok(None)
}

/// The iBFT of the running system, or an error that says every place looked at.
pub fn system_ibft(sigs: &[[u8; 4]]) -> Result<Found, String> {
    let mut tried = Vec::new();
    if cfg!(target_os = "linux") {
        for s in sigs {
            let name = String::from_utf8_lossy(s).into_owned();
            let p = Path::new("/sys/firmware/acpi/tables").join(&name);
            match std::fs::read(&p) {
                Ok(bytes) => {
                    return Ok(Found {
                        bytes,
                        source: p.display().to_string(),
                    })
                }
                Err(e) => tried.push(format!("{}: {e}", p.display())),
            }
        }
    } else {
        match freebsd_acpi_root() {
            Ok(root) => match DevMem::open().and_then(|m| acpi_find(&m, root, sigs, 1)) {
                Ok(Some((addr, bytes))) => {
                    return Ok(Found {
                        bytes,
                        source: format!("ACPI table at physical {addr:#x} (via /dev/mem)"),
                    });
                }
                Ok(None) => tried.push(format!("ACPI tables from RSDP {root:#x}: no iBFT")),
                Err(e) => tried.push(format!("ACPI tables from RSDP {root:#x}: {e}")),
            },
            Err(e) => tried.push(format!("sysctl machdep.acpi_root: {e}")),
        }
    }
    match DevMem::open().and_then(|m| m.read_phys(0, LOW_MEM as usize)) {
        Ok(bytes) => Ok(Found {
            bytes,
            source: "/dev/mem (legacy scan of 0x80000-0xfffff)".into(),
        }),
        Err(e) => {
            tried.push(format!("/dev/mem: {e}"));
            Err(format!(
                "no iBFT found on this system; tried {}",
                tried.join("; ")
            ))
        }
    }
}

fn freebsd_acpi_root() -> Result<u64, String> {
    let out = std::process::Command::new("sysctl")
        .args(["-n", "machdep.acpi_root"])
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let v = text
        .strip_prefix("0x")
        .map_or_else(|| text.parse(), |h| u64::from_str_radix(h, 16));
    v.map_err(|_| format!("unexpected value {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Mem(Vec<u8>);
    impl PhysRead for Mem {
        fn read_phys(&self, addr: u64, len: usize) -> io::Result<Vec<u8>> {
            let a = addr as usize;
            self.0
                .get(a..a + len)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "beyond memory"))
        }
    }

    fn put_table(mem: &mut [u8], at: usize, sig: &[u8; 4], body: &[u8]) {
        let len = 36 + body.len();
        mem[at..at + 4].copy_from_slice(sig);
        mem[at + 4..at + 8].copy_from_slice(&(len as u32).to_le_bytes());
        mem[at + 36..at + len].copy_from_slice(body);
        mem[at + 9] = 0;
        let s = sum(&mem[at..at + len]);
        mem[at + 9] = 0u8.wrapping_sub(s);
    }

    /// RSDP v2 at 0xe0000 -> XSDT at 0x1000 -> FACP at 0x2000, iBFT at 0x3000, second iBFT at 0x4000.
    fn machine() -> Mem {
        let mut m = vec![0u8; 0x10_0000];
        put_table(&mut m, 0x2000, b"FACP", &[0; 8]);
        put_table(&mut m, 0x3000, b"iBFT", &[1; 12]);
        put_table(&mut m, 0x4000, b"iBFT", &[2; 12]);
        let mut x = Vec::new();
        for a in [0x2000u64, 0x3000, 0x4000] {
            x.extend_from_slice(&a.to_le_bytes());
        }
        put_table(&mut m, 0x1000, b"XSDT", &x);
        let r = 0xe0000;
        m[r..r + 8].copy_from_slice(b"RSD PTR ");
        m[r + 15] = 2;
        m[r + 24..r + 32].copy_from_slice(&0x1000u64.to_le_bytes());
        let s = sum(&m[r..r + 20]);
        m[r + 8] = 0u8.wrapping_sub(s);
        Mem(m)
    }

    #[test]
    fn finds_the_requested_ibft_instance_through_the_xsdt() {
        let m = machine();
        let (a, t) = acpi_find(&m, 0xe0000, &[*b"iBFT"], 1)
            .expect("walk")
            .expect("found");
        assert_eq!((a, t.len(), t[36]), (0x3000, 48, 1));
        let (a, t) = acpi_find(&m, 0xe0000, &[*b"iBFT"], 2)
            .expect("walk")
            .expect("found");
        assert_eq!((a, t[36]), (0x4000, 2));
        assert_eq!(acpi_find(&m, 0xe0000, &[*b"iBFT"], 3).expect("walk"), None);
    }

    #[test]
    fn bad_rsdp_checksum_is_reported() {
        let mut m = machine();
        m.0[0xe0000 + 9] ^= 1;
        let e = acpi_find(&m, 0xe0000, &[*b"iBFT"], 1).expect_err("must fail");
        assert!(e.to_string().contains("RSDP checksum"), "{e}");
    }

    #[test]
    fn absurd_table_length_is_not_followed() {
        let mut m = machine();
        m.0[0x3004..0x3008].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = acpi_find(&m, 0xe0000, &[*b"iBFT"], 1).expect_err("must fail");
        assert!(e.to_string().contains("length 4294967295"), "{e}");
    }
}
