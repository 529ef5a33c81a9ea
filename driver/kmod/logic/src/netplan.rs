// SPDX-License-Identifier: BSD-2-Clause
//! What to configure on the boot NIC, decided from the iBFT's values before any ioctl runs.
//!
//! The glue turns a [`Plan4`] or [`Plan6`] into `SIOCAIFADDR` / `SIOCAIFADDR_IN6` and route
//! requests; every check that can be made on plain addresses is made here, so that a bad iBFT is
//! reported with what was wrong instead of leaving a half-configured interface.

/// IPv4 netmask for a prefix length (`None` beyond 32).
pub fn mask4(prefix: u8) -> Option<[u8; 4]> {
    match prefix {
        0 => Some([0; 4]),
        1..=32 => u32::MAX
            .checked_shl(32u32.saturating_sub(u32::from(prefix)))
            .map(u32::to_be_bytes),
        _ => None,
    }
}

/// IPv6 netmask for a prefix length (`None` beyond 128).
pub fn mask6(prefix: u8) -> Option<[u8; 16]> {
    match prefix {
        0 => Some([0; 16]),
        1..=128 => u128::MAX
            .checked_shl(128u32.saturating_sub(u32::from(prefix)))
            .map(u128::to_be_bytes),
        _ => None,
    }
}

// As one integer, not byte by byte: the glue inlines the plans into its cold NIC setup, where
// the byte loops, unrolled at this crate's opt-level, were most of the code.
fn same_net<const N: usize>(a: &[u8; N], b: &[u8; N], mask: &[u8; N]) -> bool {
    (bits(a) ^ bits(b)) & bits(mask) == 0
}

/// An address or mask of up to 16 bytes as a big-endian integer.
fn bits<const N: usize>(a: &[u8; N]) -> u128 {
    let mut b = [0u8; 16];
    if let Some(tail) = b.get_mut(16usize.saturating_sub(N)..) {
        if tail.len() == N {
            tail.copy_from_slice(a);
        }
    }
    u128::from_be_bytes(b)
}

/// How the target is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach<A> {
    /// The target is inside the NIC's prefix: the interface route covers it.
    OnLink,
    /// Through this gateway: a host route to the target, and a default route when none exists.
    Gateway(A),
}

/// The IPv4 configuration of the boot NIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan4 {
    pub addr: [u8; 4],
    pub mask: [u8; 4],
    /// Directed broadcast (none for /31 and /32, RFC 3021).
    pub broadcast: Option<[u8; 4]>,
    pub reach: Reach<[u8; 4]>,
}

/// The IPv6 configuration of the boot NIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan6 {
    pub addr: [u8; 16],
    pub mask: [u8; 16],
    pub reach: Reach<[u8; 16]>,
}

/// Why the iBFT's network values cannot be applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// The NIC has no address (DHCP-origin NICs must still carry the leased address).
    NoAddress,
    PrefixTooLong(u8),
    /// The target lies outside the NIC's prefix and the iBFT names no gateway.
    TargetOffLinkWithoutGateway,
    /// The gateway lies outside the NIC's prefix, so it cannot be reached.
    GatewayOffLink,
    /// The NIC and the target are of different address families.
    FamilyMismatch,
}

impl core::fmt::Display for PlanError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // By value, as `cam::Refusal`'s.
        match *self {
            PlanError::NoAddress => f.write_str("the iBFT NIC has no IP address"),
            PlanError::PrefixTooLong(p) => write!(f, "prefix length {p} is too long"),
            PlanError::TargetOffLinkWithoutGateway => {
                f.write_str("the target is outside the NIC's subnet and the iBFT has no gateway")
            }
            PlanError::GatewayOffLink => f.write_str("the gateway is outside the NIC's subnet"),
            PlanError::FamilyMismatch => f.write_str("NIC and target use different IP versions"),
        }
    }
}

