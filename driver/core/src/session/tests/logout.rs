// SPDX-License-Identifier: BSD-2-Clause
//! The orderly shutdown: every way a target can answer (or not answer) the Logout.

use super::*;

/// Starts a session, completes one read, shuts it down: the handle and how `run` ended.
fn read_then_shutdown(r: &Rig, cfg: SessionConfig) -> (Handle<StdLock>, End) {
    let (h, task) = start_with(r, cfg);
    h.submit(read16(1, 0, 1)).expect("submitted");
    expect_good(&r.done.recv_timeout(WAIT).expect("read completes"));
    h.shutdown();
    let end = r.rt.block_on(task);
    (h, end)
}

/// The end of an orderly shutdown as the platform sees it: `LoggedOut`, no `Recovering` state
/// after the last `Up`, no disconnect counted for the logout, and no "reconnecting" line after
/// the shutdown began.
fn assert_clean_end(r: &Rig, h: &Handle<StdLock>, end: End, disconnects_before: u64) {
    assert_eq!(end, End::LoggedOut);
    let states = r.states.lock().expect("states").clone();
    let last_up = states
        .iter()
        .rposition(|s| *s == State::Up)
        .expect("was up");
    assert_eq!(
        &states[last_up..],
        &[State::Up, State::Closed],
        "{states:?}"
    );
    assert_eq!(h.status().disconnects, disconnects_before);
    let lines = r.lines.lock().expect("log lock").clone();
    let last_login = lines
        .iter()
        .rposition(|l| l.contains("logged in") || l.contains("reconnected"))
        .expect("a login line");
    assert!(
        lines[last_login..]
            .iter()
            .all(|l| !l.contains("reconnecting")),
        "{lines:#?}"
    );
}

#[test]
fn logout_response_followed_by_fin_in_the_same_read_is_a_clean_logout() {
    let r = rig(|s| s.cfg.on_logout = OnLogout::AnswerThenFin);
    let (h, end) = read_then_shutdown(&r, config());
    assert_clean_end(&r, &h, end, 0);
    assert_eq!(r.logged("logged out").len(), 1);
    assert_eq!(r.target.stats().connections, 1);
}

#[test]
fn logout_with_fin_after_a_reconnect_is_a_clean_logout() {
    let r = rig(|s| {
        s.break_after = Some(0);
        s.cfg.on_logout = OnLogout::AnswerThenFin;
    });
    let (h, task) = start(&r);
    for tag in 0..4u64 {
        h.submit(read16(tag, tag, 1)).expect("submitted");
    }
    for _ in 0..4 {
        expect_good(&r.done.recv_timeout(WAIT).expect("read completes"));
    }
    assert_eq!(h.status().disconnects, 1, "the break cost one reconnect");
    h.shutdown();
    let end = r.rt.block_on(task);
    assert_clean_end(&r, &h, end, 1);
    assert_eq!(r.logged("logged out").len(), 1);
    assert_eq!(r.target.stats().connections, 2);
}

#[test]
fn refused_logout_still_ends_the_session_without_reconnecting() {
    let r = rig(|s| s.cfg.on_logout = OnLogout::RefuseThenFin(LogoutResponseCode::CleanupFailed));
    let (h, end) = read_then_shutdown(&r, config());
    assert_clean_end(&r, &h, end, 0);
    assert_eq!(r.logged("CleanupFailed").len(), 1, "{:?}", r.lines);
    assert_eq!(r.target.stats().connections, 1);
}

#[test]
fn target_closing_instead_of_answering_the_logout_ends_the_session() {
    let r = rig(|s| s.cfg.on_logout = OnLogout::Fin);
    let (h, end) = read_then_shutdown(&r, config());
    assert_clean_end(&r, &h, end, 0);
    assert_eq!(r.logged("during logout").len(), 1, "{:?}", r.lines);
    assert_eq!(r.target.stats().connections, 1);
}

#[test]
fn unanswered_logout_ends_the_session_at_the_logout_timeout() {
    let r = rig(|s| s.cfg.on_logout = OnLogout::Ignore);
    let mut cfg = config();
    cfg.timeouts.logout_timeout = Duration::from_millis(200);
    let (h, end) = read_then_shutdown(&r, cfg);
    assert_clean_end(&r, &h, end, 0);
    assert_eq!(r.logged("no Logout Response").len(), 1, "{:?}", r.lines);
    assert_eq!(r.target.stats().connections, 1);
}
