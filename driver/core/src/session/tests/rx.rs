// SPDX-License-Identifier: BSD-2-Clause
//! The receive path ([`Rx`]) over a wire that hands out chosen byte counts per read, against
//! a real [`Engine`]: above all the guessed Data-In read (`DataGuess` in `session/rx.rs`), its
//! hits, its misses and the bytes it must park in stream order.

use alloc::vec;
use alloc::vec::Vec;
use core::task::{Context, Poll, Waker};

use isboot_executor::Instant;

use crate::lun::Lun;
use crate::pdu::testutil::emit_with;
use crate::pdu::{
    AsyncEvent, DataIn, Digests, Header, NopIn, Pdu, RawPdu, Residual, ScsiResponse, RESERVED_TAG,
};
use crate::port::NoLog;
use crate::scsi::{cdb, status, Completion, ScsiRequest};
use crate::session::engine::{Engine, Event, Timeouts};
use crate::session::rx::Rx;
use crate::testing::pdu::{async_message, data_in, nop_in_ping, scsi_response, sns, TargetPdu};
use crate::testing::Wire;
use crate::text::{Key, Params};

const T0: Instant = Instant::from_nanos(1_000_000_000);

struct Rig {
    e: Engine,
    rx: Rx,
    wire: Wire,
    digests: Digests,
    stat_sn: u32,
    cmd_sn: u32,
}

fn lun() -> Lun {
    Lun::from_number(1).unwrap()
}

/// A session in full feature phase with 64 KiB segments both ways; `digests` turns header and
/// data digests on; `guess` says whether the transport opts in.
fn rig(digests: bool, guess: bool) -> Rig {
    let d = u32::from(digests);
    let params = Params::default()
        .with_max_recv_dsl(65536)
        .with(Key::MaxRecvDataSegmentLength, 65536)
        .with(Key::ImmediateData, 0)
        .with(Key::HeaderDigest, d)
        .with(Key::DataDigest, d);
    let mut e = Engine::try_new(8, Timeouts::default()).unwrap();
    e.connected(params, sns(99, 10, 41), T0).unwrap();
    let digests = e.params().digests();
    Rig {
        e,
        rx: Rx::try_new().unwrap(),
        wire: Wire::new(guess),
        digests,
        stat_sn: 100,
        cmd_sn: 10,
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u8)
                .wrapping_mul(31)
                .wrapping_add(seed ^ (i >> 8) as u8)
        })
        .collect()
}

impl Rig {
    /// Submits a read of `len` bytes and sends it; returns its ITT.
    fn read(&mut self, tag: u64, len: usize) -> u32 {
        let req = ScsiRequest::read(tag, lun(), cdb::rw16(false, 0, 1), vec![0; len]);
        assert!(self.e.submit(req, T0).is_ok());
        let mut out = Vec::new();
        while self.e.poll_transmit(T0, &mut out) {}
        let mut at = 0;
        while at < out.len() {
            let (raw, used) = RawPdu::split(&out[at..], self.digests, u32::MAX).unwrap();
            if let Ok(Pdu::ScsiCommand(c)) = raw.parse() {
                self.cmd_sn += 1;
                return c.itt;
            }
            at += used;
        }
        panic!("no command was sent")
    }

    fn send(&mut self, h: &dyn Header, data: &[u8]) {
        let wire = emit_with(h, data, self.digests);
        self.wire.bytes.extend_from_slice(&wire);
    }

    /// The next StatSN, with the window moved on by the command sent.
    fn sns(&mut self) -> crate::pdu::TargetSns {
        self.stat_sn += 1;
        sns(self.stat_sn - 1, self.cmd_sn, self.cmd_sn + 31)
    }

    /// The Data-In of `data` at `offset`, with GOOD status when `last`.
    fn data_in(&mut self, itt: u32, sn: u32, offset: u32, data: &[u8], last: bool) {
        let d = data_in(itt, sn, offset);
        let d = if last {
            let s = self.sns();
            d.with_status(status::GOOD, s.stat_sn.0, Residual::None)
                .window(s.exp_cmd_sn.0, s.max_cmd_sn.0)
        } else {
            let s = sns(self.stat_sn, self.cmd_sn, self.cmd_sn + 31);
            DataIn { sns: s, ..d }
        };
        self.send(&d, data);
    }

