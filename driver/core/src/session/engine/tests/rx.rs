// SPDX-License-Identifier: BSD-2-Clause
//! Receiving: Data-In into the request buffer, responses, sense, and every violation a target PDU can commit.

use super::*;

#[test]
fn read_with_status_in_the_last_data_in() {
    let mut s = session_in_ffp(params());
    let req = read(7, 8192);
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    let a = pattern(4096, 1);
    let b = pattern(4096, 2);
    send!(s, data_in(ITT0, 0, 0), &a);
    let last = data_in(ITT0, 1, 4096).with_status(0, 100, Residual::None);
    send!(s, last, &b);
    let c = s.completions();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].tag, 7);
    assert_eq!(&c[0].data[..4096], &a[..]);
    assert_eq!(&c[0].data[4096..], &b[..]);
    let r = c[0].result.clone().unwrap();
    assert!(r.is_good());
    assert_eq!((r.transferred, r.residual), (8192, 0));
    assert_eq!(s.e.exp_stat_sn(), Sn(101));
    assert_eq!(s.e.window(), (Sn(11), Sn(42), Sn(11)));
}

#[test]
fn check_condition_with_sense_in_the_scsi_response() {
    let mut s = session_in_ffp(params());
    let req = read(1, 512);
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    let mut seg = vec![
        0, 18, 0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0, 0, 0, 0, 0,
    ];
    seg.truncate(20);
    send!(s, response(ITT0, 100, 2), &seg);
    let c = s.completions();
    let r = c[0].result.clone().unwrap();
    assert_eq!(r.status, 2);
    assert_eq!(r.sense.as_slice(), &seg[2..]);
    assert_eq!(r.sense.key_asc_ascq(), Some((5, 0x24, 0)));
    assert_eq!(r.transferred, 0);
    assert_eq!(r.residual, 512);
}

#[test]
fn underflow_reports_the_residual() {
    let mut s = session_in_ffp(params());
    let req = read(1, 1024);
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    send!(s, data_in(ITT0, 0, 0), &pattern(512, 0));
    let resp = ScsiResponse {
        residual: Residual::Underflow(512),
        ..response(ITT0, 100, 0)
    };
    send!(s, resp);
    let r = s.completions()[0].result.clone().unwrap();
    assert_eq!((r.transferred, r.residual), (512, 512));
}

#[test]
fn data_in_at_the_wrong_offset_drops_the_connection() {
    let mut s = session_in_ffp(params());
    let req = read(1, 8192);
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    send!(s, data_in(ITT0, 0, 0), &pattern(1000, 0));
    let got = s.deliver(&data_in(ITT0, 1, 2000), &pattern(1000, 0));
    assert_eq!(
        got,
        Err(Disconnect::Violation(Violation::DataInOffset {
            itt: ITT0,
            offset: 2000,
            expected: 1000
        }))
    );
}

#[test]
fn data_in_past_the_buffer_is_refused_before_any_byte_is_written() {
    let mut s = session_in_ffp(params());
    let req = read(1, 1001);
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    // 1004 bytes: what isboot's 4-byte rounding wrote past a 1001-byte buffer.
    let wire = emit_with(&data_in(ITT0, 0, 0), &pattern(1004, 0), Digests::default());
    assert_eq!(
        s.e.rx_header(s.now, &wire[..48]),
        Err(Disconnect::Violation(Violation::DataInOverrun {
            itt: ITT0,
            end: 1004,
            len: 1001
        }))
    );
}

#[test]
fn data_in_with_a_stale_or_unknown_itt_is_a_violation() {
    let mut s = session_in_ffp(params());
    let req = read(1, 512);
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    let wrong = ITT0 + 0x0001_0000;
    assert!(matches!(
        s.deliver(&data_in(wrong, 0, 0), &pattern(512, 0)),
        Err(Disconnect::Violation(Violation::UnknownItt { itt, .. })) if itt == wrong
    ));
    assert!(matches!(
        s.deliver(&data_in(ITT0, 3, 0), &pattern(512, 0)),
        Err(Disconnect::Violation(Violation::DataSn { .. }))
    ));
}

#[test]
fn oversized_data_segment_is_refused_from_the_header() {
    let mut s = session_in_ffp(params().with_max_recv_dsl(512));
    let req = read(1, 4096);
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    let wire = emit_with(&data_in(ITT0, 0, 0), &pattern(1024, 0), Digests::default());
    assert!(matches!(
        s.e.rx_header(s.now, &wire[..48]),
        Err(Disconnect::Violation(Violation::Pdu(
            crate::pdu::Error::DataSegmentTooLong {
                len: 1024,
                max: 512
            }
        )))
    ));
}

#[test]
fn sense_length_past_the_segment_is_a_violation() {
    let mut s = session_in_ffp(params());
    let req = read(1, 512);
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    assert!(matches!(
        s.deliver(&response(ITT0, 100, 2), &[0, 200, 0x70, 0]),
        Err(Disconnect::Violation(Violation::Sense(_)))
    ));
}

