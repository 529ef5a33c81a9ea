// SPDX-License-Identifier: BSD-2-Clause
//! isboot-host
#![no_std]
