// SPDX-License-Identifier: BSD-2-Clause
//! The interoperability matrix: every real target (tgtd, istgt, LIO) × authentication (none,
//! CHAP, mutual CHAP) × the target's digest setting (its default, CRC32C required) × what we
//! offer (the session's defaults, and each digest setting: `prefer` CRC32C,None, `require`
//! CRC32C, `forbid` None). Each cell logs in, writes and reads back 256 KiB and records what
//! happened; `tests/interop.sh` turns the records into the README's table (and checks that the
//! README still says the same).
//!
//! Every cell is checked: the defaults (`None,CRC32C`, the digest setting `allow`) log in to
//! every target and get digests from each one set to CRC32C; `prefer` works
//! everywhere and gets digests from a target that requires them; `require` gets digests or
//! fails the login with a line naming HeaderDigest, our offer and the setting (tgtd left at its
//! default has none); `forbid` works where the target lets us go without digests and otherwise
//! fails the login naming the digest keys, never later at the first command. A wrong byte read
//! back fails the test in any column.
//!
//! tgtd set to `CRC32C` still accepts `None` alone (but picks CRC32C from `None,CRC32C`): its
//! setting is what it prefers, not a requirement.

use std::fmt::Write as _;
use std::time::Duration;

use isboot_core::text::{DigestOffer, Key};
use isboot_host::disk::{Error, HostDisk};
use isboot_tests::io::{config_for, verify_range, write_range};
use isboot_tests::target::{Auth, Config, Kind, Target};

const MIB: u64 = 1024 * 1024;
/// Blocks each cell writes and reads back: 256 KiB in 64 KiB commands.
const BLOCKS: u64 = 512;

/// What we offer for HeaderDigest and DataDigest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ours {
    /// The session's defaults, untouched.
    Defaults,
    /// Both keys set to this.
    Offer(DigestOffer),
}

const OFFERS: [Ours; 4] = [
    Ours::Defaults,
    Ours::Offer(DigestOffer::PreferCrc32c),
    Ours::Offer(DigestOffer::Crc32c),
    Ours::Offer(DigestOffer::None),
];

impl Ours {
    fn offer(self) -> DigestOffer {
        match self {
            Ours::Defaults => {
                let d = isboot_core::text::Offer::default();
                let (h, dd) = (d.digest(Key::HeaderDigest), d.digest(Key::DataDigest));
                assert_eq!(h, dd, "the defaults offer the same for both digests");
                h
            }
            Ours::Offer(o) => o,
        }
    }

    /// "defaults: None,CRC32C", "require: CRC32C": the setting's word and what goes on the wire.
    fn label(self) -> String {
        let o = self.offer();
        match self {
            Ours::Defaults => format!("defaults: {}", o.value_string()),
            Ours::Offer(_) => format!("{}: {}", o.setting(), o.value_string()),
        }
    }
}

/// How a cell ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    /// Logged in and the data came back right; whether digests were on.
    Ok {
        digests: bool,
    },
    /// Logged in with header and data digests disagreeing (not expected from any target).
    Mixed(String),
    LoginFailed(String),
    /// Logged in, but commands failed.
    CommandsFailed(String),
}

impl Outcome {
    /// The table's wording: stable across runs (no ports, names or timings).
    fn cell(&self) -> &'static str {
        match self {
            Outcome::Ok { digests: true } => "ok, CRC32C",
            Outcome::Ok { digests: false } => "ok, no digests",
            Outcome::Mixed(_) => "ok, one digest only",
            Outcome::LoginFailed(e) if e.contains("HeaderDigest") => {
                "login fails, naming the digests"
            }
            Outcome::LoginFailed(_) => "login fails",
            Outcome::CommandsFailed(_) => "logs in, commands fail",
        }
    }

    fn detail(&self) -> &str {
        match self {
            Outcome::Ok { .. } => "",
            Outcome::Mixed(s) | Outcome::LoginFailed(s) | Outcome::CommandsFailed(s) => s,
        }
    }
}

/// Logs in to `t` with `ours`, writes and reads back [`BLOCKS`] blocks of generation `gen`.
fn cell(t: &Target, ours: Ours, gen: u32) -> Outcome {
    let mut cfg = config_for(t);
    cfg.digests = false;
    if let Ours::Offer(o) = ours {
        cfg.offer
            .set_digest(Key::HeaderDigest, o)
            .set_digest(Key::DataDigest, o);
    }
    // Bounded everywhere: a refused login gives up after two attempts, a command the target
    // never answers (it may expect digests we do not send) fails after 5 s.
    cfg.login_attempts = Some(2);
    cfg.command_timeout = Some(Duration::from_secs(5));
    cfg.io_timeout = Duration::from_secs(60);
    let disk = match HostDisk::open(cfg) {
        Ok(d) => d,
        // The session ended before a login succeeded.
        Err(e @ Error::Ended(_)) => return Outcome::LoginFailed(e.to_string()),
        // Logged in; the first command (READ CAPACITY) failed.
        Err(e) => return Outcome::CommandsFailed(e.to_string()),
    };
    let n = disk.negotiated().map(|p| p.to_string()).unwrap_or_default();
    let (h, d) = (
        n.contains("HeaderDigest true"),
        n.contains("DataDigest true"),
    );
    if let Err(e) = write_range(&disk, gen, 0, BLOCKS, 128, 4) {
        return Outcome::CommandsFailed(e);
    }
    if let Err(e) = verify_range(&disk, gen, 0, BLOCKS, 128, 4) {
        // A read that completed with wrong bytes is a defect, not an interoperability result.
        assert!(
            !e.contains("wrong byte"),
            "{}: {e} ({})",
            t.kind().name(),
            ours.label()
        );
        return Outcome::CommandsFailed(e);
    }
    let _ = disk.close();
    if h == d {
        Outcome::Ok { digests: h }
    } else {
        Outcome::Mixed(n)
    }
}

