// SPDX-License-Identifier: BSD-2-Clause
//! The boot NIC: found by the iBFT's MAC, optionally a VLAN on top of it, brought up, addressed
//! and routed so the target is reachable, all in `vnet0` (the host's network stack; the iBFT
//! describes the machine, not a jail): the interface walk, the clone and the routes run under
//! `CURVNET_SET(vnet0)`; the ioctls go through a socket created with the kernel's credential,
//! whose vnet is vnet0 and which `ifioctl` sets itself.
//!
//! What to configure is decided by `isboot_kmod_logic::netplan` from plain values; this file only
//! performs it. Every wait is bounded. isboot looked the interface up without the network epoch
//! and without a reference, used IPv4 ioctls for IPv6 and leaked its ioctl socket: here the lookup
//! runs in the epoch and takes a reference (`if_ref`, released by `if_rele` in `Drop`), IPv6 uses
//! `SIOCAIFADDR_IN6`, and the ioctl socket is closed when configuration ends.
//!
//! What bring-up adds is recorded ([`Added`]) and removed again when the [`BootNic`] goes (unload,
//! or a boot that failed half-way): the routes it added, the addresses that were not there
//! before, and the VLAN interface it created. Nothing that was there before is touched, and the
//! interface stays up (bringing it down could cut a console or another user of the NIC).

use core::ffi::{c_int, c_void, CStr};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::ptr;

use isboot_core::ibft::Nic;
use isboot_kmod_logic::netplan::{self, PlanError, Reach};

use crate::bindings as sys;
use crate::exec::pause_ms;
use crate::sock::Errno;

/// How long to wait for the boot NIC to attach (late USB or PCI hot-plug drivers).
const NIC_WAIT_MS: u32 = 10_000;
/// How long to wait for the link once the interface is up (autonegotiation, switch STP).
const LINK_WAIT_MS: u32 = 30_000;
const POLL_MS: u32 = 100;

const IFNAMSIZ: usize = sys::IFNAMSIZ as usize;

/// Why the boot NIC could not be configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetError {
    /// No Ethernet interface has the boot configuration's MAC address.
    NicNotFound([u8; 6]),
    /// No Ethernet interface has the name the loader tunables give (NUL-padded).
    NicNameNotFound([u8; IFNAMSIZ]),
    /// Creating `<parent>.<vid>` failed (is `if_vlan` in the kernel?).
    Vlan {
        vid: u16,
        err: Errno,
    },
    Socket(Errno),
    Up(Errno),
    Address(Errno),
    Route(Errno),
    Plan(PlanError),
}

impl core::fmt::Display for NetError {
    #[optimize(size)]
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // By value: integers formatted through references would instantiate the reference's
        // `Display` at this crate's opt-level 2 (~250 bytes each).
        match *self {
            NetError::NicNotFound(m) => write!(
                f,
                "no Ethernet interface has the MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                m[0], m[1], m[2], m[3], m[4], m[5]
            ),
            NetError::NicNameNotFound(n) => {
                write!(f, "no Ethernet interface is named {}", name_str(&n))
            }
            NetError::Vlan { vid, err } => {
                write!(f, "creating VLAN {vid} failed ({err}; is if_vlan loaded?)")
            }
            NetError::Plan(p) => core::fmt::Display::fmt(&p, f),
            // One message with the step's name: a `write!` each would build its own
            // `Arguments`.
            NetError::Socket(e) | NetError::Up(e) | NetError::Address(e) | NetError::Route(e) => {
                let step = match *self {
                    NetError::Socket(_) => "ioctl socket",
                    NetError::Up(_) => "bringing the interface up",
                    NetError::Address(_) => "setting the address",
                    _ => "adding the route to the target",
                };
                write!(f, "{step}: {e}")
            }
        }
    }
}

/// A referenced interface (`if_ref` taken, released on drop).
struct IfRef(*mut sys::ifnet);

impl Drop for IfRef {
    #[optimize(size)]
    fn drop(&mut self) {
        // SAFETY: `self.0` carries a reference taken by `if_ref` or `ifunit_ref` (type
        // invariant of every `IfRef` constructor).
        unsafe { sys::if_rele(self.0) };
    }
}

/// A sockaddr of either family, as the kernel takes it.
#[derive(Clone, Copy)]
enum Sa {
    V4(sys::sockaddr_in),
    V6(sys::sockaddr_in6),
}

