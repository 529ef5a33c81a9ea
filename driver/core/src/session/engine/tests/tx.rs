// SPDX-License-Identifier: BSD-2-Clause
//! Sending: the command window, R2T and Data-Out, immediate and unsolicited data, digests.

use super::*;

#[test]
fn a_window_closed_at_login_admits_nothing_until_a_pdu_opens_it() {
    let mut s = session_in_ffp(params());
    s.e.connected(
        params(),
        TargetSns {
            stat_sn: Sn(99),
            exp_cmd_sn: Sn(10),
            max_cmd_sn: Sn(9),
        },
        T0,
    )
    .unwrap();
    assert_eq!(s.e.window_size(), 0);
    let req = read(1, 512);
    s.submit(req.clone());
    recv!(s, []);
    let open = NopIn::default().window(10, 10);
    send!(s, open);
    assert_eq!(s.e.window_size(), 1);
    recv!(s, [cmd(ITT0, 10, &req)]);
}

#[test]
fn commands_wait_while_the_window_is_closed() {
    let mut s = session_in_ffp(params());
    s.e.connected(
        params(),
        TargetSns {
            stat_sn: Sn(99),
            exp_cmd_sn: Sn(10),
            max_cmd_sn: Sn(11),
        },
        T0,
    )
    .unwrap();
    let reqs: Vec<ScsiRequest> = (0..3).map(|i| read(i, 512)).collect();
    for r in &reqs {
        s.submit(r.clone());
    }
    assert_eq!(s.e.window_size(), 2);
    recv!(s, [cmd(ITT0, 10, &reqs[0]), cmd(ITT1, 11, &reqs[1])]);
    recv!(s, []);
    // A NOP-In opening the window by one lets the third command go.
    let nop = NopIn::default().window(11, 12);
    send!(s, nop);
    recv!(s, [cmd(ITT2, 12, &reqs[2])]);
    // A MaxCmdSN below ExpCmdSN-1 is ignored; the window does not shrink.
    let bogus = NopIn::default().window(20, 5);
    send!(s, bogus);
    assert_eq!(s.e.window(), (Sn(11), Sn(12), Sn(13)));
    assert_eq!(s.e.window_size(), 2);
}

#[test]
fn r2t_is_split_by_the_targets_max_recv_data_segment_length() {
    let mut s = session_in_ffp(params().with(Key::MaxRecvDataSegmentLength, 8192));
    let req = write(1, 20_000);
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    send!(s, r2t(ITT0, 0x77, 0, 0, 20_000));
    recv!(
        s,
        [
            data_out(&req, ITT0, 0x77, 0, 0, 8192, false),
            data_out(&req, ITT0, 0x77, 1, 8192, 8192, false),
            data_out(&req, ITT0, 0x77, 2, 16384, 3616, true),
        ]
    );
    send!(s, response(ITT0, 100, 0));
    let r = s.completions()[0].result.clone().unwrap();
    assert_eq!((r.transferred, r.residual), (20_000, 0));
}

#[test]
fn immediate_and_unsolicited_data_up_to_first_burst_length() {
    let mut s = session_in_ffp(
        params()
            .with(Key::MaxRecvDataSegmentLength, 4096)
            .with(Key::FirstBurstLength, 10_000)
            .with(Key::ImmediateData, 1)
            .with(Key::InitialR2T, 0)
            .with(Key::MaxOutstandingR2T, 2),
    );
    let req = write(1, 30_000);
    s.submit(req.clone());
    let c = ScsiCommand {
        final_bit: false,
        ..cmd(ITT0, 10, &req)
    };
    recv!(
        s,
        [
            (c, req.data[..4096].to_vec()),
            data_out(&req, ITT0, RESERVED_TAG, 0, 4096, 4096, false),
            data_out(&req, ITT0, RESERVED_TAG, 1, 8192, 1808, true),
        ]
    );
    // The rest comes by two R2Ts outstanding at once.
    send!(s, r2t(ITT0, 1, 0, 10_000, 10_000));
    send!(s, r2t(ITT0, 2, 1, 20_000, 10_000));
    recv!(
        s,
        [
            data_out(&req, ITT0, 1, 0, 10_000, 4096, false),
            data_out(&req, ITT0, 1, 1, 14_096, 4096, false),
            data_out(&req, ITT0, 1, 2, 18_192, 1808, true),
            data_out(&req, ITT0, 2, 0, 20_000, 4096, false),
            data_out(&req, ITT0, 2, 1, 24_096, 4096, false),
            data_out(&req, ITT0, 2, 2, 28_192, 1808, true),
        ]
    );
}

