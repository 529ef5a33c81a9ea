// SPDX-License-Identifier: BSD-2-Clause
//! Connections coming and going: replay after a loss, target-requested logouts and drops, the orderly shutdown, LUN reset.

use super::*;

#[test]
fn connection_loss_replays_in_flight_commands_in_order() {
    let mut s = session_in_ffp(params());
    let a = read(1, 512);
    let b = write(2, 512);
    s.submit(a.clone());
    s.submit(b.clone());
    recv!(s, [cmd(ITT0, 10, &a), cmd(ITT1, 11, &b)]);
    send!(s, data_in(ITT0, 0, 0), &pattern(100, 1));
    s.e.disconnected();
    recv!(s, []);
    // Reinstatement: new StatSN and window; commands go again with new ITTs and CmdSNs.
    s.e.connected(
        params(),
        TargetSns {
            stat_sn: Sn(499),
            exp_cmd_sn: Sn(70),
            max_cmd_sn: Sn(80),
        },
        s.now,
    )
    .unwrap();
    let ca = ScsiCommand {
        exp_stat_sn: Sn(500),
        ..cmd(0x0002_0000, 70, &a)
    };
    let cb = ScsiCommand {
        exp_stat_sn: Sn(500),
        ..cmd(0x0002_0001, 71, &b)
    };
    recv!(s, [ca, cb]);
    // A PDU for the old ITT finds nothing.
    assert!(s.deliver(&data_in(ITT0, 0, 0), &[1]).is_err());
    let full = pattern(512, 3);
    let last = data_in(0x0002_0000, 0, 0).with_status(0, 500, Residual::None);
    send!(s, last, &full);
    send!(s, response(0x0002_0001, 501, 0));
    let c = s.completions();
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].data, full, "replayed read got all of its data again");
    assert!(c
        .iter()
        .all(|c| c.result.as_ref().is_ok_and(|r| r.is_good())));
    assert_eq!(s.e.stats().replays, 2);
}

#[test]
fn async_logout_request_logs_out_then_reconnects() {
    let mut s = session_in_ffp(params());
    let msg = async_message(AsyncEvent::LogoutRequest)
        .logout_within(5)
        .with_sns(sns(100, 10, 41));
    send!(s, msg);
    let logout = LogoutRequest {
        immediate: true,
        reason: LogoutReason::CloseSession,
        itt: 0x8000_0000,
        cid: 0,
        cmd_sn: Sn(10),
        exp_stat_sn: Sn(101),
    };
    recv!(s, [logout]);
    // No new commands while logging out.
    s.submit(read(1, 512));
    recv!(s, []);
    let resp = logout_response(0x8000_0000, LogoutResponseCode::Success)
        .time2wait(3)
        .with_sns(sns(101, 10, 41));
    assert_eq!(
        s.deliver(&resp, &[]),
        Err(Disconnect::LoggedOut {
            wait: Duration::from_secs(3)
        })
    );
    assert_eq!(
        s.e.outstanding(),
        1,
        "the request waits for the next connection"
    );
}

#[test]
fn async_drop_connection_waits_time2wait() {
    let mut s = session_in_ffp(params());
    let msg = async_message(AsyncEvent::DropConnection)
        .time2wait(4)
        .with_sns(sns(100, 10, 41));
    assert_eq!(
        s.deliver(&msg, &[]),
        Err(Disconnect::TargetRequest {
            event: AsyncEvent::DropConnection,
            wait: Duration::from_secs(4)
        })
    );
}

#[test]
fn async_drop_connection_time2wait_beyond_an_hour_is_capped_and_says_so() {
    let mut s = session_in_ffp(params());
    let msg = async_message(AsyncEvent::DropConnection)
        .time2wait(65535)
        .with_sns(sns(100, 10, 41));
    let d = s.deliver(&msg, &[]);
    assert_eq!(
        d,
        Err(Disconnect::TargetRequest {
            event: AsyncEvent::DropConnection,
            wait: Duration::from_secs(3600)
        })
    );
    let line = alloc::format!("{}", d.unwrap_err());
    assert!(line.contains("wait 3600s, capped at 3600s"), "{line}");
}

#[test]
fn logout_response_time2wait_beyond_an_hour_is_capped_and_says_so() {
    let mut s = session_in_ffp(params());
    let msg = async_message(AsyncEvent::LogoutRequest)
        .logout_within(5)
        .with_sns(sns(100, 10, 41));
    send!(s, msg);
    let out = s.transmit();
    let Some(Pdu::LogoutRequest(l)) = out.first().map(|o| &o.0) else {
        panic!("expected Logout, got {out:?}");
    };
    let resp = logout_response(l.itt, LogoutResponseCode::Success)
        .time2wait(40_000)
        .with_sns(sns(101, 10, 41));
    let d = s.deliver(&resp, &[]);
    assert_eq!(
        d,
        Err(Disconnect::LoggedOut {
            wait: Duration::from_secs(3600)
        })
    );
    let line = alloc::format!("{}", d.unwrap_err());
    assert!(line.contains("capped at 3600s"), "{line}");
}

