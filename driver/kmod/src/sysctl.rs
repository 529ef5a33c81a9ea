// SPDX-License-Identifier: BSD-2-Clause
//! The module's sysctls and tunables (names README.md promises to keep): `hw.ibft.*` (read-only
//! strings and the `acpi_table`/`verbose` tunables), `net.isboot.{version,nic,device,debug}`, the
//! timeouts (`net.isboot.connect_timeout` ...) and the session statistics under
//! `net.isboot.session`.
//!
//! The OIDs are declared statically in helpers.c (registered with the module, removed with it);
//! their storage lives there too, so a reader never sees freed memory. Strings are copied in and
//! out under a mutex. Nothing here ever receives a CHAP name or secret: [`publish_ibft`] takes
//! its text from `isboot_kmod_logic::sysfmt`, which has none.

use alloc::string::String;
use isboot_core::bootcfg::tunables::Timeouts;
use isboot_core::ibft::BootConfig;
use isboot_core::text::DigestOffer;

use isboot_kmod_logic::sysfmt::{write_ibft_value, IbftField};

use crate::bindings as sys;

// Never inlined: the session's state and error reports (built for speed) call it.
#[optimize(size)]
#[inline(never)]
fn set(which: sys::isboot_str, s: &str) {
    // SAFETY: `s` is valid for `s.len()` bytes; the helper copies at most ISBOOT_STR_MAX - 1 of
    // them under its mutex and checks the index.
    let err = unsafe { sys::isboot_str_set(which, s.as_ptr().cast(), s.len()) };
    if err != 0 {
        crate::klog!(
            crate::log::HIGH,
            "sysctl value cut to {} bytes: {s}",
            sys::ISBOOT_STR_MAX - 1
        );
    }
}

#[optimize(size)]
fn ibft_index(f: IbftField) -> sys::isboot_str {
    match f {
        IbftField::InitiatorName => sys::isboot_str_ISBOOT_STR_INITIATOR_NAME,
        IbftField::InitiatorAddress => sys::isboot_str_ISBOOT_STR_INITIATOR_ADDRESS,
        IbftField::TargetName => sys::isboot_str_ISBOOT_STR_TARGET_NAME,
        IbftField::TargetAddress => sys::isboot_str_ISBOOT_STR_TARGET_ADDRESS,
        IbftField::TargetPort => sys::isboot_str_ISBOOT_STR_TARGET_PORT,
        IbftField::TargetLun => sys::isboot_str_ISBOOT_STR_TARGET_LUN,
        IbftField::NicPrefix => sys::isboot_str_ISBOOT_STR_NIC_PREFIX,
        IbftField::NicGateway => sys::isboot_str_ISBOOT_STR_NIC_GATEWAY,
    }
}

/// `net.isboot.version`.
#[optimize(size)]
pub fn set_version() {
    set(
        sys::isboot_str_ISBOOT_STR_VERSION,
        env!("CARGO_PKG_VERSION"),
    );
}

/// `net.isboot.nic`: the boot NIC's name as its driver named it (contrib/isbootifname reads it).
#[optimize(size)]
pub fn set_nic(name: &str) {
    set(sys::isboot_str_ISBOOT_STR_NIC, name);
}

/// `net.isboot.device`: the boot disk (`da0`), as the C isboot published it.
#[optimize(size)]
pub fn set_device(name: &str) {
    set(sys::isboot_str_ISBOOT_STR_DEVICE, name);
}

/// The timeouts in use, as the read-only `net.isboot.*` timeout sysctls show them.
#[optimize(size)]
pub fn publish_timeouts(t: &Timeouts) {
    let values = [
        (sys::isboot_timeout_ISBOOT_TMO_CONNECT, t.connect),
        (sys::isboot_timeout_ISBOOT_TMO_LOGIN, t.login),
        (sys::isboot_timeout_ISBOOT_TMO_NOP_INTERVAL, t.nop_interval),
        (sys::isboot_timeout_ISBOOT_TMO_NOP_TIMEOUT, t.nop_timeout),
        (sys::isboot_timeout_ISBOOT_TMO_COMMAND, t.command),
        (sys::isboot_timeout_ISBOOT_TMO_ROOT_WAIT, t.root_wait),
        (
            sys::isboot_timeout_ISBOOT_TMO_TIME2WAIT_MAX,
            t.time2wait_max,
        ),
    ];
    for (which, v) in values {
        // Bounded to at most 3600 by the core.
        let v = i32::try_from(v).unwrap_or(i32::MAX);
        // SAFETY: stores an int; the helper checks the index.
        unsafe { sys::isboot_timeout_set(which, v) };
    }
}

