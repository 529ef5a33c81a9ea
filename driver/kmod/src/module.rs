// SPDX-License-Identifier: BSD-2-Clause
//! Module life cycle: `MOD_LOAD`, `MOD_QUIESCE`, `MOD_UNLOAD` (dispatched by helpers.c's module
//! handler) and the shutdown hook.
//!
//! Load: publish the version and the timeouts (`net.isboot.*`, read from the loader's
//! environment), choose the boot configuration, remove the CHAP secrets from the kernel
//! environment, publish `hw.ibft.*`, start the boot session (`boot::start` takes
//! `root_mount_hold` and returns; bring-up runs on the session's taskqueue), then register the
//! shutdown hook.
//!
//! The boot configuration ([`choose`]), by `net.isboot.source`: `auto` takes a usable iBFT,
//! else the loader tunables when `net.isboot.root_path` is set (a broken table is then passed
//! over with a message), else nothing: with neither a table nor the tunables the module loads
//! and stays idle, saying so once, as the C isboot did, so that `isboot_load="YES"` on a
//! machine that sometimes boots from a local disk costs one console line. `ibft` and `loader`
//! take only their source and fail the load without it.
//!
//! Any failure is printed (always, whatever `net.isboot.debug` says), recorded in
//! `net.isboot.session.last_error` (and `hw.ibft.*` are emptied), and returned as MOD_LOAD's
//! errno: the kernel prints it ("module_register_init: MOD_LOAD (isboot, ...) error N") and
//! `kldload` then fails with ENOEXEC (kern_linker.c linker_load_file: every module of the file
//! failed).
//!
//! Unload: refused with `EBUSY`, changing nothing, while a disk of the session is held (open or
//! mounted: it may be the root file system). Otherwise the shutdown hook is removed first (so it
//! cannot run against a stopped session), then the session is stopped and freed, the CAM bus
//! detached and the network configuration the module added removed.
//!
//! Shutdown: `shutdown_pre_sync` at the first priority bounds the session's recovery (a dead
//! target must not hold the reboot; a live session still serves the sync), then
//! `shutdown_post_sync` at the last priority, after the file systems are synced and
//! da(4) has flushed its cache: log out so the target does not wait for a dead initiator.
//! Skipped during a panic, when no other thread may run.
//!
//! Module events are serialised by the kernel linker's lock, so `LOADED` changes only there.

use alloc::boxed::Box;
use core::ffi::{c_int, c_void};
use core::fmt;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

use isboot_core::bootcfg::tunables::{self, Timeouts};
use isboot_core::bootcfg::{loader, LoaderError, Mode};
use isboot_core::ibft::{self, BootConfig, BootError};
use isboot_core::text::DigestOffer;
use isboot_kmod_logic::sysfmt;

use crate::bindings as sys;
use crate::ibft::AcquireError;
use crate::kalloc::try_box;
use crate::kenv::{self, KernelEnv};
use crate::log::{ALWAYS, HIGH};
use crate::{boot, klog, sysctl};

struct Loaded {
    boot: boot::BootHandle,
    /// `shutdown_post_sync` registration: log out.
    shutdown_tag: *mut c_void,
    /// `shutdown_pre_sync` registration: bound recovery before the sync.
    pre_sync_tag: *mut c_void,
}

/// The running session, or null. Written only in module events (serialised by the kernel).
static LOADED: AtomicPtr<Loaded> = AtomicPtr::new(ptr::null_mut());

/// Why the module did not start.
#[derive(Debug)]
enum LoadError {
    Acquire(AcquireError),
    Parse(ibft::Error),
    Config(BootError),
    /// The loader tunables: the error names the variable.
    Loader(LoaderError),
    Start(i32),
    NoMemory,
    ShutdownHook,
}

impl LoadError {
    #[optimize(size)]
    fn errno(&self) -> c_int {
        match self {
            LoadError::Acquire(e) => e.errno(),
            LoadError::Parse(_) | LoadError::Config(_) | LoadError::Loader(_) => {
                sys::EINVAL as c_int
            }
            LoadError::Start(errno) if *errno > 0 => *errno,
            LoadError::Start(_) => sys::EIO as c_int,
            LoadError::NoMemory | LoadError::ShutdownHook => sys::ENOMEM as c_int,
        }
    }
}

impl fmt::Display for LoadError {
    #[optimize(size)]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Nested errors write themselves into `f` (no `Arguments` of their own).
            LoadError::Acquire(e) => fmt::Display::fmt(e, f),
            LoadError::Parse(e) => write!(f, "iBFT rejected: {e}"),
            LoadError::Config(e) => write!(f, "nothing to boot from: {e}"),
            LoadError::Loader(e) => fmt::Display::fmt(e, f),
            LoadError::Start(errno) => write!(f, "boot session did not start (error {})", *errno),
            LoadError::NoMemory => f.write_str("out of memory"),
            LoadError::ShutdownHook => f.write_str("cannot register the shutdown handler"),
        }
    }
}

