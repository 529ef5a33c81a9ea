// SPDX-License-Identifier: BSD-2-Clause
//! Real iSCSI targets for the tests: tgtd (Debian `tgt`), istgt, and LIO (the Linux kernel's
//! target, in a qemu guest: see `lio.rs`), each on its own loopback port, serving a sparse backing
//! file from a private temporary directory.
//!
//! `Target::start` returns only when the target listens on its port (checked by the listening
//! socket's owner, not just by a successful connect; for LIO, by the guest's ready line on its
//! console) and is configured; `Drop` stops it. tgtd ignores SIGTERM, so it is stopped through its
//! control channel (targets deleted with `--force`, then the system), with SIGKILL as the bounded
//! fallback.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::net;
use crate::process;
use crate::tmp::TempDir;
use crate::wait;

#[path = "lio.rs"]
mod lio;

/// Which target serves the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Tgtd,
    Istgt,
    /// LIO in a qemu guest: seconds to start, so tests ask for it by name (and carry `lio` in
    /// theirs) rather than through [`Kind::ALL`].
    Lio,
}

impl Kind {
    /// The targets that run as daemons on this host.
    pub const ALL: [Kind; 2] = [Kind::Tgtd, Kind::Istgt];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Tgtd => "tgtd",
            Kind::Istgt => "istgt",
            Kind::Lio => "lio",
        }
    }

    /// The kind called `name` (as [`Kind::name`] spells it).
    pub fn from_name(name: &str) -> Option<Kind> {
        [Kind::Tgtd, Kind::Istgt, Kind::Lio]
            .into_iter()
            .find(|k| k.name() == name)
    }
}

/// CHAP credentials the target demands. Secrets are redacted from `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    /// The initiator authenticates with `user`/`secret`.
    Chap {
        user: String,
        secret: String,
    },
    /// As `Chap`, and the target authenticates back with `target_user`/`target_secret`.
    Mutual {
        user: String,
        secret: String,
        target_user: String,
        target_secret: String,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Chap { user, .. } => write!(f, "Chap {{ user: {user:?}, secret: <redacted> }}"),
            Auth::Mutual {
                user, target_user, ..
            } => write!(
                f,
                "Mutual {{ user: {user:?}, target_user: {target_user:?}, secrets: <redacted> }}"
            ),
        }
    }
}

impl Auth {
    /// One-way CHAP with test credentials (12–16 character secrets, which every target accepts).
    pub fn chap() -> Auth {
        Auth::Chap {
            user: "isboot-user".into(),
            secret: "initiator-s3cr".into(),
        }
    }

    /// The name and secret the initiator proves, if any.
    pub fn initiator(&self) -> Option<(&str, &str)> {
        match self {
            Auth::None => None,
            Auth::Chap { user, secret } | Auth::Mutual { user, secret, .. } => Some((user, secret)),
        }
    }

    /// The name and secret the target proves back (mutual CHAP).
    pub fn target(&self) -> Option<(&str, &str)> {
        match self {
            Auth::Mutual {
                target_user,
                target_secret,
                ..
            } => Some((target_user, target_secret)),
            _ => None,
        }
    }

    /// Mutual CHAP with test credentials.
    pub fn mutual() -> Auth {
        Auth::Mutual {
            user: "isboot-user".into(),
            secret: "initiator-s3cr".into(),
            target_user: "isboot-target".into(),
            target_secret: "target-s3cret1".into(),
        }
    }
}

/// How the target is set up. `None` leaves the daemon's default.
#[derive(Clone, Debug)]
pub struct Config {
    /// Size of the backing file in bytes (a multiple of 512).
    pub size: u64,
    pub auth: Auth,
    /// Demand CRC32C header and data digests.
    pub digests: bool,
    /// The target's MaxRecvDataSegmentLength; with tgtd also its MaxXmitDataSegmentLength, so that
    /// Data-In is split as finely as Data-Out.
    pub max_recv_dsl: Option<u32>,
    pub initial_r2t: Option<bool>,
    pub immediate_data: Option<bool>,
    pub first_burst: Option<u32>,
    pub max_burst: Option<u32>,
    pub max_outstanding_r2t: Option<u32>,
    /// Seconds between the target's NOP-In pings. LIO: at least 3, and a ping unanswered for as
    /// long drops the connection.
    pub nop_interval: Option<u32>,
    /// tgtd: unanswered pings before it drops the connection.
    pub nop_count: Option<u32>,
    /// Commands the target queues per session.
    pub queue_depth: Option<u32>,
    /// Listen on this port rather than on a free one (for a private network namespace, where
    /// firmware expects 3260); start fails if it stays taken.
    pub port: Option<u16>,
    /// The target's name instead of the kind's default (a full IQN, with a colon).
    pub iqn: Option<String>,
    /// tgtd only: serve the LUN from tgtd's null backing store (`--bstype null`: reads return
    /// zeroes, writes are dropped, no disk work), for benchmarks that price the initiator.
    pub null_store: bool,
}