/// `net.isboot.digests`: the digest setting in use (`allow`, `prefer`, `require`, `forbid`).
#[optimize(size)]
pub fn set_digests(d: DigestOffer) {
    set(sys::isboot_str_ISBOOT_STR_DIGESTS, d.setting());
}

/// Fills `hw.ibft.*` from the boot pair of `cfg` (from the iBFT or the loader tunables).
// One value at a time, and not inlined into `module::load`: the collected `Vec` of values
// was unrolled there, a call and a drop per field.
#[optimize(size)]
#[inline(never)]
pub fn publish_ibft(cfg: &BootConfig) {
    let mut value = String::new();
    for field in IbftField::ALL {
        value.clear();
        // A String's write never fails.
        let _ = write_ibft_value(&mut value, cfg, field);
        set(ibft_index(field), &value);
    }
}

/// Empties `hw.ibft.*` and `net.isboot.nic` (a failed load leaves no stale values behind).
#[optimize(size)]
pub fn clear() {
    for field in IbftField::ALL {
        set(ibft_index(field), "");
    }
    set(sys::isboot_str_ISBOOT_STR_NIC, "");
    set(sys::isboot_str_ISBOOT_STR_DEVICE, "");
    stats().reset();
}

/// `hw.ibft.acpi_table`: the 1-based ACPI instance to use; nonsense values mean the first.
#[optimize(size)]
pub fn acpi_table_instance() -> u32 {
    // SAFETY: reads a tunable int; no preconditions.
    let v = unsafe { sys::isboot_tunable_acpi_table() };
    u32::try_from(v).ok().filter(|&v| v >= 1).unwrap_or(1)
}

/// `hw.ibft.verbose`.
#[optimize(size)]
pub fn verbose() -> bool {
    // SAFETY: reads a tunable int; no preconditions.
    unsafe { sys::isboot_tunable_verbose() != 0 }
}

/// The session statistics under `net.isboot.session`; see [`stats`].
#[derive(Debug)]
pub struct Stats(());

static STATS: Stats = Stats(());

/// The statistics of the boot session (one per module: the module serves one boot disk).
#[optimize(size)]
pub fn stats() -> &'static Stats {
    &STATS
}

impl Stats {
    #[optimize(size)]
    fn add(&self, which: sys::isboot_counter, n: u64) {
        // SAFETY: atomic add on a counter of helpers.c; the index is checked there.
        unsafe { sys::isboot_counter_add(which, n) }
    }

    /// `state`: a short word such as "login", "full-feature", "reconnecting", "logged-out".
    #[optimize(size)]
    pub fn set_state(&self, state: &str) {
        set(sys::isboot_str_ISBOOT_STR_SESSION_STATE, state);
    }

    /// `last_error`: what failed last, as the log said it (never a secret).
    #[optimize(size)]
    pub fn set_last_error(&self, error: &str) {
        set(sys::isboot_str_ISBOOT_STR_SESSION_LAST_ERROR, error);
    }

    #[optimize(size)]
    pub fn inc_reconnects(&self) {
        self.add(sys::isboot_counter_ISBOOT_CNT_RECONNECTS, 1);
    }

    #[optimize(size)]
    pub fn add_commands(&self, n: u64) {
        self.add(sys::isboot_counter_ISBOOT_CNT_COMMANDS, n);
    }

    #[optimize(size)]
    pub fn add_bytes_in(&self, n: u64) {
        self.add(sys::isboot_counter_ISBOOT_CNT_BYTES_IN, n);
    }

    #[optimize(size)]
    pub fn add_bytes_out(&self, n: u64) {
        self.add(sys::isboot_counter_ISBOOT_CNT_BYTES_OUT, n);
    }

    /// Zeroes the counters and empties the strings.
    #[optimize(size)]
    pub fn reset(&self) {
        // SAFETY: no preconditions; takes the string mutex briefly.
        unsafe { sys::isboot_session_stats_reset() }
    }
}