#[test]
fn immediate_data_only_with_initial_r2t() {
    let mut s = session_in_ffp(
        params()
            .with(Key::ImmediateData, 1)
            .with(Key::InitialR2T, 1)
            .with(Key::FirstBurstLength, 1000),
    );
    let req = write(1, 3000);
    s.submit(req.clone());
    recv!(s, [(cmd(ITT0, 10, &req), req.data[..1000].to_vec())]);
    send!(s, r2t(ITT0, 5, 0, 1000, 2000));
    recv!(s, [data_out(&req, ITT0, 5, 0, 1000, 2000, true)]);
}

#[test]
fn r2t_checks() {
    let mut s = session_in_ffp(params());
    let req = write(1, 4096);
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    assert!(matches!(
        s.deliver(&r2t(ITT0, 1, 0, 4000, 200), &[]),
        Err(Disconnect::Violation(Violation::R2tRange { .. }))
    ));
    let mut s = session_in_ffp(params());
    s.submit(req.clone());
    recv!(s, [cmd(ITT0, 10, &req)]);
    send!(s, r2t(ITT0, 1, 0, 0, 1000));
    assert!(matches!(
        s.deliver(&r2t(ITT0, 2, 1, 1000, 1000), &[]),
        Err(Disconnect::Violation(Violation::TooManyR2t { max: 1, .. }))
    ));
    let mut s = session_in_ffp(params());
    let rd = read(1, 4096);
    s.submit(rd.clone());
    recv!(s, [cmd(ITT0, 10, &rd)]);
    assert!(matches!(
        s.deliver(&r2t(ITT0, 1, 0, 0, 1000), &[]),
        Err(Disconnect::Violation(Violation::WrongDirection { .. }))
    ));
}

#[test]
fn cmd_sn_wraps_at_two_to_the_32() {
    let mut e = Engine::try_new(4, Timeouts::default()).unwrap();
    e.connected(
        params(),
        TargetSns {
            stat_sn: Sn(u32::MAX),
            exp_cmd_sn: Sn(u32::MAX),
            max_cmd_sn: Sn(2),
        },
        T0,
    )
    .unwrap();
    let mut s = Script { e, now: T0 };
    let reqs: Vec<ScsiRequest> = (0..3).map(|i| read(i, 16)).collect();
    for r in &reqs {
        s.submit(r.clone());
    }
    let out = s.transmit();
    let sns: Vec<Sn> = out
        .iter()
        .filter_map(|(p, _)| match p {
            Pdu::ScsiCommand(c) => Some(c.cmd_sn),
            _ => None,
        })
        .collect();
    assert_eq!(sns, vec![Sn(u32::MAX), Sn(0), Sn(1)]);
    assert_eq!(s.e.exp_stat_sn(), Sn(0));
}

#[test]
fn digests_on_both_sides() {
    let mut s = session_in_ffp(
        params()
            .with(Key::HeaderDigest, 1)
            .with(Key::DataDigest, 1)
            .with(Key::ImmediateData, 1),
    );
    let req = write(1, 1001);
    s.submit(req.clone());
    // `transmit` splits with digests on: a wrong digest would fail there.
    recv!(s, [(cmd(ITT0, 10, &req), req.data.clone())]);
}