impl Config {
    /// Defaults of the daemon, no authentication, a disk of `size` bytes.
    pub fn new(size: u64) -> Config {
        Config {
            size,
            auth: Auth::None,
            digests: false,
            max_recv_dsl: None,
            initial_r2t: None,
            immediate_data: None,
            first_burst: None,
            max_burst: None,
            max_outstanding_r2t: None,
            nop_interval: None,
            nop_count: None,
            queue_depth: None,
            port: None,
            iqn: None,
            null_store: false,
        }
    }
}

const START_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const TGTADM_TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts at finding a free port (and tgtd control port) before giving up.
const START_ATTEMPTS: u32 = 8;

/// A running target daemon serving one disk.
#[derive(Debug)]
pub struct Target {
    kind: Kind,
    cfg: Config,
    port: u16,
    /// tgtd's management channel number (`-C`); unused for istgt.
    ctl: u16,
    /// Our tgtd holds the lock of management channel `ctl` (its files are ours to remove).
    owns_ctl: bool,
    child: Option<Child>,
    disk: PathBuf,
    /// LIO: where this run's output starts in the guest's console log (restarts append to it).
    serial_from: u64,
    dir: TempDir,
}

impl Target {
    /// Starts `kind` serving a fresh sparse disk as configured.
    pub fn start(kind: Kind, cfg: Config) -> io::Result<Target> {
        Self::start_on(kind, cfg, None)
    }

    /// Starts `kind` serving the backing file of `other` (a second portal to the same disk, for
    /// failover tests).
    pub fn start_sharing(kind: Kind, cfg: Config, other: &Target) -> io::Result<Target> {
        Self::start_on(kind, cfg, Some(other.disk_path()))
    }

    /// Starts `kind` serving the existing file `disk` (a prepared boot disk); `cfg.size` is
    /// ignored.
    pub fn start_serving(kind: Kind, mut cfg: Config, disk: &Path) -> io::Result<Target> {
        cfg.size = std::fs::metadata(disk)?.len();
        Self::start_on(kind, cfg, Some(disk))
    }

