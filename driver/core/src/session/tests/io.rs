// SPDX-License-Identifier: BSD-2-Clause
//! Reads, writes and the request path end to end.

use super::*;

#[test]
fn reads_and_writes_through_r2t_then_logout() {
    let r = rig(|_| {});
    let (h, task) = start(&r);
    let payload: Vec<u8> = (0..40 * BLOCK).map(|i| (i * 7 + 3) as u8).collect();
    h.submit(write16(1, 100, payload.clone()))
        .expect("submitted");
    let c = r.done.recv_timeout(WAIT).expect("write completes");
    expect_good(&c);
    h.submit(read16(2, 100, 40)).expect("submitted");
    let c = r.done.recv_timeout(WAIT).expect("read completes");
    expect_good(&c);
    assert_eq!(c.data, payload, "read back what was written");
    h.shutdown();
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
    let d = r.target.stats();
    assert_eq!(d.logouts, 1);
    assert_eq!(d.login_ids.len(), 1);
    assert_eq!(d.login_ids[0], ([0x80, 1, 2, 3, 4, 5], 0));
    assert_eq!(
        r.states.lock().expect("states").as_slice(),
        &[State::LoggingIn, State::Up, State::Closed]
    );
}

#[test]
fn odd_length_data_in_fills_exactly_the_buffer() {
    let r = rig(|_| {});
    let (h, task) = start(&r);
    // 35 bytes of the 36 of standard INQUIRY data: a data segment that needs padding.
    let req = ScsiRequest::read(9, lun1(), cdb::inquiry(35), vec![0; 35]);
    h.submit(req).expect("submitted");
    let c = r.done.recv_timeout(WAIT).expect("INQUIRY completes");
    expect_good(&c);
    assert_eq!(c.data, crate::testing::inquiry_data()[..35]);
    h.shutdown();
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
}

#[test]
fn large_reads_in_odd_sized_pdus_land_exactly() {
    // A MaxBurstLength above the read lets the 20000-byte Data-In PDUs through unsplit.
    let r = rig(|s| s.cfg.max_burst = 1 << 20);
    let (h, task) = start(&r);
    let payload: Vec<u8> = (0..256 * BLOCK).map(|i| (i * 31 + 7) as u8).collect();
    h.submit(write16(1, 500, payload.clone()))
        .expect("submitted");
    expect_good(&r.done.recv_timeout(WAIT).expect("write completes"));
    for tag in 2..5 {
        h.submit(read16(tag, 500, 256)).expect("submitted");
    }
    for _ in 2..5 {
        let c = r.done.recv_timeout(WAIT).expect("read completes");
        expect_good(&c);
        assert_eq!(c.data, payload, "request {}", c.tag);
    }
    h.shutdown();
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
}

#[test]
fn more_requests_than_slots_wait_in_the_inbox() {
    let r = rig(|_| {});
    let mut cfg = config();
    cfg.max_tasks = 2;
    let (h, task) = start_with(&r, cfg);
    for tag in 0..20u64 {
        h.submit(read16(tag, tag, 1)).expect("the inbox takes them");
    }
    let mut tags: Vec<u64> = (0..20)
        .map(|_| {
            let c = r.done.recv_timeout(WAIT).expect("every read completes");
            expect_good(&c);
            c.tag
        })
        .collect();
    tags.sort_unstable();
    assert_eq!(tags, (0..20).collect::<Vec<u64>>());
    h.shutdown();
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
}

#[test]
fn session_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let r = rig(|_| {});
    let tx = r.sender();
    let (_h, session) = Session::<StdLock, _, _, _, _>::try_new(
        config(),
        r.connector(),
        Sink(tx, r.states.clone(), r.reported.clone()),
        Counter(1),
        Quiet,
        r.rt.timer(),
    )
    .unwrap();
    let fut = session.run();
    assert_send(&fut);
    // CAM's action routine and upcalls use the handle from any thread.
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    assert_send_sync(&_h);
}

