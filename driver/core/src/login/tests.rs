// SPDX-License-Identifier: BSD-2-Clause
//! Login transcripts against a scripted target.

use alloc::string::String;
use alloc::vec::Vec;

use super::*;
use crate::chap::{Algorithm, ChapConfig, Credentials};
use crate::pdu::{LoginResponse, Stage};
use crate::secret::Secret;
use crate::testing::pdu::{login_response, sns, TargetPdu};
use crate::text::{parse_pairs, TextBuilder};

const ISID: [u8; 6] = [0x80, 0x12, 0x34, 0x56, 0x78, 0x9a];
const ITT: u32 = 0x8000_0001;

fn config(chap: Option<ChapConfig>) -> LoginConfig {
    LoginConfig {
        initiator_name: String::from("iqn.2026-01.org.isboot:host"),
        target_name: String::from("iqn.2026-01.org.example:disk"),
        isid: ISID,
        chap,
        offer: Offer::default(),
    }
}

fn one_way() -> ChapConfig {
    ChapConfig::new(
        Credentials {
            name: String::from("user"),
            secret: Secret::new(b"secret-of-12"),
        },
        None,
    )
}

fn mutual() -> ChapConfig {
    ChapConfig::new(
        Credentials {
            name: String::from("user"),
            secret: Secret::new(b"secret-of-12"),
        },
        Some(Credentials {
            name: String::from("target"),
            secret: Secret::new(b"target-secret-9"),
        }),
    )
}

/// The TSIH the scripted target gives the session in its final response.
const TSIH: u16 = 0x0101;

fn resp(csg: Stage, nsg: Stage, transit: bool) -> LoginResponse {
    let last = transit && nsg == Stage::FullFeature;
    LoginResponse {
        transit,
        nsg: if transit { nsg } else { Stage::Security },
        tsih: if last { TSIH } else { 0 },
        ..login_response(csg, nsg, ISID, ITT).with_sns(sns(41, 7, 38))
    }
}

fn failed(class: u8, detail: u8) -> LoginResponse {
    resp(Stage::Operational, Stage::FullFeature, false).status(class, detail)
}

fn text(pairs: &[(&str, &str)]) -> Vec<u8> {
    let mut t = TextBuilder::new(65536);
    for (k, v) in pairs {
        t.push(k, v).unwrap();
    }
    t.into_bytes()
}

fn pairs_of(pdu: &LoginPdu) -> Vec<(String, String)> {
    parse_pairs(&pdu.data)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (String::from(k), String::from(v)))
        .collect()
}

fn value<'p>(p: &'p [(String, String)], key: &str) -> Option<&'p str> {
    p.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Target answers that accept every offer of `Offer::default()` as is.
const ANSWERS: &[(&str, &str)] = &[
    ("HeaderDigest", "None"),
    ("DataDigest", "None"),
    ("MaxRecvDataSegmentLength", "65536"),
    ("MaxBurstLength", "1048576"),
    ("FirstBurstLength", "65536"),
    ("InitialR2T", "No"),
    ("ImmediateData", "Yes"),
    ("MaxOutstandingR2T", "1"),
    ("DataPDUInOrder", "Yes"),
    ("DataSequenceInOrder", "Yes"),
    ("DefaultTime2Wait", "2"),
    ("DefaultTime2Retain", "20"),
    ("ErrorRecoveryLevel", "0"),
    ("MaxConnections", "1"),
];

fn no_random(_: &mut [u8]) {}

fn step_send(s: Result<Step, LoginError>) -> LoginPdu {
    match s {
        Ok(Step::Send(p)) => p,
        other => panic!("expected a request, got {other:?}"),
    }
}

