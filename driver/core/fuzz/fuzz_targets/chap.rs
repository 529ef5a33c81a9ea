// SPDX-License-Identifier: BSD-2-Clause
//! CHAP on arbitrary target values: `CHAP_A`, `CHAP_I`, `CHAP_C`, then the target's `CHAP_N` and
//! `CHAP_R` for mutual CHAP.
//!
//! Input: one mode byte (bit 0 mutual CHAP, bit 1 offer MD5 only, bit 2 answer the target's
//! challenge correctly), then up to five NUL-separated values. Properties: nothing panics;
//! binary values decode to at most 1024 bytes and re-encode to hex that decodes back equal; an
//! accepted challenge gets a `CHAP_R` of the chosen digest's length; in mutual CHAP the response
//! computed from our own `CHAP_I`/`CHAP_C` verifies, and the same response with one bit flipped
//! does not.
#![no_main]

use isboot_core::chap::{self, Algorithm, Chap, ChapConfig, Credentials};
use isboot_core::secret::Secret;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let fields: Vec<String> = rest
        .split(|&b| b == 0)
        .take(5)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    let field = |i: usize| fields.get(i).map_or("", String::as_str);

    for v in [field(2), field(4)] {
        if let Ok(bytes) = chap::decode_binary("fuzz", v) {
            assert!(!bytes.is_empty() && bytes.len() <= chap::MAX_CHALLENGE_LEN);
            let hex = chap::encode_hex(&bytes);
            assert_eq!(chap::decode_binary("fuzz", &hex).as_deref(), Ok(&bytes[..]));
        }
    }

    let mutual = mode & 1 != 0;
    let target = mutual.then(|| Credentials {
        name: "iqn.target".into(),
        secret: Secret::new(b"target-secret-16"),
    });
    let mut config = ChapConfig::new(
        Credentials {
            name: "iqn.initiator".into(),
            secret: Secret::new(b"initiator-secret"),
        },
        target,
    );
    if mode & 2 != 0 {
        config.algorithms = vec![Algorithm::Md5];
    }
    let mut chap = Chap::new(&config).expect("valid configuration");
    let mut counter = 0u8;
    let fill = |buf: &mut [u8]| {
        for b in buf {
            counter = counter.wrapping_add(0x3b);
            *b = counter;
        }
    };
    let Ok(answer) = chap.answer(field(0), field(1), field(2), fill) else {
        return;
    };
    let algorithm = chap.algorithm().expect("answer chose an algorithm");
    let get = |k: &str| {
        answer
            .iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| v.as_str())
    };
    let r = chap::decode_binary("CHAP_R", get("CHAP_R").expect("CHAP_R sent")).expect("own hex");
    assert_eq!(r.len(), algorithm.digest_len());
    assert_eq!(get("CHAP_N"), Some("iqn.initiator"));
    assert_eq!(chap.expects_target_response(), mutual);
    if !mutual {
        return;
    }

    // The target's side of mutual CHAP, from what we sent it.
    let id = chap::parse_identifier(get("CHAP_I").expect("CHAP_I sent")).expect("own CHAP_I");
    let ours = chap::decode_binary("CHAP_C", get("CHAP_C").expect("CHAP_C sent")).expect("own hex");
    if mode & 4 != 0 {
        let good = algorithm.response(id, &Secret::new(b"target-secret-16"), &ours);
        assert_eq!(
            chap.verify_target("iqn.target", &chap::encode_hex(&good)),
            Ok(())
        );
        let mut bad = good.clone();
        if let Some(b) = bad.get_mut(usize::from(mode >> 3) % good.len()) {
            *b ^= 1;
        }
        assert!(chap
            .verify_target("iqn.target", &chap::encode_hex(&bad))
            .is_err());
    } else {
        let _ = chap.verify_target(field(3), field(4));
    }
});
