// SPDX-License-Identifier: BSD-2-Clause
//! The harness checked with an independent initiator (libiscsi's tools): each target starts in
//! every configuration the integration tests use, authentication is really enforced, and the relay
//! passes a session through and cuts it.

use isboot_tests::libiscsi;
use isboot_tests::relay::Relay;
use isboot_tests::target::{Auth, Config, Kind, Target};

const MIB: u64 = 1024 * 1024;

fn configs() -> Vec<(&'static str, Config)> {
    let base = Config::new(8 * MIB);
    vec![
        ("none", base.clone()),
        (
            "chap",
            Config {
                auth: Auth::chap(),
                ..base.clone()
            },
        ),
        (
            "mutual",
            Config {
                auth: Auth::mutual(),
                ..base.clone()
            },
        ),
        (
            "digests",
            Config {
                digests: true,
                ..base.clone()
            },
        ),
        (
            "small",
            Config {
                max_recv_dsl: Some(512),
                immediate_data: Some(false),
                first_burst: Some(4096),
                max_burst: Some(8192),
                nop_interval: Some(1),
                nop_count: Some(3),
                ..base.clone()
            },
        ),
    ]
}

fn check(kind: Kind, name: &str, cfg: Config) {
    let t = Target::start(kind, cfg).unwrap_or_else(|e| panic!("{} {name}: {e}", kind.name()));
    check_running(&t, name);
}

fn check_running(t: &Target, name: &str) {
    let (kind, size) = (t.kind(), t.config().size);
    let url = t.libiscsi_url();
    let inq = libiscsi::inquiry(&url).unwrap_or_else(|e| panic!("{} {name}: {e}", kind.name()));
    assert!(
        inq.contains("DIRECT_ACCESS"),
        "{} {name}: {inq}",
        kind.name()
    );
    let cap = libiscsi::capacity(&url).unwrap_or_else(|e| panic!("{} {name}: {e}", kind.name()));
    assert_eq!(cap, size, "{} {name}", kind.name());
}

#[test]
fn tgtd_serves_every_configuration() {
    for (name, cfg) in configs() {
        check(Kind::Tgtd, name, cfg);
    }
}

#[test]
fn istgt_serves_every_configuration() {
    for (name, cfg) in configs() {
        check(Kind::Istgt, name, cfg);
    }
}

/// The LIO guest in every configuration, the guests booted side by side. libiscsi offers no data
/// digest, so against LIO requiring both digests it shows only that an initiator offering none
/// is turned away.
#[test]
fn lio_serves_every_configuration() {
    let started: Vec<(&str, Target)> = std::thread::scope(|s| {
        let handles: Vec<_> = configs()
            .into_iter()
            .map(|(name, cfg)| (name, s.spawn(move || Target::start(Kind::Lio, cfg))))
            .collect();
        handles
            .into_iter()
            .map(|(name, h)| {
                let t = h
                    .join()
                    .unwrap()
                    .unwrap_or_else(|e| panic!("lio {name}: {e}"));
                (name, t)
            })
            .collect()
    });
    for (name, t) in &started {
        if t.config().digests {
            let url = t.libiscsi_url();
            let none = url.replace("header_digest=crc32c", "header_digest=none");
            assert_ne!(url, none);
            assert!(
                libiscsi::inquiry(&none).is_err(),
                "lio {name}: logged in without digests"
            );
        } else {
            check_running(t, name);
        }
    }
}

/// A guest that cannot apply its configuration says why on its console before it powers off,
/// and the start error carries the console: LIO takes no MaxRecvDataSegmentLength below 512.
#[test]
fn lio_start_failure_shows_the_guest_console() {
    let e = Target::start(
        Kind::Lio,
        Config {
            max_recv_dsl: Some(100),
            ..Config::new(MIB)
        },
    )
    .expect_err("LIO accepted MaxRecvDataSegmentLength 100");
    let msg = e.to_string();
    assert!(
        msg.contains("the guest failed: writing '100' to")
            && msg.contains("param/MaxRecvDataSegmentLength"),
        "{msg}"
    );
    assert!(msg.contains("--- guest console ---"), "{msg}");
}