#[test]
fn target_failure_and_missing_data_are_named() {
    let mut s = session_in_ffp(params());
    let req = read(1, 512);
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    let failed = ScsiResponse {
        response: 1,
        ..response(ITT0, 100, 0)
    };
    send!(s, failed);
    assert_eq!(
        s.completions()[0].result,
        Err(TransportError::TargetFailure(1))
    );
    // GOOD status for a read that got no data and claims no underflow.
    s.submit(req.clone());
    // Slot 0 again, in its next generation.
    let again = 0x0003_0000;
    let c = ScsiCommand {
        exp_stat_sn: Sn(101),
        ..cmd(again, 11, &req)
    };
    recv!(s, [c]);
    assert!(matches!(
        s.deliver(&response(again, 101, 0), &[]),
        Err(Disconnect::Violation(Violation::MissingData {
            received: 0,
            expected: 512,
            ..
        }))
    ));
}

#[test]
fn write_underflow_and_data_in_against_a_write() {
    let mut s = session_in_ffp(params().with(Key::ImmediateData, 1));
    let req = write(1, 1024);
    s.submit(req.clone());
    recv!(s, [(cmd(ITT0, 10, &req), req.data.clone())]);
    assert!(matches!(
        s.deliver(&data_in(ITT0, 0, 0), &[1, 2, 3]),
        Err(Disconnect::Violation(Violation::WrongDirection { .. }))
    ));
    let mut s = session_in_ffp(params().with(Key::ImmediateData, 1));
    s.submit(req.clone());
    recv!(s, [(cmd(ITT0, 10, &req), req.data.clone())]);
    let short = ScsiResponse {
        residual: Residual::Underflow(24),
        ..response(ITT0, 100, 0)
    };
    send!(s, short);
    let r = s.completions()[0].result.clone().unwrap();
    assert_eq!((r.transferred, r.residual), (1000, 24));
}

#[test]
fn unsolicited_nop_in_with_data_and_out_of_order_r2t_are_violations() {
    let mut s = session_in_ffp(params());
    assert!(matches!(
        s.deliver(&NopIn::default(), b"junk"),
        Err(Disconnect::Violation(Violation::UnexpectedData { .. }))
    ));
    let mut s = session_in_ffp(params());
    let req = write(1, 4096);
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    assert!(matches!(
        s.deliver(&r2t(ITT0, 1, 5, 0, 1000), &[]),
        Err(Disconnect::Violation(Violation::R2tSn { .. }))
    ));
}

#[test]
fn scsi_async_event_and_unknown_events_change_nothing() {
    let mut s = session_in_ffp(params());
    for event in [
        AsyncEvent::ScsiEvent,
        AsyncEvent::RequestNegotiation,
        AsyncEvent::Unknown(77),
    ] {
        let msg = AsyncMessage {
            lun: lun1(),
            ..async_message(event).with_sns(sns(100, 10, 41))
        };
        send!(s, msg, &[0, 4, 0x70, 0, 6, 0]);
    }
    recv!(s, []);
    assert_eq!(s.e.phase(), Phase::Up);
    // The SCSI event reaches the platform with its sense; the others are dropped.
    match s.e.poll_event() {
        Some(Event::ScsiEvent { lun, sense }) => {
            assert_eq!(lun, lun1());
            assert_eq!(sense.as_slice(), &[0x70, 0, 6, 0]);
        }
        other => panic!("expected a SCSI event, got {other:?}"),
    }
    assert_eq!(s.e.poll_event(), None);
}

#[test]
fn rejected_command_fails_it_and_reconnects() {
    let mut s = session_in_ffp(params());
    let req = read(4, 512);
    s.submit(req.clone());
    let out = s.transmit();
    let wire = emit_with(&out[0].0, &[], Digests::default());
    let rej = reject(RejectReason::InvalidPduField).with_sns(sns(100, 10, 41));
    assert_eq!(
        s.deliver(&rej, &wire[..48]),
        Err(Disconnect::Rejected(RejectReason::InvalidPduField))
    );
    let c = s.completions();
    assert_eq!(c[0].result, Err(TransportError::Rejected(0x09)));
}

#[test]
fn rejected_ping_is_not_a_reason_to_reconnect() {
    let mut s = session_in_ffp(params());
    assert_eq!(s.advance(Duration::from_secs(5)), Ok(()));
    let out = s.transmit();
    let wire = emit_with(&out[0].0, &[], Digests::default());
    let rej = reject(RejectReason::ImmediateCommandReject).with_sns(sns(100, 10, 41));
    send!(s, rej, &wire[..48]);
    assert_eq!(s.e.phase(), Phase::Up);
    // The ping is settled: the next one comes after another idle interval, no timeout.
    assert_eq!(s.advance(Duration::from_secs(5)), Ok(()));
    assert_eq!(s.transmit().len(), 1);
}