#[test]
fn without_chap_one_round_trip_reaches_full_feature_phase() {
    let cfg = config(None);
    let mut l = Login::new(&cfg, Attempt::default(), ITT).unwrap();
    let first = l.start().unwrap();
    assert_eq!(first.header.csg, Stage::Operational);
    assert_eq!(first.header.nsg, Stage::FullFeature);
    assert!(first.header.transit);
    assert_eq!(first.header.isid, ISID);
    assert_eq!(first.header.tsih, 0);
    let p = pairs_of(&first);
    assert_eq!(
        value(&p, "InitiatorName"),
        Some("iqn.2026-01.org.isboot:host")
    );
    assert_eq!(
        value(&p, "TargetName"),
        Some("iqn.2026-01.org.example:disk")
    );
    assert_eq!(value(&p, "SessionType"), Some("Normal"));
    for key in [
        "HeaderDigest",
        "MaxRecvDataSegmentLength",
        "ErrorRecoveryLevel",
        "MaxConnections",
        "ImmediateData",
        "FirstBurstLength",
    ] {
        assert!(value(&p, key).is_some(), "{key} offered");
    }
    assert!(value(&p, "AuthMethod").is_none());
    let mut r = resp(Stage::Operational, Stage::FullFeature, true);
    r.tsih = 0x1234;
    let done = l.handle(&r, &text(ANSWERS), &mut no_random).unwrap();
    let Step::Done(est) = done else {
        panic!("expected Done, got {done:?}");
    };
    assert_eq!(est.tsih, 0x1234);
    assert_eq!(est.params.max_send_dsl(), 65536);
    assert_eq!(est.params.max_burst(), 1_048_576);
    assert!(!est.params.initial_r2t());
    assert_eq!(est.sns.exp_cmd_sn, crate::sn::Sn(7));
}

#[test]
fn out_of_range_answer_fails_the_login() {
    let cfg = config(None);
    let mut l = Login::new(&cfg, Attempt::default(), ITT).unwrap();
    l.start().unwrap();
    let r = resp(Stage::Operational, Stage::FullFeature, true);
    let bad = text(&[("MaxBurstLength", "100")]);
    assert!(matches!(
        l.handle(&r, &bad, &mut no_random),
        Err(LoginError::Text(text::Error::OutOfRange { .. }))
    ));
}

#[test]
fn target_that_insists_on_security_gets_a_security_stage_next_time() {
    let cfg = config(None);
    let mut l = Login::new(&cfg, Attempt::default(), ITT).unwrap();
    l.start().unwrap();
    assert_eq!(
        l.handle(&failed(2, 0), &[], &mut no_random),
        Err(LoginError::SecurityStageRequired)
    );
    let attempt = Attempt {
        security_first: true,
        ..Attempt::default()
    };
    let mut l = Login::new(&cfg, attempt, ITT).unwrap();
    let first = l.start().unwrap();
    assert_eq!(first.header.csg, Stage::Security);
    assert!(first.header.transit);
    assert_eq!(value(&pairs_of(&first), "AuthMethod"), Some("None"));
    let r = resp(Stage::Security, Stage::Operational, true);
    let op = step_send(l.handle(&r, &text(&[("AuthMethod", "None")]), &mut no_random));
    assert_eq!(op.header.csg, Stage::Operational);
    let p = pairs_of(&op);
    assert!(
        value(&p, "InitiatorName").is_none(),
        "InitiatorName only in the first PDU"
    );
    assert!(value(&p, "MaxBurstLength").is_some());
    let done = l.handle(
        &resp(Stage::Operational, Stage::FullFeature, true),
        &text(ANSWERS),
        &mut no_random,
    );
    assert!(matches!(done, Ok(Step::Done(_))));
}

fn chap_challenge(l: &mut Login<'_>, alg: &str) -> LoginPdu {
    let r = resp(Stage::Security, Stage::Operational, false);
    l.handle(
        &r,
        &text(&[
            ("CHAP_A", alg),
            ("CHAP_I", "42"),
            ("CHAP_C", "0x000102030405060708090a0b0c0d0e0f"),
        ]),
        &mut |b: &mut [u8]| b.fill(0x5a),
    )
    .map(|s| match s {
        Step::Send(p) => p,
        other => panic!("expected a request, got {other:?}"),
    })
    .unwrap()
}

#[test]
fn one_way_chap_answers_with_the_chosen_algorithm() {
    let cfg = config(Some(one_way()));
    let mut l = Login::new(&cfg, Attempt::default(), ITT).unwrap();
    let first = l.start().unwrap();
    assert_eq!(first.header.csg, Stage::Security);
    assert!(!first.header.transit);
    assert_eq!(value(&pairs_of(&first), "AuthMethod"), Some("CHAP,None"));
    let r = resp(Stage::Security, Stage::Operational, false);
    let a = step_send(l.handle(&r, &text(&[("AuthMethod", "CHAP")]), &mut no_random));
    let p = pairs_of(&a);
    assert_eq!(value(&p, "CHAP_A"), Some("8,7,6,5"));
    assert!(value(&p, "InitiatorName").is_none());
    let answer = chap_challenge(&mut l, "5");
    assert!(answer.header.transit);
    let p = pairs_of(&answer);
    assert_eq!(value(&p, "CHAP_N"), Some("user"));
    // python3 hashlib.md5(bytes([42]) + b"secret-of-12" + bytes(range(16)))
    let expected = Algorithm::Md5.response(
        42,
        &Secret::new(b"secret-of-12"),
        &(0u8..16).collect::<Vec<u8>>(),
    );
    assert_eq!(
        value(&p, "CHAP_R"),
        Some(chap::encode_hex(&expected).as_str())
    );
    assert!(
        value(&p, "CHAP_C").is_none(),
        "one-way CHAP sends no challenge"
    );
    let op = step_send(l.handle(
        &resp(Stage::Security, Stage::Operational, true),
        &[],
        &mut no_random,
    ));
    assert_eq!(op.header.csg, Stage::Operational);
}