impl Sa {
    #[optimize(size)]
    fn as_ptr(&mut self) -> *mut sys::sockaddr {
        match self {
            Sa::V4(s) => ptr::from_mut(s).cast(),
            Sa::V6(s) => ptr::from_mut(s).cast(),
        }
    }
}

#[derive(Clone, Copy)]
struct AddedRoute {
    dst: Sa,
    mask: Option<Sa>,
    gw: Sa,
}

/// What bring-up added to the network, removed again when dropped, in reverse: routes, then
/// addresses, then the VLAN interface (after the `BootNic` released its references to it).
/// Fixed slots: one interface gets at most one address per family and two routes per target
/// (two targets: the boot pair and an alternate).
pub struct Added {
    routes: [Option<AddedRoute>; 4],
    addrs: [Option<Sa>; 2],
    /// Interface the addresses were added to.
    ifname: [u8; IFNAMSIZ],
    /// The VLAN interface we created (not one that existed).
    clone: Option<[u8; IFNAMSIZ]>,
}

impl core::fmt::Debug for Added {
    #[optimize(size)]
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Added")
            .field("routes", &self.routes.iter().flatten().count())
            .field("addrs", &self.addrs.iter().flatten().count())
            .field("clone", &self.clone.is_some())
            .finish()
    }
}

impl Added {
    #[optimize(size)]
    fn new() -> Added {
        Added {
            routes: [None; 4],
            addrs: [None; 2],
            ifname: [0; IFNAMSIZ],
            clone: None,
        }
    }

    #[optimize(size)]
    fn route(&mut self, r: AddedRoute) {
        match self.routes.iter_mut().find(|x| x.is_none()) {
            Some(slot) => *slot = Some(r),
            None => crate::klog!(1, "more routes than expected; one stays at unload"),
        }
    }

    #[optimize(size)]
    fn addr(&mut self, ifname: &[u8; IFNAMSIZ], a: Sa) {
        self.ifname = *ifname;
        match self.addrs.iter_mut().find(|x| x.is_none()) {
            Some(slot) => *slot = Some(a),
            None => crate::klog!(1, "more addresses than expected; one stays at unload"),
        }
    }
}

impl Drop for Added {
    // Never inlined into the drop glue, which is built for speed.
    #[optimize(size)]
    #[inline(never)]
    fn drop(&mut self) {
        for r in self.routes.iter_mut().rev().filter_map(Option::take) {
            let (mut dst, mut mask, mut gw) = (r.dst, r.mask, r.gw);
            let mp = mask.as_mut().map_or(ptr::null_mut(), Sa::as_ptr);
            let mut e = 0;
            in_vnet0(&mut || {
                // SAFETY: the sockaddrs are ours for the call; the helper enters the network
                // epoch rib_action needs; we are in vnet0. No interface pointer: the route is
                // found by destination, mask and gateway.
                e = unsafe {
                    sys::isboot_route_delete(dst.as_ptr(), mp, gw.as_ptr(), ptr::null_mut())
                };
            });
            if e != 0 {
                crate::klog!(1, "removing a route of the boot NIC failed ({})", Errno(e));
            }
        }
        for a in self.addrs.iter_mut().filter_map(Option::take) {
            let family = match a {
                Sa::V4(_) => sys::AF_INET,
                Sa::V6(_) => sys::AF_INET6,
            } as c_int;
            let Ok(so) = IoctlSocket::new(family) else {
                crate::klog!(1, "no socket to remove the boot NIC's address");
                continue;
            };
            let name = self.ifname.as_ptr().cast();
            // SAFETY: live socket of the address's family, NUL-terminated name, the sockaddr
            // on our stack for the call.
            let e = unsafe {
                match &a {
                    Sa::V4(sin) => sys::isboot_if_del_addr4(so.0, name, sin),
                    Sa::V6(sin6) => sys::isboot_if_del_addr6(so.0, name, sin6),
                }
            };
            if e != 0 {
                crate::klog!(1, "removing the boot NIC's address failed ({})", Errno(e));
            }
        }
        if let Some(name) = self.clone.take() {
            let mut e = 0;
            in_vnet0(&mut || {
                // SAFETY: NUL-terminated name of the clone we created; in vnet0.
                e = unsafe { sys::isboot_if_clone_destroy(name.as_ptr().cast()) };
            });
            if e != 0 {
                crate::klog!(1, "destroying {} failed ({})", name_str(&name), Errno(e));
            }
        }
    }
}

