// SPDX-License-Identifier: BSD-2-Clause
//! [`Initiator`] over isboot-host's block device: the core's session (login, CHAP, recovery) on
//! real sockets, exactly the code the kernel module runs.

use std::time::Duration;

use isboot_core::chap::ChapConfig;
use isboot_core::text::DigestOffer;
use isboot_host::disk::{DiskConfig, Error, HostDisk};

use crate::boot::{sense_text, BootParams, Initiator, LoginError, LoginInfo};

#[derive(Debug)]
pub struct HostInitiator {
    disk: Option<HostDisk>,
    lun: Option<u64>,
    /// Bound on the login and on every command.
    pub timeout: Duration,
    /// Session messages to stderr: 0..=3 as `net.isboot.debug`.
    pub log_level: u8,
    /// What to offer for HeaderDigest and DataDigest.
    pub digests: DigestOffer,
}

impl HostInitiator {
    pub fn new(timeout: Duration, log_level: u8, digests: DigestOffer) -> HostInitiator {
        HostInitiator {
            disk: None,
            lun: None,
            timeout,
            log_level,
            digests,
        }
    }

    fn disk(&self) -> Result<&HostDisk, String> {
        self.disk
            .as_ref()
            .ok_or_else(|| "not logged in".to_string())
    }

    /// The session serves the LUN it was opened for; asking for another is a caller bug.
    fn check_lun(&self, lun: u64, what: &str) -> Result<&HostDisk, String> {
        let d = self.disk()?;
        if self.lun != Some(lun) {
            return Err(format!(
                "{what} for LUN {lun}, but the session serves LUN {:?}",
                self.lun
            ));
        }
        Ok(d)
    }
}

impl Initiator for HostInitiator {
    fn login(&mut self, p: &BootParams) -> Result<LoginInfo, LoginError> {
        let lun = u16::try_from(p.lun).map_err(|_| {
            LoginError::Login(format!(
                "LUN {} is beyond the 16-bit LUNs the session addresses",
                p.lun
            ))
        })?;
        let mut cfg = DiskConfig::new(p.portal, &p.target, lun, &p.initiator);
        cfg.chap = p.chap.clone().map(|c| ChapConfig::new(c, p.mutual.clone()));
        cfg.offer.set_digests(self.digests);
        // A preflight reports a refused login at once; the kernel retries forever instead.
        cfg.login_attempts = Some(1);
        cfg.command_timeout = Some(self.timeout);
        cfg.io_timeout = self.timeout;
        cfg.log_level = self.log_level;
        // open() logs in, then reads the capacity: a SCSI error means the session is up and
        // the LUN is what failed.
        let disk = HostDisk::open(cfg).map_err(|e| match e {
            Error::Scsi { status, sense } => LoginError::Lun(match sense.key_asc_ascq() {
                Some((k, a, q)) => format!("READ CAPACITY failed: {}", sense_text(k, a, q)),
                None => format!("READ CAPACITY failed: SCSI status {status:#04x}"),
            }),
            other => LoginError::Login(other.to_string()),
        })?;
        let negotiated = disk.negotiated();
        self.disk = Some(disk);
        self.lun = Some(p.lun);
        Ok(LoginInfo {
            summary: negotiated
                .map(|params| format!("negotiated {params}"))
                .into_iter()
                .collect(),
        })
    }

    fn report_luns(&mut self) -> Result<Vec<u64>, String> {
        let luns = self.disk()?.report_luns().map_err(|e| e.to_string())?;
        Ok(luns.into_iter().map(u64::from).collect())
    }

    fn inquiry(&mut self, lun: u64) -> Result<Vec<u8>, String> {
        self.check_lun(lun, "INQUIRY")?
            .inquiry_data()
            .map_err(|e| e.to_string())
    }

    fn read_capacity(&mut self, lun: u64) -> Result<(u64, u32), String> {
        self.check_lun(lun, "READ CAPACITY")?
            .read_capacity()
            .map_err(|e| e.to_string())
    }

    fn read(&mut self, lun: u64, lba: u64, blocks: u32) -> Result<Vec<u8>, String> {
        self.check_lun(lun, "READ")?
            .read(lba, blocks)
            .map_err(|e| e.to_string())
    }

    fn logout(&mut self) -> Result<(), String> {
        match self.disk.take() {
            Some(d) => d.close().map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}
