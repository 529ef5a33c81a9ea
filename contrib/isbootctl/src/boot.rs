// SPDX-License-Identifier: BSD-2-Clause
//! `isbootctl boot`: the kernel's boot sequence, from userland, as a preflight check.
//!
//! The sequence is the driver's: log in with the table's (or the flags') initiator, target and
//! CHAP credentials, REPORT LUNS, INQUIRY, READ CAPACITY, read the partition table and the root
//! file system's superblock, log out. Each step prints a line in the style of the kernel's boot
//! messages; the last line says whether the machine would find a root disk.
//!
//! The flow is written against [`Initiator`], a synchronous view of one iSCSI session, so it is
//! tested here against a scripted fake and runs for real on isboot-host's block API.

use std::net::SocketAddr;
use std::time::Instant;

use isboot_core::chap::Credentials;
use isboot_core::scsi::Inquiry;

use crate::part::{self, BlockRead, PartError, Scheme};

/// Who logs in to what, with which credentials (their secrets print redacted).
#[derive(Clone, Debug)]
pub struct BootParams {
    pub initiator: String,
    pub portal: SocketAddr,
    pub target: String,
    pub lun: u64,
    pub chap: Option<Credentials>,
    pub mutual: Option<Credentials>,
    /// Where the parameters came from (table source and overriding flags), for the transcript.
    pub origin: String,
}

impl BootParams {
    pub fn auth(&self) -> &'static str {
        match (&self.chap, &self.mutual) {
            (None, _) => "none",
            (Some(_), None) => "CHAP",
            (Some(_), Some(_)) => "mutual CHAP",
        }
    }
}

/// What the login negotiated, as the session reports it (free text lines).
#[derive(Clone, Debug, Default)]
pub struct LoginInfo {
    pub summary: Vec<String>,
}

/// Why [`Initiator::login`] failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginError {
    /// No session: the connection, the login or authentication failed.
    Login(String),
    /// The session came up but the LUN could not be opened (its first command failed).
    Lun(String),
}

/// SPC sense key names, as CAM prints them.
const SENSE_KEYS: [&str; 16] = [
    "NO SENSE",
    "RECOVERED ERROR",
    "NOT READY",
    "MEDIUM ERROR",
    "HARDWARE FAILURE",
    "ILLEGAL REQUEST",
    "UNIT ATTENTION",
    "DATA PROTECT",
    "BLANK CHECK",
    "VENDOR SPECIFIC",
    "COPY ABORTED",
    "ABORTED COMMAND",
    "EQUAL",
    "VOLUME OVERFLOW",
    "MISCOMPARE",
    "COMPLETED",
];

/// Sense data as a sentence: "ILLEGAL REQUEST, LOGICAL UNIT NOT SUPPORTED (sense 5/25/00)".
pub fn sense_text(key: u8, asc: u8, ascq: u8) -> String {
    let what = match (asc, ascq) {
        (0x04, _) => Some("LOGICAL UNIT NOT READY"),
        (0x20, 0x00) => Some("INVALID COMMAND OPERATION CODE"),
        (0x24, 0x00) => Some("INVALID FIELD IN CDB"),
        (0x25, 0x00) => Some("LOGICAL UNIT NOT SUPPORTED"),
        (0x29, _) => Some("POWER ON, RESET, OR BUS DEVICE RESET OCCURRED"),
        (0x3a, _) => Some("MEDIUM NOT PRESENT"),
        _ => None,
    };
    let k = SENSE_KEYS
        .get(usize::from(key & 0x0f))
        .copied()
        .unwrap_or("?");
    match what {
        Some(w) => format!("{k}, {w} (sense {key:x}/{asc:02x}/{ascq:02x})"),
        None => format!("{k} (sense {key:x}/{asc:02x}/{ascq:02x})"),
    }
}

/// One iSCSI session, synchronous: every call waits for its completion (with the session's
/// own timeouts) and reports failures as text that names what went wrong.
pub trait Initiator {
    fn login(&mut self, p: &BootParams) -> Result<LoginInfo, LoginError>;
    fn report_luns(&mut self) -> Result<Vec<u64>, String>;
    /// Standard INQUIRY data (at least 36 bytes).
    fn inquiry(&mut self, lun: u64) -> Result<Vec<u8>, String>;
    /// (number of blocks, block size).
    fn read_capacity(&mut self, lun: u64) -> Result<(u64, u32), String>;
    fn read(&mut self, lun: u64, lba: u64, blocks: u32) -> Result<Vec<u8>, String>;
    fn logout(&mut self) -> Result<(), String>;
}