#[test]
fn full_table_gives_the_request_back() {
    let mut e = Engine::try_new(2, Timeouts::default()).unwrap();
    assert!(e.submit(read(1, 1), T0).is_ok());
    assert!(e.submit(read(2, 1), T0).is_ok());
    assert!(matches!(e.submit(read(3, 1), T0), Err(SubmitError::Full(r)) if r.tag == 3));
}

/// What the engine sends now, batch by batch as the session's flush lays them out and writes
/// them: per batch, each PDU's ITT (`RESERVED_TAG` for a NOP-Out answering a ping).
fn batches(s: &mut Script) -> Vec<Vec<u32>> {
    let d = s.e.params().digests();
    let mut out = Vec::new();
    while s.e.fill_tx(s.now) {
        let mut bytes = Vec::new();
        while s.e.tx_pending() {
            let mut iov: [&[u8]; 64] = [&[]; 64];
            let n = s.e.tx_slices(&mut iov).unwrap();
            let len: usize = iov[..n].iter().map(|b| b.len()).sum();
            for b in &iov[..n] {
                bytes.extend_from_slice(b);
            }
            s.e.tx_sent(len);
        }
        let mut itts = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let (raw, used) = RawPdu::split(&bytes[at..], d, u32::MAX).unwrap();
            itts.push(match raw.parse().unwrap() {
                Pdu::ScsiCommand(c) => c.itt,
                Pdu::NopOut(n) => n.itt,
                other => panic!("unexpected PDU {other:?}"),
            });
            at += used;
        }
        out.push(itts);
    }
    out
}

#[test]
fn a_deep_queue_sends_new_commands_in_batches() {
    use super::super::tx::{HOLD_AT, HOLD_BATCH};
    assert_eq!(
        (HOLD_AT, HOLD_BATCH),
        (16, 8),
        "the figures below assume these"
    );
    let mut e = Engine::try_new(32, Timeouts::default()).unwrap();
    e.connected(params(), SNS, T0).unwrap();
    let mut s = Script { e, now: T0 };
    let mut tag = 0;
    let mut submit = |s: &mut Script, n: usize| {
        for _ in 0..n {
            s.submit(read(tag, 0));
            tag += 1;
        }
    };
    // Up to HOLD_AT at the target, every command goes at once.
    submit(&mut s, 16);
    let first = batches(&mut s);
    assert_eq!(first.iter().map(Vec::len).collect::<Vec<_>>(), [16]);
    let mut sent: Vec<u32> = first.concat();
    // Beyond, new ones wait until HOLD_BATCH of them can go together.
    submit(&mut s, 7);
    assert!(batches(&mut s).is_empty(), "7 held with 16 out");
    submit(&mut s, 1);
    let b = batches(&mut s);
    assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), [8]);
    sent.extend(b.concat());
    // Or until fewer than HOLD_AT are out: answers release them.
    submit(&mut s, 3);
    let mut stat = 99;
    let mut answer = |s: &mut Script, itt: u32| {
        send!(s, scsi_response(itt, stat, 0).window(10, 200));
        stat += 1;
    };
    for &itt in &sent[..8] {
        answer(&mut s, itt);
    }
    assert!(batches(&mut s).is_empty(), "3 held with 16 out");
    answer(&mut s, sent[8]);
    let b = batches(&mut s);
    assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), [3]);
    assert_eq!(s.completions().len(), 9);
    // Anything else going out takes the held commands along in its batch.
    submit(&mut s, 2);
    assert!(batches(&mut s).is_empty(), "2 held with 18 out");
    send!(s, nop_in_ping(0x77, lun1()).with_sns(sns(stat, 10, 200)));
    let b = batches(&mut s);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].len(), 3);
    assert_eq!(b[0][0], RESERVED_TAG, "the ping's answer first");
}

/// A transport that takes every byte of each vectored write and records how many slices it
/// was given.
#[derive(Default)]
struct Vectored {
    bytes: Vec<u8>,
    slices: Vec<usize>,
}

