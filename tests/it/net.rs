// SPDX-License-Identifier: BSD-2-Clause
//! Loopback ports and listener ownership.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// A TCP port on 127.0.0.1 that was free a moment ago. Whoever binds it next may still lose a race
/// with another process; callers detect that (the daemon fails to bind) and retry with a new port.
pub fn free_port() -> std::io::Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(l.local_addr()?.port())
}

/// True when something accepts TCP connections on 127.0.0.1:`port`.
pub fn accepts(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

/// True when process `pid` owns a socket listening on 127.0.0.1:`port`: the listener's inode from
/// /proc/net/tcp is one of the process's open files. This tells our daemon from another process
/// that happened to take the same port.
pub fn pid_listens_on(pid: u32, port: u16) -> bool {
    let Some(inode) = listening_inode(port) else {
        return false;
    };
    let want = format!("socket:[{inode}]");
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == want.as_str()))
}

fn listening_inode(port: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    // local_address is "0100007F:PORT" (127.0.0.1 in host byte order on little-endian machines,
    // which is all this harness runs on); state 0A is LISTEN.
    let local = format!("0100007F:{port:04X}");
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() > 9 && cols[1] == local && cols[3] == "0A" {
            cols[9].parse().ok()
        } else {
            None
        }
    })
}