/// The configured boot interface; keeps its references until dropped, then removes what it
/// added. Fields drop in order: the references first, then `added` (which may destroy the VLAN
/// interface `ifp` refers to).
pub struct BootNic {
    ifp: IfRef,
    /// The physical parent when `ifp` is a VLAN created by us.
    _parent: Option<IfRef>,
    name: [u8; IFNAMSIZ],
    /// The iBFT NIC index this interface was configured from.
    index: u8,
    added: Added,
}

// SAFETY: an `ifnet` reference may be held and released from any thread.
unsafe impl Send for BootNic {}

impl core::fmt::Debug for BootNic {
    #[optimize(size)]
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BootNic")
            .field("name", &self.name())
            .finish()
    }
}

impl BootNic {
    /// The iBFT NIC index it was configured from.
    #[optimize(size)]
    pub fn index(&self) -> u8 {
        self.index
    }

    /// Makes another target reachable through this (already configured) interface: the
    /// address is re-applied (a no-op when present) and the target's route added.
    #[optimize(size)]
    pub fn reach(&mut self, nic: &Nic, target: IpAddr) -> Result<(), NetError> {
        let family = match target {
            IpAddr::V4(_) => sys::AF_INET as c_int,
            IpAddr::V6(_) => sys::AF_INET6 as c_int,
        };
        let so = IoctlSocket::new(family)?;
        configure(&so, &self.name, self.ifp.0, nic, target, &mut self.added)
    }

    /// The interface index: the zone of IPv6 link-local addresses on it.
    #[optimize(size)]
    pub fn if_index(&self) -> u32 {
        // SAFETY: we hold a reference, so the ifnet is alive.
        u32::try_from(unsafe { sys::isboot_if_index(self.ifp.0) }).unwrap_or(0)
    }

    /// The interface name (`em0`, `em0.100`), as `net.isboot.nic` shows it.
    #[optimize(size)]
    pub fn name(&self) -> &str {
        name_str(&self.name)
    }

    /// Link speed in bits/s as the driver reports it (0 if unknown).
    #[optimize(size)]
    pub fn baudrate(&self) -> u64 {
        // SAFETY: we hold a reference, so the ifnet is alive.
        unsafe { sys::if_getbaudrate(self.ifp.0) }
    }
}

/// Runs `f` with curvnet = vnet0.
#[optimize(size)]
fn in_vnet0(f: &mut dyn FnMut()) {
    /// # Safety
    /// `arg` points to the `&mut dyn FnMut()` on `in_vnet0`'s stack, alive for the call.
    #[optimize(size)]
    unsafe extern "C" fn call(arg: *mut c_void) -> c_int {
        // SAFETY: per the contract above.
        let f = unsafe { &mut *arg.cast::<&mut dyn FnMut()>() };
        f();
        0
    }
    let mut f = f;
    let arg = ptr::from_mut(&mut f).cast::<c_void>();
    // SAFETY: `call` receives `arg`, which lives until this returns; the helper sets and restores
    // curvnet around it.
    unsafe { sys::isboot_with_vnet0(Some(call), arg) };
}

/// Runs `f` inside the network epoch.
#[optimize(size)]
fn in_net_epoch(f: &mut dyn FnMut()) {
    /// # Safety
    /// As in `in_vnet0`.
    #[optimize(size)]
    unsafe extern "C" fn call(arg: *mut c_void) -> c_int {
        // SAFETY: per the contract above.
        let f = unsafe { &mut *arg.cast::<&mut dyn FnMut()>() };
        f();
        0
    }
    let mut f = f;
    let arg = ptr::from_mut(&mut f).cast::<c_void>();
    // SAFETY: as in `in_vnet0`; the helper enters and exits the epoch around `call`.
    unsafe { sys::isboot_with_net_epoch(Some(call), arg) };
}

struct MacSearch {
    mac: [u8; 6],
    found: *mut sys::ifnet,
}