#[test]
fn one_way_chap_accepts_auth_method_none() {
    let cfg = config(Some(one_way()));
    let mut l = Login::new(&cfg, Attempt::default(), ITT).unwrap();
    l.start().unwrap();
    let r = resp(Stage::Security, Stage::Operational, false);
    let next = step_send(l.handle(&r, &text(&[("AuthMethod", "None")]), &mut no_random));
    assert_eq!(next.header.csg, Stage::Security);
    assert!(next.header.transit);
}

#[test]
fn rejected_algorithm_list_is_retried_with_md5_alone() {
    let cfg = config(Some(one_way()));
    let mut l = Login::new(&cfg, Attempt::default(), ITT).unwrap();
    l.start().unwrap();
    let r = resp(Stage::Security, Stage::Operational, false);
    step_send(l.handle(&r, &text(&[("AuthMethod", "CHAP")]), &mut no_random));
    let again = step_send(l.handle(&r, &text(&[("CHAP_A", "Reject")]), &mut no_random));
    assert_eq!(value(&pairs_of(&again), "CHAP_A"), Some("5"));
    let answer = chap_challenge(&mut l, "5");
    assert!(value(&pairs_of(&answer), "CHAP_R").is_some());
    // A target that fails the login instead: the driver retries with MD5 only.
    let mut l = Login::new(&cfg, Attempt::default(), ITT).unwrap();
    l.start().unwrap();
    step_send(l.handle(&r, &text(&[("AuthMethod", "CHAP")]), &mut no_random));
    assert_eq!(
        l.handle(&failed(2, 1), &[], &mut no_random),
        Err(LoginError::ChapListRefused)
    );
    let md5 = Attempt {
        chap_md5_only: true,
        ..Attempt::default()
    };
    let mut l = Login::new(&cfg, md5, ITT).unwrap();
    l.start().unwrap();
    let a = step_send(l.handle(&r, &text(&[("AuthMethod", "CHAP")]), &mut no_random));
    assert_eq!(value(&pairs_of(&a), "CHAP_A"), Some("5"));
    assert_eq!(
        l.handle(&failed(2, 1), &[], &mut no_random),
        Err(LoginError::Initiator(InitiatorError::AuthenticationFailed))
    );
}

#[test]
fn mutual_chap_refuses_auth_method_none() {
    let cfg = config(Some(mutual()));
    let mut l = Login::new(&cfg, Attempt::default(), ITT).unwrap();
    let first = l.start().unwrap();
    assert_eq!(value(&pairs_of(&first), "AuthMethod"), Some("CHAP"));
    let r = resp(Stage::Security, Stage::Operational, false);
    assert_eq!(
        l.handle(&r, &text(&[("AuthMethod", "None")]), &mut no_random),
        Err(LoginError::MutualChapRefused)
    );
}

#[test]
fn mutual_chap_checks_the_targets_answer() {
    let cfg = config(Some(mutual()));
    for good in [true, false] {
        let mut l = Login::new(&cfg, Attempt::default(), ITT).unwrap();
        l.start().unwrap();
        let r = resp(Stage::Security, Stage::Operational, false);
        step_send(l.handle(&r, &text(&[("AuthMethod", "CHAP")]), &mut no_random));
        let answer = chap_challenge(&mut l, "7");
        let p = pairs_of(&answer);
        let id: u8 = value(&p, "CHAP_I").unwrap().parse().unwrap();
        let challenge = chap::decode_binary("CHAP_C", value(&p, "CHAP_C").unwrap()).unwrap();
        let secret: &[u8] = if good {
            b"target-secret-9"
        } else {
            b"wrong-secret-00"
        };
        let resp_bytes = Algorithm::Sha256.response(id, &Secret::new(secret), &challenge);
        let hex = chap::encode_hex(&resp_bytes);
        let t = resp(Stage::Security, Stage::Operational, true);
        let got = l.handle(
            &t,
            &text(&[("CHAP_N", "target"), ("CHAP_R", &hex)]),
            &mut no_random,
        );
        if good {
            assert!(matches!(got, Ok(Step::Send(_))));
        } else {
            assert_eq!(
                got,
                Err(LoginError::Chap(chap::Error::TargetResponseMismatch))
            );
        }
    }
}

