// SPDX-License-Identifier: BSD-2-Clause
//! What the machine boots from, and where that was learnt: the firmware's iBFT
//! ([`crate::ibft`]) or the loader's environment ([`loader`]: `net.isboot.*` tunables with the
//! target as an RFC 4173 root path ([`rootpath`]) and the NIC from the loader's `boot.netif.*`
//! or from tunables).
//!
//! Both sources produce the one [`BootConfig`], through the same checks: the loader's values
//! are written into an [`Ibft`](crate::ibft::Ibft) value and chosen from by
//! [`Ibft::boot_config`](crate::ibft::Ibft::boot_config), as a firmware table would be. The
//! module, the session ([`crate::session::SessionConfig::from_boot`]) and `isbootctl` never ask
//! which source it was, except to say so.
//!
//! Which source is used is the loader tunable `net.isboot.source` ([`Mode`]): `auto` (the
//! default) takes a usable iBFT and otherwise the tunables, `ibft` and `loader` take only one.

pub mod loader;
pub mod rootpath;
pub mod tunables;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::ibft::{Initiator, Nic, Skipped, Target};

pub use loader::{from_env, Env, Loaded, LoaderError, NicSource};
pub use rootpath::{RootPath, RootPathError, Server};

/// Where a [`BootConfig`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The firmware's iSCSI Boot Firmware Table.
    Ibft,
    /// The loader's environment (`net.isboot.root_path` and friends).
    Loader,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Ibft => "iBFT",
            Source::Loader => "loader tunables",
        })
    }
}

/// One (NIC, target) pair to try, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootCandidate {
    /// The iBFT Control pair the target came from (0 for the loader's one target).
    pub pair: usize,
    pub nic: Nic,
    pub target: Target,
    /// The interface by name (`net.isboot.nic_name`, or the loader's `boot.netif.name` without
    /// `boot.netif.hwaddr`). `None`: the interface is the one with `nic.mac`, as in an iBFT.
    pub ifname: Option<String>,
}

/// What the driver boots from: the initiator and the candidates in the order to try them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootConfig {
    pub source: Source,
    pub initiator: Initiator,
    /// The initiator's iSCSI name (present: a config without one is refused).
    pub initiator_name: String,
    /// `candidates[0]` is the boot pair; the rest are alternates for failover, in table order
    /// with firmware-selected targets first. Never empty.
    pub candidates: Vec<BootCandidate>,
    /// Targets present in the table but not usable, and why (for the log). Empty for the
    /// loader's configuration, whose mistakes are errors.
    pub skipped: Vec<Skipped>,
}

impl BootConfig {
    pub fn boot(&self) -> Option<&BootCandidate> {
        self.candidates.first()
    }
}

/// `net.isboot.source`: which source the module reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// A usable iBFT; without one, the loader tunables (when `net.isboot.root_path` is set).
    #[default]
    Auto,
    /// Only the iBFT; the tunables are ignored (their secrets are still removed).
    Ibft,
    /// Only the tunables, even when firmware left an iBFT.
    Loader,
}

impl Mode {
    /// The values `net.isboot.source` takes, in the order the documentation lists them.
    pub const SETTINGS: [&'static str; 3] = ["auto", "ibft", "loader"];

    pub fn from_setting(s: &str) -> Option<Mode> {
        match s {
            "auto" => Some(Mode::Auto),
            "ibft" => Some(Mode::Ibft),
            "loader" => Some(Mode::Loader),
            _ => None,
        }
    }

    pub fn setting(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Ibft => "ibft",
            Mode::Loader => "loader",
        }
    }

    pub fn uses_ibft(self) -> bool {
        self != Mode::Loader
    }
}

#[cfg(test)]
mod tests;