/// `if_foreach` callback: takes a reference on the Ethernet interface with the wanted MAC.
///
/// # Safety
/// Called by `if_foreach` in the network epoch with a live `ifp`; `arg` is a `MacSearch`.
#[optimize(size)]
unsafe extern "C" fn match_mac(ifp: *mut sys::ifnet, arg: *mut c_void) -> c_int {
    // SAFETY: per the contract above.
    let search = unsafe { &mut *arg.cast::<MacSearch>() };
    // SAFETY: `ifp` is live during the epoch section; getters only read it.
    let (ty, alen) = unsafe { (sys::if_gettype(ifp), sys::if_getaddrlen(ifp)) };
    if ty != sys::ifType_IFT_ETHER as c_int || alen != 6 {
        return 0;
    }
    // SAFETY: as above; an Ethernet interface's link-level address has `if_getaddrlen` = 6 bytes.
    let ll = unsafe { core::slice::from_raw_parts(sys::if_getlladdr(ifp).cast::<u8>(), 6) };
    if ll != search.mac {
        return 0;
    }
    // SAFETY: the interface is live in the epoch; the reference keeps it after the epoch ends.
    unsafe { sys::if_ref(ifp) };
    search.found = ifp;
    1
}

#[optimize(size)]
fn find_by_mac(mac: [u8; 6]) -> Option<IfRef> {
    let mut search = MacSearch {
        mac,
        found: ptr::null_mut(),
    };
    in_vnet0(&mut || {
        in_net_epoch(&mut || {
            let arg = ptr::from_mut(&mut search).cast::<c_void>();
            // SAFETY: we are in vnet0 and the network epoch, as `if_foreach` requires; `arg` is
            // the `MacSearch` `match_mac` expects.
            unsafe { sys::isboot_ifnet_foreach(Some(match_mac), arg) };
        });
    });
    // INVARIANT: `match_mac` took the reference this `IfRef` owns.
    (!search.found.is_null()).then_some(IfRef(search.found))
}

/// The Ethernet interface called `name` (`net.isboot.nic_name`), referenced.
#[optimize(size)]
fn find_by_name(name: &[u8; IFNAMSIZ]) -> Option<IfRef> {
    let mut ifp = ptr::null_mut();
    in_vnet0(&mut || {
        // SAFETY: NUL-terminated name; in vnet0 (ifunit_ref reads V_ifnet and enters the
        // network epoch itself); returns a referenced ifnet or NULL.
        ifp = unsafe { sys::ifunit_ref(name.as_ptr().cast()) };
    });
    if ifp.is_null() {
        return None;
    }
    // INVARIANT: `ifunit_ref` returned a referenced interface.
    let r = IfRef(ifp);
    // SAFETY: referenced, so alive; the getters only read it.
    let ether = unsafe {
        sys::if_gettype(ifp) == sys::ifType_IFT_ETHER as c_int && sys::if_getaddrlen(ifp) == 6
    };
    ether.then_some(r)
}

#[optimize(size)]
fn if_name_of(ifp: *mut sys::ifnet) -> [u8; IFNAMSIZ] {
    let mut name = [0u8; IFNAMSIZ];
    // SAFETY: `ifp` is referenced by the caller; `if_name` returns its NUL-terminated name.
    let cname = unsafe { CStr::from_ptr(sys::if_name(ifp)) };
    let bytes = cname.to_bytes();
    // The last byte stays NUL.
    for (d, s) in name.iter_mut().take(IFNAMSIZ.saturating_sub(1)).zip(bytes) {
        *d = *s;
    }
    name
}

/// A UDP socket used only as the handle `ifioctl` needs; closed on drop.
struct IoctlSocket(*mut sys::socket);

impl IoctlSocket {
    #[optimize(size)]
    fn new(family: c_int) -> Result<IoctlSocket, NetError> {
        let mut so = ptr::null_mut();
        // SAFETY: `so` receives the new socket.
        let e = unsafe {
            sys::isboot_socreate(
                family,
                &mut so,
                sys::SOCK_DGRAM as c_int,
                sys::IPPROTO_UDP as c_int,
            )
        };
        if e != 0 {
            return Err(NetError::Socket(Errno(e)));
        }
        Ok(IoctlSocket(so))
    }
}

impl Drop for IoctlSocket {
    #[optimize(size)]
    fn drop(&mut self) {
        // SAFETY: the socket was created by `new` and has no upcalls; closing frees it.
        unsafe { sys::soclose(self.0) };
    }
}

#[optimize(size)]
fn sin(a: Ipv4Addr) -> sys::sockaddr_in {
    // SAFETY: plain C struct, all-zero is a valid unset sockaddr.
    let mut s: sys::sockaddr_in = unsafe { core::mem::zeroed() };
    s.sin_len = core::mem::size_of::<sys::sockaddr_in>() as u8;
    s.sin_family = sys::AF_INET as u8;
    s.sin_addr.s_addr = u32::from_ne_bytes(a.octets());
    s
}

