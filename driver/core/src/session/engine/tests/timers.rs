// SPDX-License-Identifier: BSD-2-Clause
//! Deadlines: the keepalive, command timeouts and the ABORT TASK they start.

use super::*;

#[test]
fn target_ping_is_answered_with_its_ttt_lun_and_data() {
    let mut s = session_in_ffp(params());
    let ping = nop_in_ping(0x1234, lun1()).with_sns(sns(100, 10, 41));
    send!(s, ping, b"ping!");
    let answer = NopOut {
        immediate: true,
        lun: lun1(),
        itt: RESERVED_TAG,
        ttt: 0x1234,
        cmd_sn: Sn(10),
        exp_stat_sn: Sn(100),
    };
    recv!(s, [(answer, b"ping!".to_vec())]);
}

#[test]
fn idle_connection_pings_and_drops_without_an_answer() {
    let mut s = session_in_ffp(params());
    assert_eq!(s.e.poll_at(), Some(T0 + Duration::from_secs(5)));
    assert_eq!(s.advance(Duration::from_secs(5)), Ok(()));
    let ping = NopOut {
        immediate: true,
        lun: Lun::default(),
        itt: 0x8000_0000,
        ttt: RESERVED_TAG,
        cmd_sn: Sn(10),
        exp_stat_sn: Sn(100),
    };
    recv!(s, [ping]);
    // The answer clears it; the next ping comes after another idle interval.
    let answer = NopIn {
        itt: 0x8000_0000,
        ..NopIn::default()
    }
    .with_sns(sns(100, 10, 41));
    send!(s, answer);
    assert_eq!(s.e.poll_at(), Some(s.now + Duration::from_secs(5)));
    assert_eq!(s.advance(Duration::from_secs(5)), Ok(()));
    assert_eq!(s.transmit().len(), 1);
    assert_eq!(s.advance(Duration::from_secs(14)), Ok(()));
    assert_eq!(
        s.advance(Duration::from_secs(1)),
        Err(Disconnect::NopTimeout)
    );
}

#[test]
fn target_ping_flood_is_bounded() {
    let mut s = session_in_ffp(params());
    for ttt in 1..=10 {
        let ping = NopIn {
            ttt,
            ..NopIn::default()
        }
        .with_sns(sns(100, 10, 41));
        send!(s, ping);
    }
    assert_eq!(s.transmit().len(), 4, "at most four answers queued");
}

#[test]
fn command_timeout_aborts_the_task() {
    let mut s = session_in_ffp(params());
    let mut req = read(9, 512);
    req.timeout = Some(Duration::from_secs(30));
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    // Keep the connection busy so that only the command timer matters.
    for _ in 0..5 {
        assert_eq!(s.advance(Duration::from_secs(5)), Ok(()));
        let _ = s.transmit();
        let answer = NopIn {
            itt: RESERVED_TAG,
            ..NopIn::default()
        }
        .with_sns(sns(100, 11, 42));
        send!(s, answer);
    }
    assert!(s.completions().is_empty());
    assert_eq!(s.e.poll_at(), Some(T0 + Duration::from_secs(30)));
    assert_eq!(s.advance(Duration::from_secs(5)), Ok(()));
    let out = s.transmit();
    let abort = out
        .iter()
        .find_map(|(p, _)| match p {
            Pdu::TaskMgmtRequest(t) => Some(t.clone()),
            _ => None,
        })
        .expect("ABORT TASK sent");
    assert_eq!(abort.function, TmfFunction::AbortTask);
    assert_eq!(abort.referenced_task_tag, ITT0);
    assert_eq!(abort.ref_cmd_sn, Sn(10));
    assert!(abort.immediate);
    let resp = tmf_response(abort.itt, TmfResponse::Complete).with_sns(sns(100, 11, 42));
    send!(s, resp);
    let c = s.completions();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].result, Err(TransportError::Timeout));
    assert_eq!(s.e.outstanding(), 0);
}