#[test]
fn target_requested_logout_waits_our_logout_timeout_not_the_targets_parameter3() {
    let mut s = session_in_ffp(params());
    let msg = async_message(AsyncEvent::LogoutRequest)
        .logout_within(65535)
        .with_sns(sns(100, 10, 41));
    send!(s, msg);
    let out = s.transmit();
    assert!(
        matches!(out.first(), Some((Pdu::LogoutRequest(_), _))),
        "{out:?}"
    );
    // No answer: the connection goes after our logout timeout (10 s), not 18 hours.
    assert_eq!(s.advance(Duration::from_secs(9)), Ok(()));
    assert_eq!(
        s.advance(Duration::from_secs(1)),
        Err(Disconnect::LogoutTimeout)
    );
}

#[test]
fn shutdown_waits_for_outstanding_commands_then_logs_out() {
    let mut s = session_in_ffp(params());
    let a = read(1, 512);
    s.submit(a.clone());
    recv!(s, [cmd(ITT0, 10, &a)]);
    s.e.shutdown(s.now);
    assert!(matches!(
        s.e.submit(read(2, 1), s.now),
        Err(SubmitError::Closed(_))
    ));
    recv!(s, []);
    let last = data_in(ITT0, 0, 0).with_status(0, 100, Residual::None);
    send!(s, last, &pattern(512, 0));
    assert_eq!(s.completions().len(), 1);
    let out = s.transmit();
    let Pdu::LogoutRequest(l) = &out[0].0 else {
        panic!("expected Logout, got {out:?}");
    };
    assert_eq!(l.reason, LogoutReason::CloseSession);
    let resp = logout_response(l.itt, LogoutResponseCode::Success).with_sns(sns(101, 11, 42));
    send!(s, resp);
    assert_eq!(s.e.phase(), Phase::Closed);
}

#[test]
fn shutdown_logs_out_after_the_logout_timeout_when_a_command_hangs() {
    let mut s = session_in_ffp(params());
    let a = read(1, 512);
    s.submit(a.clone());
    recv!(s, [cmd(ITT0, 10, &a)]);
    s.e.shutdown(s.now);
    let alive = NopIn {
        itt: RESERVED_TAG,
        ..NopIn::default()
    }
    .with_sns(sns(100, 11, 42));
    for _ in 0..3 {
        assert_eq!(s.advance(Duration::from_secs(3)), Ok(()));
        assert!(s
            .transmit()
            .iter()
            .all(|(p, _)| !matches!(p, Pdu::LogoutRequest(_))));
        send!(s, alive.clone());
    }
    assert_eq!(s.advance(Duration::from_secs(1)), Ok(()));
    let out = s.transmit();
    let Some(Pdu::LogoutRequest(l)) = out
        .iter()
        .map(|(p, _)| p)
        .find(|p| matches!(p, Pdu::LogoutRequest(_)))
        .cloned()
    else {
        panic!("expected Logout after the timeout, got {out:?}");
    };
    // Once sent, the closing deadline no longer counts: only the logout's own does.
    assert!(s.e.poll_at().is_some_and(|d| d > s.now));
    let resp = logout_response(l.itt, LogoutResponseCode::Success).with_sns(sns(101, 11, 42));
    send!(s, resp);
    assert_eq!(s.e.phase(), Phase::Closed);
    let c = s.completions();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].result, Err(TransportError::SessionClosed));
}

#[test]
fn lun_reset_completes_the_tasks_on_that_lun() {
    let mut s = session_in_ffp(params());
    s.submit(read(1, 512));
    s.submit(read(2, 512));
    let _ = s.transmit();
    s.e.reset_lun(lun1(), 77).unwrap();
    let out = s.transmit();
    let Pdu::TaskMgmtRequest(t) = &out[0].0 else {
        panic!("expected TMF, got {out:?}");
    };
    assert_eq!(t.function, TmfFunction::LogicalUnitReset);
    assert_eq!(t.lun, lun1());
    let resp = tmf_response(t.itt, TmfResponse::Complete).with_sns(sns(100, 12, 43));
    send!(s, resp);
    let mut aborted = 0;
    let mut reset = None;
    while let Some(ev) = s.e.poll_event() {
        match ev {
            Event::Complete(c) => {
                assert_eq!(c.result, Err(TransportError::Aborted));
                aborted += 1;
            }
            Event::ResetDone { tag, result } => reset = Some((tag, result)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(aborted, 2);
    assert_eq!(reset, Some((77, Ok::<(), TmfError>(()))));
}