/// What the module boots from.
enum Choice {
    Boot(BootConfig),
    /// Nothing: no iBFT (why) and no loader tunables.
    Idle(AcquireError),
}

/// The firmware's table, found, parsed and chosen from.
#[optimize(size)]
fn from_ibft() -> Result<BootConfig, LoadError> {
    let found = crate::ibft::acquire().map_err(LoadError::Acquire)?;
    klog!(ALWAYS, "iBFT found in {}", found.source);
    let parsed = ibft::parse(&found.table).map_err(LoadError::Parse)?;
    drop(found);
    for warning in &parsed.warnings {
        klog!(HIGH, "iBFT: {warning}");
    }
    parsed.ibft.into_boot_config().map_err(LoadError::Config)
}

/// The boot configuration by `net.isboot.source` (see the module documentation).
#[optimize(size)]
#[inline(never)]
fn choose(env: &KernelEnv) -> Result<Choice, LoadError> {
    let mode = loader::mode(env).map_err(LoadError::Loader)?;
    let tunables = loader::is_configured(env);
    if mode.uses_ibft() {
        match from_ibft() {
            Ok(cfg) => return Ok(Choice::Boot(cfg)),
            Err(LoadError::Acquire(e @ AcquireError::NotFound { .. }))
                if mode == Mode::Auto && !tunables =>
            {
                return Ok(Choice::Idle(e))
            }
            Err(LoadError::Acquire(AcquireError::NotFound { .. })) if mode == Mode::Auto => {}
            Err(e) if mode == Mode::Auto && tunables => {
                klog!(ALWAYS, "{}; booting from {} instead", e, loader::ROOT_PATH);
            }
            Err(e) => return Err(e),
        }
    }
    let l = loader::from_env(env).map_err(LoadError::Loader)?;
    klog!(
        ALWAYS,
        "boot configuration from loader tunables, NIC from {}",
        l.nic_source
    );
    Ok(Choice::Boot(l.config))
}

// Not inlined into kalloc::sleepable's instance, which is built for speed like all generic code:
// inlined there, it would be.
#[optimize(size)]
#[inline(never)]
fn load() -> Result<(), LoadError> {
    sysctl::set_version();
    sysctl::stats().reset();
    let env = KernelEnv;
    let timeouts = Timeouts::from_env(&env, &mut |p| {
        klog!(ALWAYS, "{}; using {}", p, p.used());
    });
    sysctl::publish_timeouts(&timeouts);
    let digests = tunables::digests_from_env(&env).unwrap_or_else(|e| {
        let d = DigestOffer::default();
        klog!(ALWAYS, "{}; using {}", e, d.setting());
        d
    });
    sysctl::set_digests(digests);
    let chosen = choose(&env);
    // Whatever was chosen, and before a failure returns: kenv is readable by every user.
    let removed = kenv::remove_secrets();
    if removed > 0 {
        klog!(
            HIGH,
            "{} CHAP secret(s) removed from the kernel environment",
            removed
        );
    }
    let cfg = match chosen? {
        Choice::Boot(cfg) => cfg,
        Choice::Idle(why) => {
            klog!(
                ALWAYS,
                "{}; no {} either: nothing to boot from, staying idle",
                why,
                loader::ROOT_PATH
            );
            let stats = sysctl::stats();
            stats.set_state("idle");
            stats.set_last_error("no iBFT and no net.isboot.root_path");
            return Ok(());
        }
    };
    sysctl::publish_ibft(&cfg);
    if sysctl::verbose() {
        sysfmt::summary_lines(&cfg, &mut |line| {
            klog!(ALWAYS, "boot configuration: {line}");
        });
    }
    let handle = boot::start(cfg, timeouts, digests).map_err(LoadError::Start)?;
    let loaded = match try_box(Loaded {
        boot: handle,
        shutdown_tag: ptr::null_mut(),
        pre_sync_tag: ptr::null_mut(),
    }) {
        Ok(b) => Box::into_raw(b),
        Err(l) => {
            boot::stop(l.boot);
            return Err(LoadError::NoMemory);
        }
    };
    // SAFETY: `loaded` stays valid until unload, which deregisters both handlers (waiting for
    // a running invocation) before freeing it.
    let (pre, post) = unsafe {
        (
            sys::isboot_shutdown_pre_register(Some(on_shutdown_pre), loaded.cast()),
            sys::isboot_shutdown_register(Some(on_shutdown), loaded.cast()),
        )
    };
    if pre.is_null() || post.is_null() {
        // SAFETY: the tags that exist were just registered with `loaded`, which came from
        // Box::into_raw above and was published nowhere else; deregistering waits for a
        // running invocation, so the box is unused when it is freed.
        let l = unsafe {
            if !pre.is_null() {
                sys::isboot_shutdown_pre_deregister(pre);
            }
            if !post.is_null() {
                sys::isboot_shutdown_deregister(post);
            }
            Box::from_raw(loaded)
        };
        boot::stop(l.boot);
        return Err(LoadError::ShutdownHook);
    }
    // SAFETY: nobody else reads these fields before LOADED is published (the handlers do not
    // touch them, and module events are serialised); this initialises them.
    unsafe {
        (*loaded).pre_sync_tag = pre;
        (*loaded).shutdown_tag = post;
    }
    LOADED.store(loaded, Ordering::Release);
    Ok(())
}

