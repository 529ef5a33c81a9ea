// SPDX-License-Identifier: BSD-2-Clause
//! The iSCSI session: login, full feature phase and recovery.

mod engine;
mod table;

#[cfg(test)]
mod tests;

use core::fmt;

pub use engine::{
    Disconnect, Engine, Event, LoginSns, Params, Phase, RxSink, Stats, SubmitError, Timeouts,
    Violation,
};
pub use table::MAX_SLOTS;

/// Why a LOGICAL UNIT RESET did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TmfError {
    /// The session is not in full feature phase (or too many resets are in flight).
    NotConnected,
    /// The connection was lost before the target answered.
    ConnectionLost,
    /// The target answered with this TMF response code (RFC 7143 §11.6.1).
    Refused(u8),
}

impl fmt::Display for TmfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TmfError::NotConnected => f.write_str("session not connected"),
            TmfError::ConnectionLost => f.write_str("connection lost before the answer"),
            TmfError::Refused(r) => write!(f, "target refused (response {r})"),
        }
    }
}

/// What the session is doing, as reported to [`crate::port::Events::state`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Connecting and logging in (first time).
    LoggingIn,
    /// In full feature phase; commands flow.
    Up,
    /// The connection was lost; reconnecting (commands are kept).
    Recovering,
    /// Logged out or given up; every request has completed.
    Closed,
}
