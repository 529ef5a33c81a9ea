// SPDX-License-Identifier: BSD-2-Clause
//! The isboot protocol core: iBFT, iSCSI PDUs, text negotiation, CHAP, login, session and the
//! SCSI request model.
//!
//! `no_std` (with `alloc`), free of `unsafe`, and never panics on bytes that come from firmware or
//! from the network: every parser returns an error naming what was wrong. The same code runs in the
//! FreeBSD kernel module and in userspace on Linux; it does not know which.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod chap;
pub mod ibft;
pub mod login;
pub mod pdu;
pub mod port;
pub mod scsi;
pub mod secret;
pub mod session;
pub mod sn;
pub mod text;
