// SPDX-License-Identifier: BSD-2-Clause
//! libiscsi's command-line tools (Debian `libiscsi-bin`) as an independent initiator: they prove
//! the harness's targets work before our initiator is blamed, and serve as the benchmark's peer.

use std::io;
use std::process::Command;
use std::time::Duration;

use crate::process;

const TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// The text `iscsi-inq` prints for the standard INQUIRY page.
pub fn inquiry(url: &str) -> io::Result<String> {
    let out = process::run(Command::new("iscsi-inq").arg(url), TOOL_TIMEOUT)?.ok("iscsi-inq")?;
    Ok(out.stdout)
}

/// The disk size in bytes as `iscsi-readcapacity16` reports it.
pub fn capacity(url: &str) -> io::Result<u64> {
    let out = process::run(Command::new("iscsi-readcapacity16").arg(url), TOOL_TIMEOUT)?
        .ok("iscsi-readcapacity16")?;
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("Total size:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| io::Error::other(format!("no total size in {:?}", out.stdout)))
}
