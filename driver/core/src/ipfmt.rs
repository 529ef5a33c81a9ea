// SPDX-License-Identifier: BSD-2-Clause
//! IP and socket addresses written as `core::net`'s `Display` writes them when no width or
//! precision is asked for. core's own also pad to a width, through a buffer per type, which no
//! message asks for; in the kernel module those paths were ~2 KiB of code beside these.

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// An IP address: `192.0.2.1`, `2001:db8::1` (RFC 5952: the longest run of two or more zero
/// groups, the first of equal ones, as `::`), `::ffff:192.0.2.1` for IPv4-mapped addresses.
#[derive(Clone, Copy, Debug)]
pub struct Ip(pub IpAddr);

/// A socket address: `192.0.2.1:3260`, `[2001:db8::1]:3260`, `[fe80::1%2]:3260`.
#[derive(Clone, Copy, Debug)]
pub struct Addr<'a>(pub &'a SocketAddr);

impl fmt::Display for Ip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(a) => v4(f, a),
            IpAddr::V6(a) => v6(f, a),
        }
    }
}

impl fmt::Display for Addr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            SocketAddr::V4(a) => {
                v4(f, *a.ip())?;
                write!(f, ":{}", a.port())
            }
            SocketAddr::V6(a) => {
                f.write_str("[")?;
                v6(f, *a.ip())?;
                if a.scope_id() != 0 {
                    write!(f, "%{}", a.scope_id())?;
                }
                write!(f, "]:{}", a.port())
            }
        }
    }
}

fn v4(f: &mut fmt::Formatter<'_>, a: Ipv4Addr) -> fmt::Result {
    let [a, b, c, d] = a.octets();
    write!(f, "{a}.{b}.{c}.{d}")
}

fn v6(f: &mut fmt::Formatter<'_>, a: Ipv6Addr) -> fmt::Result {
    // From the integer: `segments` and `to_ipv4_mapped` are out-of-line functions in the
    // module, ~200 bytes together.
    let n = u128::from(a);
    if n.wrapping_shr(32) == 0xffff {
        f.write_str("::ffff:")?;
        return v4(f, Ipv4Addr::from(n as u32));
    }
    let mut s = [0u16; 8];
    let mut rest = n;
    for g in s.iter_mut().rev() {
        *g = rest as u16;
        rest = rest.wrapping_shr(16);
    }
    let (mut start, mut len, mut run_start, mut run) = (0, 0, 0, 0usize);
    for (i, &g) in s.iter().enumerate() {
        if g == 0 {
            if run == 0 {
                run_start = i;
            }
            run = run.saturating_add(1);
            if run > len {
                (start, len) = (run_start, run);
            }
        } else {
            run = 0;
        }
    }
    if len > 1 {
        groups(f, s.get(..start).unwrap_or_default())?;
        f.write_str("::")?;
        groups(f, s.get(start.saturating_add(len)..).unwrap_or_default())
    } else {
        groups(f, &s)
    }
}

fn groups(f: &mut fmt::Formatter<'_>, s: &[u16]) -> fmt::Result {
    for (i, g) in s.iter().enumerate() {
        if i > 0 {
            f.write_str(":")?;
        }
        write!(f, "{:x}", *g)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use core::net::SocketAddrV6;

    #[test]
    fn ip_writes_what_core_writes() {
        let v4s = [
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            Ipv4Addr::new(10, 0, 0, 9),
        ];
        for a in v4s {
            assert_eq!(format!("{}", Ip(a.into())), format!("{a}"));
            let mapped = a.to_ipv6_mapped();
            assert_eq!(format!("{}", Ip(mapped.into())), format!("{mapped}"));
            let compat = a.to_ipv6_compatible();
            assert_eq!(format!("{}", Ip(compat.into())), format!("{compat}"));
        }
        // Every pattern of zero and non-zero groups, with values of each width.
        for zeros in 0u32..256 {
            for v in [1u16, 0xab, 0xfff, 0xffff] {
                let mut s = [0u16; 8];
                for (i, g) in s.iter_mut().enumerate() {
                    if zeros & (1 << i) == 0 {
                        *g = v.wrapping_add(i as u16);
                    }
                }
                let a = Ipv6Addr::from(s);
                assert_eq!(format!("{}", Ip(a.into())), format!("{a}"), "{s:?}");
            }
        }
        assert_eq!(format!("{}", Ip("fd00::1:2".parse().unwrap())), "fd00::1:2");
    }

    #[test]
    fn addr_writes_what_socket_addr_writes() {
        let v6 = |ip: &str, port, scope| {
            SocketAddr::V6(SocketAddrV6::new(ip.parse().unwrap(), port, 7, scope))
        };
        let addrs = [
            SocketAddr::new(Ipv4Addr::new(192, 0, 2, 1).into(), 3260),
            SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
            SocketAddr::new(Ipv4Addr::BROADCAST.into(), u16::MAX),
            v6("2001:db8::1", 3260, 0),
            v6("::ffff:192.0.2.1", 860, 0),
            v6("fe80::1", 3260, 2),
            v6("1:2:3:4:5:6:7:8", 1, u32::MAX),
        ];
        for a in addrs {
            assert_eq!(format!("{}", Addr(&a)), format!("{a}"));
        }
        assert_eq!(format!("{}", Addr(&addrs[5])), "[fe80::1%2]:3260");
    }
}
