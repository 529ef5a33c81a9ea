// SPDX-License-Identifier: BSD-2-Clause
//! The module's numeric tunables: every timeout an admin may need to change at a hung boot,
//! each a loader tunable and a read-only sysctl of the same name (`net.isboot.*`), with its
//! default and bounds written once, here.
//!
//! A value outside its bounds is not a reason to refuse a boot: it is clamped to the nearest
//! bound (text that is no number gets the default) and the module says so ([`Problem`]), naming
//! the variable, the value given and the value used. The sysctl then shows the value in use.

use alloc::string::String;
use core::fmt;
use core::time::Duration;

use crate::escape::Quoted;
use crate::text::DigestOffer;

/// One numeric tunable, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tunable {
    pub name: &'static str,
    pub default: u32,
    pub min: u32,
    pub max: u32,
    /// One line for the sysctl description and the documentation.
    pub what: &'static str,
}

/// A value put back inside its bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clamped {
    pub name: &'static str,
    pub given: i64,
    pub used: u32,
    pub min: u32,
    pub max: u32,
}

impl fmt::Display for Clamped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={} is outside {}-{}",
            self.name, self.given, self.min, self.max
        )
    }
}

/// Why a tunable's value was not taken as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A number outside the bounds: the nearest bound is used.
    Clamped(Clamped),
    /// Not a number at all: the default is used.
    NotANumber {
        name: &'static str,
        given: String,
        used: u32,
    },
}

impl Problem {
    /// The value used instead.
    pub fn used(&self) -> u32 {
        match self {
            Problem::Clamped(c) => c.used,
            Problem::NotANumber { used, .. } => *used,
        }
    }
}

/// What is wrong, without the value used instead ([`Problem::used`]).
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Clamped(c) => c.fmt(f),
            Problem::NotANumber { name, given, .. } => {
                write!(f, "{name}={} is not a number of seconds", Quoted(given))
            }
        }
    }
}

impl Tunable {
    /// `raw` clamped to the bounds; `Err` carries the clamped value and what to report.
    pub fn bound(&self, raw: i64) -> Result<u32, Clamped> {
        if raw >= i64::from(self.min) && raw <= i64::from(self.max) {
            return u32::try_from(raw).map_err(|_| self.clamped(raw, self.max));
        }
        let used = if raw < i64::from(self.min) {
            self.min
        } else {
            self.max
        };
        Err(self.clamped(raw, used))
    }

    /// The value of the tunable as the environment gives it (`None`: unset, the default).
    /// Decimal, with surrounding ASCII blanks allowed (as strtoq(3) skips them for the kernel's
    /// own tunables); anything else is reported and the default used.
    pub fn read(&self, raw: Option<&str>) -> Result<u32, Problem> {
        let Some(text) = raw.map(str::trim_ascii).filter(|t| !t.is_empty()) else {
            return Ok(self.default);
        };
        let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
        let number = if digits.bytes().all(|b| b.is_ascii_digit()) {
            // Longer than i64 holds: beyond every bound anyway.
            text.parse::<i64>().ok().or(Some(if text.starts_with('-') {
                i64::MIN
            } else {
                i64::MAX
            }))
        } else {
            None
        };
        match number {
            Some(n) => self.bound(n).map_err(Problem::Clamped),
            None => Err(Problem::NotANumber {
                name: self.name,
                given: text.into(),
                used: self.default,
            }),
        }
    }

    fn clamped(&self, given: i64, used: u32) -> Clamped {
        Clamped {
            name: self.name,
            given,
            used,
            min: self.min,
            max: self.max,
        }
    }
}

/// `net.isboot.connect_timeout`: bound on one TCP connect to the target.
pub const CONNECT_TIMEOUT: Tunable = Tunable {
    name: "net.isboot.connect_timeout",
    default: 10,
    min: 1,
    max: 300,
    what: "seconds a TCP connection to the target may take",
};
/// `net.isboot.login_timeout`: bound on one whole login exchange.
pub const LOGIN_TIMEOUT: Tunable = Tunable {
    name: "net.isboot.login_timeout",
    default: 15,
    min: 1,
    max: 300,
    what: "seconds a login (all its requests and answers) may take",
};
/// `net.isboot.nop_interval`: silence after which a NOP-Out ping is sent.
pub const NOP_INTERVAL: Tunable = Tunable {
    name: "net.isboot.nop_interval",
    default: 5,
    min: 1,
    max: 3600,
    what: "seconds of silence from the target before a NOP-Out ping",
};
/// `net.isboot.nop_timeout`: how long the target may stay silent after a ping.
pub const NOP_TIMEOUT: Tunable = Tunable {
    name: "net.isboot.nop_timeout",
    default: 15,
    min: 1,
    max: 3600,
    what: "seconds the target may stay silent after a ping before the connection is dropped",
};
/// `net.isboot.command_timeout`: 0 keeps the timeout CAM gives each command (da(4):
/// `kern.cam.da.default_timeout`, 60 s); otherwise every command gets this many seconds, after
/// which it is aborted at the target and CAM retries it.
pub const COMMAND_TIMEOUT: Tunable = Tunable {
    name: "net.isboot.command_timeout",
    default: 0,
    min: 0,
    max: 3600,
    what: "seconds a SCSI command may take (0: the timeout CAM sets)",
};
/// `net.isboot.root_wait`: how long root mounting waits for the boot disk.
pub const ROOT_WAIT: Tunable = Tunable {
    name: "net.isboot.root_wait",
    default: 120,
    min: 1,
    max: 3600,
    what: "seconds root mounting waits for the boot disk",
};
/// `net.isboot.time2wait_max`: the longest a target's DefaultTime2Wait (or the Time2Wait of an
/// Async Message or Logout Response) may hold a reconnection back.
pub const TIME2WAIT_MAX: Tunable = Tunable {
    name: "net.isboot.time2wait_max",
    default: 60,
    min: 1,
    max: 3600,
    what: "longest wait before reconnecting that a target may ask for, in seconds",
};