#[test]
fn redirects_carry_the_new_address() {
    let cfg = config(None);
    for (detail, permanent) in [(1u8, false), (2, true)] {
        let mut l = Login::new(&cfg, Attempt::default(), ITT).unwrap();
        l.start().unwrap();
        let got = l.handle(
            &failed(1, detail),
            &text(&[("TargetAddress", "192.0.2.7:3261,1")]),
            &mut no_random,
        );
        let Ok(Step::Redirect {
            address,
            permanent: p,
        }) = got
        else {
            panic!("expected a redirect, got {got:?}");
        };
        assert_eq!(address.host, "192.0.2.7");
        assert_eq!(address.port, Some(3261));
        assert_eq!(p, permanent);
    }
    let mut l = Login::new(&cfg, Attempt::default(), ITT).unwrap();
    l.start().unwrap();
    assert_eq!(
        l.handle(&failed(1, 1), &[], &mut no_random),
        Err(LoginError::BadRedirect)
    );
}

#[test]
fn every_status_class_has_a_clear_error() {
    let cfg = config(Some(one_way()));
    let cases = [
        (
            2,
            1,
            LoginError::Initiator(InitiatorError::AuthenticationFailed),
        ),
        (2, 3, LoginError::Initiator(InitiatorError::TargetNotFound)),
        (2, 0x42, LoginError::Initiator(InitiatorError::Other(0x42))),
        (3, 1, LoginError::Target(TargetError::ServiceUnavailable)),
        (3, 2, LoginError::Target(TargetError::OutOfResources)),
        (
            7,
            9,
            LoginError::UnknownStatus {
                class: 7,
                detail: 9,
            },
        ),
    ];
    for (class, detail, want) in cases {
        let mut l = Login::new(&cfg, Attempt::default(), ITT).unwrap();
        l.start().unwrap();
        let got = l.handle(&failed(class, detail), &[], &mut no_random);
        assert_eq!(got, Err(want.clone()));
        assert!(!alloc::format!("{}", want).is_empty());
    }
    assert!(!LoginError::Initiator(InitiatorError::AuthenticationFailed).is_transient());
    assert!(LoginError::Target(TargetError::ServiceUnavailable).is_transient());
}

#[test]
fn responses_that_do_not_fit_are_refused() {
    let cfg = config(None);
    let mut l = Login::new(&cfg, Attempt::default(), ITT).unwrap();
    l.start().unwrap();
    let mut r = resp(Stage::Operational, Stage::FullFeature, true);
    r.isid[0] ^= 1;
    assert!(matches!(
        l.handle(&r, &[], &mut no_random),
        Err(LoginError::Unexpected(_))
    ));
    let mut l = Login::new(&cfg, Attempt::default(), ITT).unwrap();
    l.start().unwrap();
    let r = resp(Stage::Security, Stage::Operational, true);
    assert!(matches!(
        l.handle(&r, &[], &mut no_random),
        Err(LoginError::Unexpected(_))
    ));
}

#[test]
fn continued_text_is_joined_before_it_is_read() {
    let cfg = config(None);
    let mut l = Login::new(&cfg, Attempt::default(), ITT).unwrap();
    l.start().unwrap();
    let all = text(ANSWERS);
    let (a, b) = all.split_at(40);
    let mut r1 = resp(Stage::Operational, Stage::FullFeature, false);
    r1.continue_bit = true;
    let more = step_send(l.handle(&r1, a, &mut no_random));
    assert!(more.data.is_empty());
    assert!(!more.header.transit);
    let done = l.handle(
        &resp(Stage::Operational, Stage::FullFeature, true),
        b,
        &mut no_random,
    );
    assert!(matches!(done, Ok(Step::Done(_))));
}

