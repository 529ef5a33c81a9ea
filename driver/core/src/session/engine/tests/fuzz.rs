// SPDX-License-Identifier: BSD-2-Clause
//! Random target PDUs and login responses: never a panic, whatever arrives.

use super::*;

/// Deterministic pseudo-random bytes for the no-panic sweeps.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }
}

#[test]
fn random_target_pdus_never_panic_the_engine() {
    // Target opcodes with their fields randomised, against a session with reads and writes
    // outstanding; whatever the engine answers, it must not panic and must stay consistent.
    const TARGET_OPS: [u8; 9] = [0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x31, 0x32];
    let mut rng = Lcg(7);
    for round in 0..300 {
        let mut s = session_in_ffp(
            params()
                .with_max_recv_dsl(4096)
                .with(Key::MaxOutstandingR2T, 2),
        );
        s.submit(read(1, 3000));
        s.submit(write(2, 5000));
        s.submit(ScsiRequest::new(3, lun1(), read16(0)));
        let _ = s.transmit();
        for _ in 0..40 {
            let mut h = [0u8; 48];
            for b in h.iter_mut() {
                *b = rng.next() as u8;
            }
            h[0] = TARGET_OPS[rng.next() as usize % TARGET_OPS.len()];
            h[4] = 0;
            // Mostly plausible ITTs, so that deep paths run.
            let itt = match rng.next() % 4 {
                0 => ITT0,
                1 => ITT1,
                2 => ITT2,
                _ => rng.next(),
            };
            h[16..20].copy_from_slice(&itt.to_be_bytes());
            let dsl = (rng.next() % 5000) as usize;
            h[5..8].copy_from_slice(&(dsl as u32).to_be_bytes()[1..]);
            let data: Vec<u8> = (0..dsl).map(|_| rng.next() as u8).collect();
            if s.e.receive(s.now, &h, &data).is_err() {
                s.e.disconnected();
                s.e.connected(params(), SNS, s.now).unwrap();
            }
            let _ = s.transmit();
            let _ = s.e.on_timer(s.now);
            while s.e.poll_event().is_some() {}
            assert!(s.e.outstanding() <= 3, "round {round}");
        }
    }
}

#[test]
fn random_login_responses_never_panic_the_login() {
    use crate::login::{Attempt, Login, LoginConfig};
    use crate::pdu::LoginResponse;
    let cfg = LoginConfig {
        initiator_name: alloc::string::String::from("iqn.2026-01.org.isboot:host"),
        target_name: alloc::string::String::from("iqn.2026-01.org.example:disk"),
        isid: [0x80, 1, 2, 3, 4, 5],
        chap: Some(crate::chap::ChapConfig::new(
            crate::chap::Credentials {
                name: alloc::string::String::from("u"),
                secret: crate::secret::Secret::new(b"0123456789ab"),
            },
            Some(crate::chap::Credentials {
                name: alloc::string::String::from("t"),
                secret: crate::secret::Secret::new(b"ba9876543210"),
            }),
        )),
        offer: crate::text::Offer::default(),
    };
    let keys = [
        "AuthMethod=CHAP",
        "AuthMethod=None",
        "CHAP_A=5",
        "CHAP_A=7",
        "CHAP_A=Reject",
        "CHAP_I=1",
        "CHAP_C=0x0102",
        "CHAP_C=0bAAEC",
        "CHAP_N=t",
        "CHAP_R=0x00",
        "MaxBurstLength=0",
        "MaxBurstLength=999999999",
        "HeaderDigest=CRC32C",
        "TargetAddress=[::1]:3261",
        "Junk",
        "=x",
    ];
    let mut rng = Lcg(11);
    for _ in 0..3000 {
        let mut l = Login::new(&cfg, Attempt::default(), 1).unwrap();
        let _ = l.start();
        for _ in 0..6 {
            let mut text = Vec::new();
            for _ in 0..(rng.next() % 5) {
                text.extend_from_slice(keys[rng.next() as usize % keys.len()].as_bytes());
                text.push(0);
            }
            let stage = |v: u32| match v % 3 {
                0 => crate::pdu::Stage::Security,
                1 => crate::pdu::Stage::Operational,
                _ => crate::pdu::Stage::FullFeature,
            };
            let r = LoginResponse {
                transit: rng.next() % 2 == 0,
                continue_bit: rng.next() % 5 == 0,
                csg: stage(rng.next()),
                nsg: stage(rng.next()),
                version_max: 0,
                version_active: (rng.next() % 8 == 0) as u8,
                isid: [0x80, 1, 2, 3, 4, 5],
                tsih: rng.next() as u16,
                itt: 1,
                sns: TargetSns {
                    stat_sn: Sn(rng.next()),
                    exp_cmd_sn: Sn(rng.next()),
                    max_cmd_sn: Sn(rng.next()),
                },
                status_class: (rng.next() % 9 == 0) as u8 * (rng.next() % 4) as u8,
                status_detail: rng.next() as u8,
            };
            if l.handle(&r, &text, &mut |b| b.fill(0x42)).is_err() {
                break;
            }
        }
    }
}
