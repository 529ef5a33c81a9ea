// SPDX-License-Identifier: BSD-2-Clause
//! Partition tables of a boot disk: GPT (UEFI 2.10 §5.3) and MBR, with FreeBSD's type names.
//!
//! The bytes come from a remote disk that may be blank, half-written or hostile, so nothing here
//! trusts a count or an offset: every read is bounded, every checksum is checked, and a bad
//! primary GPT falls back to the backup header at the end of the disk, as FreeBSD's g_part_gpt does.

use std::fmt;

use isboot_core::escape::UntrustedBytes;

/// Largest partition entry array we read (FreeBSD's gpart refuses more than 4096 entries of
/// 128 bytes; 1 MiB leaves room for bigger entries without letting a table make us read the disk).
const MAX_ENTRY_ARRAY: u64 = 1 << 20;

/// Reads `count` blocks starting at `lba`; returns exactly `count * block_size` bytes or an error.
pub trait BlockRead {
    fn block_size(&self) -> u32;
    /// Number of blocks on the disk.
    fn blocks(&self) -> u64;
    fn read_blocks(&mut self, lba: u64, count: u32) -> Result<Vec<u8>, String>;
}

/// One partition, in the units the disk uses (blocks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// 1-based index, as FreeBSD names it (`da0p1`, `da0s1`).
    pub index: u32,
    /// FreeBSD's name for the type (`freebsd-ufs`), or the raw GUID / MBR byte when unknown.
    pub kind: String,
    pub first_lba: u64,
    pub last_lba: u64,
    /// GPT partition label (UTF-16 in the table), empty for MBR.
    pub label: String,
    /// MBR active flag; false for GPT.
    pub active: bool,
}

impl Partition {
    pub fn blocks(&self) -> u64 {
        self.last_lba
            .saturating_sub(self.first_lba)
            .saturating_add(1)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// GPT; `from_backup` is true when the primary header was damaged and the backup was used.
    Gpt {
        disk_guid: String,
        from_backup: bool,
    },
    Mbr,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Table {
    pub scheme: Scheme,
    pub partitions: Vec<Partition>,
    /// Things that are wrong but did not stop us (a damaged primary GPT, overlapping entries).
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartError {
    /// Neither a GPT nor an MBR signature: the disk is blank or holds a bare file system.
    NoTable,
    /// A table was found but is unusable; the text says what is wrong.
    Invalid(String),
    /// The disk could not be read.
    Io(String),
}

impl fmt::Display for PartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartError::NoTable => {
                f.write_str("no partition table (no GPT header, no MBR signature)")
            }
            PartError::Invalid(s) => write!(f, "invalid partition table: {s}"),
            PartError::Io(s) => write!(f, "read error: {s}"),
        }
    }
}

fn le16(b: &[u8], off: usize) -> u16 {
    let mut v = [0u8; 2];
    if let Some(s) = b.get(off..off + 2) {
        v.copy_from_slice(s);
    }
    u16::from_le_bytes(v)
}

fn le32(b: &[u8], off: usize) -> u32 {
    let mut v = [0u8; 4];
    if let Some(s) = b.get(off..off + 4) {
        v.copy_from_slice(s);
    }
    u32::from_le_bytes(v)
}

fn le64(b: &[u8], off: usize) -> u64 {
    let mut v = [0u8; 8];
    if let Some(s) = b.get(off..off + 8) {
        v.copy_from_slice(s);
    }
    u64::from_le_bytes(v)
}