/// A LUN seen through an [`Initiator`], for the partition reader.
struct LunDisk<'a> {
    ini: &'a mut dyn Initiator,
    lun: u64,
    blocks: u64,
    bs: u32,
    reads: u64,
}

impl BlockRead for LunDisk<'_> {
    fn block_size(&self) -> u32 {
        self.bs
    }
    fn blocks(&self) -> u64 {
        self.blocks
    }
    fn read_blocks(&mut self, lba: u64, count: u32) -> Result<Vec<u8>, String> {
        let b = self.ini.read(self.lun, lba, count)?;
        let want = count as usize * self.bs as usize;
        if b.len() != want {
            return Err(format!(
                "READ of {count} block(s) at LBA {lba} returned {} bytes, expected {want}",
                b.len()
            ));
        }
        self.reads += u64::from(count);
        Ok(b)
    }
}

/// The outcome: transcript lines were printed through `out`; `Ok(summary)` when the disk is
/// usable as a FreeBSD boot disk, `Err(summary)` when not.
pub fn run(
    p: &BootParams,
    ini: &mut dyn Initiator,
    out: &mut dyn FnMut(&str),
) -> Result<String, String> {
    let t0 = Instant::now();
    let mut say = |s: String| out(&format!("isboot: {s}"));
    say(format!("boot parameters from {}", p.origin));
    say(format!("initiator {}", p.initiator));
    say(format!(
        "target {} at {} LUN {}, auth {}",
        p.target,
        p.portal,
        p.lun,
        p.auth()
    ));
    say(format!("logging in to {}", p.portal));
    let info = match ini.login(p) {
        Ok(info) => info,
        Err(LoginError::Login(e)) => {
            return Err(format!(
                "boot disk NOT usable: login to {} failed: {e}",
                p.portal
            ))
        }
        Err(LoginError::Lun(e)) => {
            say("login ok".into());
            return Err(format!("boot disk NOT usable: LUN {}: {e}", p.lun));
        }
    };
    say(format!("login ok ({} ms)", t0.elapsed().as_millis()));
    for l in &info.summary {
        say(format!("  {l}"));
    }
    let result = probe(p, ini, &mut say);
    match ini.logout() {
        Ok(()) => say("logout ok".into()),
        Err(e) => say(format!("logout failed: {e}")),
    }
    result
}