/// Plans the IPv4 setup. `gateway` of all zeros counts as absent.
pub fn plan4(
    addr: [u8; 4],
    prefix: u8,
    gateway: Option<[u8; 4]>,
    target: [u8; 4],
) -> Result<Plan4, PlanError> {
    if addr == [0; 4] {
        return Err(PlanError::NoAddress);
    }
    let mask = mask4(prefix).ok_or(PlanError::PrefixTooLong(prefix))?;
    let gateway = gateway.filter(|g| *g != [0; 4]);
    let broadcast = (prefix <= 30)
        .then(|| (u32::from_be_bytes(addr) | !u32::from_be_bytes(mask)).to_be_bytes());
    let reach = reach(&addr, &mask, gateway, &target)?;
    Ok(Plan4 {
        addr,
        mask,
        broadcast,
        reach,
    })
}

/// Plans the IPv6 setup. `gateway` of all zeros counts as absent; a link-local gateway is always
/// on-link (it is reached through the NIC's scope).
pub fn plan6(
    addr: [u8; 16],
    prefix: u8,
    gateway: Option<[u8; 16]>,
    target: [u8; 16],
) -> Result<Plan6, PlanError> {
    if addr == [0; 16] {
        return Err(PlanError::NoAddress);
    }
    let mask = mask6(prefix).ok_or(PlanError::PrefixTooLong(prefix))?;
    let gateway = gateway.filter(|g| *g != [0; 16]);
    let reach = if let Some(gw) = gateway.filter(is_link_local6) {
        if same_net(&addr, &target, &mask) {
            Reach::OnLink
        } else {
            Reach::Gateway(gw)
        }
    } else {
        reach(&addr, &mask, gateway, &target)?
    };
    Ok(Plan6 { addr, mask, reach })
}

/// fe80::/10.
pub fn is_link_local6(a: &[u8; 16]) -> bool {
    a[0] == 0xfe && a[1] & 0xc0 == 0x80
}

fn reach<const N: usize>(
    addr: &[u8; N],
    mask: &[u8; N],
    gateway: Option<[u8; N]>,
    target: &[u8; N],
) -> Result<Reach<[u8; N]>, PlanError> {
    if same_net(addr, target, mask) {
        return Ok(Reach::OnLink);
    }
    let gw = gateway.ok_or(PlanError::TargetOffLinkWithoutGateway)?;
    if !same_net(addr, &gw, mask) {
        return Err(PlanError::GatewayOffLink);
    }
    Ok(Reach::Gateway(gw))
}