#[test]
fn command_timeout_while_closing_aborts_at_the_target_and_keeps_the_buffer_for_data_under_way() {
    let mut s = session_in_ffp(params());
    let mut req = read(9, 4096);
    req.timeout = Some(Duration::from_secs(2));
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    s.e.shutdown(s.now);
    // A Data-In for it has begun arriving when its timeout expires.
    let wire = emit_with(&data_in(ITT0, 0, 0), &[7u8; 1024], Digests::default());
    let (raw, _) = RawPdu::split(&wire, Digests::default(), u32::MAX).expect("splits");
    let sink = s.e.rx_header(s.now, raw.header).expect("accepted");
    let RxSink::Task { slot, start, end } = sink else {
        panic!("Data-In goes to the task, got {sink:?}");
    };
    assert_eq!(s.advance(Duration::from_secs(2)), Ok(()));
    // The target still owns the command: ABORT TASK, not a local completion.
    assert!(s.completions().is_empty());
    let out = s.transmit();
    let abort = out
        .iter()
        .find_map(|(p, _)| match p {
            Pdu::TaskMgmtRequest(t) => Some(t.clone()),
            _ => None,
        })
        .expect("ABORT TASK sent while closing");
    assert_eq!(abort.referenced_task_tag, ITT0);
    assert!(out.iter().all(|(p, _)| !matches!(p, Pdu::LogoutRequest(_))));
    // The data segment under way still has somewhere to go.
    let buf =
        s.e.rx_task_chunk(slot, start..end, start)
            .expect("the task keeps its buffer");
    assert_eq!(buf.len(), 1024);
    buf.copy_from_slice(&[7u8; 1024]);
    assert_eq!(s.e.rx_finish(s.now, &[]), Ok(()));
    let resp = tmf_response(abort.itt, TmfResponse::Complete).with_sns(sns(100, 11, 42));
    send!(s, resp);
    let c = s.completions();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].result, Err(TransportError::Timeout));
    // Nothing outstanding: the Logout follows.
    let out = s.transmit();
    assert!(
        matches!(out.first(), Some((Pdu::LogoutRequest(_), _))),
        "{out:?}"
    );
}

#[test]
fn abort_not_yet_sent_is_dropped_when_its_task_completes_and_never_hits_the_slots_next_task() {
    let mut s = session_in_ffp(params());
    let a = read(1, 512);
    s.submit(a.clone());
    recv!(s, [cmd(ITT0, 10, &a)]);
    // The platform aborts it; before ABORT TASK goes out, the target answers the command.
    assert!(s.e.abort(1));
    // BUSY: a status without data, so the read needs no Data-In.
    send!(s, response(ITT0, 100, 0x08));
    let c = s.completions();
    assert_eq!((c.len(), c[0].tag), (1, 1));
    // A new request takes the freed slot (with a new generation).
    let b = read(2, 512);
    s.submit(b.clone());
    let out = s.transmit();
    assert!(
        out.iter()
            .all(|(p, _)| !matches!(p, Pdu::TaskMgmtRequest(_))),
        "an ABORT TASK for a finished task (or its slot's next one) went out: {out:?}"
    );
    let Some((Pdu::ScsiCommand(sent), _)) = out.first() else {
        panic!("expected the new command, got {out:?}");
    };
    assert_eq!(sent.itt & 0xffff, ITT0 & 0xffff, "same slot, reused");
    // The new command is answered normally, no abort deadline is left to drop the connection.
    send!(s, response(sent.itt, 101, 0x08));
    assert_eq!(s.completions()[0].tag, 2);
    assert_eq!(s.advance(Duration::from_secs(4)), Ok(()));
    let _ = s.transmit();
    send!(
        s,
        NopIn {
            itt: RESERVED_TAG,
            ..NopIn::default()
        }
        .with_sns(sns(102, 12, 43))
    );
    assert_eq!(s.advance(Duration::from_secs(20)), Ok(()));
}

#[test]
fn unanswered_abort_drops_the_connection() {
    let mut s = session_in_ffp(params());
    s.submit(read(1, 512));
    let _ = s.transmit();
    assert!(s.e.abort(1));
    let out = s.transmit();
    assert!(matches!(out[0].0, Pdu::TaskMgmtRequest(_)));
    let mut r = Ok(());
    for _ in 0..4 {
        r = s.advance(Duration::from_secs(4));
        let _ = s.transmit();
        if r.is_err() {
            break;
        }
    }
    assert!(matches!(
        r,
        Err(Disconnect::TmfTimeout | Disconnect::NopTimeout)
    ));
}