#[optimize(size)]
fn sin6(a: [u8; 16]) -> sys::sockaddr_in6 {
    // SAFETY: plain C struct, all-zero is a valid unset sockaddr.
    let mut s: sys::sockaddr_in6 = unsafe { core::mem::zeroed() };
    s.sin6_len = core::mem::size_of::<sys::sockaddr_in6>() as u8;
    s.sin6_family = sys::AF_INET6 as u8;
    s.sin6_addr.__u6_addr.__u6_addr8 = a;
    s
}

#[optimize(size)]
fn tolerate_exists(e: c_int) -> c_int {
    if e == sys::EEXIST as c_int {
        0
    } else {
        e
    }
}

/// Finds (by `ifname` when the loader tunables name it, else by the MAC), creates (VLAN),
/// brings up and configures the boot NIC so that `target` is reachable. On an error, what was
/// added so far is removed again.
// Not inlined into `boot::bring_up` (its one caller): 432 bytes less of the module.
#[optimize(size)]
#[inline(never)]
pub fn bring_up(nic: &Nic, ifname: Option<&str>, target: IpAddr) -> Result<BootNic, NetError> {
    let mut added = Added::new();
    let mut waited = 0;
    let wanted = ifname.map(|n| {
        let mut b = [0u8; IFNAMSIZ];
        // The last byte stays NUL; the core allows IFNAMSIZ - 1 bytes. One copy: a byte loop
        // was unrolled 15 times.
        let len = n.len().min(IFNAMSIZ.saturating_sub(1));
        if let (Some(d), Some(s)) = (b.get_mut(..len), n.as_bytes().get(..len)) {
            d.copy_from_slice(s);
        }
        b
    });
    let parent = loop {
        let found = match &wanted {
            Some(name) => find_by_name(name),
            None => find_by_mac(nic.mac),
        };
        if let Some(ifp) = found {
            break ifp;
        }
        if waited >= NIC_WAIT_MS {
            return Err(match wanted {
                Some(name) => NetError::NicNameNotFound(name),
                None => NetError::NicNotFound(nic.mac),
            });
        }
        pause_ms(POLL_MS);
        waited = waited.saturating_add(POLL_MS);
    };
    let parent_name = if_name_of(parent.0);
    crate::klog!(2, "boot NIC {}", name_str(&parent_name));

    let (ifp, parent, name) = match nic.vlan_id() {
        None => (parent, None, parent_name),
        Some(vid) => {
            let err = |e| NetError::Vlan { vid, err: Errno(e) };
            let mut name = netplan::vlan_ifname(name_str(&parent_name), vid)
                .ok_or(err(sys::ENAMETOOLONG as c_int))?;
            let mut e = 0;
            let mut vifp = ptr::null_mut();
            in_vnet0(&mut || {
                // SAFETY: `name` is a writable NUL-terminated buffer of IFNAMSIZ bytes; in vnet0.
                e = unsafe { sys::isboot_if_clone_create(name.as_mut_ptr().cast(), IFNAMSIZ) };
                if e == 0 {
                    added.clone = Some(name);
                }
                e = tolerate_exists(e);
                if e == 0 {
                    // SAFETY: NUL-terminated name; returns a referenced ifnet or NULL.
                    vifp = unsafe { sys::ifunit_ref(name.as_ptr().cast()) };
                }
            });
            if e != 0 {
                return Err(err(e));
            }
            if vifp.is_null() {
                return Err(err(sys::ENXIO as c_int));
            }
            crate::klog!(2, "created VLAN interface {}", name_str(&name));
            // INVARIANT: `ifunit_ref` returned a referenced interface.
            (IfRef(vifp), Some(parent), name)
        }
    };

    let family = match target {
        IpAddr::V4(_) => sys::AF_INET as c_int,
        IpAddr::V6(_) => sys::AF_INET6 as c_int,
    };
    let so = IoctlSocket::new(family)?;
    // SAFETY: live socket; `name` is NUL-terminated.
    let e = unsafe { sys::isboot_if_up(so.0, name.as_ptr().cast()) };
    if e != 0 {
        return Err(NetError::Up(Errno(e)));
    }
    if let Some(p) = &parent {
        // A VLAN only passes traffic once its parent is up as well.
        let pso = IoctlSocket::new(sys::AF_INET as c_int)?;
        // SAFETY: live socket; `parent_name` is NUL-terminated.
        let e = unsafe { sys::isboot_if_up(pso.0, parent_name.as_ptr().cast()) };
        if e != 0 {
            return Err(NetError::Up(Errno(e)));
        }
        wait_link(p.0);
        let pcp = nic.vlan_priority();
        if pcp != 0 {
            // SAFETY: live socket; `name` (the VLAN) is NUL-terminated; pcp is 0..=7.
            let e = unsafe {
                sys::isboot_if_set_vlan_pcp(so.0, name.as_ptr().cast(), c_int::from(pcp))
            };
            if e != 0 {
                // Frames still flow untagged by priority; worth a note, not a failed boot.
                crate::klog!(1, "setting VLAN priority {} failed ({})", pcp, Errno(e));
            }
        }
    }
    wait_link(ifp.0);

    configure(&so, &name, ifp.0, nic, target, &mut added)?;
    Ok(BootNic {
        ifp,
        _parent: parent,
        name,
        index: nic.index,
        added,
    })
}

