// SPDX-License-Identifier: BSD-2-Clause
//! Connection loss, failed attempts and the give-up deadline.

use super::*;

#[test]
fn connection_loss_is_invisible_to_the_requests() {
    // The third command breaks the connection and is lost with it.
    let r = rig(|s| s.break_after = Some(2));
    let (h, task) = start(&r);
    let mut expected = Vec::new();
    for i in 0..6u64 {
        let data: Vec<u8> = (0..8 * BLOCK).map(|j| (j as u64 * 13 + i) as u8).collect();
        h.submit(write16(i, i * 8, data.clone()))
            .expect("submitted");
        expected.push(data);
    }
    let mut got = 0;
    while got < 6 {
        let c = r.done.recv_timeout(WAIT).expect("every write completes");
        expect_good(&c);
        got += 1;
    }
    for i in 0..6u64 {
        h.submit(read16(100 + i, i * 8, 8)).expect("submitted");
        let c = r.done.recv_timeout(WAIT).expect("read completes");
        expect_good(&c);
        assert_eq!(c.data, expected[i as usize], "block range {i} verified");
    }
    h.shutdown();
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
    let d = r.target.stats();
    assert_eq!(d.connections, 2, "one reconnect");
    assert_eq!(d.login_ids.len(), 2);
    assert!(
        d.login_ids.iter().all(|l| *l == ([0x80, 1, 2, 3, 4, 5], 0)),
        "same ISID, TSIH 0 on reinstatement: {:?}",
        d.login_ids
    );
    let states = r.states.lock().expect("states");
    assert!(states.contains(&State::Recovering));
}

#[test]
fn digests_on_and_a_bad_data_digest_recovers() {
    let r = rig(|s| {
        s.cfg.digests = true;
        s.cfg.fault = Fault::BadDataDigest;
    });
    let mut cfg = config();
    cfg.offer
        .set_digest(Key::HeaderDigest, DigestOffer::PreferCrc32c)
        .set_digest(Key::DataDigest, DigestOffer::PreferCrc32c);
    let (h, task) = start_with(&r, cfg);
    let payload: Vec<u8> = (0..24 * BLOCK).map(|i| (i * 5 + 1) as u8).collect();
    h.submit(write16(1, 300, payload.clone()))
        .expect("submitted");
    expect_good(&r.done.recv_timeout(WAIT).expect("write completes"));
    // The first Data-In arrives with a bad digest: the connection drops, the read is replayed.
    h.submit(read16(2, 300, 24)).expect("submitted");
    let c = r
        .done
        .recv_timeout(WAIT)
        .expect("read completes after recovery");
    expect_good(&c);
    assert_eq!(c.data, payload);
    h.shutdown();
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
    let d = r.target.stats();
    assert_eq!(d.faults_fired, 1, "the corruption happened");
    assert_eq!(d.connections, 2, "the bad digest cost one reconnect");
}

fn target(port: u16) -> TargetConfig {
    TargetConfig {
        portal: Portal {
            addr: SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port),
            nic: 0,
        },
        name: String::from("iqn.2026-01.org.example:disk"),
        chap: None,
    }
}

#[test]
fn unreachable_boot_target_fails_over_to_the_alternate() {
    let r = rig(|s| s.refuse_ports = vec![3260]);
    let mut cfg = config();
    cfg.targets = vec![target(3260), target(3261)];
    let (h, task) = start_with(&r, cfg);
    h.submit(read16(1, 0, 1)).expect("submitted");
    expect_good(&r.done.recv_timeout(WAIT).expect("read completes"));
    h.shutdown();
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
    let ports: Vec<u16> = r.portals().iter().map(|a| a.port()).collect();
    assert_eq!(ports, vec![3260, 3261]);
    assert_eq!(h.status().target, 1);
}

#[test]
fn login_redirect_is_followed() {
    let r = rig(|s| {
        s.cfg.redirect = Some(Redirect {
            on_port: Some(3260),
            to: SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 3270),
            permanent: false,
            times: u32::MAX,
        })
    });
    let (h, task) = start(&r);
    h.submit(read16(1, 0, 1)).expect("submitted");
    expect_good(&r.done.recv_timeout(WAIT).expect("read completes"));
    h.shutdown();
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
    let d = r.target.stats();
    let ports: Vec<u16> = r.portals().iter().map(|a| a.port()).collect();
    assert_eq!(ports, vec![3260, 3270]);
    assert_eq!(d.login_ids.len(), 1, "logged in at the redirected portal");
}