/// MOD_LOAD.
#[optimize(size)]
#[no_mangle]
pub extern "C" fn isboot_rust_load() -> c_int {
    // The loader's thread may sleep and holds no lock: allocations may wait for memory.
    match crate::kalloc::sleepable(load) {
        Ok(()) => 0,
        Err(e) => {
            klog!(ALWAYS, "not started: {e}");
            // A preloaded module stays linked after a failed MOD_LOAD (only kldload unloads
            // the file again): its sysctls must not go on describing a boot that did not
            // happen.
            sysctl::clear();
            let mut text = isboot_kmod_logic::linebuf::LineBuf::<224>::new();
            // LineBuf's write never fails.
            let _ = fmt::Write::write_fmt(&mut text, format_args!("{e}"));
            sysctl::stats().set_last_error(text.as_str());
            e.errno()
        }
    }
}

/// Whether unloading must be refused: a disk of the session is held (open or mounted).
#[optimize(size)]
fn refuse_unload() -> bool {
    let loaded = LOADED.load(Ordering::Acquire);
    if loaded.is_null() {
        return false;
    }
    // SAFETY: non-null LOADED points to a live Loaded until unload frees it, and unload runs
    // only in module events, serialised with this one.
    let busy = boot::busy(unsafe { &(*loaded).boot });
    if busy {
        klog!(
            ALWAYS,
            "unload refused: the iSCSI boot disk is in use (it may hold the root file system)"
        );
    }
    busy
}

/// MOD_QUIESCE: asked before MOD_UNLOAD unless the unload is forced.
#[optimize(size)]
#[no_mangle]
pub extern "C" fn isboot_rust_quiesce() -> c_int {
    if refuse_unload() {
        sys::EBUSY as c_int
    } else {
        0
    }
}

/// MOD_UNLOAD: refused (nothing changed) while a disk is held, even for `kldunload -f`.
#[optimize(size)]
#[no_mangle]
pub extern "C" fn isboot_rust_unload() -> c_int {
    if refuse_unload() {
        return sys::EBUSY as c_int;
    }
    let loaded = LOADED.swap(ptr::null_mut(), Ordering::AcqRel);
    if loaded.is_null() {
        return 0;
    }
    // SAFETY: `loaded` came from Box::into_raw in load() and is unpublished now; the handlers
    // are deregistered (and any running call drained) before the box is freed.
    let l = unsafe {
        sys::isboot_shutdown_pre_deregister((*loaded).pre_sync_tag);
        sys::isboot_shutdown_deregister((*loaded).shutdown_tag);
        Box::from_raw(loaded)
    };
    // The unloading thread may sleep and holds no lock.
    crate::kalloc::sleepable(|| boot::stop(l.boot));
    klog!(HIGH, "unloaded");
    0
}

/// shutdown_pre_sync handler (first of all): bounds the session's recovery before the sync,
/// as iscsi(4) fails disconnected sessions at this point; a live session keeps serving.
///
/// # Safety
/// As [`on_shutdown`].
#[optimize(size)]
unsafe extern "C" fn on_shutdown_pre(arg: *mut c_void, _howto: c_int) {
    // SAFETY: no preconditions.
    if unsafe { sys::isboot_shutdown_may_wait() } == 0 {
        return;
    }
    // SAFETY: per this function's contract, `arg` points to a live Loaded.
    let loaded = unsafe { &*arg.cast::<Loaded>() };
    boot::prepare_shutdown(&loaded.boot);
}

/// shutdown_post_sync handler.
///
/// # Safety
/// `arg` is the `*mut Loaded` registered in load(); unload deregisters the handler before it
/// frees that memory.
#[optimize(size)]
unsafe extern "C" fn on_shutdown(arg: *mut c_void, _howto: c_int) {
    // SAFETY: no preconditions.
    if unsafe { sys::isboot_shutdown_may_wait() } == 0 {
        return;
    }
    // SAFETY: per this function's contract, `arg` points to a live Loaded.
    let loaded = unsafe { &*arg.cast::<Loaded>() };
    boot::shutdown(&loaded.boot);
}