/// Name of the VLAN interface for `vid` on `parent`: `<parent>.<vid>`, the form the vlan cloner
/// parses, NUL-terminated in an `IFNAMSIZ` (16) buffer. `None` if it does not fit or `vid` is not a
/// VLAN id (1..=4094).
pub fn vlan_ifname(parent: &str, vid: u16) -> Option<[u8; 16]> {
    if !(1..=4094).contains(&vid) || parent.is_empty() || parent.contains('\0') {
        return None;
    }
    let mut digits = [0u8; 4];
    let mut n = 0usize;
    let mut v = vid;
    while v > 0 {
        // v % 10 < 10: a decimal digit.
        *digits.get_mut(n)? = b'0'.wrapping_add((v % 10) as u8);
        n = n.saturating_add(1);
        v /= 10;
    }
    let p = parent.as_bytes();
    let end = p.len().saturating_add(1).saturating_add(n);
    // Room for the terminating NUL.
    if end >= 16 {
        return None;
    }
    let mut out = [0u8; 16];
    out.get_mut(..p.len())?.copy_from_slice(p);
    *out.get_mut(p.len())? = b'.';
    let name = out.get_mut(p.len().saturating_add(1)..end)?;
    for (dst, d) in name.iter_mut().zip(digits.get(..n)?.iter().rev()) {
        *dst = *d;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlan_interface_names_follow_the_cloner_syntax() {
        assert_eq!(&vlan_ifname("em0", 100).unwrap()[..8], b"em0.100\0");
        assert_eq!(
            &vlan_ifname("vtnet0", 4094).unwrap()[..12],
            b"vtnet0.4094\0"
        );
        assert_eq!(&vlan_ifname("igb1", 7).unwrap()[..7], b"igb1.7\0");
        assert_eq!(vlan_ifname("em0", 0), None);
        assert_eq!(vlan_ifname("em0", 4095), None);
        assert_eq!(vlan_ifname("", 5), None);
        // 10 + 1 + 4 = 15 bytes plus NUL fits; one more does not.
        assert!(vlan_ifname("abcdefghij", 1000).is_some());
        assert_eq!(vlan_ifname("abcdefghijk", 1000), None);
    }

    #[test]
    fn masks_from_prefix_lengths() {
        assert_eq!(mask4(24), Some([255, 255, 255, 0]));
        assert_eq!(mask4(0), Some([0; 4]));
        assert_eq!(mask4(32), Some([255; 4]));
        assert_eq!(mask4(33), None);
        assert_eq!(
            mask6(64).unwrap()[..9],
            [255, 255, 255, 255, 255, 255, 255, 255, 0]
        );
        assert_eq!(mask6(129), None);
    }

    #[test]
    fn target_in_the_subnet_is_on_link() {
        let p = plan4([10, 0, 2, 15], 24, Some([10, 0, 2, 2]), [10, 0, 2, 2]).unwrap();
        assert_eq!(p.reach, Reach::OnLink);
        assert_eq!(p.broadcast, Some([10, 0, 2, 255]));
        assert_eq!(p.mask, [255, 255, 255, 0]);
    }

    #[test]
    fn target_elsewhere_goes_through_the_gateway() {
        let p = plan4(
            [192, 168, 1, 10],
            24,
            Some([192, 168, 1, 1]),
            [172, 16, 0, 5],
        )
        .unwrap();
        assert_eq!(p.reach, Reach::Gateway([192, 168, 1, 1]));
    }

    #[test]
    fn unusable_values_are_reported() {
        let t = [172, 16, 0, 5];
        assert_eq!(plan4([0; 4], 24, None, t), Err(PlanError::NoAddress));
        assert_eq!(
            plan4([10, 0, 0, 1], 40, None, t),
            Err(PlanError::PrefixTooLong(40))
        );
        assert_eq!(
            plan4([10, 0, 0, 1], 24, Some([0; 4]), t),
            Err(PlanError::TargetOffLinkWithoutGateway)
        );
        assert_eq!(
            plan4([10, 0, 0, 1], 24, Some([10, 0, 1, 1]), t),
            Err(PlanError::GatewayOffLink)
        );
    }

    #[test]
    fn point_to_point_prefixes_have_no_broadcast() {
        assert_eq!(
            plan4([10, 0, 0, 1], 31, None, [10, 0, 0, 0])
                .unwrap()
                .broadcast,
            None
        );
        assert_eq!(
            plan4([10, 0, 0, 1], 32, None, [10, 0, 0, 1])
                .unwrap()
                .broadcast,
            None
        );
    }

    #[test]
    fn ipv6_global_and_link_local_gateways() {
        let addr = [
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut target = addr;
        target[15] = 0x20;
        assert_eq!(plan6(addr, 64, None, target).unwrap().reach, Reach::OnLink);
        let mut far = addr;
        far[3] = 0xb9;
        assert_eq!(
            plan6(addr, 64, None, far),
            Err(PlanError::TargetOffLinkWithoutGateway)
        );
        let mut ll = [0u8; 16];
        ll[0] = 0xfe;
        ll[1] = 0x80;
        ll[15] = 1;
        assert_eq!(
            plan6(addr, 64, Some(ll), far).unwrap().reach,
            Reach::Gateway(ll)
        );
    }
}
