// SPDX-License-Identifier: BSD-2-Clause
//! The loader's environment (kern/kern_environment.c) as the core reads it
//! ([`isboot_core::bootcfg::Env`]): the boot configuration of a machine without an iBFT, the
//! source setting and the timeouts.
//!
//! `kern_getenv` returns a copy of the value from the kenv zone, which `freeenv` zeroes and
//! frees; a secret goes from that copy straight into a [`Secret`] (which zeroes itself when
//! dropped), so no other copy is left. The kernel environment is readable by every user
//! (`kenv`, without privilege): [`remove_secrets`] takes the CHAP secrets out of it once the
//! module has read them.

use alloc::string::String;
use core::ffi::{c_char, CStr};

use isboot_core::bootcfg::loader::SECRETS;
use isboot_core::bootcfg::Env;
use isboot_core::secret::Secret;

use crate::bindings as sys;

/// Longer than any name the module asks for (KENV_MNAMELEN is 128).
const NAME_MAX: usize = 64;

/// `name` NUL-terminated, or `None` when it does not fit (no such variable is ever asked for).
#[optimize(size)]
fn c_name(name: &str) -> Option<[u8; NAME_MAX]> {
    let mut b = [0u8; NAME_MAX];
    if name.len() >= NAME_MAX || name.bytes().any(|c| c == 0) {
        return None;
    }
    for (d, s) in b.iter_mut().zip(name.bytes()) {
        *d = s;
    }
    Some(b)
}

/// The kernel's copy of a value, zeroed and freed when dropped.
struct Value(*mut c_char);

impl Value {
    /// The value of `name`, if set.
    // Once, not in each reader's instance.
    #[optimize(size)]
    #[inline(never)]
    fn get(name: &str) -> Option<Value> {
        let cname = c_name(name)?;
        // SAFETY: `cname` is NUL-terminated; kern_getenv may sleep (M_WAITOK), which the thread
        // contexts the module reads its configuration from (MOD_LOAD) allow. It returns NULL or
        // a NUL-terminated copy that we own until freeenv.
        let p: *mut c_char = unsafe { sys::kern_getenv(cname.as_ptr().cast()) };
        (!p.is_null()).then_some(Value(p))
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `self.0` is a NUL-terminated string from kern_getenv, alive until freeenv in
        // drop.
        unsafe { CStr::from_ptr(self.0) }.to_bytes()
    }
}

impl Drop for Value {
    #[optimize(size)]
    fn drop(&mut self) {
        // SAFETY: `self.0` came from kern_getenv and is released once; freeenv zeroes it first.
        unsafe { sys::freeenv(self.0) };
    }
}

/// The kernel environment.
#[derive(Debug)]
pub struct KernelEnv;

impl Env for KernelEnv {
    #[optimize(size)]
    fn get(&self, name: &str) -> Option<String> {
        // A value that is not UTF-8 is read with replacement characters: the core then refuses
        // it naming the variable, as it does any other wrong value.
        Value::get(name).map(|v| String::from_utf8_lossy(v.bytes()).into_owned())
    }

    #[optimize(size)]
    fn get_secret(&self, name: &str) -> Option<Secret> {
        Value::get(name).map(|v| Secret::new(v.bytes()))
    }
}

/// Removes the CHAP secrets from the kernel environment; returns how many were there.
#[optimize(size)]
pub fn remove_secrets() -> usize {
    let mut removed: usize = 0;
    for name in SECRETS {
        let Some(cname) = c_name(name) else {
            continue;
        };
        // SAFETY: `cname` is NUL-terminated; kern_unsetenv takes the kenv lock (a sleep mutex)
        // and zeroes the entry it frees; thread context (MOD_LOAD).
        if unsafe { sys::kern_unsetenv(cname.as_ptr().cast()) } == 0 {
            removed = removed.saturating_add(1);
        }
    }
    removed
}
