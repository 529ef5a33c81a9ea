// SPDX-License-Identifier: BSD-2-Clause
//! CHAP: known answers for every algorithm, the mutual exchange, and every refusal.

use super::*;
use alloc::format;
use alloc::vec;
use base64::Engine as _;

fn secret() -> Secret {
    Secret::new(b"secret-of-12")
}

fn challenge16() -> Vec<u8> {
    (0u8..16).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    decode_binary("T", &format!("0x{s}")).unwrap()
}

#[test]
fn responses_match_python_hashlib() {
    // python3 -c 'import hashlib; print(hashlib.new(ALG, bytes([0x2a]) + b"secret-of-12"
    //   + bytes(range(16))).hexdigest())'  for ALG in md5, sha1, sha256, sha3_256
    let cases = [
        (Algorithm::Md5, "479ff0281a36a84b4c91706547cb2667"),
        (Algorithm::Sha1, "14208ee4fcd5bdb43278a34e174347be6a624ad6"),
        (
            Algorithm::Sha256,
            "2fd87d5eacba631a1c1c10f0dcefb8024713e336f8aabb55baa9491dff56cc79",
        ),
        (
            Algorithm::Sha3_256,
            "9cae23007a7de74f5c23dff260d2729a93334ca96133cda51f00036fe5d0fa83",
        ),
    ];
    for (alg, hex) in cases {
        let r = alg.response(0x2a, &secret(), &challenge16());
        assert_eq!(r, unhex(hex), "{alg:?}");
        assert_eq!(r.len(), alg.digest_len());
    }
}

#[test]
fn longest_challenge_matches_python() {
    // python3 -c 'import hashlib; ch = bytes((i*7+3) & 0xff for i in range(1024));
    //   print(hashlib.sha256(bytes([0xff]) + b"s" + ch).hexdigest())'
    let ch: Vec<u8> = (0..1024usize).map(|i| ((i * 7 + 3) & 0xff) as u8).collect();
    let value = encode_hex(&ch);
    let decoded = decode_binary("CHAP_C", &value).unwrap();
    assert_eq!(decoded, ch);
    assert_eq!(
        Algorithm::Sha256.response(0xff, &Secret::new(b"s"), &decoded),
        unhex("f7e348cb6985cf5774a8a1df41b825f9ac6c2319322473c59b8c0fd6ab25e0cb")
    );
    let mut too_long = value.clone();
    too_long.push_str("00");
    assert_eq!(
        decode_binary("CHAP_C", &too_long),
        Err(Error::ValueTooLong {
            key: "CHAP_C",
            len: 1025
        })
    );
}

#[test]
fn binary_value_encodings() {
    let bytes = challenge16();
    // python3 -c 'import base64; print(base64.b64encode(bytes(range(16))).decode())'
    assert_eq!(
        decode_binary("K", "0bAAECAwQFBgcICQoLDA0ODw==").unwrap(),
        bytes
    );
    assert_eq!(
        decode_binary("K", "0BAAECAwQFBgcICQoLDA0ODw").unwrap(),
        bytes
    );
    assert_eq!(
        decode_binary("K", "0x000102030405060708090A0b0C0d0E0f").unwrap(),
        bytes
    );
    assert_eq!(decode_binary("K", "0XfF").unwrap(), vec![0xff]);
    assert_eq!(decode_binary("K", "0xabc").unwrap(), vec![0x0a, 0xbc]);
    assert_eq!(encode_hex(&[0x00, 0xab, 0x10]), "0x00ab10");
    assert_eq!(decode_binary("K", "0x0g"), Err(Error::BadHex { key: "K" }));
    assert_eq!(
        decode_binary("K", "0x"),
        Err(Error::EmptyValue { key: "K" })
    );
    assert_eq!(
        decode_binary("K", "0b!!!!"),
        Err(Error::BadBase64 { key: "K" })
    );
    assert_eq!(
        decode_binary("K", "abcd"),
        Err(Error::BadEncoding { key: "K" })
    );
    assert_eq!(decode_binary("K", ""), Err(Error::BadEncoding { key: "K" }));
    assert_eq!(decode_binary("K", "0xé1"), Err(Error::BadHex { key: "K" }));
}

