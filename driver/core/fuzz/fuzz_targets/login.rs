// SPDX-License-Identifier: BSD-2-Clause
//! The login state machine (`login::Login`, sans-IO) against a target whose Login Responses the
//! fuzzer writes, one after the other, until the login ends.
//!
//! Input: one mode byte (bits 0-1 authentication: CHAP, mutual CHAP or none; bits 2-3 the
//! digest setting; bits 4-6 the attempt's choices: security stage first, MD5 only, continuing a
//! session), then per response: a hints byte, the 48 bytes of its header and its text. With hints the header gets our ISID
//! and ITT, the stage we are in and status 0, and the text comes from a menu of real keys and
//! values (CHAP_A, CHAP_I and CHAP_C, a correct or wrong CHAP_R for mutual CHAP, operational
//! answers, specials, redirects), so that every stage is reached; without, every byte is the
//! fuzzer's.
//!
//! Checked at each step:
//! - every request we send carries our ISID, ITT, CmdSN and the attempt's TSIH, a valid stage
//!   pair, at most 8192 bytes of text that parses with no key twice, InitiatorName only in the
//!   first one, and never a CHAP secret; it emits and parses back unchanged;
//! - a finished login has a TSIH other than 0, and parameters within RFC 7143's bounds that
//!   agree with our offer (a digest on only if we offered CRC32C, off only if we offered None,
//!   FirstBurstLength <= MaxBurstLength);
//! - a login ends within the bound of exchanges, and its error prints as one line with no
//!   control character (the escaping choke point).
#![no_main]

use isboot_core::chap::{self, Algorithm, ChapConfig, Credentials};
use isboot_core::login::{Attempt, Login, LoginConfig, LoginError, LoginPdu, Step, LOGIN_MAX_DATA};
use isboot_core::pdu::{self, Digests, LoginResponse, Pdu, RawPdu, Stage, BHS_LEN};
use isboot_core::secret::Secret;
use isboot_core::sn::Sn;
use isboot_core::text::{parse_pairs, DigestOffer, Key, Offer};
use libfuzzer_sys::fuzz_target;

#[path = "../common/input.rs"]
mod input;
use input::Input;

const ISID: [u8; 6] = [0x80, 1, 2, 3, 4, 5];
const ITT: u32 = 0x4000_0001;
const SECRET: &[u8] = b"initiator-secret-1";
const TARGET_SECRET: &[u8] = b"target-secret-22";
/// Exchanges after which a login must have ended (the login's own bound is 32).
const MAX_STEPS: usize = 40;