/// Every numeric tunable, in the order the documentation lists them.
pub const ALL: [Tunable; 7] = [
    CONNECT_TIMEOUT,
    LOGIN_TIMEOUT,
    NOP_INTERVAL,
    NOP_TIMEOUT,
    COMMAND_TIMEOUT,
    ROOT_WAIT,
    TIME2WAIT_MAX,
];

/// `net.isboot.digests`: which header and data digests the module offers.
pub const DIGESTS: &str = "net.isboot.digests";

/// A `net.isboot.digests` value that names no setting: the default offer is used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadDigests {
    pub given: String,
}

impl fmt::Display for BadDigests {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{DIGESTS}={} is not one of ", Quoted(&self.given))?;
        // Written one by one, not through `[&str]::join` (a 512-byte generic copy loop).
        for (i, s) in DigestOffer::SETTINGS.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(s)?;
        }
        Ok(())
    }
}

/// The digest offer the loader's environment asks for ([`DIGESTS`]): unset means the default
/// (`allow`: `None,CRC32C`, which boots targets that require digests and targets that refuse
/// them); a word outside [`DigestOffer::SETTINGS`] is reported and the default used, as a bad
/// number is for the timeouts: a typo must not keep the machine from booting.
pub fn digests_from_env(env: &dyn super::Env) -> Result<DigestOffer, BadDigests> {
    let Some(raw) = env.get(DIGESTS) else {
        return Ok(DigestOffer::default());
    };
    let word = raw.trim_ascii();
    if word.is_empty() {
        return Ok(DigestOffer::default());
    }
    DigestOffer::from_setting(word).ok_or_else(|| BadDigests { given: word.into() })
}

/// The values of every numeric tunable, in seconds, bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: u32,
    pub login: u32,
    pub nop_interval: u32,
    pub nop_timeout: u32,
    /// 0: CAM's own timeout per command.
    pub command: u32,
    pub root_wait: u32,
    pub time2wait_max: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: CONNECT_TIMEOUT.default,
            login: LOGIN_TIMEOUT.default,
            nop_interval: NOP_INTERVAL.default,
            nop_timeout: NOP_TIMEOUT.default,
            command: COMMAND_TIMEOUT.default,
            root_wait: ROOT_WAIT.default,
            time2wait_max: TIME2WAIT_MAX.default,
        }
    }
}

impl Timeouts {
    /// The values in [`ALL`]'s order.
    pub fn values(&self) -> [u32; 7] {
        [
            self.connect,
            self.login,
            self.nop_interval,
            self.nop_timeout,
            self.command,
            self.root_wait,
            self.time2wait_max,
        ]
    }

    /// Every tunable from the loader's environment; each value not taken as given is reported
    /// through `report` (the platform prints it) and replaced by the bound or the default.
    #[inline(never)]
    pub fn from_env(env: &dyn super::Env, report: &mut dyn FnMut(Problem)) -> Timeouts {
        let mut v = [0u32; 7];
        for (slot, t) in v.iter_mut().zip(ALL.iter()) {
            let raw = env.get(t.name);
            *slot = t.read(raw.as_deref()).unwrap_or_else(|p| {
                let used = p.used();
                report(p);
                used
            });
        }
        Self::from_values(v)
    }

    fn from_values(v: [u32; 7]) -> Timeouts {
        let [connect, login, nop_interval, nop_timeout, command, root_wait, time2wait_max] = v;
        Timeouts {
            connect,
            login,
            nop_interval,
            nop_timeout,
            command,
            root_wait,
            time2wait_max,
        }
    }

    pub fn command_timeout(&self) -> Option<Duration> {
        (self.command > 0).then(|| secs(self.command))
    }

    /// Writes the session's share into `cfg`.
    pub fn apply(&self, cfg: &mut crate::session::SessionConfig) {
        cfg.connect_timeout = secs(self.connect);
        cfg.login_timeout = secs(self.login);
        cfg.timeouts.nop_interval = secs(self.nop_interval);
        cfg.timeouts.nop_timeout = secs(self.nop_timeout);
        cfg.max_time2wait = secs(self.time2wait_max);
    }
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}