#[test]
fn algorithm_offer_and_choice() {
    assert_eq!(offer_value(&DEFAULT_ALGORITHMS), "8,7,6,5");
    assert_eq!(offer_value(&[Algorithm::Md5]), "5");
    assert_eq!(
        parse_algorithm("7", &DEFAULT_ALGORITHMS),
        Ok(Algorithm::Sha256)
    );
    assert_eq!(
        parse_algorithm("7", &[Algorithm::Md5]),
        Err(Error::AlgorithmNotOffered(7))
    );
    assert_eq!(
        parse_algorithm("9", &DEFAULT_ALGORITHMS),
        Err(Error::AlgorithmNotOffered(9))
    );
    assert_eq!(
        parse_algorithm("8,7", &DEFAULT_ALGORITHMS),
        Err(Error::BadAlgorithm("8,7".into()))
    );
    assert_eq!(parse_identifier("255"), Ok(255));
    assert_eq!(parse_identifier("0x10"), Ok(16));
    assert_eq!(
        parse_identifier("256"),
        Err(Error::BadIdentifier("256".into()))
    );
}

fn one_way() -> ChapConfig {
    ChapConfig::new(
        Credentials {
            name: "iqn.2026-01.org.example:init".into(),
            secret: secret(),
        },
        None,
    )
}

fn mutual() -> ChapConfig {
    ChapConfig::new(
        Credentials {
            name: "init-user".into(),
            secret: secret(),
        },
        Some(Credentials {
            name: "target-user".into(),
            secret: Secret::new(b"target-secret-34"),
        }),
    )
}

#[test]
fn one_way_exchange() {
    let cfg = one_way();
    let mut chap = Chap::new(&cfg).unwrap();
    assert_eq!(chap.offer(), "8,7,6,5");
    let out = chap
        .answer_pairs(
            &[
                ("CHAP_A", "5"),
                ("CHAP_I", "42"),
                ("CHAP_C", "0x000102030405060708090a0b0c0d0e0f"),
            ],
            |_| panic!("one-way CHAP needs no randomness"),
        )
        .unwrap();
    assert_eq!(
        out,
        vec![
            ("CHAP_N", "iqn.2026-01.org.example:init".to_string()),
            ("CHAP_R", "0x479ff0281a36a84b4c91706547cb2667".to_string()),
        ]
    );
    assert!(!chap.expects_target_response());
    assert_eq!(chap.verify_target("x", "0x00"), Err(Error::OutOfOrder));
    assert_eq!(
        chap.answer("5", "1", "0x00", |_| {}),
        Err(Error::OutOfOrder)
    );
}

#[test]
fn retry_drops_the_chosen_algorithm() {
    let cfg = one_way();
    let mut chap = Chap::new(&cfg).unwrap();
    assert_eq!(chap.retry_algorithms(), None);
    chap.answer("7", "1", "0x01", |_| {}).unwrap();
    assert_eq!(chap.algorithm(), Some(Algorithm::Sha256));
    let retry = chap.retry_algorithms().unwrap();
    assert_eq!(offer_value(&retry), "8,6,5");
    let mut again = Chap::with_algorithms(&cfg, &retry).unwrap();
    again.answer("5", "1", "0x01", |_| {}).unwrap();
    assert_eq!(offer_value(&again.retry_algorithms().unwrap()), "8,6");
    let md5 = [Algorithm::Md5];
    let mut last = Chap::with_algorithms(&cfg, &md5).unwrap();
    last.answer("5", "1", "0x01", |_| {}).unwrap();
    assert_eq!(last.retry_algorithms(), None);
}

#[test]
fn md5_only_retry() {
    let cfg = one_way();
    let algs = [Algorithm::Md5];
    let mut chap = Chap::with_algorithms(&cfg, &algs).unwrap();
    assert_eq!(chap.offer(), "5");
    assert_eq!(
        chap.answer("7", "1", "0x01", |_| {}),
        Err(Error::AlgorithmNotOffered(7))
    );
}

/// Deterministic "random" source for tests: counts up.
fn counter() -> impl FnMut(&mut [u8]) {
    let mut n = 0u8;
    move |buf: &mut [u8]| {
        for b in buf {
            *b = n;
            n = n.wrapping_add(1);
        }
    }
}

