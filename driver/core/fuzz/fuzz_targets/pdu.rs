// SPDX-License-Identifier: BSD-2-Clause
//! PDU decoder on arbitrary bytes, as a target (or a man in the middle) could send them.
//!
//! Input: one mode byte (bit 0 header digest, bit 1 data digest, bits 2.. pick the
//! MaxRecvDataSegmentLength), then the bytes of the stream. Properties: nothing panics; the split
//! consumes no more than it was given and its data segment has the advertised length; a parsed
//! header re-emits to bytes that parse back to the same PDU, and emitting is deterministic.
#![no_main]

use isboot_core::pdu::{self, Digests, Header, HeaderInfo, Pdu, RawPdu, BHS_LEN, MAX_AHS_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, stream)) = data.split_first() else {
        return;
    };
    let digests = Digests {
        header: mode & 1 != 0,
        data: mode & 2 != 0,
    };
    let max_data_len =
        [512u32, 8192, 262_144, pdu::MAX_DATA_SEGMENT_LEN][usize::from(mode >> 2 & 3)];

    if let Ok(info) = HeaderInfo::parse(stream) {
        assert!(info.ahs_len <= MAX_AHS_LEN && info.ahs_len % 4 == 0);
        assert!(info.total_len(digests) >= BHS_LEN + info.ahs_len);
        let _ = info.check_data_len(max_data_len);
    }

    // The receive loop: split PDUs off the stream one after the other.
    let mut rest = stream;
    for _ in 0..16 {
        let Ok((raw, used)) = RawPdu::split(rest, digests, max_data_len) else {
            break;
        };
        assert!(used >= BHS_LEN && used <= rest.len());
        assert_eq!(raw.data.len(), raw.info.data_len as usize);
        assert!(raw.info.data_len <= max_data_len);
        if let Ok(p) = raw.parse() {
            round_trip(&p, raw.data);
            if let Pdu::ScsiResponse(_) = p {
                let _ = pdu::parse_response_data(raw.data);
            }
        }
        rest = rest.get(used..).unwrap_or_default();
    }

    // The header parser alone, on the raw bytes (no split, no digests).
    if let Ok(p) = Pdu::parse(stream) {
        round_trip(&p, &[]);
    }
});

fn round_trip(p: &Pdu, data: &[u8]) {
    for header_digest in [false, true] {
        let mut a = vec![0xa5u8; p.header_wire_len(header_digest)];
        let mut b = vec![0x5au8; a.len()];
        let n = p
            .emit(data.len(), header_digest, &mut a)
            .expect("parsed PDU re-emits");
        let m = p
            .emit(data.len(), header_digest, &mut b)
            .expect("parsed PDU re-emits");
        assert_eq!(n, a.len());
        assert_eq!(a[..n], b[..m], "emit depends on the buffer's old contents");
        let again = Pdu::parse(&a).expect("emitted PDU parses");
        assert_eq!(&again, p);
        if header_digest {
            let hl = n - pdu::DIGEST_LEN;
            pdu::check_header_digest(&a[..hl], &a[hl..]).expect("own header digest checks");
        }
    }
}
