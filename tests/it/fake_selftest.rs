// SPDX-License-Identifier: BSD-2-Clause
//! The scripted target checked with an independent initiator (libiscsi's tools) when it behaves,
//! so that fault tests blame the initiator only for the faults.

use isboot_tests::fake::{pattern, FakeConfig, FakeTarget, Fault};
use isboot_tests::libiscsi;

#[test]
fn libiscsi_logs_in_and_reads_capacity_and_inquiry() {
    for digests in [false, true] {
        let t = FakeTarget::start(FakeConfig {
            digests,
            ..FakeConfig::new(1 << 20, Fault::None)
        })
        .unwrap();
        let mut url = format!("iscsi://{}/{}/0", t.addr(), t.iqn());
        if digests {
            url.push_str("?header_digest=crc32c");
        }
        let inq = libiscsi::inquiry(&url).unwrap();
        assert!(inq.contains("FAKE TARGET"), "{inq}");
        assert_eq!(libiscsi::capacity(&url).unwrap(), 1 << 20);
        let s = t.stats();
        assert_eq!(s.logins, 2, "{s:?}");
        assert!(s.violations.is_empty(), "{s:?}");
    }
}

#[test]
fn disk_pattern_has_no_poison_and_varies() {
    let bytes: Vec<u8> = (0..4096).map(pattern).collect();
    assert!(!bytes.contains(&isboot_tests::fake::POISON));
    assert_ne!(bytes[0..512], bytes[512..1024]);
}
