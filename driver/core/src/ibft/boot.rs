// SPDX-License-Identifier: BSD-2-Clause
//! Choosing what to boot from: the target firmware selected (or the first usable one), reached
//! through the NIC its `nic_index` names, with every other usable pair kept for failover.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::net::IpAddr;

use super::{flags_valid, ChapType, Ibft, Nic, Target};
use crate::bootcfg::{BootCandidate, BootConfig, Source};

/// A target left out of the candidates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub pair: usize,
    pub reason: SkipReason,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// Neither "block valid" nor "firmware boot selected" is set.
    NotValid,
    NoAddress,
    NoName,
    /// No NIC structure has this index.
    NoNic {
        nic_index: u8,
    },
    NicNotValid {
        nic_index: u8,
    },
    NicNoAddress {
        nic_index: u8,
    },
    /// The NIC's prefix length does not fit its address family.
    NicBadPrefix {
        nic_index: u8,
        prefix_len: u8,
    },
    UnknownChapType {
        raw: u8,
    },
    /// CHAP is required but the name or secret (or, for mutual CHAP, the reverse ones) is missing.
    ChapIncomplete,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "iBFT target{} skipped: ", self.pair)?;
        match self.reason {
            SkipReason::NotValid => f.write_str("not marked valid"),
            SkipReason::NoAddress => f.write_str("no IP address"),
            SkipReason::NoName => f.write_str("no target name"),
            SkipReason::NoNic { nic_index } => write!(f, "no NIC with index {nic_index}"),
            SkipReason::NicNotValid { nic_index } => write!(f, "NIC {nic_index} not marked valid"),
            SkipReason::NicNoAddress { nic_index } => {
                write!(f, "NIC {nic_index} has no IP address")
            }
            SkipReason::NicBadPrefix {
                nic_index,
                prefix_len,
            } => write!(f, "NIC {nic_index} prefix length {prefix_len} too long"),
            SkipReason::UnknownChapType { raw } => write!(f, "unknown CHAP type {raw}"),
            SkipReason::ChapIncomplete => f.write_str("CHAP name or secret missing"),
        }
    }
}

/// Why no boot configuration could be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootError {
    NoInitiator,
    NoInitiatorName,
    /// No target is usable; `skipped` says why for each one present (empty: the table has none).
    NoUsableTarget {
        skipped: Vec<Skipped>,
    },
}

impl fmt::Display for BootError {
    // Formatted both as itself and through `&BootError`; once, not inlined into each.
    #[inline(never)]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootError::NoInitiator => f.write_str("iBFT has no initiator structure"),
            BootError::NoInitiatorName => f.write_str("iBFT initiator has no name"),
            BootError::NoUsableTarget { skipped } if skipped.is_empty() => {
                f.write_str("iBFT has no target")
            }
            BootError::NoUsableTarget { skipped } => {
                write!(f, "iBFT has no usable target")?;
                for s in skipped {
                    write!(f, "; {s}")?;
                }
                Ok(())
            }
        }
    }
}

impl core::error::Error for BootError {}

impl Ibft {
    /// The NIC a target names: the NIC whose `index` equals `nic_index`, else (for firmware that
    /// leaves indexes zero) the one in pair `nic_index`.
    pub fn nic_for(&self, target: &Target) -> Option<&Nic> {
        let nics = || self.nics.iter().flatten();
        nics()
            .find(|n| n.index == target.nic_index)
            .or_else(|| self.nics.get(usize::from(target.nic_index))?.as_ref())
    }

    /// The boot pair and its alternates.
    pub fn boot_config(&self) -> Result<BootConfig, BootError> {
        self.clone().into_boot_config()
    }

    /// [`boot_config`](Self::boot_config), taking the table: the module's two callers are
    /// done with it, and moving the targets out instead of cloning each name and secret (and
    /// then dropping the table) is less code there.
    // Not inlined into `module::choose`, its one caller in the module: 176 bytes less.
    #[inline(never)]
    pub fn into_boot_config(mut self) -> Result<BootConfig, BootError> {
        let initiator = self.initiator.take().ok_or(BootError::NoInitiator)?;
        let initiator_name = initiator.name.clone().ok_or(BootError::NoInitiatorName)?;
        let mut selected = Vec::new();
        let mut others = Vec::new();
        let mut skipped = Vec::new();
        for (pair, target) in core::mem::take(&mut self.targets).into_iter().enumerate() {
            let Some(target) = target else { continue };
            match self.usable(&target) {
                Ok(nic) => {
                    let boot_selected = target.is_boot_selected();
                    let c = BootCandidate {
                        pair,
                        nic: nic.clone(),
                        target,
                        ifname: None,
                    };
                    if boot_selected {
                        selected.push(c);
                    } else {
                        others.push(c);
                    }
                }
                Err(reason) => skipped.push(Skipped { pair, reason }),
            }
        }
        selected.append(&mut others);
        if selected.is_empty() {
            return Err(BootError::NoUsableTarget { skipped });
        }
        Ok(BootConfig {
            source: Source::Ibft,
            initiator,
            initiator_name,
            candidates: selected,
            skipped,
        })
    }

    // Not inlined into `boot_config`: 160 bytes less of the module.
    #[inline(never)]
    fn usable(&self, t: &Target) -> Result<&Nic, SkipReason> {
        if !t.is_valid() {
            return Err(SkipReason::NotValid);
        }
        if t.ip.is_none() {
            return Err(SkipReason::NoAddress);
        }
        if t.name.is_none() {
            return Err(SkipReason::NoName);
        }
        let have = |name: &Option<String>, secret: &Option<crate::secret::Secret>| {
            name.is_some() && secret.as_ref().is_some_and(|s| !s.is_empty())
        };
        match t.chap_type {
            ChapType::None => {}
            ChapType::Chap if have(&t.chap_name, &t.chap_secret) => {}
            ChapType::Mutual
                if have(&t.chap_name, &t.chap_secret)
                    && have(&t.reverse_chap_name, &t.reverse_chap_secret) => {}
            ChapType::Chap | ChapType::Mutual => return Err(SkipReason::ChapIncomplete),
            ChapType::Unknown(raw) => return Err(SkipReason::UnknownChapType { raw }),
        }
        let nic_index = t.nic_index;
        let nic = self.nic_for(t).ok_or(SkipReason::NoNic { nic_index })?;
        if !flags_valid(nic.flags) {
            return Err(SkipReason::NicNotValid { nic_index });
        }
        let max_prefix = match nic.ip {
            None => return Err(SkipReason::NicNoAddress { nic_index }),
            Some(IpAddr::V4(_)) => 32,
            Some(IpAddr::V6(_)) => 128,
        };
        if nic.prefix_len > max_prefix {
            return Err(SkipReason::NicBadPrefix {
                nic_index,
                prefix_len: nic.prefix_len,
            });
        }
        Ok(nic)
    }
}

impl Target {
    /// The TCP port to connect to: the table's, or iSCSI's 3260 when firmware left it zero.
    pub fn port_or_default(&self) -> u16 {
        if self.port == 0 {
            3260
        } else {
            self.port
        }
    }
}