/// CRC-32 (IEEE 802.3, reflected, poly 0xEDB88320) as GPT uses it; not the iSCSI CRC32C.
pub fn crc32(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *e = c;
        }
        t
    });
    let mut c = !0u32;
    for &b in data {
        c = t[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// Formats a GUID stored in GPT's mixed-endian layout as text (upper case, like gpart).
pub fn guid_text(b: &[u8; 16]) -> String {
    format!(
        "{:08X}-{:04X}-{:04X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}",
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_le_bytes([b[4], b[5]]),
        u16::from_le_bytes([b[6], b[7]]),
        b[8],
        b[9],
        b[10],
        b[11],
        b[12],
        b[13],
        b[14],
        b[15]
    )
}

/// Parses GUID text into GPT's on-disk layout (the tests build images with it).
#[cfg(test)]
pub fn guid_bytes(text: &str) -> Option<[u8; 16]> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut raw = [0u8; 16];
    for (i, r) in raw.iter_mut().enumerate() {
        *r = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    let mut b = raw;
    b[0..4].copy_from_slice(&[raw[3], raw[2], raw[1], raw[0]]);
    b[4..6].copy_from_slice(&[raw[5], raw[4]]);
    b[6..8].copy_from_slice(&[raw[7], raw[6]]);
    Some(b)
}

/// GPT type GUIDs and the names FreeBSD's gpart(8) gives them.
pub const GPT_TYPES: &[(&str, &str)] = &[
    ("83BD6B9D-7F41-11DC-BE0B-001560B84F0F", "freebsd-boot"),
    ("516E7CB4-6ECF-11D6-8FF8-00022D09712B", "freebsd"),
    ("516E7CB5-6ECF-11D6-8FF8-00022D09712B", "freebsd-swap"),
    ("516E7CB6-6ECF-11D6-8FF8-00022D09712B", "freebsd-ufs"),
    ("516E7CB8-6ECF-11D6-8FF8-00022D09712B", "freebsd-vinum"),
    ("516E7CBA-6ECF-11D6-8FF8-00022D09712B", "freebsd-zfs"),
    ("74BA7DD9-A689-11E1-BD04-00E081286ACF", "freebsd-nandfs"),
    ("C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "efi"),
    ("024DEE41-33E7-11D3-9D69-0008C781F39F", "mbr"),
    ("21686148-6449-6E6F-744E-656564454649", "bios-boot"),
    ("0FC63DAF-8483-4772-8E79-3D69D8477DE4", "linux-data"),
    ("0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", "linux-swap"),
    ("E6D6D379-F507-44C2-A23C-238F2A3DF928", "linux-lvm"),
    ("A19D880F-05FC-4D3B-A006-743F0F84911E", "linux-raid"),
    ("EBD0A0A2-B9E5-4433-87C0-68B6B72699C7", "ms-basic-data"),
    ("E3C9E316-0B5C-4DB8-817D-F92DF00215AE", "ms-reserved"),
    ("DE94BBA4-06D1-4D40-A16A-BFD50179D6AC", "ms-recovery"),
    ("6A898CC3-1DD2-11B2-99A6-080020736631", "solaris-zfs"),
    ("48465300-0000-11AA-AA11-00306543ECAC", "apple-hfs"),
    ("7C3457EF-0000-11AA-AA11-00306543ECAC", "apple-apfs"),
];

/// MBR partition type bytes and FreeBSD's names for them.
pub const MBR_TYPES: &[(u8, &str)] = &[
    (0x01, "fat12"),
    (0x04, "fat16"),
    (0x05, "ebr"),
    (0x06, "fat16"),
    (0x07, "ntfs"),
    (0x0b, "fat32"),
    (0x0c, "fat32lba"),
    (0x0e, "fat16"),
    (0x0f, "ebr"),
    (0x82, "linux-swap"),
    (0x83, "linux-data"),
    (0x8e, "linux-lvm"),
    (0xa5, "freebsd"),
    (0xa6, "openbsd"),
    (0xa9, "netbsd"),
    (0xee, "gpt"),
    (0xef, "efi"),
    (0xfd, "linux-raid"),
];

pub fn gpt_type_name(guid: &[u8; 16]) -> String {
    let text = guid_text(guid);
    GPT_TYPES.iter().find(|(g, _)| *g == text).map_or_else(
        || format!("!{}", text.to_lowercase()),
        |(_, n)| (*n).to_string(),
    )
}

pub fn mbr_type_name(t: u8) -> String {
    MBR_TYPES
        .iter()
        .find(|(b, _)| *b == t)
        .map_or_else(|| format!("!{t}"), |(_, n)| (*n).to_string())
}

/// Reads and decodes the disk's partition table.
pub fn read_table(disk: &mut dyn BlockRead) -> Result<Table, PartError> {
    let bs = disk.block_size();
    if !(512..=65536).contains(&bs) || !bs.is_power_of_two() {
        return Err(PartError::Invalid(format!(
            "block size {bs} is not a power of two in 512..=65536"
        )));
    }
    if disk.blocks() < 2 {
        return Err(PartError::Invalid(format!(
            "disk has only {} block(s)",
            disk.blocks()
        )));
    }
    let first = disk.read_blocks(0, 2).map_err(PartError::Io)?;
    let mbr = first
        .get(..512)
        .ok_or_else(|| PartError::Io("short read of block 0".into()))?;
    let lba1 = first
        .get(bs as usize..)
        .ok_or_else(|| PartError::Io("short read of block 1".into()))?;
    let has_mbr_sig = mbr[510] == 0x55 && mbr[511] == 0xaa;
    let protective = has_mbr_sig && (0..4).any(|i| mbr[0x1be + 16 * i + 4] == 0xee);

    if lba1.starts_with(b"EFI PART") || protective {
        match read_gpt(disk, lba1, 1) {
            Ok(t) => return Ok(t),
            Err(primary) => {
                // The backup header sits in the last block; gpart and UEFI both fall back to it.
                let last = disk.blocks() - 1;
                let backup = disk.read_blocks(last, 1).map_err(PartError::Io)?;
                return match read_gpt(disk, &backup, last) {
                    Ok(mut t) => {
                        if let Scheme::Gpt { from_backup, .. } = &mut t.scheme {
                            *from_backup = true;
                        }
                        t.warnings.insert(
                            0,
                            format!("primary GPT header unusable ({primary}); using the backup"),
                        );
                        Ok(t)
                    }
                    Err(b) => Err(PartError::Invalid(format!(
                        "primary GPT: {primary}; backup GPT: {b}"
                    ))),
                };
            }
        }
    }
    if has_mbr_sig {
        return read_mbr(mbr, disk.blocks());
    }
    Err(PartError::NoTable)
}

fn read_gpt(disk: &mut dyn BlockRead, hdr: &[u8], my_lba: u64) -> Result<Table, String> {
    let bs = u64::from(disk.block_size());
    if !hdr.starts_with(b"EFI PART") {
        return Err("no \"EFI PART\" signature".into());
    }
    let hsize = le32(hdr, 12) as usize;
    if hsize < 92 || hsize > hdr.len() {
        return Err(format!("header size {hsize} outside 92..={}", hdr.len()));
    }
    let mut h = hdr[..hsize].to_vec();
    let want = le32(&h, 16);
    h[16..20].fill(0);
    let got = crc32(&h);
    if want != got {
        return Err(format!("header CRC {want:#010x} != computed {got:#010x}"));
    }
    if le64(hdr, 24) != my_lba {
        return Err(format!(
            "header says it is at LBA {}, read from LBA {my_lba}",
            le64(hdr, 24)
        ));
    }
    let first_usable = le64(hdr, 40);
    let last_usable = le64(hdr, 48);
    if first_usable > last_usable || last_usable >= disk.blocks() {
        return Err(format!(
            "usable range {first_usable}..={last_usable} does not fit a disk of {} blocks",
            disk.blocks()
        ));
    }
    let mut guid = [0u8; 16];
    guid.copy_from_slice(&hdr[56..72]);
    let entries_lba = le64(hdr, 72);
    let n = u64::from(le32(hdr, 80));
    let esize = u64::from(le32(hdr, 84));
    if esize < 128 || esize % 8 != 0 {
        return Err(format!(
            "partition entry size {esize} (must be >= 128 and a multiple of 8)"
        ));
    }
    let bytes = n * esize;
    if bytes > MAX_ENTRY_ARRAY {
        return Err(format!(
            "{n} entries of {esize} bytes exceed the {MAX_ENTRY_ARRAY}-byte limit"
        ));
    }
    let nblocks = bytes.div_ceil(bs);
    if entries_lba == 0 || entries_lba.saturating_add(nblocks) > disk.blocks() {
        return Err(format!(
            "entry array at LBA {entries_lba} ({nblocks} blocks) is outside the disk"
        ));
    }
    let arr = if nblocks == 0 {
        Vec::new()
    } else {
        let count = u32::try_from(nblocks).map_err(|_| "entry array too large".to_string())?;
        disk.read_blocks(entries_lba, count)?
    };
    let arr = arr
        .get(..bytes as usize)
        .ok_or("short read of the entry array")?;
    let want = le32(hdr, 88);
    let got = crc32(arr);
    if want != got {
        return Err(format!(
            "entry array CRC {want:#010x} != computed {got:#010x}"
        ));
    }
    let mut parts = Vec::new();
    let mut warnings = Vec::new();
    for (i, e) in arr.chunks_exact(esize as usize).enumerate() {
        let mut t = [0u8; 16];
        t.copy_from_slice(&e[0..16]);
        if t == [0u8; 16] {
            continue;
        }
        let first_lba = le64(e, 32);
        let last_lba = le64(e, 40);
        let index = i as u32 + 1;
        if first_lba > last_lba || first_lba < first_usable || last_lba > last_usable {
            warnings.push(format!(
                "entry {index}: blocks {first_lba}..={last_lba} outside the usable range {first_usable}..={last_usable}; ignored"
            ));
            continue;
        }
        let name: Vec<u16> = (0..36)
            .map(|k| le16(e, 56 + 2 * k))
            .take_while(|c| *c != 0)
            .collect();
        parts.push(Partition {
            index,
            kind: gpt_type_name(&t),
            first_lba,
            last_lba,
            label: String::from_utf16_lossy(&name),
            active: false,
        });
    }
    overlap_warnings(&parts, &mut warnings);
    Ok(Table {
        scheme: Scheme::Gpt {
            disk_guid: guid_text(&guid),
            from_backup: false,
        },
        partitions: parts,
        warnings,
    })
}

fn read_mbr(mbr: &[u8], disk_blocks: u64) -> Result<Table, PartError> {
    let mut parts = Vec::new();
    let mut warnings = Vec::new();
    for i in 0..4 {
        let e = &mbr[0x1be + 16 * i..0x1be + 16 * (i + 1)];
        let status = e[0];
        let kind = e[4];
        let start = u64::from(le32(e, 8));
        let size = u64::from(le32(e, 12));
        if kind == 0 || size == 0 {
            continue;
        }
        if status != 0 && status != 0x80 {
            // A boot sector of a bare file system also ends in 55 AA; its "entries" are code.
            return Err(PartError::Invalid(format!(
                "MBR entry {} has status byte {status:#04x}",
                i + 1
            )));
        }
        let index = i as u32 + 1;
        let last = start + size - 1;
        if start == 0 || last >= disk_blocks {
            warnings.push(format!(
                "slice {index}: blocks {start}..={last} outside a disk of {disk_blocks} blocks; ignored"
            ));
            continue;
        }
        parts.push(Partition {
            index,
            kind: mbr_type_name(kind),
            first_lba: start,
            last_lba: last,
            label: String::new(),
            active: status == 0x80,
        });
    }
    overlap_warnings(&parts, &mut warnings);
    Ok(Table {
        scheme: Scheme::Mbr,
        partitions: parts,
        warnings,
    })
}

fn overlap_warnings(parts: &[Partition], warnings: &mut Vec<String>) {
    for (i, a) in parts.iter().enumerate() {
        for b in &parts[i + 1..] {
            if a.first_lba <= b.last_lba && b.first_lba <= a.last_lba {
                warnings.push(format!("partitions {} and {} overlap", a.index, b.index));
            }
        }
    }
}

/// Size in the style of FreeBSD's humanize_number: "512K", "1.0G".
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "K", "M", "G", "T", "P", "E"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 || v >= 10.0 || v.fract() == 0.0 {
        format!("{}{}", v.round() as u64, UNITS[u])
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

/// The table as lines like FreeBSD's GEOM and gpart print it: `header` names the disk on the
/// first line, partitions are named `{dev}p1` (GPT) or `{dev}s1` (MBR), e.g. `da0p1`.
pub fn describe(t: &Table, header: &str, dev: &str, block_size: u32) -> String {
    let mut o = String::new();
    let (scheme, sep) = match &t.scheme {
        Scheme::Gpt {
            disk_guid,
            from_backup,
        } => {
            let b = if *from_backup {
                ", from the backup header"
            } else {
                ""
            };
            (format!("GPT (disk GUID {disk_guid}{b})"), 'p')
        }
        Scheme::Mbr => ("MBR".to_string(), 's'),
    };
    o.push_str(&format!(
        "{header}: {scheme}, {} partition(s)\n",
        t.partitions.len()
    ));
    for p in &t.partitions {
        let name = format!("{dev}{sep}{}", p.index);
        let size = human_size(p.blocks().saturating_mul(u64::from(block_size)));
        let mut line = format!(
            "  {name:<8} {:<14} {:>12} {:>12} {:>7}",
            p.kind,
            p.first_lba,
            p.blocks(),
            size
        );
        if !p.label.is_empty() {
            line.push_str(&format!("  label \"{}\"", p.label.escape_debug()));
        }
        if p.active {
            line.push_str("  [active]");
        }
        o.push_str(line.trim_end());
        o.push('\n');
    }
    for w in &t.warnings {
        o.push_str(&format!("{header}: warning: {w}\n"));
    }
    o
}

/// The file system a partition holds, from its superblock (UFS only: what FreeBSD roots on
/// besides ZFS, whose labels need far more reading than a preflight should do).
pub fn probe_fs(disk: &mut dyn BlockRead, p: &Partition) -> Option<String> {
    // UFS superblocks sit at 64 KiB (UFS2), 8 KiB (UFS1, and UFS2 from NetBSD's makefs) or 256 KiB
    // into the partition; fs_magic is at byte 1372 of it, fs_volname at 680.
    for off in [65536u64, 8192, 262_144] {
        let bs = u64::from(disk.block_size());
        let within = (off % bs) as usize;
        let need = (within + 1376).div_ceil(disk.block_size() as usize) as u32;
        // A partition in the last blocks of a disk that claims 2^64-1 of them: the offsets
        // must not wrap around to the start of the disk.
        let Some(lba) = p.first_lba.checked_add(off / bs) else {
            continue;
        };
        match (lba.checked_add(u64::from(need)), p.last_lba.checked_add(1)) {
            (Some(end), Some(limit)) if end <= limit => {}
            _ => continue,
        }
        let Ok(b) = disk.read_blocks(lba, need) else {
            return None;
        };
        let field = |at: usize, len: usize| b.get(within + at..within + at + len);
        let magic = field(1372, 4)?;
        let kind = match u32::from_le_bytes([magic[0], magic[1], magic[2], magic[3]]) {
            0x1954_0119 => "UFS2",
            0x0001_1954 => "UFS1",
            _ => continue,
        };
        let volname = field(680, 32).unwrap_or_default();
        let name = &volname[..volname
            .iter()
            .position(|c| *c == 0)
            .unwrap_or(volname.len())];
        return Some(if name.is_empty() {
            kind.to_string()
        } else {
            // The disk chose the name: escaped and bounded like any target text.
            format!("{kind} volume \"{}\"", UntrustedBytes(name))
        });
    }
    None
}

/// A disk image file, read with a chosen block size.
#[derive(Debug)]
pub struct FileDisk {
    file: std::fs::File,
    bs: u32,
    blocks: u64,
}

impl FileDisk {
    /// Opens a disk image, which must be a regular file (its size is the disk's).
    pub fn open(path: &str, bs: u32) -> Result<FileDisk, String> {
        let file = crate::text::regular_file(path)?;
        let len = file.metadata().map_err(|e| format!("{path}: {e}"))?.len();
        if bs == 0 {
            return Err("block size 0".into());
        }
        Ok(FileDisk {
            file,
            bs,
            blocks: len / u64::from(bs),
        })
    }
}

impl BlockRead for FileDisk {
    fn block_size(&self) -> u32 {
        self.bs
    }
    fn blocks(&self) -> u64 {
        self.blocks
    }
    fn read_blocks(&mut self, lba: u64, count: u32) -> Result<Vec<u8>, String> {
        use std::os::unix::fs::FileExt;
        let mut b = vec![0u8; count as usize * self.bs as usize];
        self.file
            .read_exact_at(&mut b, lba * u64::from(self.bs))
            .map_err(|e| format!("read of {count} block(s) at LBA {lba}: {e}"))?;
        Ok(b)
    }
}

#[cfg(test)]
pub mod testdisk {
    //! Builds disk images in memory, independently of the parser, for its tests.
    use super::*;

    pub struct MemDisk {
        pub data: Vec<u8>,
        pub bs: u32,
        pub reads: Vec<(u64, u32)>,
    }

    impl BlockRead for MemDisk {
        fn block_size(&self) -> u32 {
            self.bs
        }
        fn blocks(&self) -> u64 {
            self.data.len() as u64 / u64::from(self.bs)
        }
        fn read_blocks(&mut self, lba: u64, count: u32) -> Result<Vec<u8>, String> {
            self.reads.push((lba, count));
            let bs = u64::from(self.bs);
            let range = lba.checked_mul(bs).and_then(|s| {
                let e = s.checked_add(u64::from(count) * bs)?;
                Some(usize::try_from(s).ok()?..usize::try_from(e).ok()?)
            });
            range
                .and_then(|r| self.data.get(r))
                .map(<[u8]>::to_vec)
                .ok_or_else(|| format!("LBA {lba}+{count} beyond the end"))
        }
    }

    pub struct GptPart<'a> {
        pub kind: &'a str,
        pub first: u64,
        pub last: u64,
        pub label: &'a str,
    }

    /// Writes a protective MBR, primary and backup GPT with 128 entries of 128 bytes.
    pub fn gpt_image(blocks: u64, bs: u32, parts: &[GptPart<'_>]) -> MemDisk {
        let b = bs as usize;
        let mut data = vec![0u8; blocks as usize * b];
        data[0x1be + 4] = 0xee;
        data[0x1be + 8..0x1be + 12].copy_from_slice(&1u32.to_le_bytes());
        data[0x1be + 12..0x1be + 16]
            .copy_from_slice(&(u32::try_from(blocks - 1).unwrap_or(u32::MAX)).to_le_bytes());
        data[510] = 0x55;
        data[511] = 0xaa;
        let mut arr = vec![0u8; 128 * 128];
        for (i, p) in parts.iter().enumerate() {
            let e = &mut arr[i * 128..(i + 1) * 128];
            e[0..16].copy_from_slice(&guid_bytes(p.kind).expect("test GUID"));
            e[16..32].copy_from_slice(&[i as u8 + 1; 16]);
            e[32..40].copy_from_slice(&p.first.to_le_bytes());
            e[40..48].copy_from_slice(&p.last.to_le_bytes());
            for (k, c) in p.label.encode_utf16().enumerate() {
                e[56 + 2 * k..58 + 2 * k].copy_from_slice(&c.to_le_bytes());
            }
        }
        let arr_blocks = (arr.len() as u64).div_ceil(u64::from(bs));
        let first_usable = 2 + arr_blocks;
        let last_usable = blocks - 2 - arr_blocks;
        let arr_crc = crc32(&arr);
        let header = |my: u64, alt: u64, entries: u64| {
            let mut h = vec![0u8; 92];
            h[0..8].copy_from_slice(b"EFI PART");
            h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
            h[12..16].copy_from_slice(&92u32.to_le_bytes());
            h[24..32].copy_from_slice(&my.to_le_bytes());
            h[32..40].copy_from_slice(&alt.to_le_bytes());
            h[40..48].copy_from_slice(&first_usable.to_le_bytes());
            h[48..56].copy_from_slice(&last_usable.to_le_bytes());
            h[56..72].copy_from_slice(
                &guid_bytes("01234567-89AB-CDEF-0011-223344556677").expect("guid"),
            );
            h[72..80].copy_from_slice(&entries.to_le_bytes());
            h[80..84].copy_from_slice(&128u32.to_le_bytes());
            h[84..88].copy_from_slice(&128u32.to_le_bytes());
            h[88..92].copy_from_slice(&arr_crc.to_le_bytes());
            let c = crc32(&h);
            h[16..20].copy_from_slice(&c.to_le_bytes());
            h
        };
        let last = blocks - 1;
        data[b..b + 92].copy_from_slice(&header(1, last, 2));
        data[2 * b..2 * b + arr.len()].copy_from_slice(&arr);
        let backup_arr = (last - arr_blocks) as usize * b;
        data[backup_arr..backup_arr + arr.len()].copy_from_slice(&arr);
        data[last as usize * b..last as usize * b + 92].copy_from_slice(&header(
            last,
            1,
            last - arr_blocks,
        ));
        MemDisk {
            data,
            bs,
            reads: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testdisk::*;
    use super::*;

    const BOOT: &str = "83BD6B9D-7F41-11DC-BE0B-001560B84F0F";
    const UFS: &str = "516E7CB6-6ECF-11D6-8FF8-00022D09712B";
    const SWAP: &str = "516E7CB5-6ECF-11D6-8FF8-00022D09712B";

    fn freebsd_disk(bs: u32) -> MemDisk {
        gpt_image(
            8192,
            bs,
            &[
                GptPart {
                    kind: BOOT,
                    first: 40,
                    last: 1063,
                    label: "gptboot0",
                },
                GptPart {
                    kind: UFS,
                    first: 1064,
                    last: 7000,
                    label: "rootfs",
                },
                GptPart {
                    kind: SWAP,
                    first: 7001,
                    last: 8000,
                    label: "",
                },
            ],
        )
    }

    #[test]
    fn crc32_matches_the_ieee_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn guid_text_round_trips_the_mixed_endian_layout() {
        let b = guid_bytes(UFS).expect("parse");
        assert_eq!(&b[..4], &[0xb6, 0x7c, 0x6e, 0x51]);
        assert_eq!(guid_text(&b), UFS);
    }

    #[test]
    fn gpt_freebsd_layout_is_named_like_gpart() {
        let mut d = freebsd_disk(512);
        let t = read_table(&mut d).expect("table");
        assert!(
            matches!(t.scheme, Scheme::Gpt { ref disk_guid, from_backup: false }
            if disk_guid == "01234567-89AB-CDEF-0011-223344556677")
        );
        let got: Vec<_> = t
            .partitions
            .iter()
            .map(|p| (p.index, p.kind.as_str(), p.first_lba, p.last_lba))
            .collect();
        assert_eq!(
            got,
            [
                (1, "freebsd-boot", 40, 1063),
                (2, "freebsd-ufs", 1064, 7000),
                (3, "freebsd-swap", 7001, 8000)
            ]
        );
        assert_eq!(t.partitions[0].label, "gptboot0");
        assert_eq!(t.partitions[1].blocks(), 5937);
        assert!(t.warnings.is_empty(), "{:?}", t.warnings);
    }

    #[test]
    fn gpt_on_4k_sectors_is_read_in_4k_units() {
        let mut d = freebsd_disk(4096);
        let t = read_table(&mut d).expect("table");
        assert_eq!(t.partitions.len(), 3);
        // 16 KiB of entries = 4 blocks of 4 KiB starting at LBA 2.
        assert!(d.reads.contains(&(2, 4)), "{:?}", d.reads);
    }

    #[test]
    fn damaged_primary_header_falls_back_to_the_backup() {
        let mut d = freebsd_disk(512);
        d.data[512 + 40] ^= 1; // first_usable, covered by the header CRC
        let t = read_table(&mut d).expect("table");
        assert!(matches!(
            t.scheme,
            Scheme::Gpt {
                from_backup: true,
                ..
            }
        ));
        assert!(t.warnings[0].contains("header CRC"), "{:?}", t.warnings);
        assert_eq!(t.partitions.len(), 3);
    }

    #[test]
    fn damaged_entry_array_in_both_copies_is_an_error_naming_the_crc() {
        let mut d = freebsd_disk(512);
        d.data[2 * 512 + 33] ^= 0x80;
        let last_arr = (8191 - 32) * 512;
        d.data[last_arr + 33] ^= 0x80;
        match read_table(&mut d) {
            Err(PartError::Invalid(s)) => assert!(s.contains("entry array CRC"), "{s}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn huge_entry_count_is_refused_before_reading() {
        let mut d = freebsd_disk(512);
        // Rewrite the primary header with 2^20 entries and a fresh CRC: it must not be read.
        let h = &mut d.data[512..512 + 92];
        h[80..84].copy_from_slice(&(1u32 << 20).to_le_bytes());
        h[16..20].fill(0);
        let c = crc32(h);
        h[16..20].copy_from_slice(&c.to_le_bytes());
        let t = read_table(&mut d).expect("backup is intact");
        assert!(t.warnings[0].contains("exceed"), "{:?}", t.warnings);
        assert!(d.reads.iter().all(|(_, n)| *n <= 32), "{:?}", d.reads);
    }

    #[test]
    fn partition_outside_the_usable_range_is_ignored_with_a_warning() {
        let mut d = gpt_image(
            4096,
            512,
            &[GptPart {
                kind: UFS,
                first: 40,
                last: 9000,
                label: "",
            }],
        );
        let t = read_table(&mut d).expect("table");
        assert!(t.partitions.is_empty());
        assert!(
            t.warnings[0].contains("outside the usable range"),
            "{:?}",
            t.warnings
        );
    }

    #[test]
    fn unknown_gpt_type_shows_its_guid() {
        let mut d = gpt_image(
            4096,
            512,
            &[GptPart {
                kind: "11111111-2222-3333-4444-555555555555",
                first: 40,
                last: 100,
                label: "",
            }],
        );
        let t = read_table(&mut d).expect("table");
        assert_eq!(
            t.partitions[0].kind,
            "!11111111-2222-3333-4444-555555555555"
        );
    }

    fn mbr_disk(entries: &[(u8, u8, u32, u32)]) -> MemDisk {
        let mut data = vec![0u8; 4096 * 512];
        for (i, (status, kind, start, size)) in entries.iter().enumerate() {
            let e = 0x1be + 16 * i;
            data[e] = *status;
            data[e + 4] = *kind;
            data[e + 8..e + 12].copy_from_slice(&start.to_le_bytes());
            data[e + 12..e + 16].copy_from_slice(&size.to_le_bytes());
        }
        data[510] = 0x55;
        data[511] = 0xaa;
        MemDisk {
            data,
            bs: 512,
            reads: Vec::new(),
        }
    }

    #[test]
    fn mbr_freebsd_slice_is_named_and_active_flag_kept() {
        let mut d = mbr_disk(&[(0x80, 0xa5, 63, 4000), (0, 0x82, 4063, 33)]);
        let t = read_table(&mut d).expect("table");
        assert_eq!(t.scheme, Scheme::Mbr);
        assert_eq!(t.partitions[0].kind, "freebsd");
        assert!(t.partitions[0].active);
        assert_eq!(
            (t.partitions[0].first_lba, t.partitions[0].last_lba),
            (63, 4062)
        );
        assert_eq!(t.partitions[1].kind, "linux-swap");
    }

    #[test]
    fn mbr_with_code_in_the_status_byte_is_not_a_table() {
        let mut d = mbr_disk(&[(0x3c, 0xa5, 63, 4000)]);
        assert!(
            matches!(read_table(&mut d), Err(PartError::Invalid(s)) if s.contains("status byte 0x3c"))
        );
    }

    #[test]
    fn blank_disk_has_no_table() {
        let mut d = MemDisk {
            data: vec![0; 64 * 512],
            bs: 512,
            reads: Vec::new(),
        };
        assert_eq!(read_table(&mut d), Err(PartError::NoTable));
    }

    #[test]
    fn one_block_disk_is_refused_without_reading() {
        let mut d = MemDisk {
            data: vec![0; 512],
            bs: 512,
            reads: Vec::new(),
        };
        assert!(matches!(read_table(&mut d), Err(PartError::Invalid(s)) if s.contains("1 block")));
        assert!(d.reads.is_empty());
    }

    #[test]
    fn every_single_byte_corruption_of_the_first_blocks_is_handled_without_panic() {
        let mut d = freebsd_disk(512);
        for off in 0..(34 * 512) {
            d.data[off] ^= 0xff;
            // Any outcome but a panic is fine; the primary may be bad, then the backup answers.
            if let Ok(t) = read_table(&mut d) {
                assert!(t.partitions.len() <= 3);
            }
            d.data[off] ^= 0xff;
            d.reads.clear();
        }
    }

    #[test]
    fn describe_names_partitions_like_freebsd() {
        let mut d = freebsd_disk(512);
        let t = read_table(&mut d).expect("table");
        let text = describe(&t, "da0", "da0", 512);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "da0: GPT (disk GUID 01234567-89AB-CDEF-0011-223344556677), 3 partition(s)"
        );
        assert_eq!(
            lines[1],
            "  da0p1    freebsd-boot             40         1024    512K  label \"gptboot0\""
        );
        assert!(
            lines[2].starts_with("  da0p2    freebsd-ufs "),
            "{}",
            lines[2]
        );
        assert_eq!(
            lines[3],
            "  da0p3    freebsd-swap           7001         1000    500K"
        );
        let mut m = mbr_disk(&[(0x80, 0xa5, 63, 4000)]);
        let t = read_table(&mut m).expect("table");
        assert!(describe(&t, "da1", "da1", 512).contains("  da1s1    freebsd  "));
    }

    /// A disk that claims `blocks` blocks but holds only `inner`'s: what a target answering
    /// READ CAPACITY with 2^64-1 blocks looks like.
    struct Claims {
        inner: MemDisk,
        blocks: u64,
    }

    impl BlockRead for Claims {
        fn block_size(&self) -> u32 {
            self.inner.bs
        }
        fn blocks(&self) -> u64 {
            self.blocks
        }
        fn read_blocks(&mut self, lba: u64, count: u32) -> Result<Vec<u8>, String> {
            self.inner.read_blocks(lba, count)
        }
    }

    /// Rewrites entry 1 of the primary GPT of `d` to `first..=last` and its usable range to
    /// end at `last_usable`, with fresh CRCs.
    fn patch_gpt(d: &mut MemDisk, first: u64, last: u64, last_usable: u64) {
        let arr = 2 * 512;
        d.data[arr + 32..arr + 40].copy_from_slice(&first.to_le_bytes());
        d.data[arr + 40..arr + 48].copy_from_slice(&last.to_le_bytes());
        let arr_crc = crc32(&d.data[arr..arr + 128 * 128]);
        let h = &mut d.data[512..512 + 92];
        h[48..56].copy_from_slice(&last_usable.to_le_bytes());
        h[88..92].copy_from_slice(&arr_crc.to_le_bytes());
        h[16..20].fill(0);
        let c = crc32(h);
        h[16..20].copy_from_slice(&c.to_le_bytes());
    }

    /// A valid GPT on a disk reporting 2^64-1 blocks with a partition in its last blocks: the
    /// superblock offsets past it must not wrap around to the start of the disk, where another
    /// file system's superblock would be reported as the partition's (a debug build panicked
    /// on the overflow instead).
    #[test]
    fn lba_arithmetic_near_the_end_of_a_huge_disk_does_not_wrap() {
        let mut inner = gpt_image(
            256,
            512,
            &[GptPart {
                kind: UFS,
                first: 40,
                last: 100,
                label: "rootfs",
            }],
        );
        // A UFS2 superblock where the wrapped offset lands: 2^64 - 100 + 128 = LBA 27.
        let sb = 27 * 512;
        inner.data[sb + 1372..sb + 1376].copy_from_slice(&0x1954_0119u32.to_le_bytes());
        inner.data[sb + 680..sb + 686].copy_from_slice(b"forged");
        let first = u64::MAX - 99;
        patch_gpt(&mut inner, first, u64::MAX - 40, u64::MAX - 2);
        let mut d = Claims {
            inner,
            blocks: u64::MAX,
        };
        let t = read_table(&mut d).expect("a valid table");
        assert_eq!(t.partitions.len(), 1, "{:?}", t.warnings);
        let p = &t.partitions[0];
        assert_eq!((p.first_lba, p.kind.as_str()), (first, "freebsd-ufs"));
        d.inner.reads.clear();
        assert_eq!(probe_fs(&mut d, p), None);
        assert!(
            d.inner.reads.iter().all(|&(lba, _)| lba >= first),
            "read outside the partition: {:?}",
            d.inner.reads
        );
    }

    #[test]
    fn a_volume_name_is_shown_escaped() {
        let mut d = freebsd_disk(512);
        let sb = 1064 * 512 + 65536;
        d.data[sb + 1372..sb + 1376].copy_from_slice(&0x1954_0119u32.to_le_bytes());
        d.data[sb + 680..sb + 699].copy_from_slice(b"a\nisbootctl: ok\x1b[m\xff");
        let t = read_table(&mut d).expect("table");
        let fs = probe_fs(&mut d, &t.partitions[1]).expect("UFS2");
        assert_eq!(fs, "UFS2 volume \"a\\x0aisbootctl: ok\\x1b[m\\xff\"");
    }

    #[test]
    fn human_size_matches_gpart_style() {
        assert_eq!(human_size(512 * 1024), "512K");
        assert_eq!(human_size(1536 * 1024 * 1024), "1.5G");
        assert_eq!(human_size(256 * 1024 * 1024), "256M");
        assert_eq!(human_size(100), "100B");
    }
}
