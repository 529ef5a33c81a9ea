// SPDX-License-Identifier: BSD-2-Clause
//! Harness for integration tests against real iSCSI targets started by the tests.