impl crate::port::Transport for Vectored {
    fn poll_read(
        &mut self,
        _cx: &mut core::task::Context<'_>,
        _buf: &mut [u8],
    ) -> core::task::Poll<Result<usize, crate::port::IoError>> {
        core::task::Poll::Pending
    }

    fn poll_write(
        &mut self,
        cx: &mut core::task::Context<'_>,
        buf: &[u8],
    ) -> core::task::Poll<Result<usize, crate::port::IoError>> {
        self.poll_write_vectored(cx, &[buf])
    }

    fn poll_write_vectored(
        &mut self,
        _cx: &mut core::task::Context<'_>,
        bufs: &[&[u8]],
    ) -> core::task::Poll<Result<usize, crate::port::IoError>> {
        self.slices.push(bufs.len());
        let before = self.bytes.len();
        for b in bufs {
            self.bytes.extend_from_slice(b);
        }
        core::task::Poll::Ready(Ok(self.bytes.len() - before))
    }

    fn close(&mut self) {}
}

/// The session's flush hands a batch to the transport as one vectored write of all its
/// slices, headers from the engine and data from the requests' buffers, in order.
#[test]
fn a_batch_goes_out_in_one_write_of_all_its_slices() {
    use super::super::super::driver::flush;
    let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
    for writes in [1usize, 6] {
        let mut s = session_in_ffp(params().with(Key::ImmediateData, 1));
        // 1001 bytes: each PDU's data is followed by 3 bytes of padding, so headers and data
        // alternate in the batch: 2 slices per write and the last padding (13 for six).
        let reqs: Vec<_> = (0..writes as u64).map(|t| write(t + 1, 1001)).collect();
        for r in &reqs {
            s.submit(r.clone());
        }
        let mut t = Vectored::default();
        flush::<_, crate::port::NoLog, _>(&mut cx, &mut t, &mut s.e, s.now, None).unwrap();
        assert_eq!(
            t.slices,
            [2 * writes + 1],
            "{writes} writes: one write of every slice"
        );
        let d = s.e.params().digests();
        let (mut at, mut seen) = (0, 0);
        while at < t.bytes.len() {
            let (raw, used) = RawPdu::split(&t.bytes[at..], d, u32::MAX).unwrap();
            assert!(matches!(raw.parse().unwrap(), Pdu::ScsiCommand(_)));
            assert_eq!(
                raw.data,
                &reqs[seen].data[..],
                "write {seen}'s immediate data"
            );
            at += used;
            seen += 1;
        }
        assert_eq!(seen, writes);
    }
}

/// A batch of few pieces whose buffer gives more slices than the small array holds still
/// goes out in one write, in order.
#[test]
fn a_buffer_in_many_pieces_goes_out_in_one_write() {
    use super::super::super::driver::flush;
    let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
    let mut e: Engine<crate::testing::Pieces> = Engine::try_new(8, Timeouts::default()).unwrap();
    e.connected(params().with(Key::ImmediateData, 1), SNS, T0)
        .unwrap();
    let data: Vec<u8> = (0..1000).map(|i| (i % 251) as u8).collect();
    // Pieces of 100 bytes, as a kernel buffer may come in pages.
    let pieces = crate::testing::Pieces(data.chunks(100).map(<[u8]>::to_vec).collect());
    let req = ScsiRequest::write(1, lun1(), write16(2), pieces);
    assert!(e.submit(req, T0).is_ok());
    let mut t = Vectored::default();
    flush::<_, crate::port::NoLog, _>(&mut cx, &mut t, &mut e, T0, None).unwrap();
    // The header, then the ten pieces (1000 bytes need no padding).
    assert_eq!(t.slices, [11], "one write of every slice");
    let d = e.params().digests();
    let (raw, used) = RawPdu::split(&t.bytes, d, u32::MAX).unwrap();
    assert!(matches!(raw.parse().unwrap(), Pdu::ScsiCommand(_)));
    assert_eq!(raw.data, &data[..]);
    assert_eq!(used, t.bytes.len());
}