/// The target's digest setting as the table shows it: what the harness configures for
/// `Config::digests`, or the daemon's own default.
fn setting(kind: Kind, required: bool) -> &'static str {
    match (kind, required) {
        (_, true) => "CRC32C only",
        (Kind::Tgtd, false) => "default (None)",
        (Kind::Istgt, false) => "default (Auto)",
        (Kind::Lio, false) => "default (CRC32C,None)",
    }
}

/// One target configuration's row: the outcome for each offer.
fn row(kind: Kind, auth_label: &str, required: bool, gen: u32) -> String {
    let auth = match auth_label {
        "CHAP" => Auth::chap(),
        "mutual CHAP" => Auth::mutual(),
        _ => Auth::None,
    };
    let cfg = Config {
        auth,
        digests: required,
        ..Config::new(4 * MIB)
    };
    let t = Target::start(kind, cfg).unwrap_or_else(|e| panic!("{}: {e}", kind.name()));
    let setting = setting(kind, required);
    let mut line = format!("{}\t{auth_label}\t{setting}", kind.name());
    for (i, ours) in OFFERS.into_iter().enumerate() {
        let out = cell(&t, ours, gen + i as u32);
        eprintln!(
            "interop: {} auth {auth_label}, digests {setting}, we offer {}: {} {}",
            kind.name(),
            ours.label(),
            out.cell(),
            out.detail()
        );
        let what = format!(
            "{} (auth {auth_label}, digests {setting}), offer {}: {out:?}\n--- target log ---\n{}",
            kind.name(),
            ours.label(),
            t.log()
        );
        check(kind, required, ours, &out, &what);
        let _ = write!(line, "\t{}", out.cell());
    }
    line
}

/// The expectations of the module documentation for one cell.
fn check(kind: Kind, required: bool, ours: Ours, out: &Outcome, what: &str) {
    // tgtd's CRC32C setting allows digests rather than requiring them.
    let requires = required && kind != Kind::Tgtd;
    // A target left at its default that has digests to give: istgt (Auto) and LIO.
    let offers = required || kind != Kind::Tgtd;
    let names_digests = |o: &Outcome| {
        matches!(o, Outcome::LoginFailed(e) if e.contains("HeaderDigest")
            && e.contains("net.isboot.digests, isbootctl boot --digests"))
    };
    match ours.offer() {
        // A target set to CRC32C picks it from our list, even from behind None.
        DigestOffer::PreferNone => {
            assert_eq!(*out, Outcome::Ok { digests: required }, "{what}")
        }
        DigestOffer::PreferCrc32c => {
            assert_eq!(*out, Outcome::Ok { digests: offers }, "{what}")
        }
        DigestOffer::Crc32c if offers => {
            assert_eq!(*out, Outcome::Ok { digests: true }, "{what}")
        }
        DigestOffer::Crc32c => assert!(names_digests(out), "{what}"),
        DigestOffer::None if requires => assert!(names_digests(out), "{what}"),
        DigestOffer::None => assert_eq!(*out, Outcome::Ok { digests: false }, "{what}"),
    }
}

/// Runs the matrix for `kind`, `parallel` target configurations at a time, and writes its rows
/// to `CARGO_TARGET_TMPDIR/interop/KIND.tsv` with the offers' labels as the header.
fn matrix(kind: Kind, parallel: usize) {
    // (row, auth, digests required), in the table's order.
    let configs: Vec<(usize, &str, bool)> = ["none", "CHAP", "mutual CHAP"]
        .into_iter()
        .flat_map(|a| [(a, false), (a, true)])
        .enumerate()
        .map(|(i, (a, r))| (i, a, r))
        .collect();
    let mut rows = vec![String::new(); configs.len()];
    for batch in configs.chunks(parallel.max(1)) {
        std::thread::scope(|s| {
            let handles: Vec<_> = batch
                .iter()
                .map(|&(i, a, r)| (i, s.spawn(move || row(kind, a, r, 10 * i as u32))))
                .collect();
            for (i, h) in handles {
                rows[i] = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            }
        });
    }
    let header: Vec<String> = OFFERS.iter().map(|o| o.label()).collect();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("interop");
    std::fs::create_dir_all(&dir).unwrap();
    let text = format!(
        "target\tauth\ttarget digests\t{}\n{}\n",
        header.join("\t"),
        rows.join("\n")
    );
    std::fs::write(dir.join(format!("{}.tsv", kind.name())), text).unwrap();
}

#[test]
fn interop_tgtd() {
    matrix(Kind::Tgtd, 3);
}

#[test]
fn interop_istgt() {
    matrix(Kind::Istgt, 3);
}

/// Each LIO configuration is a guest boot, mostly CPU: three at a time.
#[test]
fn interop_lio() {
    matrix(Kind::Lio, 3);
}
