// SPDX-License-Identifier: BSD-2-Clause
//! What a socket error number means for the session: the kernel returns FreeBSD `errno` values
//! from `soconnect`/`soreceive`/`sosend` and `so_error`; the session only cares whether the
//! connection was refused, broke, is unreachable, or timed out.

/// FreeBSD `errno.h` values used here (the kernel crate asserts them against its headers).
pub mod num {
    pub const EPIPE: i32 = 32;
    pub const EWOULDBLOCK: i32 = 35;
    pub const ENETDOWN: i32 = 50;
    pub const ENETUNREACH: i32 = 51;
    pub const ENETRESET: i32 = 52;
    pub const ECONNABORTED: i32 = 53;
    pub const ECONNRESET: i32 = 54;
    pub const ENOTCONN: i32 = 57;
    pub const ETIMEDOUT: i32 = 60;
    pub const ECONNREFUSED: i32 = 61;
    pub const EHOSTDOWN: i32 = 64;
    pub const EHOSTUNREACH: i32 = 65;
    pub const EADDRNOTAVAIL: i32 = 49;
}

/// The session-relevant class of a socket error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockErr {
    Reset,
    Refused,
    Unreachable,
    TimedOut,
    Other(i32),
}

/// Classifies a socket error number.
pub fn classify(errno: i32) -> SockErr {
    use num::*;
    match errno {
        ECONNRESET | EPIPE | ECONNABORTED | ENOTCONN | ENETRESET => SockErr::Reset,
        ECONNREFUSED => SockErr::Refused,
        ENETDOWN | ENETUNREACH | EHOSTDOWN | EHOSTUNREACH | EADDRNOTAVAIL => SockErr::Unreachable,
        ETIMEDOUT => SockErr::TimedOut,
        e => SockErr::Other(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_errors_are_classified() {
        assert_eq!(classify(num::ECONNRESET), SockErr::Reset);
        assert_eq!(classify(num::EPIPE), SockErr::Reset);
        assert_eq!(classify(num::ECONNREFUSED), SockErr::Refused);
        assert_eq!(classify(num::EHOSTUNREACH), SockErr::Unreachable);
        assert_eq!(classify(num::ENETDOWN), SockErr::Unreachable);
        assert_eq!(classify(num::ETIMEDOUT), SockErr::TimedOut);
        assert_eq!(classify(12), SockErr::Other(12));
    }
}