#[test]
fn bounded_attempts_give_up_and_complete_every_request() {
    let r = rig(|s| s.refuse_ports = vec![3260]);
    let mut cfg = config();
    cfg.backoff.max_attempts = Some(3);
    let (h, task) = start_with(&r, cfg);
    h.submit(read16(1, 0, 1)).expect("submitted");
    assert_eq!(r.rt.block_on(task), End::GaveUp);
    let c = r.done.recv_timeout(WAIT).expect("the request completes");
    assert_eq!(c.result, Err(crate::scsi::TransportError::SessionClosed));
    assert_eq!(r.portals().len(), 3);
    assert_eq!(h.status().state, State::Closed);
    // Nothing is accepted once the session has given up.
    assert!(h.submit(read16(2, 0, 1)).is_err());
}

#[test]
fn target_that_requires_a_security_stage_gets_one() {
    let r = rig(|s| s.cfg.require_security = true);
    let (h, task) = start(&r);
    h.submit(read16(1, 0, 1)).expect("submitted");
    expect_good(&r.done.recv_timeout(WAIT).expect("read completes"));
    h.shutdown();
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
    let d = r.target.stats();
    assert_eq!(
        d.connections, 2,
        "one refused operational-first login, then one with security"
    );
    assert_eq!(d.login_ids.len(), 1);
}

#[test]
fn give_up_after_stops_recovery_from_a_dead_target() {
    let r = rig(|_| {});
    let (h, task) = start(&r);
    h.submit(read16(1, 0, 1)).expect("submitted");
    expect_good(&r.done.recv_timeout(WAIT).expect("read completes"));
    // The target dies: the next command breaks the connection and no reconnect succeeds.
    r.target.break_after(0);
    r.refuse(3260);
    h.submit(read16(2, 0, 1)).expect("submitted");
    // Retrying forever is the default: nothing completes until a bound is set.
    assert!(r.done.recv_timeout(Duration::from_millis(300)).is_err());
    let start = std::time::Instant::now();
    while h.status().state != State::Recovering {
        assert!(start.elapsed() < WAIT, "the session notices the loss");
        std::thread::sleep(Duration::from_millis(5));
    }
    h.give_up_after(Duration::from_millis(100));
    let c = r.done.recv_timeout(WAIT).expect("the held read completes");
    assert_eq!(c.tag, 2);
    assert_eq!(c.result, Err(crate::scsi::TransportError::SessionClosed));
    assert_eq!(r.rt.block_on(task), End::GaveUp);
    assert_eq!(h.status().state, State::Closed);
    assert!(h.submit(read16(3, 0, 1)).is_err());
    assert_eq!(r.logged("giving up").len(), 1, "{:?}", r.lines);
}

#[test]
fn give_up_after_keeps_a_live_session_serving_until_it_breaks() {
    let r = rig(|_| {});
    let (h, task) = start(&r);
    h.submit(read16(1, 0, 1)).expect("submitted");
    expect_good(&r.done.recv_timeout(WAIT).expect("read completes"));
    // The deadline passes at once, but the connection is up: the final sync still gets through.
    h.give_up_after(Duration::ZERO);
    for tag in 2..6u64 {
        h.submit(write16(tag, tag, vec![tag as u8; BLOCK]))
            .expect("submitted");
        expect_good(&r.done.recv_timeout(WAIT).expect("write completes"));
    }
    // A loss after the deadline ends the session instead of reconnecting.
    r.target.break_after(0);
    h.submit(read16(9, 0, 1)).expect("submitted");
    let c = r.done.recv_timeout(WAIT).expect("the read completes");
    assert_eq!(c.result, Err(crate::scsi::TransportError::SessionClosed));
    assert_eq!(r.rt.block_on(task), End::GaveUp);
    assert_eq!(r.target.stats().connections, 1, "no reconnect");
    assert!(!r
        .states
        .lock()
        .expect("states")
        .contains(&State::Recovering));
}

#[test]
fn shutdown_while_recovering_from_a_dead_target_ends_at_once() {
    let r = rig(|_| {});
    let (h, task) = start(&r);
    h.submit(read16(1, 0, 1)).expect("submitted");
    expect_good(&r.done.recv_timeout(WAIT).expect("read completes"));
    r.target.break_after(0);
    r.refuse(3260);
    h.submit(read16(2, 0, 1)).expect("submitted");
    assert!(r.done.recv_timeout(Duration::from_millis(300)).is_err());
    h.shutdown();
    let c = r.done.recv_timeout(WAIT).expect("the held read completes");
    assert_eq!(c.result, Err(crate::scsi::TransportError::SessionClosed));
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
}