#[test]
fn failure_after_a_stronger_algorithm_retries_with_md5() {
    let cfg = config(Some(one_way()));
    let mut l = Login::new(&cfg, Attempt::default(), ITT).unwrap();
    l.start().unwrap();
    let r = resp(Stage::Security, Stage::Operational, false);
    step_send(l.handle(&r, &text(&[("AuthMethod", "CHAP")]), &mut no_random));
    chap_challenge(&mut l, "7");
    // tgtd answers with a zeroed ISID on failures: the status must still be what counts.
    let mut fail = failed(2, 1);
    fail.isid = [0; 6];
    fail.itt = 0;
    assert_eq!(
        l.handle(&fail, &[], &mut no_random),
        Err(LoginError::ChapListRefused)
    );
    // With MD5 the same failure is a real authentication failure.
    let md5 = Attempt {
        chap_md5_only: true,
        ..Attempt::default()
    };
    let mut l = Login::new(&cfg, md5, ITT).unwrap();
    l.start().unwrap();
    step_send(l.handle(&r, &text(&[("AuthMethod", "CHAP")]), &mut no_random));
    chap_challenge(&mut l, "5");
    assert_eq!(
        l.handle(&fail, &[], &mut no_random),
        Err(LoginError::Initiator(InitiatorError::AuthenticationFailed))
    );
}

#[test]
fn tsih_zero_in_the_final_response_or_a_changing_tsih_fails_the_login() {
    let cfg = config(None);
    // The final response names the session; 0 is reserved (RFC 7143 §11.13.4).
    let mut l = Login::new(&cfg, Attempt::default(), ITT).unwrap();
    l.start().unwrap();
    let mut r = resp(Stage::Operational, Stage::FullFeature, true);
    r.tsih = 0;
    assert_eq!(
        l.handle(&r, &text(ANSWERS), &mut no_random),
        Err(LoginError::Unexpected(
            "final Login Response without a TSIH (0 is reserved)"
        ))
    );
    // A TSIH shown early must stay the same.
    let security = Attempt {
        security_first: true,
        ..Attempt::default()
    };
    for (early, last, ok) in [(7u16, 7u16, true), (7, 8, false)] {
        let mut l = Login::new(&cfg, security, ITT).unwrap();
        l.start().unwrap();
        let mut r = resp(Stage::Security, Stage::Operational, true);
        r.tsih = early;
        step_send(l.handle(&r, &text(&[("AuthMethod", "None")]), &mut no_random));
        let mut r = resp(Stage::Operational, Stage::FullFeature, true);
        r.tsih = last;
        let got = l.handle(&r, &text(ANSWERS), &mut no_random);
        if ok {
            assert!(matches!(got, Ok(Step::Done(Established { tsih: 7, .. }))));
        } else {
            assert_eq!(
                got,
                Err(LoginError::Unexpected("TSIH changed during the login"))
            );
        }
    }
    // Continuing a session keeps its TSIH.
    let cont = Attempt {
        tsih: 0x0202,
        ..Attempt::default()
    };
    let mut l = Login::new(&cfg, cont, ITT).unwrap();
    assert_eq!(l.start().unwrap().header.tsih, 0x0202);
    let got = l.handle(
        &resp(Stage::Operational, Stage::FullFeature, true),
        &text(ANSWERS),
        &mut no_random,
    );
    assert_eq!(
        got,
        Err(LoginError::Unexpected(
            "TSIH differs from the session we continue"
        ))
    );
}

#[test]
fn the_default_offer_lets_the_target_choose_digests() {
    let cfg = config(None);
    let mut l = Login::new(&cfg, Attempt::default(), ITT).unwrap();
    let p = pairs_of(&l.start().unwrap());
    assert_eq!(value(&p, "HeaderDigest"), Some("None,CRC32C"));
    assert_eq!(value(&p, "DataDigest"), Some("None,CRC32C"));
    // A target that requires CRC32C picks it.
    let mut answers = ANSWERS.to_vec();
    answers[0] = ("HeaderDigest", "CRC32C");
    answers[1] = ("DataDigest", "CRC32C");
    let got = l.handle(
        &resp(Stage::Operational, Stage::FullFeature, true),
        &text(&answers),
        &mut no_random,
    );
    let Ok(Step::Done(est)) = got else {
        panic!("{got:?}")
    };
    assert!(est.params.digests().header && est.params.digests().data);
}

