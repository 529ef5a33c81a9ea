// SPDX-License-Identifier: BSD-2-Clause
//! isboot-executor
#![no_std]
