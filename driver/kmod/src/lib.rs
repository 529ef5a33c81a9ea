// SPDX-License-Identifier: BSD-2-Clause
//! isboot.ko: the FreeBSD kernel module that boots from the iSCSI disk the firmware's iBFT names.
//!
//! This crate is the only place with kernel `unsafe`: thin wrappers over the KPIs in
//! [`bindings`], each block justified by a `// SAFETY:` comment. Decisions live in safe code:
//! the protocol in `isboot-core`, the glue's pure logic in `isboot-kmod-logic`.
//!
//! Module core (load/unload, allocator, panic, logging, sysctls, finding the iBFT):
//! [`module`], [`kalloc`], [`panic`], [`log`], [`sysctl`], [`ibft`].
//! Runtime glue (NIC, sockets, executor hosting, CAM, boot sequence):
//! [`net`], [`sock`], [`exec`], [`cam`], [`boot`].
#![no_std]

extern crate alloc;

pub(crate) use isboot_bindings as bindings;

pub mod log;

pub mod ibft;
pub mod kalloc;
pub mod module;
pub mod panic;
pub mod sysctl;

pub mod boot;
pub mod cam;
pub mod exec;
pub mod net;
pub mod sock;