fn probe(
    p: &BootParams,
    ini: &mut dyn Initiator,
    say: &mut dyn FnMut(String),
) -> Result<String, String> {
    let lun = p.lun;
    match ini.report_luns() {
        Ok(luns) => {
            let list: Vec<String> = luns.iter().map(u64::to_string).collect();
            say(format!(
                "REPORT LUNS: {}",
                if list.is_empty() {
                    "(none)".into()
                } else {
                    list.join(" ")
                }
            ));
            if !luns.contains(&lun) {
                return Err(format!(
                    "boot disk NOT usable: LUN {lun} is not among the target's LUNs ({})",
                    list.join(" ")
                ));
            }
        }
        // Optional for a target (SPC): fall through to INQUIRY, as CAM's sequential scan does.
        Err(e) => say(format!(
            "REPORT LUNS failed ({e}); probing LUN {lun} directly"
        )),
    }
    let inq = Inquiry::parse(
        &ini.inquiry(lun)
            .map_err(|e| format!("boot disk NOT usable: INQUIRY of LUN {lun}: {e}"))?,
    )
    .map_err(|e| format!("boot disk NOT usable: {e}"))?;
    say(format!("da0 at isboot0 bus 0 scbus0 target 0 lun {lun}"));
    let da = |s: String| format!("da0: {s}");
    say(da(inq.describe()));
    if inq.qualifier != 0 || inq.device_type != 0 {
        return Err(format!(
            "boot disk NOT usable: LUN {lun} is not a connected disk (qualifier {}, device type {:#04x})",
            inq.qualifier, inq.device_type
        ));
    }
    let (blocks, bs) = ini
        .read_capacity(lun)
        .map_err(|e| format!("boot disk NOT usable: READ CAPACITY of LUN {lun}: {e}"))?;
    if blocks == 0 || !(512..=65536).contains(&bs) || !bs.is_power_of_two() {
        return Err(format!(
            "boot disk NOT usable: capacity {blocks} blocks of {bs} bytes"
        ));
    }
    let size = part::human_size(blocks.saturating_mul(u64::from(bs)));
    // CAM's own wording (dadone): whole megabytes, then the sector count.
    let mb = blocks.saturating_mul(u64::from(bs)) / (1024 * 1024);
    say(da(format!("{mb}MB ({blocks} {bs} byte sectors)")));
    let mut disk = LunDisk {
        ini,
        lun,
        blocks,
        bs,
        reads: 0,
    };
    let t = Instant::now();
    let table = match part::read_table(&mut disk) {
        Ok(t) => t,
        Err(PartError::NoTable) => {
            return Err(format!(
                "boot disk NOT usable: {size} disk at LUN {lun} has no partition table"
            ));
        }
        Err(e) => return Err(format!("boot disk NOT usable: da0: {e}")),
    };
    let mut root = None;
    let mut lines = Vec::new();
    for line in part::describe(&table, "GEOM: da0", "da0", bs).lines() {
        lines.push(line.to_string());
    }
    let sep = if matches!(table.scheme, Scheme::Gpt { .. }) {
        'p'
    } else {
        's'
    };
    for p in &table.partitions {
        let name = format!("da0{sep}{}", p.index);
        if matches!(p.kind.as_str(), "freebsd-ufs" | "freebsd" | "freebsd-zfs") {
            let fs = if p.kind == "freebsd-zfs" {
                None
            } else {
                part::probe_fs(&mut disk, p)
            };
            if let Some(fs) = &fs {
                lines.push(format!("GEOM: {name}: {fs}"));
            }
            if root.is_none() {
                root = Some((name, p.kind.clone(), fs));
            }
        }
    }
    for l in lines {
        say(l);
    }
    say(format!(
        "read {} block(s) in {} ms",
        disk.reads,
        t.elapsed().as_millis()
    ));
    match root {
        Some((name, kind, fs)) => {
            if kind == "freebsd-ufs" && fs.is_none() {
                return Err(format!("boot disk NOT usable: {name} is freebsd-ufs but holds no UFS superblock"));
            }
            Ok(format!(
                "boot disk usable: {} LUN {lun} at {}: {size}, {} root candidate {name} ({}{})",
                p.target,
                p.portal,
                match table.scheme {
                    Scheme::Gpt { .. } => "GPT",
                    Scheme::Mbr => "MBR",
                },
                kind,
                fs.map_or_else(String::new, |f| format!(", {f}"))
            ))
        }
        None => Err(format!(
            "boot disk NOT usable: {size} disk at LUN {lun} has no FreeBSD partition (freebsd-ufs, freebsd-zfs or an MBR freebsd slice)"
        )),
    }
}