#[test]
fn requests_after_shutdown_are_refused() {
    let r = rig(|_| {});
    let (h, task) = start(&r);
    h.shutdown();
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
    assert!(h.submit(read16(1, 0, 1)).is_err());
}

#[test]
fn an_idle_session_keeps_pinging_at_its_interval() {
    // The loop runs the engine's timers only once their earliest deadline has passed: each
    // ping moves it (the answer resets the interval), and every one must still be sent.
    let r = rig(|_| {});
    let mut cfg = config();
    cfg.timeouts.nop_interval = Duration::from_millis(20);
    cfg.timeouts.nop_timeout = Duration::from_secs(5);
    let (h, task) = start_with(&r, cfg);
    let deadline = std::time::Instant::now() + WAIT;
    while r.target.stats().pings < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(r.target.stats().pings >= 3, "{:?}", r.target.stats());
    // Still the first connection, and still serving.
    h.submit(read16(1, 0, 1)).expect("submitted");
    expect_good(&r.done.recv_timeout(WAIT).expect("read completes"));
    h.shutdown();
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
    assert_eq!(r.target.stats().connections, 1);
}

#[test]
fn target_ping_is_answered_by_the_running_session() {
    let r = rig(|s| s.cfg.ping_after_login = Some(0x55));
    let (h, task) = start(&r);
    h.submit(read16(1, 0, 1)).expect("submitted");
    expect_good(&r.done.recv_timeout(WAIT).expect("read completes"));
    h.shutdown();
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
    assert!(r.target.stats().ping_answered);
}

#[test]
fn command_timeout_aborts_it_at_the_target() {
    // TEST UNIT READY never answered.
    let r = rig(|s| s.cfg.ignore_opcode = Some(0x00));
    let (h, task) = start(&r);
    let mut tur = ScsiRequest::new(
        5,
        lun1(),
        crate::pdu::Cdb::new(&[0u8; 16]).unwrap_or_default(),
    );
    tur.timeout = Some(Duration::from_millis(200));
    h.submit(tur).expect("submitted");
    let c = r.done.recv_timeout(WAIT).expect("the command times out");
    assert_eq!(c.tag, 5);
    assert_eq!(c.result, Err(crate::scsi::TransportError::Timeout));
    // The session goes on.
    h.submit(read16(6, 0, 1)).expect("submitted");
    expect_good(&r.done.recv_timeout(WAIT).expect("read completes"));
    h.shutdown();
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
    let d = r.target.stats();
    assert_eq!(d.aborts.len(), 1, "ABORT TASK sent once");
    assert_eq!(d.connections, 1, "no reconnect needed");
}

#[test]
fn status_reports_the_negotiated_parameters_and_the_command_window() {
    let r = rig(|_| {});
    let (h, task) = start(&r);
    h.submit(read16(1, 0, 1)).expect("submitted");
    expect_good(&r.done.recv_timeout(WAIT).expect("read completes"));
    let s = h.status();
    let p = s.params.expect("parameters of the login");
    // What the fake target answers (see Conn::handle) combined with our offer.
    assert_eq!(p.max_recv_dsl(), 262_144, "ours");
    assert_eq!(p.max_send_dsl(), 8192, "the target's");
    assert_eq!(p.max_burst(), 16_384);
    assert_eq!(p.first_burst(), 8192);
    assert!(p.initial_r2t());
    assert!(!p.immediate_data());
    assert_eq!(p.max_outstanding_r2t(), 1);
    assert_eq!(p.digests(), crate::pdu::Digests::default());
    // The fake target keeps MaxCmdSN = ExpCmdSN + 15.
    assert_eq!(s.cmd_window, 16);
    h.shutdown();
    assert_eq!(r.rt.block_on(task), End::LoggedOut);
    assert_eq!(h.status().params, Some(p), "kept after the session ended");
}