#[optimize(size)]
fn configure(
    so: &IoctlSocket,
    name: &[u8; IFNAMSIZ],
    ifp: *mut sys::ifnet,
    nic: &Nic,
    target: IpAddr,
    added: &mut Added,
) -> Result<(), NetError> {
    match target {
        IpAddr::V4(_) => configure4(so, name, ifp, nic, target, added),
        IpAddr::V6(_) => configure6(so, name, ifp, nic, target, added),
    }
}

/// Whether some interface already has the address (then it is not ours to remove).
#[optimize(size)]
fn addr_exists(sa: &mut Sa) -> bool {
    let mut exists = false;
    let p = sa.as_ptr();
    in_vnet0(&mut || {
        // SAFETY: `p` points to the caller's sockaddr for the call; in vnet0 (the lookup walks
        // V_ address hashes and enters the network epoch itself).
        exists = unsafe { sys::isboot_addr_exists(p) } != 0;
    });
    exists
}

#[optimize(size)]
fn name_str(name: &[u8; IFNAMSIZ]) -> &str {
    let len = name.iter().position(|&b| b == 0).unwrap_or(IFNAMSIZ);
    core::str::from_utf8(name.get(..len).unwrap_or(&[])).unwrap_or("?")
}

/// Waits (bounded) until the driver reports link up; drivers that never report a state
/// (`LINK_STATE_UNKNOWN`) are not waited for.
#[optimize(size)]
fn wait_link(ifp: *mut sys::ifnet) {
    let mut waited = 0;
    loop {
        // SAFETY: the caller holds a reference on `ifp`.
        let state = unsafe { sys::if_getlinkstate(ifp) };
        if state == sys::LINK_STATE_UP as c_int || state == sys::LINK_STATE_UNKNOWN as c_int {
            return;
        }
        if waited >= LINK_WAIT_MS {
            crate::klog!(
                0,
                "link still down after {} s; trying anyway",
                LINK_WAIT_MS / 1000
            );
            return;
        }
        pause_ms(POLL_MS);
        waited = waited.saturating_add(POLL_MS);
    }
}

/// Adds a route; records it in `added` when it is new (an existing one is left alone, and is
/// not ours to remove).
#[optimize(size)]
fn route(mut r: AddedRoute, ifp: *mut sys::ifnet, added: &mut Added) -> c_int {
    let dst = r.dst.as_ptr();
    let mask = r.mask.as_mut().map_or(ptr::null_mut(), Sa::as_ptr);
    let gw = r.gw.as_ptr();
    let mut e = 0;
    in_vnet0(&mut || {
        // SAFETY: the sockaddrs live in `r` for the call; `ifp` is referenced; the helper
        // enters the network epoch rib_action needs; we are in vnet0.
        e = unsafe { sys::isboot_route_add(dst, mask, gw, ifp) };
    });
    if e == 0 {
        added.route(r);
    }
    tolerate_exists(e)
}

/// Routes `target` through the gateway `gw` (a host route the session needs: an error), then adds
/// a default route via the same gateway, which helps the rest of the boot (best effort: one that
/// already exists is left alone). `any` is the family's unspecified address (and mask).
#[optimize(size)]
fn via_gateway(
    target: Sa,
    gw: Sa,
    any: Sa,
    ifp: *mut sys::ifnet,
    family: &str,
    added: &mut Added,
) -> Result<(), NetError> {
    let host = AddedRoute {
        dst: target,
        mask: None,
        gw,
    };
    let e = route(host, ifp, added);
    if e != 0 {
        return Err(NetError::Route(Errno(e)));
    }
    let default = AddedRoute {
        dst: any,
        mask: Some(any),
        gw,
    };
    let e = route(default, ifp, added);
    if e != 0 {
        crate::klog!(
            1,
            "default {}route via the iBFT gateway not added ({})",
            family,
            Errno(e)
        );
    }
    Ok(())
}