const KEYS: [&str; 24] = [
    "AuthMethod",
    "CHAP_A",
    "CHAP_I",
    "CHAP_C",
    "CHAP_N",
    "CHAP_R",
    "HeaderDigest",
    "DataDigest",
    "MaxRecvDataSegmentLength",
    "MaxBurstLength",
    "FirstBurstLength",
    "InitialR2T",
    "ImmediateData",
    "MaxOutstandingR2T",
    "DataPDUInOrder",
    "DataSequenceInOrder",
    "DefaultTime2Wait",
    "DefaultTime2Retain",
    "ErrorRecoveryLevel",
    "MaxConnections",
    "TargetAlias",
    "TargetPortalGroupTag",
    "TargetAddress",
    "X-vendor.key",
];
const VALUES: [&str; 24] = [
    "None",
    "CHAP",
    "CRC32C",
    "None,CRC32C",
    "Reject",
    "Irrelevant",
    "NotUnderstood",
    "Yes",
    "No",
    "5",
    "7",
    "8",
    "0",
    "1",
    "512",
    "8192",
    "65536",
    "262144",
    "16777215",
    "0x0102030405060708090a0b0c0d0e0f10",
    "0bAQIDBAUGBwgJCgsMDQ4PEA==",
    "[::1]:3261,1",
    "192.0.2.1",
    "target",
];

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Checks one request we send (`heard`: all the target sent so far); returns its pairs.
fn check_request(
    p: &LoginPdu,
    attempt: &Attempt,
    first: bool,
    heard: &[u8],
) -> Vec<(String, String)> {
    let h = &p.header;
    assert_eq!(h.isid, ISID);
    assert_eq!(h.itt, ITT);
    assert_eq!(h.tsih, attempt.tsih);
    assert_eq!(h.cmd_sn, attempt.cmd_sn);
    assert!(
        matches!(h.csg, Stage::Security | Stage::Operational),
        "{h:?}"
    );
    if h.transit {
        let ok = matches!(
            (h.csg, h.nsg),
            (Stage::Security, Stage::Operational | Stage::FullFeature)
                | (Stage::Operational, Stage::FullFeature)
        );
        assert!(ok, "transit {:?} -> {:?}", h.csg, h.nsg);
    }
    assert!(p.data.len() <= LOGIN_MAX_DATA as usize);
    // A key we answer NotUnderstood comes back as the target wrote it: only a secret the
    // target never sent would be a leak.
    for secret in [SECRET, TARGET_SECRET] {
        assert!(
            !contains(&p.data, secret) || contains(heard, secret),
            "a secret sent"
        );
    }
    let pairs: Vec<(String, String)> = parse_pairs(&p.data)
        .expect("our text parses")
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (i, (k, _)) in pairs.iter().enumerate() {
        assert!(!pairs[..i].iter().any(|(k2, _)| k2 == k), "{k} twice");
    }
    assert_eq!(
        pairs.iter().any(|(k, _)| k == "InitiatorName"),
        first,
        "InitiatorName in the first request only"
    );
    // It goes on the wire and comes back the same.
    let mut wire = Vec::new();
    pdu::emit_pdu(h, &p.data, Digests::default(), &mut wire).expect("emits");
    let (raw, used) = RawPdu::split(&wire, Digests::default(), LOGIN_MAX_DATA).expect("splits");
    assert_eq!(used, wire.len());
    assert_eq!(raw.parse().expect("parses"), Pdu::LoginRequest(h.clone()));
    assert_eq!(raw.data, &p.data[..]);
    pairs
}

/// With FUZZ_TRACE set, says how an input ended (to see what the seeds reach).
fn trace(args: std::fmt::Arguments<'_>) {
    if std::env::var_os("FUZZ_TRACE").is_some() {
        eprintln!("login: {args}");
    }
}

fn check_error(e: &LoginError) {
    let line = e.to_string();
    trace(format_args!("error: {line}"));
    assert!(
        !line.chars().any(isboot_core::escape::needs_escape),
        "{line:?}"
    );
    assert!(line.len() < 2048, "{} bytes", line.len());
}