    fn unsolicited(&self) -> crate::pdu::TargetSns {
        sns(self.stat_sn, self.cmd_sn, self.cmd_sn + 31)
    }

    /// Polls the receive path until the wire is empty; returns the PDUs it finished.
    fn run(&mut self) -> usize {
        let mut cx = Context::from_waker(Waker::noop());
        let mut pdus = 0;
        for _ in 0..10_000 {
            match self
                .rx
                .poll(&mut cx, &mut self.wire, &mut self.e, T0, None::<&NoLog>)
            {
                Poll::Ready(Ok(())) => pdus += 1,
                Poll::Ready(Err(e)) => panic!("receive path failed: {e:?}"),
                Poll::Pending => {
                    assert_eq!(
                        self.wire.pos,
                        self.wire.bytes.len(),
                        "pending with bytes left"
                    );
                    return pdus;
                }
            }
        }
        panic!("the receive path does not settle")
    }

    fn completions(&mut self) -> Vec<Completion> {
        let mut v = Vec::new();
        while let Some(ev) = self.e.poll_event() {
            if let Event::Complete(c) = ev {
                v.push(c);
            }
        }
        v
    }

    /// One whole 4 KiB read answered in one Data-In with status: teaches the guess its size.
    fn warm_up(&mut self) {
        let itt = self.read(1, 4096);
        let data = pattern(4096, 1);
        self.data_in(itt, 0, 0, &data, true);
        assert_eq!(self.run(), 1);
        let c = self.completions();
        assert_eq!(c[0].data, data);
        self.wire.reads = 0;
        self.wire.reads3 = 0;
    }

    /// Expects one completion of `tag`, GOOD, with `data`.
    fn done(&mut self, tag: u64, data: &[u8]) {
        let c = self.completions();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].tag, tag);
        let r = c[0].result.clone().expect("completed");
        assert_eq!(r.status, status::GOOD);
        assert_eq!(r.transferred as usize, data.len());
        assert!(c[0].data == data, "the data arrived in place");
    }
}

#[test]
fn a_guess_that_hits_reads_header_data_and_status_in_one_call() {
    for digests in [false, true] {
        let mut r = rig(digests, true);
        r.warm_up();
        let itt = r.read(2, 4096);
        let data = pattern(4096, 2);
        r.data_in(itt, 0, 0, &data, true);
        assert_eq!(r.run(), 1);
        assert_eq!(
            (r.wire.reads, r.wire.reads3),
            (1, 1),
            "one transport call (digests {digests})"
        );
        r.done(2, &data);
    }
}

#[test]
fn without_the_opt_in_the_header_is_read_alone() {
    let mut r = rig(false, false);
    r.warm_up();
    let itt = r.read(2, 4096);
    let data = pattern(4096, 2);
    r.data_in(itt, 0, 0, &data, true);
    assert_eq!(r.run(), 1);
    assert_eq!((r.wire.reads, r.wire.reads3), (2, 0));
    r.done(2, &data);
}

#[test]
fn nothing_is_guessed_before_a_data_in_was_seen_on_the_connection() {
    let mut r = rig(false, true);
    let itt = r.read(1, 4096);
    let data = pattern(4096, 1);
    r.data_in(itt, 0, 0, &data, true);
    assert_eq!(r.run(), 1);
    assert_eq!(r.wire.reads3, 0);
    r.done(1, &data);
    // A new connection forgets what it learned.
    r.warm_up();
    r.rx.reset();
    let itt = r.read(3, 4096);
    r.data_in(itt, 0, 0, &data, true);
    assert_eq!(r.run(), 1);
    assert_eq!(r.wire.reads3, 0);
    r.done(3, &data);
}

