// SPDX-License-Identifier: BSD-2-Clause
//! Why a connection must be dropped: [`Disconnect`], and the protocol [`Violation`]s it names.

use core::fmt;
use core::time::Duration;

use crate::pdu::{self, AsyncEvent, RejectReason};
use crate::sn::Sn;

/// The longest Time2Wait (Async Message, Logout Response) honoured, in seconds: the largest
/// DefaultTime2Wait RFC 7143 allows (§13.15). The PDU fields reach 65535 s (18 hours), which
/// would keep a root disk away far beyond any sensible target restart.
pub const MAX_TIME2WAIT: u16 = 3600;

/// A target's Time2Wait, capped at [`MAX_TIME2WAIT`].
pub(super) fn time2wait(secs: u16) -> Duration {
    Duration::from_secs(u64::from(secs.min(MAX_TIME2WAIT)))
}

/// ", at most N s honoured" when a wait is at the cap (the target may have asked for more).
struct CapNote(Duration);

impl fmt::Display for CapNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.as_secs() >= u64::from(MAX_TIME2WAIT) {
            write!(f, ", capped at {MAX_TIME2WAIT}s")
        } else {
            Ok(())
        }
    }
}

/// Why the connection must be dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disconnect {
    /// The target sent something that breaks the protocol or our negotiated limits.
    Violation(Violation),
    /// No PDU from the target within the NOP timeout.
    NopTimeout,
    /// A task management request got no answer in time.
    TmfTimeout,
    /// A Logout the target asked for got no answer in time.
    LogoutTimeout,
    /// The target asked for it (Async Message), to be retried after `wait`.
    TargetRequest { event: AsyncEvent, wait: Duration },
    /// A Logout (target-requested or a recovery logout) completed; reconnect after `wait`.
    LoggedOut { wait: Duration },
    /// The target rejected a PDU in a way only a new connection can repair (ERL 0).
    Rejected(RejectReason),
    /// The transport failed (reported by the driver, not the engine).
    Io(crate::port::IoError),
    /// A buffer the target's PDU needed could not be allocated (memory is short): reconnect
    /// later, as after any fault.
    NoMemory,
    /// A bug of ours, not a fault of the target: an invariant the code relies on did not
    /// hold. Debug builds (the tests) stop at the assertion of `Disconnect::internal`;
    /// release builds drop the connection and recover, as for a fault.
    Internal(&'static str),
}

impl Disconnect {
    /// An internal error: `what` invariant did not hold.
    #[track_caller]
    pub(crate) fn internal(what: &'static str) -> Disconnect {
        debug_assert!(false, "internal error: {what}");
        Disconnect::Internal(what)
    }

    /// How long to wait before reconnecting, when the target said so.
    pub fn wait(&self) -> Option<Duration> {
        match *self {
            Disconnect::TargetRequest { wait, .. } | Disconnect::LoggedOut { wait } => Some(wait),
            _ => None,
        }
    }
}

impl fmt::Display for Disconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Disconnect::Violation(v) => write!(f, "{v}"),
            Disconnect::NopTimeout => {
                f.write_str("no PDU from the target within the NOP-In timeout")
            }
            Disconnect::TmfTimeout => f.write_str("no task management response in time"),
            Disconnect::LogoutTimeout => f.write_str("no Logout Response in time"),
            Disconnect::TargetRequest { event, wait } => {
                write!(
                    f,
                    "target asked to drop the connection ({event:?}, wait {}s{})",
                    wait.as_secs(),
                    CapNote(*wait)
                )
            }
            Disconnect::LoggedOut { wait } => write!(
                f,
                "logged out at the target's request (wait {}s{})",
                wait.as_secs(),
                CapNote(*wait)
            ),
            Disconnect::Rejected(r) => write!(f, "target rejected a PDU ({r:?})"),
            Disconnect::Io(e) => write!(f, "{e}"),
            Disconnect::NoMemory => f.write_str("out of memory"),
            Disconnect::Internal(what) => write!(f, "internal error: {what}"),
        }
    }
}