    fn start_on(kind: Kind, cfg: Config, disk: Option<&Path>) -> io::Result<Target> {
        if kind == Kind::Istgt && cfg.initial_r2t == Some(false) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "istgt refuses to start with InitialR2T No",
            ));
        }
        if cfg
            .iqn
            .as_deref()
            .is_some_and(|n| !n.contains(':') || n.contains(char::is_whitespace))
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a target name needs a colon (istgt prefixes its NodeBase otherwise) and no space",
            ));
        }
        if cfg.size == 0 || cfg.size % 512 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("disk size {} is not a positive multiple of 512", cfg.size),
            ));
        }
        let dir = TempDir::new(&format!("isboot-{}", kind.name()))?;
        let disk = match disk {
            Some(p) => p.to_path_buf(),
            None => dir.sparse_file("disk.img", cfg.size)?,
        };
        let mut t = Target {
            kind,
            cfg,
            port: 0,
            ctl: 0,
            owns_ctl: false,
            child: None,
            disk,
            serial_from: 0,
            dir,
        };
        let mut last = None;
        // Also with a fixed port: tgtd's control channel may be what was taken.
        for _ in 0..START_ATTEMPTS {
            t.port = match t.cfg.port {
                Some(p) => p,
                None => net::free_port()?,
            };
            t.ctl = random_ctl_port()?;
            match t.launch() {
                Ok(()) => return Ok(t),
                // Lost a race for the port or control channel: try other numbers.
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                    t.stop();
                    last = Some(e);
                }
                Err(e) => return Err(t.with_log(e)),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no start attempt")))
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The target daemon's process id, while this harness runs one (not for LIO's guest).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Where the target listens.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The target's iSCSI name.
    pub fn iqn(&self) -> &str {
        if let Some(iqn) = &self.cfg.iqn {
            return iqn;
        }
        match self.kind {
            Kind::Tgtd => "iqn.2026-11.org.isboot:tgtd.disk",
            Kind::Istgt => "iqn.2026-11.org.isboot:istgt.disk",
            Kind::Lio => "iqn.2026-11.org.isboot:lio.disk",
        }
    }

    /// The LUN of the disk: tgtd reserves LUN 0 for its controller.
    pub fn lun(&self) -> u64 {
        match self.kind {
            Kind::Tgtd => 1,
            Kind::Istgt | Kind::Lio => 0,
        }
    }

    /// The backing file, for checking what reached the disk.
    pub fn disk_path(&self) -> &Path {
        &self.disk
    }

    /// The daemon's output so far (both runs when it was restarted); for LIO, qemu's messages
    /// and the guest's serial console.
    pub fn log(&self) -> String {
        let mut log =
            std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default();
        if self.kind == Kind::Lio {
            log.push_str("--- guest console ---\n");
            log.push_str(&read_from(&self.dir.path().join("serial.log"), 0).replace('\r', ""));
        }
        log
    }

    /// Whether the daemon process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills the daemon with SIGKILL, as a crash would: connections drop without a goodbye.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the daemon again on the same port with the same disk and configuration.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop();
        let mut last = None;
        // The port may be briefly unavailable after a kill; retry on the same numbers for a while.
        for _ in 0..START_ATTEMPTS {
            match self.launch() {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                    self.stop();
                    last = Some(e);
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(e) => return Err(self.with_log(e)),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no restart attempt")))
    }

    /// A libiscsi URL for the disk, with the initiator's CHAP credentials; the target's mutual
    /// credentials are set as URL arguments, and the header digest when the target demands it.
    pub fn libiscsi_url(&self) -> String {
        let cred = match &self.cfg.auth {
            Auth::None => String::new(),
            Auth::Chap { user, secret } | Auth::Mutual { user, secret, .. } => {
                format!("{user}%{secret}@")
            }
        };
        let mut args = Vec::new();
        if let Auth::Mutual {
            target_user,
            target_secret,
            ..
        } = &self.cfg.auth
        {
            args.push(format!("target_user={target_user}"));
            args.push(format!("target_password={target_secret}"));
        }
        if self.cfg.digests {
            args.push("header_digest=crc32c".to_string());
        }
        let query = if args.is_empty() {
            String::new()
        } else {
            format!("?{}", args.join("&"))
        };
        format!(
            "iscsi://{cred}127.0.0.1:{}/{}/{}{query}",
            self.port,
            self.iqn(),
            self.lun()
        )
    }

    fn with_log(&self, e: io::Error) -> io::Error {
        io::Error::new(
            e.kind(),
            format!(
                "{} start failed: {e}\n--- daemon log ---\n{}",
                self.kind.name(),
                self.log()
            ),
        )
    }

    fn log_file(&self) -> io::Result<File> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
    }

    /// Starts the daemon on `self.port` and configures it; `AddrInUse` when a number was taken.
    fn launch(&mut self) -> io::Result<()> {
        match self.kind {
            Kind::Tgtd => self.launch_tgtd(),
            Kind::Istgt => self.launch_istgt(),
            Kind::Lio => self.launch_lio(),
        }
    }

    fn spawn(&mut self, cmd: &mut Command) -> io::Result<()> {
        let log = self.log_file()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until our daemon owns the listening socket; `AddrInUse` if it exited complaining
    /// about a taken address first.
    fn wait_listening(&mut self, in_use_marks: &[&str]) -> io::Result<()> {
        let port = self.port;
        let mut exited = None;
        let ok = {
            let child = self
                .child
                .as_mut()
                .ok_or_else(|| io::Error::other("daemon not started"))?;
            let pid = child.id();
            wait::until(START_TIMEOUT, || {
                if let Ok(Some(status)) = child.try_wait() {
                    exited = Some(status);
                    return Some(false);
                }
                net::pid_listens_on(pid, port).then_some(true)
            })
        };
        match ok {
            Some(true) => Ok(()),
            Some(false) => {
                let log = self.log();
                let status = exited.map(|s| s.to_string()).unwrap_or_default();
                if in_use_marks.iter().any(|m| log.contains(m)) {
                    Err(io::Error::new(
                        io::ErrorKind::AddrInUse,
                        format!("exited {status}"),
                    ))
                } else {
                    Err(io::Error::other(format!("daemon exited early: {status}")))
                }
            }
            None => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("not listening on port {port} after {START_TIMEOUT:?}"),
            )),
        }
    }

    // ---- tgtd ----

    fn tgtadm(&self, args: &[&str]) -> io::Result<process::Output> {
        let ctl = self.ctl.to_string();
        let mut cmd = Command::new("tgtadm");
        cmd.args(["-C", &ctl, "--lld", "iscsi"]).args(args);
        process::run(&mut cmd, TGTADM_TIMEOUT)?.ok(&format!("tgtadm {}", args.join(" ")))
    }

    fn launch_tgtd(&mut self) -> io::Result<()> {
        let portal = format!("portal=127.0.0.1:{}", self.port);
        let ctl = self.ctl.to_string();
        self.spawn(Command::new("tgtd").args(["-f", "-C", &ctl, "--iscsi", &portal]))?;
        // A taken control channel makes tgtd exit; a taken port makes it fall back to listening on
        // every address (0.0.0.0:3260), which we must not keep: both count as "in use".
        match self.wait_listening(&["another tgtd is using", "unable to bind server socket"]) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                if self.log().contains("unable to bind server socket") {
                    return Err(io::Error::new(io::ErrorKind::AddrInUse, "port taken"));
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        }
        // Listening means tgtd got past its management lock.
        self.owns_ctl = true;
        // The management socket comes up before the portal, but check tgtd answers at all.
        let portals = self.tgtadm(&["--op", "show", "--mode", "portal"])?;
        let want = format!("Portal: 127.0.0.1:{},1", self.port);
        if portals.stdout.lines().map(str::trim).ne([want.as_str()]) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "tgtd listens on {:?}, not only {want}",
                    portals.stdout.trim()
                ),
            ));
        }
        self.configure_tgtd()
    }

    fn configure_tgtd(&self) -> io::Result<()> {
        let disk = self.disk.to_string_lossy().into_owned();
        let t = ["--tid", "1"];
        self.tgtadm(
            &[
                &["--op", "new", "--mode", "target", "-T", self.iqn()][..],
                &t,
            ]
            .concat(),
        )?;
        let lu: &[&str] = &[
            "--op",
            "new",
            "--mode",
            "logicalunit",
            "--lun",
            "1",
            "-b",
            &disk,
        ];
        let null: &[&str] = if self.cfg.null_store {
            &["--bstype", "null"]
        } else {
            &[]
        };
        self.tgtadm(&[lu, null, &t].concat())?;
        self.tgtadm(&[&["--op", "bind", "--mode", "target", "-I", "ALL"][..], &t].concat())?;
        let c = &self.cfg;
        let mut params: Vec<(&str, String)> = Vec::new();
        if c.digests {
            params.push(("HeaderDigest", "CRC32C".into()));
            params.push(("DataDigest", "CRC32C".into()));
        }
        if let Some(v) = c.max_recv_dsl {
            params.push(("MaxRecvDataSegmentLength", v.to_string()));
            params.push(("MaxXmitDataSegmentLength", v.to_string()));
        }
        if let Some(v) = c.initial_r2t {
            params.push(("InitialR2T", yes_no(v).into()));
        }
        if let Some(v) = c.immediate_data {
            params.push(("ImmediateData", yes_no(v).into()));
        }
        if let Some(v) = c.first_burst {
            params.push(("FirstBurstLength", v.to_string()));
        }
        if let Some(v) = c.max_burst {
            params.push(("MaxBurstLength", v.to_string()));
        }
        if let Some(v) = c.max_outstanding_r2t {
            params.push(("MaxOutstandingR2T", v.to_string()));
        }
        if let Some(v) = c.nop_interval {
            params.push(("nop_interval", v.to_string()));
        }
        if let Some(v) = c.nop_count {
            params.push(("nop_count", v.to_string()));
        }
        if let Some(v) = c.queue_depth {
            params.push(("MaxQueueCmd", v.to_string()));
        }
        for (name, value) in &params {
            self.tgtadm(
                &[
                    &[
                        "--op", "update", "--mode", "target", "--name", name, "--value", value,
                    ][..],
                    &t,
                ]
                .concat(),
            )?;
        }
        match &c.auth {
            Auth::None => {}
            Auth::Chap { user, secret } => self.tgtd_account(user, secret, false)?,
            Auth::Mutual {
                user,
                secret,
                target_user,
                target_secret,
            } => {
                self.tgtd_account(user, secret, false)?;
                self.tgtd_account(target_user, target_secret, true)?;
            }
        }
        Ok(())
    }

    fn tgtd_account(&self, user: &str, secret: &str, outgoing: bool) -> io::Result<()> {
        self.tgtadm(&[
            "--op",
            "new",
            "--mode",
            "account",
            "--user",
            user,
            "--password",
            secret,
        ])?;
        let mut bind = vec![
            "--op", "bind", "--mode", "account", "--tid", "1", "--user", user,
        ];
        if outgoing {
            bind.push("--outgoing");
        }
        self.tgtadm(&bind).map(drop)
    }

    fn stop_tgtd(&mut self) {
        let running = self
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)));
        if running {
            // Errors are expected when the target was never created; the system delete still works.
            let _ = self.tgtadm(&[
                "--op", "delete", "--mode", "target", "--tid", "1", "--force",
            ]);
            let _ = self.tgtadm(&["--op", "delete", "--mode", "system"]);
        }
        self.reap();
        // tgtd leaves its socket and lock files behind; they hold nothing once it is gone. Only
        // ours are removed: a tgtd that lost the race for the number belongs to someone else.
        if std::mem::take(&mut self.owns_ctl) {
            for suffix in ["", ".lock"] {
                let _ = std::fs::remove_file(format!("/var/run/tgtd/socket.{}{suffix}", self.ctl));
            }
        }
    }

    // ---- istgt ----

    fn launch_istgt(&mut self) -> io::Result<()> {
        let conf = self.dir.path().join("istgt.conf");
        std::fs::write(&conf, self.istgt_conf())?;
        std::fs::write(self.dir.path().join("auth.conf"), self.istgt_auth())?;
        let conf = conf.to_string_lossy().into_owned();
        self.spawn(Command::new("istgt").args(["-c", &conf, "-D"]))?;
        self.wait_listening(&["listen error", "bind error"])
    }

    fn istgt_conf(&self) -> String {
        let c = &self.cfg;
        let dir = self.dir.path().display();
        let mut global = vec![
            "NodeBase \"iqn.2026-11.org.isboot\"".to_string(),
            format!("PidFile {dir}/istgt.pid"),
            format!("AuthFile {dir}/auth.conf"),
            format!("MediaDirectory {dir}"),
            "LogFacility \"local7\"".into(),
            "Timeout 30".into(),
            format!("NopInInterval {}", c.nop_interval.unwrap_or(20)),
            "DiscoveryAuthMethod None".into(),
            "MaxSessions 16".into(),
            "MaxConnections 4".into(),
        ];
        let mut push = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                global.push(format!("{k} {v}"));
            }
        };
        push(
            "MaxRecvDataSegmentLength",
            c.max_recv_dsl.map(|v| v.to_string()),
        );
        push("FirstBurstLength", c.first_burst.map(|v| v.to_string()));
        push("MaxBurstLength", c.max_burst.map(|v| v.to_string()));
        push(
            "MaxOutstandingR2T",
            c.max_outstanding_r2t.map(|v| v.to_string()),
        );
        push("InitialR2T", c.initial_r2t.map(|v| yes_no(v).into()));
        push("ImmediateData", c.immediate_data.map(|v| yes_no(v).into()));
        let auth = match c.auth {
            Auth::None => "None",
            Auth::Chap { .. } => "CHAP",
            Auth::Mutual { .. } => "CHAP Mutual",
        };
        let digest = if c.digests { "Header Data" } else { "Auto" };
        format!(
            "[Global]\n  {}\n\
             [UnitControl]\n  AuthMethod CHAP Mutual\n  AuthGroup AuthGroup10000\n\
             [PortalGroup1]\n  Portal DA1 127.0.0.1:{port}\n\
             [InitiatorGroup1]\n  InitiatorName \"ALL\"\n  Netmask 127.0.0.0/8\n\
             [LogicalUnit1]\n  TargetName {iqn}\n  Mapping PortalGroup1 InitiatorGroup1\n  \
             AuthMethod {auth}\n  AuthGroup AuthGroup1\n  UseDigest {digest}\n  UnitType Disk\n  \
             QueueDepth {qd}\n  LUN0 Storage {disk} Auto\n",
            global.join("\n  "),
            port = self.port,
            iqn = self.iqn(),
            qd = c.queue_depth.unwrap_or(32),
            disk = self.disk.display(),
        )
    }

    fn istgt_auth(&self) -> String {
        let line = match &self.cfg.auth {
            Auth::None => String::new(),
            Auth::Chap { user, secret } => format!("  Auth \"{user}\" \"{secret}\"\n"),
            Auth::Mutual {
                user,
                secret,
                target_user,
                target_secret,
            } => format!("  Auth \"{user}\" \"{secret}\" \"{target_user}\" \"{target_secret}\"\n"),
        };
        // istgt demands a [UnitControl] section; without a portal it serves nothing, and its auth
        // group holds a user no initiator knows.
        format!("[AuthGroup1]\n{line}[AuthGroup10000]\n  Auth \"nobody\" \"unusable-secret\"\n")
    }

    // ---- LIO ----

    fn launch_lio(&mut self) -> io::Result<()> {
        let img = lio::image()?;
        let dir = self.dir.path().to_path_buf();
        std::fs::write(
            dir.join("lio.conf"),
            lio::conf(&self.cfg, self.iqn(), crate::io::INITIATOR)?,
        )?;
        let serial = dir.join("serial.log");
        self.serial_from = std::fs::metadata(&serial).map_or(0, |m| m.len());
        let log_from = std::fs::metadata(dir.join("daemon.log")).map_or(0, |m| m.len());
        self.spawn(&mut lio::qemu(&img, &dir, self.port, &self.disk))?;
        let from = self.serial_from;
        let child = self
            .child
            .as_mut()
            .ok_or_else(|| io::Error::other("qemu not started"))?;
        let pid = child.id();
        let mut exited = None;
        let state = wait::until(lio::READY_TIMEOUT, || {
            // Looked at before the console, so that a guest that said why it powered off is
            // heard: qemu writes the console file before it exits.
            let status = child.try_wait().ok().flatten();
            lio::console_state(&read_from(&serial, from)).or_else(|| {
                exited = status;
                status.map(|_| Err(String::new()))
            })
        });
        match state {
            Some(Ok(())) if net::pid_listens_on(pid, self.port) => Ok(()),
            Some(Ok(())) => Err(io::Error::other(format!(
                "the guest is ready, but qemu does not listen on 127.0.0.1:{}",
                self.port
            ))),
            Some(Err(why)) if !why.is_empty() => {
                Err(io::Error::other(format!("the guest failed: {why}")))
            }
            Some(Err(_)) => {
                let log = read_from(&dir.join("daemon.log"), log_from);
                // qemu sets up its port forwarding first and exits when the port is taken.
                if log.contains("host forwarding rule") {
                    return Err(io::Error::new(io::ErrorKind::AddrInUse, log));
                }
                let status = exited.map(|s| s.to_string()).unwrap_or_default();
                Err(io::Error::other(format!("qemu exited early: {status}")))
            }
            None => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "no {} on the guest's console after {:?}",
                    lio::READY,
                    lio::READY_TIMEOUT
                ),
            )),
        }
    }

    // ---- all ----

    /// Stops the daemon: orderly where the daemon needs it, SIGKILL after a bounded wait.
    fn stop(&mut self) {
        match self.kind {
            Kind::Tgtd => self.stop_tgtd(),
            // istgt keeps nothing we need in memory (writes go to the file), and neither does the
            // LIO guest (iblock writes reach qemu's file before they complete), so they are killed.
            Kind::Istgt | Kind::Lio => self.reap(),
        }
    }

    /// Waits a bounded time for the daemon to exit (tgtd after its system delete), then kills it.
    fn reap(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let wait = if self.kind == Kind::Tgtd {
            STOP_TIMEOUT
        } else {
            Duration::ZERO
        };
        if !matches!(process::wait_timeout(&mut child, wait), Ok(Some(_))) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- {} log (port {}) ---\n{}",
                self.kind.name(),
                self.port,
                self.log()
            );
        }
        self.stop();
    }
}

/// The text of `path` from byte `from` on (empty when it cannot be read).
fn read_from(path: &Path, from: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let mut s = Vec::new();
    if let Ok(mut f) = File::open(path) {
        if f.seek(SeekFrom::Start(from)).is_ok() {
            let _ = f.read_to_end(&mut s);
        }
    }
    String::from_utf8_lossy(&s).into_owned()
}

fn yes_no(v: bool) -> &'static str {
    if v {
        "Yes"
    } else {
        "No"
    }
}

/// A tgtd management channel number nobody is likely to use; tgtd refuses one in use (its lock
/// file), which `start` treats like a taken port.
fn random_ctl_port() -> io::Result<u16> {
    let mut b = [0u8; 2];
    io::Read::read_exact(&mut File::open("/dev/urandom")?, &mut b)?;
    // tgtd accepts 0..=32767; the low range is left to humans and packaged services.
    Ok(1_000 + u16::from_le_bytes(b) % 31_000)
}