#[test]
fn smaller_segments_than_guessed_land_in_place_and_the_rest_is_parked() {
    for digests in [false, true] {
        let mut r = rig(digests, true);
        r.warm_up();
        let itt = r.read(2, 4096);
        let data = pattern(4096, 3);
        for i in 0..4u32 {
            let at = 1024 * i as usize;
            r.data_in(itt, i, at as u32, &data[at..at + 1024], i == 3);
        }
        assert_eq!(r.run(), 4);
        r.done(2, &data);
        // The guess is never larger than the rest of the transfer: the last three guesses
        // were 3072, 2048 and 1024 bytes, all read ahead of the look-ahead.
        assert!(r.wire.reads3 >= 1);
    }
}

#[test]
fn a_longer_segment_than_guessed_continues_from_where_the_guess_stopped() {
    let mut r = rig(true, true);
    r.warm_up();
    let itt = r.read(2, 16384);
    let data = pattern(16384, 4);
    r.data_in(itt, 0, 0, &data[..12288], false);
    r.data_in(itt, 1, 12288, &data[12288..], true);
    assert_eq!(r.run(), 2);
    r.done(2, &data);
}

#[test]
fn control_pdus_before_the_data_in_are_parked_in_stream_order() {
    for digests in [false, true] {
        let mut r = rig(digests, true);
        r.warm_up();
        let itt = r.read(2, 4096);
        let data = pattern(4096, 5);
        let s = r.unsolicited();
        r.send(&nop_in_ping(7, lun()).with_sns(s), &[]);
        r.send(&nop_in_ping(8, lun()).with_sns(s), &pattern(100, 9));
        let msg = async_message(AsyncEvent::ScsiEvent).with_sns(s);
        r.send(
            &crate::pdu::AsyncMessage { lun: lun(), ..msg },
            &[0, 4, 0x70, 0, 6, 0],
        );
        r.data_in(itt, 0, 0, &data, true);
        assert_eq!(r.run(), 4);
        assert_eq!(r.wire.reads3, 1, "the guess was made and missed");
        // The Async Message's SCSI event, then the read.
        match r.e.poll_event() {
            Some(Event::ScsiEvent { sense, .. }) => assert_eq!(sense.as_slice(), &[0x70, 0, 6, 0]),
            other => panic!("expected the SCSI event, got {other:?}"),
        }
        r.done(2, &data);
        // Both pings are answered, the second with its data.
        let mut out = Vec::new();
        while r.e.poll_transmit(T0, &mut out) {}
        let mut at = 0;
        let mut echoed = Vec::new();
        while at < out.len() {
            let (raw, used) = RawPdu::split(&out[at..], r.digests, u32::MAX).unwrap();
            if let Ok(Pdu::NopOut(n)) = raw.parse() {
                echoed.push((n.ttt, raw.data.to_vec()));
            }
            at += used;
        }
        assert_eq!(echoed, vec![(7, Vec::new()), (8, pattern(100, 9))]);
    }
}

#[test]
fn a_check_condition_instead_of_data_is_parked_and_its_sense_read() {
    for digests in [false, true] {
        let mut r = rig(digests, true);
        r.warm_up();
        let itt = r.read(2, 4096);
        let s = r.sns();
        let resp = ScsiResponse {
            sns: s,
            ..scsi_response(itt, s.stat_sn.0, status::CHECK_CONDITION)
        };
        let seg = [
            0, 18, 0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0, 0, 0, 0, 0,
        ];
        r.send(&resp, &seg);
        // What comes next must be read whole, not taken for the read's data.
        let s = r.unsolicited();
        r.send(&nop_in_ping(3, lun()).with_sns(s), &[]);
        assert_eq!(r.run(), 2);
        assert_eq!(r.wire.reads3, 1);
        let c = r.completions();
        let res = c[0].result.clone().unwrap();
        assert_eq!(res.status, status::CHECK_CONDITION);
        assert_eq!(res.sense.as_slice(), &seg[2..]);
        assert_eq!(res.transferred, 0);
    }
}