#[test]
fn abort_answered_after_the_command_completed_is_harmless() {
    let mut s = session_in_ffp(params());
    let req = read(3, 512);
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    assert!(s.e.abort(3));
    let out = s.transmit();
    let Pdu::TaskMgmtRequest(abort) = &out[0].0 else {
        panic!("expected ABORT TASK, got {out:?}");
    };
    // The target had already finished the command when the abort arrived.
    let last = data_in(ITT0, 0, 0).with_status(0, 100, Residual::None);
    send!(s, last, &pattern(512, 9));
    let resp = tmf_response(abort.itt, TmfResponse::TaskDoesNotExist).with_sns(sns(101, 11, 42));
    send!(s, resp);
    let c = s.completions();
    assert_eq!(c.len(), 1);
    assert!(c[0].result.is_ok());
    // A TMF response nobody asked for is still a violation.
    assert!(matches!(
        s.deliver(
            &TaskMgmtResponse {
                itt: 0x8000_0042,
                ..resp
            },
            &[]
        ),
        Err(Disconnect::Violation(Violation::UnknownResponse { .. }))
    ));
}

#[test]
fn unsent_requests_abort_and_time_out_locally() {
    let mut e = Engine::try_new(4, Timeouts::default()).unwrap();
    let mut r = read(1, 512);
    r.timeout = Some(Duration::from_secs(2));
    assert!(e.submit(r, T0).is_ok());
    assert!(e.submit(read(2, 512), T0).is_ok());
    assert!(e.abort(2));
    assert!(!e.abort(99));
    assert_eq!(e.poll_at(), Some(T0 + Duration::from_secs(2)));
    assert_eq!(e.on_timer(T0 + Duration::from_secs(2)), Ok(()));
    let mut got = Vec::new();
    while let Some(Event::Complete(c)) = e.poll_event() {
        got.push((c.tag, c.result));
    }
    assert_eq!(
        got,
        vec![
            (2, Err(TransportError::Aborted)),
            (1, Err(TransportError::Timeout))
        ]
    );
    assert_eq!(e.outstanding(), 0);
}

/// Aborts whose commands completed before the target answered them keep their deadline until
/// the answer (or the timeout), while their slots serve new commands. More of them than there
/// are slots once overflowed the deadline list (a debug assertion, and in release an abort
/// without a deadline; found by the engine fuzz target): now the connection goes at once, and
/// up to then every abort is still answerable.
#[test]
fn more_unanswered_aborts_than_slots_drop_the_connection() {
    // Crossed aborts: each command answered BUSY after its abort went out, the abort not.
    fn crossed(s: &mut Script, tag: u64, stat: u32) -> u32 {
        s.submit(read(tag, 512));
        let out = s.transmit();
        let Some((Pdu::ScsiCommand(c), _)) = out.last() else {
            panic!("the command went out: {out:?}")
        };
        let itt = c.itt;
        assert!(s.e.abort(tag));
        let out = s.transmit();
        let Some((Pdu::TaskMgmtRequest(t), _)) = out.last() else {
            panic!("the abort went out: {out:?}")
        };
        let resp =
            scsi_response(itt, stat, 8).with_sns(sns(stat, 11 + tag as u32, 42 + tag as u32));
        send!(s, resp);
        assert_eq!(s.completions().len(), 1);
        t.itt
    }
    let mut s = session_in_ffp(params());
    let slots = s.e.capacity();
    let mut stat = 100;
    let mut aborts = Vec::new();
    for tag in 0..slots as u64 {
        aborts.push(crossed(&mut s, tag, stat));
        stat += 1;
    }
    // As many as there are slots: nothing is due before the TMF timeout.
    assert_eq!(s.advance(Duration::from_millis(1)), Ok(()));
    // Every one is still answerable; answering the first makes room for one more.
    let resp = tmf_response(aborts[0], TmfResponse::TaskDoesNotExist).with_sns(sns(
        stat,
        11 + slots as u32,
        42 + slots as u32,
    ));
    assert_eq!(s.deliver(&resp, &[]), Ok(()));
    aborts.push(crossed(&mut s, slots as u64, stat));
    stat += 1;
    assert_eq!(s.advance(Duration::from_millis(1)), Ok(()));
    // One more than the list holds: the connection goes now, not after the TMF timeout.
    crossed(&mut s, slots as u64 + 1, stat);
    assert_eq!(s.advance(Duration::ZERO), Err(Disconnect::TmfTimeout));
}