#[test]
fn a_target_dropping_every_new_connection_at_once_is_backed_off_despite_time2wait_0() {
    let r = rig(|s| s.cfg.drop_after_login = 3);
    let mut cfg = config();
    cfg.backoff.step = Duration::from_millis(200);
    cfg.backoff.max = Duration::from_secs(1);
    let (h, task) = start_with(&r, cfg);
    let t0 = std::time::Instant::now();
    h.submit(read16(1, 0, 1)).expect("submitted");
    expect_good(
        &r.done
            .recv_timeout(WAIT)
            .expect("read completes on the fourth connection"),
    );
    // The first drop reconnects at once (Time2Wait 0); the next ones, each soon after the
    // login before, wait the backoff: at least 200 ms, then 400 ms.
    assert!(
        t0.elapsed() >= Duration::from_millis(600),
        "reconnected without backing off: {:?}",
        t0.elapsed()
    );
    h.shutdown();
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
    assert_eq!(r.target.stats().connections, 4);
    assert_eq!(h.status().disconnects, 3);
}

/// Lines logged at `Level::Error` (shown at the default `net.isboot.debug=0`).
fn errors(r: &Rig) -> Vec<String> {
    r.logged("[Error] ")
}

/// A target that logs in fine and then breaks every READ with a bad header digest: at the
/// default log level the cause shows (not just a command timeout), once the session sees that
/// the connection dies after each login it says so, and the lines are bounded (the first time,
/// then after 2, 4, ... in a row). The platform gets the cause as the last error.
#[test]
fn a_connection_that_dies_after_every_login_is_reported_with_its_cause() {
    let r = rig(|s| {
        s.cfg.digests = true;
        s.cfg.fault = Fault::BadHeaderDigest;
        s.cfg.times = 5;
    });
    let (h, task) = start(&r);
    h.submit(read16(1, 0, 8)).expect("submitted");
    expect_good(
        &r.done
            .recv_timeout(WAIT)
            .expect("the read completes once the target behaves"),
    );
    assert_eq!(r.target.stats().faults_fired, 5);
    let errors = errors(&r);
    assert_eq!(errors.len(), 3, "losses 1, 2 and 4 of 5: {errors:#?}");
    for e in &errors {
        assert!(e.contains("header digest"), "{e}");
    }
    assert!(
        !errors[0].contains("every login succeeds"),
        "one loss is not yet a pattern: {}",
        errors[0]
    );
    assert!(
        errors[1].contains(
            "every login succeeds but the connection dies on its first commands (2 in a row"
        ),
        "{}",
        errors[1]
    );
    assert_eq!(r.logged("; reconnecting").len(), 5, "every loss is logged");
    let last = h.status().last_error.expect("a last error");
    assert_eq!(last.failure, Failure::DiesAfterLogin);
    assert_eq!(last.repeats, 5);
    assert!(last.text.as_str().contains("header digest"), "{last:?}");
    assert_eq!(
        *r.reported.lock().expect("reported"),
        5,
        "Events::error per loss"
    );
    h.shutdown();
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
}

/// Failed logins are shown at the default level too, bounded the same way; the final one
/// (giving up) always.
#[test]
fn failed_logins_show_at_the_default_level_without_flooding() {
    let r = rig(|s| s.refuse_ports = vec![3260]);
    let mut cfg = config();
    cfg.backoff.max_attempts = Some(9);
    cfg.backoff.step = Duration::from_millis(1);
    cfg.backoff.max = Duration::from_millis(2);
    let (h, task) = start_with(&r, cfg);
    assert_eq!(r.rt.block_on(task), End::GaveUp);
    let errors = errors(&r);
    let counts: Vec<bool> = errors.iter().map(|e| e.contains("in a row")).collect();
    assert_eq!(
        counts,
        [false, true, true, true, true],
        "attempts 1, 2, 4, 8 and the last: {errors:#?}"
    );
    assert!(errors[4].contains("connection refused; giving up (9 failures in a row)"));
    assert_eq!(r.logged("failed: connection refused").len(), 9);
    let last = h.status().last_error.expect("a last error");
    assert_eq!(last.failure, Failure::Login);
    assert_eq!(
        last.text.as_str(),
        "login to iqn.2026-01.org.example:disk failed: connection refused"
    );
}

/// A target asking for a longer Time2Wait than the session's cap gets the cap.
#[test]
fn the_targets_time2wait_is_capped_by_the_configuration() {
    let r = rig(|s| {
        s.cfg.drop_after_login = 1;
        s.cfg.drop_time2wait = 600;
    });
    let mut cfg = config();
    cfg.max_time2wait = Duration::from_secs(1);
    let (h, task) = start_with(&r, cfg);
    let t0 = std::time::Instant::now();
    h.submit(read16(1, 0, 1)).expect("submitted");
    expect_good(&r.done.recv_timeout(WAIT).expect("read completes"));
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    let l = r.logged("the Time2Wait cap");
    assert_eq!(l.len(), 1, "{:?}", r.lines);
    assert!(
        l[0].contains("; reconnecting; waiting 1 s of the 600 s the target asked for"),
        "{}",
        l[0]
    );
    assert_eq!(r.target.stats().connections, 2);
    h.shutdown();
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
}