/// LIO requiring digests, offered `None` (the digest setting `forbid`), answers the operational
/// offer with status 0x0200 and no keys. The security-stage retry may run first, but the error
/// that ends the login names the digest keys, what we offered and the setting.
#[test]
fn an_initiator_error_after_our_offer_names_the_digest_keys_and_the_setting() {
    let mut cfg = config(None);
    cfg.offer.set_digests(DigestOffer::None);
    let mut l = Login::new(&cfg, Attempt::default(), ITT).unwrap();
    l.start().unwrap();
    assert_eq!(
        l.handle(&failed(2, 0), &[], &mut no_random),
        Err(LoginError::SecurityStageRequired),
        "the retry for targets that require a security stage runs first"
    );
    let security = Attempt {
        security_first: true,
        ..Attempt::default()
    };
    let mut l = Login::new(&cfg, security, ITT).unwrap();
    l.start().unwrap();
    let r = resp(Stage::Security, Stage::Operational, true);
    step_send(l.handle(&r, &text(&[("AuthMethod", "None")]), &mut no_random));
    let e = l.handle(&failed(2, 0), &[], &mut no_random).unwrap_err();
    assert_eq!(
        e,
        LoginError::OfferRefused {
            detail: InitiatorError::Generic,
            digests: (DigestOffer::None, DigestOffer::None),
            security_first: true
        }
    );
    assert_eq!(
        e.to_string(),
        "login refused: initiator error (0x0200) after our operational offer with \
         HeaderDigest=None, DataDigest=None: a target that requires digests answers this way; \
         allow CRC32C (the digest setting: net.isboot.digests, isbootctl boot --digests); a \
         security stage first did not help"
    );
    // Offering CRC32C alone, the hint is the other way round; offering both, it says the
    // digests are not the cause.
    for (offer, hint) in [
        (
            DigestOffer::Crc32c,
            "a target that refuses digests answers this way",
        ),
        (DigestOffer::PreferNone, "both digest values were offered"),
    ] {
        let mut cfg = config(Some(one_way()));
        cfg.offer.set_digests(offer);
        let mut l = Login::new(&cfg, Attempt::default(), ITT).unwrap();
        l.start().unwrap();
        let r = resp(Stage::Security, Stage::Operational, false);
        step_send(l.handle(&r, &text(&[("AuthMethod", "CHAP")]), &mut no_random));
        chap_challenge(&mut l, "5");
        let op = step_send(l.handle(
            &resp(Stage::Security, Stage::Operational, true),
            &[],
            &mut no_random,
        ));
        assert_eq!(op.header.csg, Stage::Operational);
        let e = l.handle(&failed(2, 7), &[], &mut no_random).unwrap_err();
        let line = e.to_string();
        assert!(line.contains("missing parameter (0x0207)"), "{line}");
        assert!(line.contains(hint), "{line}");
        assert!(!line.contains("security stage first"), "{line}");
    }
}

#[test]
fn target_chosen_text_reaches_the_message_escaped() {
    let cfg = config(Some(one_way()));
    let mut l = Login::new(&cfg, Attempt::default(), ITT).unwrap();
    l.start().unwrap();
    let r = resp(Stage::Security, Stage::Operational, false);
    let forged = "KRB5\nisbootctl: boot disk usable: \u{1b}[2J";
    let e = l
        .handle(&r, &text(&[("AuthMethod", forged)]), &mut no_random)
        .unwrap_err();
    let line = e.to_string();
    assert_eq!(
        line,
        "target chose AuthMethod=KRB5\\x0aisbootctl: boot disk usable: \\x1b[2J, which we did \
         not offer"
    );
    // A CHAP identifier and a negotiated value, the same way.
    let mut l = Login::new(&cfg, Attempt::default(), ITT).unwrap();
    l.start().unwrap();
    step_send(l.handle(&r, &text(&[("AuthMethod", "CHAP")]), &mut no_random));
    let e = l
        .handle(
            &r,
            &text(&[("CHAP_A", "5"), ("CHAP_I", "1\n2"), ("CHAP_C", "0x0102")]),
            &mut no_random,
        )
        .unwrap_err();
    assert!(!e.to_string().contains('\n'), "{e}");
    assert!(e.to_string().contains("1\\x0a2"), "{e}");
    let cfg = config(None);
    let mut l = Login::new(&cfg, Attempt::default(), ITT).unwrap();
    l.start().unwrap();
    let e = l
        .handle(
            &resp(Stage::Operational, Stage::FullFeature, true),
            &text(&[("MaxBurstLength", "12\u{7}\r\n")]),
            &mut no_random,
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "bad login text: MaxBurstLength=12\\x07\\x0d\\x0a is not a number"
    );
}