#[optimize(size)]
fn configure4(
    so: &IoctlSocket,
    name: &[u8; IFNAMSIZ],
    ifp: *mut sys::ifnet,
    nic: &Nic,
    target: IpAddr,
    added: &mut Added,
) -> Result<(), NetError> {
    let (IpAddr::V4(target), Some(IpAddr::V4(addr))) = (target, nic.ip) else {
        return Err(NetError::Plan(PlanError::FamilyMismatch));
    };
    let gw = match nic.gateway {
        Some(IpAddr::V4(g)) => Some(g.octets()),
        _ => None,
    };
    let plan = netplan::plan4(addr.octets(), nic.prefix_len, gw, target.octets())
        .map_err(NetError::Plan)?;
    let a = sin(Ipv4Addr::from(plan.addr));
    let m = sin(Ipv4Addr::from(plan.mask));
    let b = plan.broadcast.map(|b| sin(Ipv4Addr::from(b)));
    let bp = b.as_ref().map_or(ptr::null(), ptr::from_ref);
    let existed = addr_exists(&mut Sa::V4(a));
    // SAFETY: live socket, NUL-terminated name, sockaddrs on our stack for the call.
    let e = unsafe { sys::isboot_if_add_addr4(so.0, name.as_ptr().cast(), &a, &m, bp) };
    if e == 0 && !existed {
        added.addr(name, Sa::V4(a));
    }
    let e = tolerate_exists(e);
    if e != 0 {
        return Err(NetError::Address(Errno(e)));
    }
    if let Reach::Gateway(g) = plan.reach {
        let any = Sa::V4(sin(Ipv4Addr::UNSPECIFIED));
        let gw = Sa::V4(sin(Ipv4Addr::from(g)));
        via_gateway(Sa::V4(sin(target)), gw, any, ifp, "", added)?;
    }
    Ok(())
}

#[optimize(size)]
fn configure6(
    so: &IoctlSocket,
    name: &[u8; IFNAMSIZ],
    ifp: *mut sys::ifnet,
    nic: &Nic,
    target: IpAddr,
    added: &mut Added,
) -> Result<(), NetError> {
    let (IpAddr::V6(target), Some(IpAddr::V6(addr))) = (target, nic.ip) else {
        return Err(NetError::Plan(PlanError::FamilyMismatch));
    };
    let gw = match nic.gateway {
        Some(IpAddr::V6(g)) => Some(g.octets()),
        _ => None,
    };
    let plan = netplan::plan6(addr.octets(), nic.prefix_len, gw, target.octets())
        .map_err(NetError::Plan)?;
    let a = sin6(plan.addr);
    let m = sin6(plan.mask);
    let existed = addr_exists(&mut Sa::V6(a));
    // The firmware has been using this address: skip duplicate address detection, which would
    // keep it tentative (unusable for connect) for a second or more.
    // SAFETY: live AF_INET6 socket, NUL-terminated name, sockaddrs on our stack for the call.
    let e = unsafe { sys::isboot_if_add_addr6(so.0, name.as_ptr().cast(), &a, &m, 1) };
    if e == 0 && !existed {
        added.addr(name, Sa::V6(a));
    }
    let e = tolerate_exists(e);
    if e != 0 {
        return Err(NetError::Address(Errno(e)));
    }
    if let Reach::Gateway(g) = plan.reach {
        let mut gws = sin6(g);
        if netplan::is_link_local6(&g) {
            // SAFETY: `ifp` is referenced; embeds its zone into the link-local gateway, as the
            // kernel's routing table stores scoped addresses.
            unsafe { sys::isboot_in6_setscope(&mut gws, ifp) };
        }
        let any = Sa::V6(sin6(Ipv6Addr::UNSPECIFIED.octets()));
        via_gateway(
            Sa::V6(sin6(target.octets())),
            Sa::V6(gws),
            any,
            ifp,
            "IPv6 ",
            added,
        )?;
    }
    Ok(())
}