#[test]
fn odd_pieces_from_the_transport_change_nothing() {
    for digests in [false, true] {
        for pieces in [
            vec![1],
            vec![47],
            vec![49],
            vec![51, 1, 4099],
            vec![48 + 3],
            vec![52, 4096, 7],
            vec![4100, 3, 60],
        ] {
            let mut r = rig(digests, true);
            r.warm_up();
            r.wire.pieces = pieces.clone();
            let itt = r.read(2, 4096);
            let data = pattern(4096, 6);
            let s = r.unsolicited();
            r.send(&nop_in_ping(5, lun()).with_sns(s), &pattern(33, 1));
            r.data_in(itt, 0, 0, &data[..1000], false);
            r.data_in(itt, 1, 1000, &data[1000..], true);
            let itt3 = {
                assert_eq!(r.run(), 3, "pieces {pieces:?} digests {digests}");
                r.done(2, &data);
                r.read(3, 4096)
            };
            let data3 = pattern(4096, 7);
            r.data_in(itt3, 0, 0, &data3, true);
            assert_eq!(r.run(), 1, "pieces {pieces:?} digests {digests}");
            r.done(3, &data3);
        }
    }
}

#[test]
fn two_commands_outstanding_are_never_guessed_for() {
    let mut r = rig(false, true);
    r.warm_up();
    let a = r.read(2, 4096);
    let b = r.read(3, 4096);
    let da = pattern(4096, 8);
    let db = pattern(4096, 9);
    // The second's data comes first: a guess for either would misplace it.
    r.data_in(b, 0, 0, &db, true);
    r.data_in(a, 0, 0, &da, true);
    assert_eq!(r.run(), 2);
    assert_eq!(r.wire.reads3, 0, "no guess with two commands out");
    let mut c = r.completions();
    c.sort_by_key(|c| c.tag);
    assert!(c[0].data == da && c[1].data == db);
}

#[test]
fn header_reads_tell_the_transport_how_many_answers_are_owed() {
    let mut r = rig(false, false);
    r.warm_up();
    let tags: Vec<_> = (2..5).map(|lba| r.read(lba, 4096)).collect();
    r.wire.awaiting.clear();
    for (i, &t) in tags.iter().enumerate() {
        r.data_in(t, 0, 0, &pattern(4096, i as u8), true);
    }
    assert_eq!(r.run(), 3);
    // One header read per PDU, each told what is still owed before it, and the read that
    // finds the stream empty (a NOP-In or an Async Message may still come) told 0.
    assert_eq!(r.wire.awaiting, [3, 2, 1, 0]);
}

#[test]
fn header_reads_tell_the_transport_the_most_data_one_read_still_expects() {
    let mut r = rig(false, false);
    r.warm_up();
    let long = r.read(2, 16384);
    let short = r.read(3, 4096);
    r.wire.data_in.clear();
    let d = pattern(16384, 4);
    r.data_in(long, 0, 0, &d[..8192], false);
    r.data_in(long, 1, 8192, &d[8192..], true);
    r.data_in(short, 0, 0, &pattern(4096, 5), true);
    assert_eq!(r.run(), 3);
    // The long read's remainder while it streams in, then the short one's, then nothing: a
    // transport may wait for that much without waiting for bytes nobody owes.
    assert_eq!(r.wire.data_in, [16384, 8192, 4096, 0]);
}

#[test]
fn a_guessed_read_tells_the_transport_too() {
    // A count left over from a busier moment must not outlive it: the guessed read's header
    // read is told as well.
    let mut r = rig(false, true);
    r.warm_up();
    r.wire.awaiting.clear();
    let t = r.read(2, 4096);
    r.data_in(t, 0, 0, &pattern(4096, 3), true);
    assert_eq!(r.run(), 1);
    assert_eq!(r.wire.awaiting.first(), Some(&1));
}