#[test]
fn tgtd_accepts_initial_r2t_no() {
    check(
        Kind::Tgtd,
        "initial_r2t_no",
        Config {
            initial_r2t: Some(false),
            ..Config::new(MIB)
        },
    );
}

#[test]
fn istgt_refuses_initial_r2t_no_up_front() {
    let e = Target::start(
        Kind::Istgt,
        Config {
            initial_r2t: Some(false),
            ..Config::new(MIB)
        },
    )
    .expect_err("istgt cannot run with InitialR2T No");
    assert_eq!(e.kind(), std::io::ErrorKind::Unsupported);
}

#[test]
fn wrong_chap_secret_is_refused_by_both_targets() {
    chap_is_enforced(&Kind::ALL);
}

#[test]
fn lio_refuses_a_wrong_chap_secret() {
    chap_is_enforced(&[Kind::Lio]);
}

fn chap_is_enforced(kinds: &[Kind]) {
    for &kind in kinds {
        let t = Target::start(
            kind,
            Config {
                auth: Auth::chap(),
                ..Config::new(MIB)
            },
        )
        .unwrap();
        let good = t.libiscsi_url();
        let bad = good.replace("initiator-s3cr", "wrong-secret");
        assert_ne!(good, bad);
        assert!(libiscsi::inquiry(&good).is_ok(), "{}", kind.name());
        assert!(
            libiscsi::inquiry(&bad).is_err(),
            "{} accepted a wrong secret",
            kind.name()
        );
        let none = format!("iscsi://127.0.0.1:{}/{}/{}", t.port(), t.iqn(), t.lun());
        assert!(
            libiscsi::inquiry(&none).is_err(),
            "{} skipped CHAP",
            kind.name()
        );
    }
}

#[test]
fn istgt_enforces_mutual_chap() {
    let t = Target::start(
        Kind::Istgt,
        Config {
            auth: Auth::mutual(),
            ..Config::new(MIB)
        },
    )
    .unwrap();
    let url = t.libiscsi_url();
    let wrong = url.replace("target-s3cret1", "wrong-secret");
    assert!(libiscsi::inquiry(&url).is_ok());
    assert!(libiscsi::inquiry(&wrong).is_err());
}

#[test]
fn two_targets_of_each_kind_run_side_by_side_and_restart() {
    let mut ts: Vec<Target> = [Kind::Tgtd, Kind::Tgtd, Kind::Istgt, Kind::Istgt]
        .into_iter()
        .map(|k| Target::start(k, Config::new(MIB)).unwrap())
        .collect();
    for t in &mut ts {
        t.kill();
        assert!(!t.is_running());
        assert!(libiscsi::inquiry(&t.libiscsi_url()).is_err());
        t.restart().unwrap();
        assert!(t.is_running());
        assert_eq!(libiscsi::capacity(&t.libiscsi_url()).unwrap(), MIB);
    }
}

#[test]
fn relay_passes_a_session_and_resets_on_cut() {
    let t = Target::start(Kind::Tgtd, Config::new(MIB)).unwrap();
    let relay = Relay::start(t.addr()).unwrap();
    let url = t.libiscsi_url().replace(
        &format!(":{}/", t.port()),
        &format!(":{}/", relay.addr().port()),
    );
    assert_eq!(libiscsi::capacity(&url).unwrap(), MIB);
    assert!(relay.connections() >= 1);
    assert!(relay.bytes_down() > 48 && relay.bytes_up() > 48);
    // A connection held open by hand is reset by `cut`: the reader sees ECONNRESET, not EOF.
    let before = relay.connections();
    let mut s = std::net::TcpStream::connect(relay.addr()).unwrap();
    isboot_tests::wait::until(std::time::Duration::from_secs(10), || {
        (relay.connections() > before).then_some(())
    })
    .expect("relay accepted the connection");
    assert!(relay.cut());
    let mut b = [0u8; 1];
    let r = std::io::Read::read(&mut s, &mut b);
    assert_eq!(
        r.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset)
    );
}