fn value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input(data);
    let mode = inp.u8();
    let creds = |name: &str, s: &[u8]| Credentials {
        name: name.to_string(),
        secret: Secret::new(s),
    };
    let chap = match mode & 3 {
        1 => Some(ChapConfig::new(creds("user", SECRET), None)),
        2 => Some(ChapConfig::new(
            creds("user", SECRET),
            Some(creds("target", TARGET_SECRET)),
        )),
        _ => None,
    };
    let setting = DigestOffer::SETTINGS[usize::from(mode >> 2 & 3)];
    let digests = DigestOffer::from_setting(setting).expect("a setting");
    let mut offer = Offer::default();
    offer.set_digests(digests);
    let cfg = LoginConfig {
        initiator_name: "iqn.2026-01.org.isboot:fuzz".into(),
        target_name: "iqn.2026-01.org.example:disk".into(),
        isid: ISID,
        chap,
        offer,
    };
    let attempt = Attempt {
        security_first: mode & 16 != 0,
        chap_md5_only: mode & 32 != 0,
        tsih: if mode & 64 != 0 { 0x0203 } else { 0 },
        cmd_sn: Sn(0x1000_0000),
    };
    let Ok(mut login) = Login::new(&cfg, attempt, ITT) else {
        return;
    };
    let mut req = match login.start() {
        Ok(r) => r,
        Err(e) => return check_error(&e),
    };
    let mut heard = Vec::new();
    let mut pairs = check_request(&req, &attempt, true, &heard);
    let mut alg = Algorithm::Md5;
    // The harness answered our mutual challenge with the right CHAP_R.
    let mut proved = false;
    let mut random = |b: &mut [u8]| b.fill(0x5a);
    for _ in 0..MAX_STEPS {
        let hints = inp.u8();
        let mut h = inp.bytes(BHS_LEN);
        h[0] = 0x23;
        h[4] = 0;
        if hints & 1 != 0 {
            h[8..14].copy_from_slice(&ISID);
            h[16..20].copy_from_slice(&ITT.to_be_bytes());
            // Our stage; T and NSG from the fuzzer; status success.
            let csg = match req.header.csg {
                Stage::Security => 0,
                _ => 1,
            };
            h[1] = (h[1] & 0xc3) | csg << 2;
            h[2] = 0;
            h[36] = 0;
            if hints & 2 != 0 {
                // TSIH: the attempt's, or one of our own when the login ends.
                let t = if attempt.tsih != 0 {
                    attempt.tsih
                } else {
                    0x0101
                };
                h[14..16].copy_from_slice(&t.to_be_bytes());
            }
        }
        let mut text = Vec::new();
        if hints & 4 != 0 {
            for _ in 0..inp.u8() % 8 {
                let k = KEYS[usize::from(inp.u8()) % KEYS.len()];
                let pick = inp.u8();
                let v = if k == "CHAP_R" && pick & 1 != 0 {
                    // A right (or one bit wrong) answer to our mutual challenge.
                    let id = value(&pairs, "CHAP_I").and_then(|i| i.parse::<u8>().ok());
                    let ch = value(&pairs, "CHAP_C").and_then(|c| chap::decode_binary("C", c).ok());
                    match (id, ch) {
                        (Some(id), Some(ch)) => {
                            let mut r = alg.response(id, &Secret::new(TARGET_SECRET), &ch);
                            if pick & 2 != 0 {
                                r[0] ^= 1;
                            } else {
                                proved = true;
                            }
                            chap::encode_hex(&r)
                        }
                        _ => "0x00".into(),
                    }
                } else {
                    VALUES[usize::from(pick >> 1) % VALUES.len()].to_string()
                };
                if k == "CHAP_A" {
                    if let Some(a) = v.parse().ok().and_then(Algorithm::from_number) {
                        alg = a;
                    }
                }
                text.extend_from_slice(k.as_bytes());
                text.push(b'=');
                text.extend_from_slice(v.as_bytes());
                text.push(0);
            }
        } else {
            let len = usize::from(inp.u8()) * 4;
            text = inp.bytes(len);
        }
        h[5..8].copy_from_slice(&(text.len() as u32).to_be_bytes()[1..]);
        let resp: LoginResponse = match Pdu::parse(&h) {
            Ok(Pdu::LoginResponse(r)) => r,
            _ => return,
        };
        heard.extend_from_slice(&text);
        match login.handle(&resp, &text, &mut random) {
            Ok(Step::Send(next)) => {
                pairs = check_request(&next, &attempt, false, &heard);
                req = next;
            }
            Ok(Step::Done(est)) => {
                trace(format_args!("done: {}", est.params));
                assert_ne!(est.tsih, 0, "a session without a TSIH");
                let p = est.params;
                assert!(p.first_burst() <= p.max_burst());
                assert!((512..1 << 24).contains(&p.max_send_dsl()));
                assert!((512..1 << 24).contains(&p.max_burst()));
                assert_eq!(
                    p.max_recv_dsl(),
                    Offer::default().get(Key::MaxRecvDataSegmentLength)
                );
                let d = p.digests();
                for on in [d.header, d.data] {
                    assert!(digests.allows(if on { "CRC32C" } else { "None" }), "{p:?}");
                }
                if cfg.chap.as_ref().is_some_and(|c| c.is_mutual()) {
                    assert!(
                        proved,
                        "mutual CHAP ended without the target's right CHAP_R"
                    );
                }
                return;
            }
            Ok(Step::Redirect { .. }) => return,
            Err(e) => return check_error(&e),
        }
    }
    panic!("the login did not end within {MAX_STEPS} exchanges");
});
