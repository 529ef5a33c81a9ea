// SPDX-License-Identifier: BSD-2-Clause
//! LIO, the Linux kernel's iSCSI target, in a small qemu guest (TCG): Debian's cloud kernel and a
//! busybox initramfs built and cached by `tests/lio/image.sh`, whose `/init` (`tests/lio/init`)
//! configures LIO through configfs from a file passed as fw_cfg.
//!
//! The LUN is an iblock backstore on a virtio-blk disk backed by the target's raw image file on
//! the host, so what a WRITE acknowledged is in that file (and survives a SIGKILL of qemu). The
//! guest's network is slirp with `restrict=on`: it reaches nothing, and only the forwarded
//! 127.0.0.1 port reaches it. qemu accepts on that port before the guest listens, so readiness is
//! the guest's line on the serial console, never a TCP connect.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use super::{yes_no, Auth, Config};

/// The serial console line `/init` prints once the target accepts logins.
pub const READY: &str = "ISBOOT-LIO-READY";
/// The line it prints before powering off when the configuration could not be applied.
pub const FAILED: &str = "ISBOOT-LIO-FAILED";
/// About 6 s on an idle machine; TCG on two busy cores can take many times that.
pub const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// A cold build downloads the kernel package (about 27 MB).
const IMAGE_TIMEOUT: Duration = Duration::from_secs(900);
/// LIO's lower bound for `nopin_timeout` and `nopin_response_timeout`, in seconds.
const NOPIN_MIN: u32 = 3;

/// The guest's kernel and initramfs.
#[derive(Clone, Debug)]
pub struct Image {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
}

/// The cached guest image, built on first use in this process (`tests/lio/image.sh`, which also
/// serialises builds across processes). `ISBOOT_LIO_IMAGE=DIR` names a ready directory instead.
pub fn image() -> io::Result<Image> {
    static IMAGE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = IMAGE.get_or_init(|| match std::env::var_os("ISBOOT_LIO_IMAGE") {
        Some(d) => Ok(PathBuf::from(d)),
        None => build().map_err(|e| e.to_string()),
    });
    let dir = dir.as_ref().map_err(|e| io::Error::other(e.clone()))?;
    let img = Image {
        kernel: dir.join("vmlinuz"),
        initrd: dir.join("initrd.img"),
    };
    for f in [&img.kernel, &img.initrd] {
        if !f.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("LIO guest image: {} is missing", f.display()),
            ));
        }
    }
    Ok(img)
}

fn build() -> io::Result<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("lio/image.sh");
    let out = crate::process::run(&mut Command::new(&script), IMAGE_TIMEOUT)?
        .ok(&script.display().to_string())?;
    out.stdout
        .lines()
        .last()
        .map(|l| PathBuf::from(l.trim()))
        .ok_or_else(|| io::Error::other(format!("{} printed no directory", script.display())))
}

/// The guest's configuration file (the format is described in `tests/lio/init`).
pub fn conf(cfg: &Config, iqn: &str, initiator: &str) -> io::Result<String> {
    let mode = match (cfg.auth.initiator(), cfg.auth.target()) {
        (None, _) => "none",
        (Some(_), None) => "chap",
        (Some(_), Some(_)) => "mutual",
    };
    let mut lines = vec![format!("iqn {iqn}"), format!("auth {mode}")];
    if let Some((user, secret)) = cfg.auth.initiator() {
        lines.push(format!("chap {user} {secret}"));
    }
    if let Some((user, secret)) = cfg.auth.target() {
        lines.push(format!("mutual {user} {secret}"));
    }
    let mut param = |name: &str, v: Option<String>| {
        if let Some(v) = v {
            lines.push(format!("param {name} {v}"));
        }
    };
    // LIO's default is "CRC32C,None": it takes digests when offered; `digests` makes it insist.
    let digest = cfg.digests.then(|| "CRC32C".to_string());
    param("HeaderDigest", digest.clone());
    param("DataDigest", digest);
    // MaxXmitDataSegmentLength caps what LIO sends, so Data-In is split as finely as Data-Out.
    param(
        "MaxRecvDataSegmentLength",
        cfg.max_recv_dsl.map(|v| v.to_string()),
    );
    param(
        "MaxXmitDataSegmentLength",
        cfg.max_recv_dsl.map(|v| v.to_string()),
    );
    param("InitialR2T", cfg.initial_r2t.map(|v| yes_no(v).into()));
    param(
        "ImmediateData",
        cfg.immediate_data.map(|v| yes_no(v).into()),
    );
    param("FirstBurstLength", cfg.first_burst.map(|v| v.to_string()));
    param("MaxBurstLength", cfg.max_burst.map(|v| v.to_string()));
    param(
        "MaxOutstandingR2T",
        cfg.max_outstanding_r2t.map(|v| v.to_string()),
    );
    if let Some(v) = cfg.queue_depth {
        lines.push(format!("attrib default_cmdsn_depth {v}"));
    }
    if let Some(interval) = cfg.nop_interval {
        // LIO's NOP-In timers belong to a node ACL; the ACLs it makes up for unknown initiators
        // keep the 15 s default, so the test initiator gets an explicit one, which would also
        // take the CHAP credentials away from the portal group.
        if cfg.auth != Auth::None {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the LIO harness sets NOP-In timers only without CHAP",
            ));
        }
        // A ping unanswered for one interval drops the connection, as soon as LIO allows.
        let interval = interval.max(NOPIN_MIN);
        lines.push(format!("acl {initiator}"));
        lines.push(format!("acl_attrib nopin_timeout {interval}"));
        lines.push(format!("acl_attrib nopin_response_timeout {interval}"));
    }
    // `/init` splits a line at whitespace into kind, name and value.
    for l in &lines {
        let words: Vec<&str> = l.split(' ').collect();
        if words.len() > 3
            || words
                .iter()
                .any(|w| w.is_empty() || w.contains(char::is_whitespace))
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "LIO configuration values must be non-empty and hold no whitespace",
            ));
        }
    }
    Ok(lines.join("\n") + "\n")
}