#[test]
fn mutual_exchange_checks_name_and_response() {
    let cfg = mutual();
    let mut chap = Chap::new(&cfg).unwrap();
    let out = chap
        .answer("7", "1", "0x0102030405060708", counter())
        .unwrap();
    assert_eq!(out.len(), 4);
    assert_eq!(out[2].0, "CHAP_I");
    assert_eq!(out[3].0, "CHAP_C");
    assert!(chap.expects_target_response());
    // Play the target: compute its answer to our challenge with the target secret.
    let id = parse_identifier(&out[2].1).unwrap();
    let our_c = decode_binary("CHAP_C", &out[3].1).unwrap();
    assert_eq!(our_c.len(), OUR_CHALLENGE_LEN);
    let good = Algorithm::Sha256.response(id, &Secret::new(b"target-secret-34"), &our_c);
    assert_eq!(
        chap.verify_target("target-user", &encode_hex(&good)),
        Ok(())
    );
    // base64 answers are accepted too.
    let b64 = format!(
        "0b{}",
        base64::engine::general_purpose::STANDARD.encode(&good)
    );
    assert_eq!(
        chap.verify_target_pairs(&[("CHAP_N", "target-user"), ("CHAP_R", &b64)]),
        Ok(())
    );
    assert_eq!(
        chap.verify_target("impostor", &encode_hex(&good)),
        Err(Error::TargetNameMismatch {
            got: "impostor".into()
        })
    );
    let mut bad = good.clone();
    bad[31] ^= 1;
    assert_eq!(
        chap.verify_target("target-user", &encode_hex(&bad)),
        Err(Error::TargetResponseMismatch)
    );
    assert_eq!(
        chap.verify_target("target-user", &encode_hex(&good[..16])),
        Err(Error::BadResponseLength {
            expected: 32,
            got: 16
        })
    );
    // The initiator secret does not authenticate the target.
    let wrong = Algorithm::Sha256.response(id, &secret(), &our_c);
    assert_eq!(
        chap.verify_target("target-user", &encode_hex(&wrong)),
        Err(Error::TargetResponseMismatch)
    );
    assert_eq!(
        chap.verify_target_pairs(&[("CHAP_N", "target-user")]),
        Err(Error::MissingKey("CHAP_R"))
    );
}

#[test]
fn our_challenge_never_equals_the_targets() {
    let cfg = mutual();
    // A broken random source that always yields the target's challenge.
    let target_c = vec![7u8; OUR_CHALLENGE_LEN];
    let mut chap = Chap::new(&cfg).unwrap();
    assert_eq!(
        chap.answer("5", "1", &encode_hex(&target_c), |b: &mut [u8]| b.fill(7)),
        Err(Error::ChallengeReflected)
    );
}

#[test]
fn config_checks() {
    let mut cfg = mutual();
    cfg.target.as_mut().unwrap().secret = secret();
    assert_eq!(Chap::new(&cfg).err(), Some(Error::SameSecretBothWays));
    let mut cfg = one_way();
    cfg.algorithms.clear();
    assert_eq!(Chap::new(&cfg).err(), Some(Error::NoAlgorithm));
    let cfg = one_way();
    assert_eq!(
        Chap::with_algorithms(&cfg, &[]).err(),
        Some(Error::NoAlgorithm)
    );
    assert!(mutual().is_mutual());
    assert!(!cfg.is_mutual());
}

#[test]
fn secrets_never_print() {
    let cfg = mutual();
    let dbg = format!("{cfg:?}");
    assert!(!dbg.contains("secret-of-12"));
    assert!(!dbg.contains("target-secret-34"));
    let mut chap = Chap::new(&cfg).unwrap();
    chap.answer("5", "1", "0x01", counter()).unwrap();
    let dbg = format!("{chap:?}");
    assert!(!dbg.contains("secret-of-12"));
}

#[test]
fn base64_decodes_what_the_crate_decodes() {
    let crate_decode = |s: &[u8]| {
        base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT
            .decode(s)
            .ok()
    };
    // Every text of up to 7 bytes over symbols with zero and non-zero low bits, padding and a
    // byte outside the alphabet: padding in every position, groups of every length.
    let symbols = *b"AQB/+=*";
    let mut accepted = 0;
    for len in 0..=7u32 {
        for n in 0..(symbols.len() as u32).pow(len) {
            let mut rest = n;
            let text: Vec<u8> = (0..len)
                .map(|_| {
                    let s = symbols[(rest % symbols.len() as u32) as usize];
                    rest /= symbols.len() as u32;
                    s
                })
                .collect();
            let ours = decode_base64(&text);
            assert_eq!(
                ours,
                crate_decode(&text),
                "{:?}",
                core::str::from_utf8(&text)
            );
            accepted += usize::from(ours.is_some());
        }
    }
    assert!(accepted > 10_000, "{accepted}");
    // Every byte value, and longer texts both ways.
    let all: Vec<u8> = (0..=255).collect();
    for len in 0..all.len() {
        let padded = base64::engine::general_purpose::STANDARD.encode(&all[..len]);
        let unpadded = base64::engine::general_purpose::STANDARD_NO_PAD.encode(&all[..len]);
        assert_eq!(
            decode_base64(padded.as_bytes()).as_deref(),
            Some(&all[..len])
        );
        assert_eq!(
            decode_base64(unpadded.as_bytes()).as_deref(),
            Some(&all[..len])
        );
    }
    for c in 0..=255u8 {
        let text = [b'Q', b'U', c, b'D'];
        assert_eq!(decode_base64(&text), crate_decode(&text), "byte {c:#04x}");
    }
}
