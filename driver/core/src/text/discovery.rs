// SPDX-License-Identifier: BSD-2-Clause
//! Where targets are: `TargetAddress` values (redirects, SendTargets) and SendTargets answers
//! (RFC 7143 Appendix C).

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::Error;

/// One target from a SendTargets answer (RFC 7143 Appendix C).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveredTarget {
    pub name: String,
    /// Portals; empty means "the portal this answer came from".
    pub addresses: Vec<TargetAddress>,
}

/// Groups a SendTargets answer: each `TargetName` starts a target, the `TargetAddress` pairs
/// that follow belong to it. A `TargetAddress` before any `TargetName` is an error; other keys
/// are ignored.
pub fn parse_send_targets(pairs: &[(&str, &str)]) -> Result<Vec<DiscoveredTarget>, Error> {
    let mut out: Vec<DiscoveredTarget> = Vec::new();
    for &(k, v) in pairs {
        match k {
            "TargetName" => out.push(DiscoveredTarget {
                name: v.to_string(),
                addresses: Vec::new(),
            }),
            "TargetAddress" => {
                let addr = TargetAddress::parse(v)?;
                out.last_mut()
                    .ok_or_else(|| Error::TargetAddressWithoutName(v.to_string()))?
                    .addresses
                    .push(addr);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Parts of a TargetAddress value: `host[:port][,tpgt]`, IPv6 hosts in brackets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetAddress {
    /// Host name or address, brackets removed from IPv6 literals.
    pub host: String,
    pub port: Option<u16>,
    pub portal_group_tag: Option<u16>,
}

impl TargetAddress {
    pub fn parse(value: &str) -> Result<TargetAddress, Error> {
        // The parts are found by `Option`s and the one error is built here: each `?` on a
        // `Result` copied the error (as large as `Error`'s largest variant) on its way out.
        TargetAddress::parts(value).ok_or_else(|| Error::BadTargetAddress(value.to_string()))
    }

    /// `host[:port][,tpgt]`; the separators are ASCII, so they are found as bytes (a `char`
    /// pattern brings the general UTF-8 searcher, inlined at each use).
    fn parts(value: &str) -> Option<TargetAddress> {
        let (addr, tpgt) = match value.bytes().rposition(|b| b == b',') {
            Some(i) => {
                let (a, t) = split_at_byte(value, i)?;
                (a, Some(t.parse::<u16>().ok()?))
            }
            None => (value, None),
        };
        let (host, port) = if let Some(rest) = addr.strip_prefix('[') {
            let (h, after) = split_at_byte(rest, rest.bytes().position(|b| b == b']')?)?;
            match after {
                "" => (h, None),
                p => (h, Some(p.strip_prefix(':')?)),
            }
        } else {
            match addr.bytes().position(|b| b == b':') {
                Some(i) => {
                    let (h, p) = split_at_byte(addr, i)?;
                    (h, Some(p))
                }
                None => (addr, None),
            }
        };
        if host.is_empty() {
            return None;
        }
        let port = match port {
            Some(p) => Some(p.parse::<u16>().ok()?),
            None => None,
        };
        Some(TargetAddress {
            host: host.to_string(),
            port,
            portal_group_tag: tpgt,
        })
    }
}

/// `s` before and after its byte `i` (an ASCII separator), without the separator.
fn split_at_byte(s: &str, i: usize) -> Option<(&str, &str)> {
    Some((s.get(..i)?, s.get(i.checked_add(1)?..)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::parse_pairs;
    use alloc::vec;

    #[test]
    fn target_address_forms() {
        let t = |s| TargetAddress::parse(s);
        assert_eq!(
            t("127.0.0.2:3260,1").unwrap(),
            TargetAddress {
                host: "127.0.0.2".into(),
                port: Some(3260),
                portal_group_tag: Some(1)
            }
        );
        assert_eq!(
            t("target.example").unwrap(),
            TargetAddress {
                host: "target.example".into(),
                port: None,
                portal_group_tag: None
            }
        );
        assert_eq!(t("[::1]").unwrap().host, "::1");
        // The separators are found as bytes: a host beyond ASCII keeps its characters whole.
        assert_eq!(
            t("[fe80::1]:3261,2").unwrap(),
            TargetAddress {
                host: "fe80::1".into(),
                port: Some(3261),
                portal_group_tag: Some(2)
            }
        );
        assert_eq!(
            t("hôte,é:3260,7").unwrap(),
            TargetAddress {
                host: "hôte,é".into(),
                port: Some(3260),
                portal_group_tag: Some(7)
            }
        );
        for bad in [
            "",
            ":3260",
            "h:port",
            "h:3260,x",
            "[::1",
            "[::1]3260",
            "h:70000",
        ] {
            assert_eq!(t(bad), Err(Error::BadTargetAddress(bad.into())), "{bad:?}");
        }
    }

    #[test]
    fn send_targets_answer() {
        let text = b"TargetName=iqn.a:1\0TargetAddress=127.0.0.1:3260,1\0\
TargetAddress=[::1]:3260,1\0TargetName=iqn.a:2\0";
        let pairs = parse_pairs(text).unwrap();
        let t = parse_send_targets(&pairs).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].name, "iqn.a:1");
        assert_eq!(t[0].addresses.len(), 2);
        assert_eq!(t[0].addresses[1].host, "::1");
        assert_eq!(t[1].addresses, vec![]);
    }

    #[test]
    fn send_targets_address_before_any_name_is_refused_as_such() {
        let err = parse_send_targets(&[("TargetAddress", "h:1,1")]).unwrap_err();
        assert_eq!(err, Error::TargetAddressWithoutName("h:1,1".into()));
        assert!(err.to_string().contains("before any TargetName"), "{err}");
    }
}