/// The qemu command for a guest serving `disk` on 127.0.0.1:`port`, its console appended to
/// `serial`.
pub fn qemu(img: &Image, dir: &Path, port: u16, disk: &Path) -> Command {
    let mut cmd = Command::new("qemu-system-x86_64");
    let serial = dir.join("serial.log");
    let conf = dir.join("lio.conf");
    cmd.args(["-machine", "q35", "-accel", "tcg,tb-size=64", "-cpu", "max"])
        .args(["-m", "256", "-smp", "1", "-nodefaults", "-no-user-config"])
        .args(["-display", "none", "-no-reboot"])
        .arg("-chardev")
        .arg(format!("file,id=s0,path={},append=on", serial.display()))
        .args(["-serial", "chardev:s0", "-kernel"])
        .arg(&img.kernel)
        .arg("-initrd")
        .arg(&img.initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .arg("-fw_cfg")
        .arg(format!("name=opt/org.isboot/lio,file={}", conf.display()))
        .arg("-netdev")
        .arg(format!(
            "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:3260"
        ))
        // No option ROM: the guest boots from -kernel, iPXE would only cost time.
        .args(["-device", "virtio-net-pci,netdev=n0,romfile="])
        .arg("-drive")
        .arg(format!(
            "file={},if=none,id=d0,format=raw,cache=writeback",
            disk.display()
        ))
        .args(["-device", "virtio-blk-pci,drive=d0"]);
    cmd
}

/// What the guest said on its console (the serial log of this run): ready, failed (with the
/// reason), or nothing yet.
pub fn console_state(serial: &str) -> Option<Result<(), String>> {
    for line in serial.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with(READY) {
            return Some(Ok(()));
        }
        if let Some(why) = line.strip_prefix(FAILED) {
            return Some(Err(why.trim_start_matches(':').trim().to_string()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_lists_what_the_target_must_enforce() {
        let cfg = Config {
            auth: Auth::mutual(),
            digests: true,
            max_recv_dsl: Some(512),
            immediate_data: Some(false),
            ..Config::new(1 << 20)
        };
        let c = conf(&cfg, "iqn.x:lio", "iqn.x:init").unwrap();
        for want in [
            "iqn iqn.x:lio\n",
            "auth mutual\n",
            "chap isboot-user initiator-s3cr\n",
            "mutual isboot-target target-s3cret1\n",
            "param HeaderDigest CRC32C\n",
            "param DataDigest CRC32C\n",
            "param MaxRecvDataSegmentLength 512\n",
            "param MaxXmitDataSegmentLength 512\n",
            "param ImmediateData No\n",
        ] {
            assert!(c.contains(want), "{want:?} missing from {c:?}");
        }
        assert!(!c.contains("acl"), "{c}");
    }

    #[test]
    fn conf_gives_nop_timers_to_an_explicit_acl_at_lios_minimum() {
        let cfg = Config {
            nop_interval: Some(1),
            nop_count: Some(2),
            ..Config::new(1 << 20)
        };
        let c = conf(&cfg, "iqn.x:lio", "iqn.x:init").unwrap();
        assert!(c.contains("acl iqn.x:init\n"), "{c}");
        assert!(c.contains("acl_attrib nopin_timeout 3\n"), "{c}");
        assert!(c.contains("acl_attrib nopin_response_timeout 3\n"), "{c}");
        let chap = Config {
            auth: Auth::chap(),
            ..cfg
        };
        assert_eq!(
            conf(&chap, "iqn.x:lio", "iqn.x:init").unwrap_err().kind(),
            io::ErrorKind::Unsupported
        );
    }

    #[test]
    fn conf_refuses_values_the_guest_would_split() {
        let cfg = Config {
            auth: Auth::Chap {
                user: "a user".into(),
                secret: "s".repeat(12),
            },
            ..Config::new(1 << 20)
        };
        assert!(conf(&cfg, "iqn.x:lio", "iqn.x:init").is_err());
    }

    #[test]
    fn console_state_reads_the_markers() {
        assert_eq!(console_state("[ 1.0] booting\r\n"), None);
        assert_eq!(
            console_state("x\r\nISBOOT-LIO-READY iqn=a auth=none\r\n"),
            Some(Ok(()))
        );
        assert_eq!(
            console_state("ISBOOT-LIO-FAILED: no /dev/vda (virtio-blk disk)\n"),
            Some(Err("no /dev/vda (virtio-blk disk)".into()))
        );
    }
}
