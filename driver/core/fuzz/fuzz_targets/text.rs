// SPDX-License-Identifier: BSD-2-Clause
//! Text key=value parsing and operational negotiation on arbitrary target answers.
//!
//! Input: one mode byte (bits 0..3 choose how the text is cut into C-bit continuations), then
//! the text data. Properties: nothing panics; joining continuations gives back the text; parsed
//! pairs re-encode and parse back equal; the negotiation answers or refuses every key without
//! panicking, and a finished negotiation honours its bounds.
#![no_main]

use isboot_core::text::{self, Accumulator, Negotiation, Offer, TargetAddress, TextBuilder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };

    // Continuations: cut into pieces of `step` bytes, C bit on all but the last.
    let step = usize::from(mode & 15) * 7 + 1;
    let mut acc = Accumulator::new(text::DEFAULT_MAX_TEXT_LEN);
    let pieces: Vec<&[u8]> = body.chunks(step).collect();
    let mut complete = body.is_empty();
    for (i, piece) in pieces.iter().enumerate() {
        let more = i + 1 < pieces.len();
        match acc.push(piece, more) {
            Ok(done) => {
                assert_eq!(done, !more);
                complete = done;
            }
            Err(_) => {
                complete = false;
                break;
            }
        }
    }
    if complete && !body.is_empty() {
        assert_eq!(acc.text(), body);
    }
    let _ = acc.pairs();

    // The split for sending is lossless and respects the segment size.
    let mut joined = Vec::new();
    for (chunk, more) in text::split_for_pdus(body, step) {
        assert!(chunk.len() <= step);
        joined.extend_from_slice(chunk);
        let _ = more;
    }
    assert_eq!(joined, body);

    let Ok(pairs) = text::parse_pairs(body) else {
        return;
    };
    // Our own text never repeats a key (TextBuilder refuses); a target's may (SendTargets).
    let mut out = TextBuilder::new(usize::MAX);
    let mut repeated = false;
    for (k, v) in &pairs {
        match out.push(k, v) {
            Ok(_) => {}
            Err(text::Error::DuplicateKey(_)) => repeated = true,
            Err(e) => panic!("parsed pair {k}={v} does not re-encode: {e}"),
        }
    }
    if !repeated {
        let reparsed = text::parse_pairs(out.as_bytes()).expect("encoded pairs parse");
        assert_eq!(reparsed, pairs);
    }
    if let Ok(targets) = text::parse_send_targets(&pairs) {
        let _ = format!("{targets:?}");
    }
    let _ = pairs
        .iter()
        .filter(|(k, _)| text::is_security_key(k))
        .count();

    let mut n = Negotiation::new(Offer::default()).expect("default offer is valid");
    let mut ok = true;
    for (k, v) in &pairs {
        let _ = text::parse_number("fuzz", v);
        let _ = text::parse_bool("fuzz", v);
        let _ = TargetAddress::parse(v);
        let _ = text::select_from_list(v, &["CRC32C", "None"]);
        if n.handle(k, v).is_err() {
            ok = false;
            break;
        }
    }
    if ok {
        if let Ok(params) = n.finish() {
            let _ = format!("{params:?}");
        }
    }
});