/// Renders the whole run as text, for the tests.
#[cfg(test)]
pub fn transcript(p: &BootParams, ini: &mut dyn Initiator) -> (String, bool) {
    use std::fmt::Write as _;
    let mut text = String::new();
    let r = run(p, ini, &mut |l| {
        let _ = writeln!(text, "{l}");
    });
    let ok = r.is_ok();
    let _ = writeln!(text, "isbootctl: {}", r.unwrap_or_else(|e| e));
    (text, ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::part::testdisk::{gpt_image, GptPart};

    const UFS: &str = "516E7CB6-6ECF-11D6-8FF8-00022D09712B";
    const BOOT: &str = "83BD6B9D-7F41-11DC-BE0B-001560B84F0F";

    /// A scripted target: a disk image behind LUN 1, with knobs for each failure.
    struct Fake {
        disk: Vec<u8>,
        bs: u32,
        luns: Result<Vec<u64>, String>,
        inquiry: Vec<u8>,
        login: Result<(), LoginError>,
        calls: Vec<String>,
    }

    fn std_inquiry(device_type: u8) -> Vec<u8> {
        let mut d = vec![0u8; 36];
        d[0] = device_type;
        d[2] = 6;
        d[8..16].copy_from_slice(b"IET     ");
        d[16..32].copy_from_slice(b"VIRTUAL-DISK    ");
        d[32..36].copy_from_slice(b"0001");
        d
    }

    fn freebsd_disk(with_ufs: bool) -> Vec<u8> {
        let mut d = gpt_image(
            8192,
            512,
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
                    last: 8100,
                    label: "rootfs",
                },
            ],
        )
        .data;
        if with_ufs {
            let sb = 1064 * 512 + 65536;
            d[sb + 1372..sb + 1376].copy_from_slice(&0x1954_0119u32.to_le_bytes());
            d[sb + 680..sb + 686].copy_from_slice(b"rootfs");
        }
        d
    }

    impl Fake {
        fn new(disk: Vec<u8>) -> Fake {
            Fake {
                disk,
                bs: 512,
                luns: Ok(vec![0, 1]),
                inquiry: std_inquiry(0),
                login: Ok(()),
                calls: Vec::new(),
            }
        }
    }

    impl Initiator for Fake {
        fn login(&mut self, p: &BootParams) -> Result<LoginInfo, LoginError> {
            self.calls.push(format!("login {} {}", p.target, p.auth()));
            self.login.clone().map(|()| LoginInfo {
                summary: vec!["HeaderDigest None".into()],
            })
        }
        fn report_luns(&mut self) -> Result<Vec<u64>, String> {
            self.calls.push("report_luns".into());
            self.luns.clone()
        }
        fn inquiry(&mut self, lun: u64) -> Result<Vec<u8>, String> {
            self.calls.push(format!("inquiry {lun}"));
            Ok(self.inquiry.clone())
        }
        fn read_capacity(&mut self, lun: u64) -> Result<(u64, u32), String> {
            self.calls.push(format!("read_capacity {lun}"));
            Ok((self.disk.len() as u64 / u64::from(self.bs), self.bs))
        }
        fn read(&mut self, lun: u64, lba: u64, blocks: u32) -> Result<Vec<u8>, String> {
            self.calls.push(format!("read {lun} {lba} {blocks}"));
            let s = lba as usize * self.bs as usize;
            let e = s + blocks as usize * self.bs as usize;
            self.disk
                .get(s..e)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| "LBA out of range".into())
        }
        fn logout(&mut self) -> Result<(), String> {
            self.calls.push("logout".into());
            Ok(())
        }
    }

    fn params() -> BootParams {
        BootParams {
            initiator: "iqn.2025-01.test.rig:initiator-ipxe".into(),
            portal: "127.0.0.1:3260".parse().expect("addr"),
            target: "iqn.2025-01.test.rig:tgt-mutual".into(),
            lun: 1,
            chap: Some(Credentials {
                name: "rigin".into(),
                secret: isboot_core::secret::Secret::new(b"rigin-secret-12"),
            }),
            mutual: Some(Credentials {
                name: "rigout".into(),
                secret: isboot_core::secret::Secret::new(b"rigout-secret-12"),
            }),
            origin: "test".into(),
        }
    }

    #[test]
    fn freebsd_disk_is_usable_and_the_transcript_reads_like_a_boot() {
        let mut f = Fake::new(freebsd_disk(true));
        let (text, ok) = transcript(&params(), &mut f);
        assert!(ok, "{text}");
        for want in [
            "isboot: target iqn.2025-01.test.rig:tgt-mutual at 127.0.0.1:3260 LUN 1, auth mutual CHAP\n",
            "isboot: REPORT LUNS: 0 1\n",
            "isboot: da0 at isboot0 bus 0 scbus0 target 0 lun 1\n",
            "isboot: da0: <IET VIRTUAL-DISK 0001> Fixed Direct Access SPC-4 SCSI device\n",
            "isboot: da0: 4MB (8192 512 byte sectors)\n",
            "isboot:   da0p2    freebsd-ufs            1064         7037    3.4M  label \"rootfs\"\n",
            "isboot: GEOM: da0p2: UFS2 volume \"rootfs\"\n",
            "isboot: logout ok\n",
            "isbootctl: boot disk usable: iqn.2025-01.test.rig:tgt-mutual LUN 1 at 127.0.0.1:3260: 4M, GPT root candidate da0p2 (freebsd-ufs, UFS2 volume \"rootfs\")\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("secret-12"), "{text}");
        assert_eq!(
            f.calls.first().map(String::as_str),
            Some("login iqn.2025-01.test.rig:tgt-mutual mutual CHAP")
        );
        assert_eq!(f.calls.last().map(String::as_str), Some("logout"));
    }

    #[test]
    fn login_failure_is_not_usable_and_skips_logout() {
        let mut f = Fake::new(freebsd_disk(true));
        f.login = Err(LoginError::Login(
            "authentication failure (status 0x0201)".into(),
        ));
        let (text, ok) = transcript(&params(), &mut f);
        assert!(!ok);
        assert!(text.ends_with(
            "isbootctl: boot disk NOT usable: login to 127.0.0.1:3260 failed: authentication failure (status 0x0201)\n"
        ), "{text}");
        assert_eq!(f.calls.len(), 1);
    }

    #[test]
    fn missing_lun_is_not_usable_but_logs_out() {
        let mut f = Fake::new(freebsd_disk(true));
        f.luns = Ok(vec![0]);
        let (text, ok) = transcript(&params(), &mut f);
        assert!(!ok);
        assert!(
            text.contains("LUN 1 is not among the target's LUNs (0)"),
            "{text}"
        );
        assert_eq!(f.calls.last().map(String::as_str), Some("logout"));
    }

    #[test]
    fn report_luns_failure_falls_back_to_inquiry() {
        let mut f = Fake::new(freebsd_disk(true));
        f.luns = Err("ILLEGAL REQUEST".into());
        let (text, ok) = transcript(&params(), &mut f);
        assert!(ok, "{text}");
        assert!(
            text.contains("REPORT LUNS failed (ILLEGAL REQUEST); probing LUN 1 directly"),
            "{text}"
        );
    }

    #[test]
    fn controller_lun_is_not_a_disk() {
        let mut f = Fake::new(freebsd_disk(true));
        f.inquiry = std_inquiry(0x0c);
        let (text, ok) = transcript(&params(), &mut f);
        assert!(!ok);
        assert!(
            text.contains("Fixed Storage Array SPC-4 SCSI device"),
            "{text}"
        );
        assert!(
            text.contains("not a connected disk (qualifier 0, device type 0x0c)"),
            "{text}"
        );
    }

    #[test]
    fn blank_disk_is_not_usable() {
        let mut f = Fake::new(vec![0u8; 4096 * 512]);
        let (text, ok) = transcript(&params(), &mut f);
        assert!(!ok);
        assert!(text.contains("has no partition table"), "{text}");
    }

    #[test]
    fn ufs_partition_without_a_file_system_is_not_usable() {
        let mut f = Fake::new(freebsd_disk(false));
        let (text, ok) = transcript(&params(), &mut f);
        assert!(!ok);
        assert!(
            text.contains("da0p2 is freebsd-ufs but holds no UFS superblock"),
            "{text}"
        );
    }

    #[test]
    fn short_inquiry_is_reported() {
        let mut f = Fake::new(freebsd_disk(true));
        f.inquiry = vec![0; 5];
        let (text, ok) = transcript(&params(), &mut f);
        assert!(!ok);
        assert!(text.contains("INQUIRY returned 5 bytes"), "{text}");
    }

    #[test]
    fn lun_that_fails_to_open_is_reported_after_a_good_login() {
        let mut f = Fake::new(freebsd_disk(true));
        f.login = Err(LoginError::Lun(format!(
            "READ CAPACITY failed: {}",
            sense_text(5, 0x25, 0)
        )));
        let (text, ok) = transcript(&params(), &mut f);
        assert!(!ok);
        assert!(text.contains("isboot: login ok\n"), "{text}");
        assert!(text.ends_with(
            "isbootctl: boot disk NOT usable: LUN 1: READ CAPACITY failed: ILLEGAL REQUEST, LOGICAL UNIT NOT SUPPORTED (sense 5/25/00)\n"
        ), "{text}");
    }

    #[test]
    fn unknown_sense_keeps_its_numbers() {
        assert_eq!(sense_text(3, 0x11, 0x00), "MEDIUM ERROR (sense 3/11/00)");
    }

    #[test]
    fn debug_of_params_redacts_secrets() {
        let d = format!("{:?}", params());
        assert!(d.contains("rigin") && !d.contains("secret-12"), "{d}");
    }
}
