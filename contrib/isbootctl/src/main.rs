// SPDX-License-Identifier: BSD-2-Clause
//! isbootctl: the userland companion of isboot.ko.
fn main() {}