impl core::error::Error for Disconnect {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Disconnect::Violation(v) => Some(v),
            Disconnect::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// A target PDU that breaks the rules, named precisely for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// The PDU could not be parsed (or a digest/length check failed).
    Pdu(pdu::Error),
    /// An initiator opcode, a login/text PDU in full feature phase, or one we never asked for.
    UnexpectedOpcode(pdu::Opcode),
    /// The ITT names no outstanding task.
    UnknownItt { opcode: pdu::Opcode, itt: u32 },
    /// Data-In for a command that reads nothing, or an R2T for one that writes nothing.
    WrongDirection { itt: u32 },
    /// Data-In at an offset other than the bytes received so far.
    DataInOffset {
        itt: u32,
        offset: u32,
        expected: u32,
    },
    /// Data-In running past the command's buffer.
    DataInOverrun { itt: u32, end: u64, len: u32 },
    /// DataSN out of sequence.
    DataSn { itt: u32, got: Sn, expected: Sn },
    /// R2TSN out of sequence.
    R2tSn { itt: u32, got: Sn, expected: Sn },
    /// R2T for bytes outside the transfer, or longer than MaxBurstLength, or empty.
    R2tRange {
        itt: u32,
        offset: u32,
        len: u32,
        edtl: u32,
    },
    /// More R2Ts outstanding than MaxOutstandingR2T.
    TooManyR2t { itt: u32, max: u16 },
    /// Data on a PDU that may not carry any (or more than the PDU allows).
    UnexpectedData { opcode: pdu::Opcode, len: u32 },
    /// SenseLength past the segment in a SCSI Response.
    Sense(pdu::Error),
    /// A response for a task management request or logout we did not send.
    UnknownResponse { opcode: pdu::Opcode, itt: u32 },
    /// A SCSI Response while Data-In for the command is still missing.
    MissingData {
        itt: u32,
        received: u32,
        expected: u32,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Violation::Pdu(e) => write!(f, "bad PDU: {e}"),
            Violation::UnexpectedOpcode(op) => write!(f, "unexpected opcode {op:?}"),
            Violation::UnknownItt { opcode, itt } => {
                write!(f, "{opcode:?} for unknown ITT {itt:#010x}")
            }
            Violation::WrongDirection { itt } => {
                write!(f, "data transfer against the direction of ITT {itt:#010x}")
            }
            Violation::DataInOffset {
                itt,
                offset,
                expected,
            } => write!(
                f,
                "Data-In for ITT {itt:#010x} at offset {offset}, expected {expected}"
            ),
            Violation::DataInOverrun { itt, end, len } => write!(
                f,
                "Data-In for ITT {itt:#010x} ends at {end}, past the {len}-byte buffer"
            ),
            Violation::DataSn { itt, got, expected } => {
                write!(f, "DataSN {got} for ITT {itt:#010x}, expected {expected}")
            }
            Violation::R2tSn { itt, got, expected } => {
                write!(f, "R2TSN {got} for ITT {itt:#010x}, expected {expected}")
            }
            Violation::R2tRange {
                itt,
                offset,
                len,
                edtl,
            } => write!(
                f,
                "R2T for ITT {itt:#010x} asks for {len} bytes at {offset} of a {edtl}-byte transfer"
            ),
            Violation::TooManyR2t { itt, max } => {
                write!(
                    f,
                    "more than MaxOutstandingR2T={max} R2Ts for ITT {itt:#010x}"
                )
            }
            Violation::UnexpectedData { opcode, len } => {
                write!(f, "{opcode:?} with an unexpected {len}-byte data segment")
            }
            Violation::Sense(e) => write!(f, "bad SCSI Response data: {e}"),
            Violation::UnknownResponse { opcode, itt } => {
                write!(f, "{opcode:?} for ITT {itt:#010x} that we never sent")
            }
            Violation::MissingData {
                itt,
                received,
                expected,
            } => write!(
                f,
                "SCSI Response for ITT {itt:#010x} after {received} of {expected} Data-In bytes \
                 without an underflow"
            ),
        }
    }
}

impl core::error::Error for Violation {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Violation::Pdu(e) | Violation::Sense(e) => Some(e),
            _ => None,
        }
    }
}

impl From<Violation> for Disconnect {
    fn from(v: Violation) -> Self {
        Disconnect::Violation(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use core::error::Error as _;

    #[test]
    fn errors_chain_to_their_cause_and_internal_ones_say_so() {
        let d = Disconnect::Violation(Violation::Pdu(pdu::Error::ReservedStage));
        let v = d.source().expect("a violation is the cause");
        assert_eq!(
            v.to_string(),
            "bad PDU: login stage field holds the reserved value 2"
        );
        assert!(v.source().is_some(), "and the PDU error is its cause");
        assert!(Disconnect::NopTimeout.source().is_none());
        assert_eq!(
            Disconnect::Internal("x").to_string(),
            "internal error: x",
            "logged as ours, not the target's"
        );
    }

    #[test]
    #[should_panic(expected = "internal error: broken")]
    fn an_internal_error_stops_debug_builds() {
        let _ = Disconnect::internal("broken");
    }
}
