// SPDX-License-Identifier: BSD-2-Clause
//! Running helper programs with a time limit.

use std::io::{self, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// What a finished program printed.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The output as an error unless the program exited with 0.
    pub fn ok(self, what: &str) -> io::Result<Output> {
        if self.status.success() {
            Ok(self)
        } else {
            Err(io::Error::other(format!(
                "{what}: {}; stdout: {}; stderr: {}",
                self.status,
                self.stdout.trim(),
                self.stderr.trim()
            )))
        }
    }
}

/// Runs `cmd` to completion, killing it after `timeout`. Output pipes are drained by threads so a
/// chatty program cannot block on a full pipe while we wait for it.
pub fn run(cmd: &mut Command, timeout: Duration) -> io::Result<Output> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("{what}: {e}")))?;
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = match wait_timeout(&mut child, timeout)? {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{what} did not finish within {timeout:?}"),
            ));
        }
    };
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut s);
        }
        String::from_utf8_lossy(&s).into_owned()
    })
}

/// Waits for `child` to exit, at most `timeout`; `None` when it is still running.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> io::Result<Option<ExitStatus>> {
    let mut err = None;
    let status = crate::wait::until(timeout, || match child.try_wait() {
        Ok(Some(s)) => Some(Some(s)),
        Ok(None) => None,
        Err(e) => {
            err = Some(e);
            Some(None)
        }
    });
    match (status, err) {
        (_, Some(e)) => Err(e),
        (Some(s), None) => Ok(s),
        (None, None) => Ok(None),
    }
}