#[test]
fn the_guess_follows_the_targets_segment_length() {
    let mut r = rig(false, true);
    // A 64 KiB read in 8 KiB segments: the first guess (nothing learned) is no guess, the
    // later ones 8 KiB each, so each header and its data come in one call.
    // The target's PDUs arrive one at a time (a Data-In already behind the one being read
    // would come with its data's read, as the look-ahead of the data stage).
    let itt = r.read(1, 65536);
    let data = pattern(65536, 10);
    for i in 0..8u32 {
        let at = 8192 * i as usize;
        r.data_in(itt, i, at as u32, &data[at..at + 8192], i == 7);
        assert_eq!(r.run(), 1);
    }
    r.done(1, &data);
    assert_eq!(r.wire.reads3, 7, "every Data-In after the first guessed");
    assert_eq!(
        r.wire.reads,
        1 + 1 + 7,
        "first header, its data, then one call each"
    );
}

#[test]
fn a_nop_in_with_a_reserved_itt_answers_and_the_read_still_completes() {
    // The NOP-In answer to our own ping arrives before the Data-In.
    let mut r = rig(false, true);
    r.warm_up();
    let itt = r.read(2, 4096);
    let data = pattern(4096, 11);
    let s = r.unsolicited();
    let nop = NopIn {
        itt: RESERVED_TAG,
        ttt: RESERVED_TAG,
        lun: lun(),
        sns: s,
    };
    r.send(&nop, &[]);
    r.data_in(itt, 0, 0, &data, true);
    assert_eq!(r.run(), 2);
    r.done(2, &data);
}

#[test]
fn a_header_with_an_ahs_is_read_whole_from_the_parked_bytes() {
    let mut r = rig(false, true);
    r.warm_up();
    let itt = r.read(2, 4096);
    let s = r.sns();
    let resp = ScsiResponse {
        sns: s,
        ..scsi_response(itt, s.stat_sn.0, status::BUSY)
    };
    // The response with 8 bytes of AHS between its BHS and its (empty) data segment.
    let mut wire = emit_with(&resp, &[], r.digests);
    wire[4] = 2;
    wire.splice(48..48, [0, 5, 0xfe, 0, 1, 2, 3, 4]);
    r.wire.bytes.extend_from_slice(&wire);
    let s = r.unsolicited();
    r.send(&nop_in_ping(4, lun()).with_sns(s), &pattern(64, 2));
    assert_eq!(r.run(), 2);
    assert_eq!(r.wire.reads3, 1);
    let c = r.completions();
    assert_eq!(c[0].result.clone().unwrap().status, status::BUSY);
    let mut out = Vec::new();
    while r.e.poll_transmit(T0, &mut out) {}
    let (raw, _) = RawPdu::split(&out, r.digests, u32::MAX).unwrap();
    assert!(matches!(raw.parse(), Ok(Pdu::NopOut(n)) if n.ttt == 4));
    assert_eq!(raw.data, &pattern(64, 2)[..]);
}

#[test]
fn segments_longer_than_the_buffer_are_guessed_in_part_and_short_reads_stay_guessed() {
    for digests in [false, true] {
        let mut r = rig(digests, true);
        // 64 KiB segments: more than the read-ahead buffer could park beside its look-ahead.
        let itt = r.read(1, 3 * 65536);
        let data = pattern(3 * 65536, 12);
        for i in 0..3u32 {
            let at = 65536 * i as usize;
            r.data_in(itt, i, at as u32, &data[at..at + 65536], i == 2);
            r.wire.reads = 0;
            r.wire.reads3 = 0;
            assert_eq!(r.run(), 1);
            // The first is read as BHS, header digest (if any), then data; the others as the
            // guess (header and the segment but its last 48 bytes, no look-ahead), then the
            // rest.
            let want = match i {
                0 => (2 + usize::from(digests), 0),
                _ => (2, 1),
            };
            assert_eq!((r.wire.reads, r.wire.reads3), want, "segment {i}");
        }
        r.done(1, &data);
        // A 4 KiB read on the same connection is still one call.
        let itt = r.read(2, 4096);
        let data = pattern(4096, 13);
        r.data_in(itt, 0, 0, &data, true);
        r.wire.reads = 0;
        r.wire.reads3 = 0;
        assert_eq!(r.run(), 1);
        assert_eq!((r.wire.reads, r.wire.reads3), (1, 1));
        r.done(2, &data);
    }
}
