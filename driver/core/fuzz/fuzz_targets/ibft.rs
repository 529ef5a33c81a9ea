// SPDX-License-Identifier: BSD-2-Clause
//! iBFT parser, boot-pair choice, builder round trip and memory scan on arbitrary bytes.
//!
//! Input: one mode byte, then the table (or memory image). Random bytes almost never carry a
//! right checksum, so mode bit 0 makes the harness write a valid header (signature, length,
//! revision, checksum) over the input first; that lets the fuzzer reach the structure parsing.
//! Properties: nothing panics; a parsed table rebuilds and parses back equal without warnings;
//! every scan hit lies inside the image and passes the header checks.
#![no_main]

use isboot_core::ibft;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut table = rest.to_vec();
    if mode & 1 != 0 && table.len() >= ibft::HEADER_LEN {
        table[..4].copy_from_slice(b"iBFT");
        let len = table.len() as u32;
        table[4..8].copy_from_slice(&len.to_le_bytes());
        table[8] = 1;
        ibft::set_checksum(&mut table);
    }
    check_table(&table);

    // The same bytes as a memory image somewhere in the legacy scan window.
    let base = 0x8_0000 + u64::from(mode >> 1) * 0x1010;
    for hit in ibft::scan_all(&table, base) {
        assert_eq!(hit.phys_addr % 16, 0);
        assert!(hit.phys_addr >= base && hit.phys_addr + hit.length as u64 <= 0x10_0000);
        let found = hit.table(&table).expect("scan hit inside the image");
        match ibft::parse(found) {
            Ok(_) => {}
            Err(
                ibft::Error::Truncated { .. }
                | ibft::Error::BadSignature { .. }
                | ibft::Error::BadRevision { .. }
                | ibft::Error::BadChecksum { .. }
                | ibft::Error::LengthTooSmall { .. },
            ) => panic!("scan returned a table whose header does not check"),
            Err(_) => {}
        }
    }
});

fn check_table(table: &[u8]) {
    let parsed = match ibft::parse(table) {
        Ok(p) => p,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    for w in &parsed.warnings {
        let _ = w.to_string();
    }
    match parsed.ibft.boot_config() {
        Ok(boot) => {
            assert!(!boot.candidates.is_empty());
            for c in &boot.candidates {
                assert!(c.target.is_valid() && c.nic.is_valid());
                let _ = c.target.lun.number();
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    match ibft::build(&parsed.ibft) {
        Ok(bytes) => {
            let again = ibft::parse(&bytes).expect("a built table parses");
            assert_eq!(again.ibft, parsed.ibft);
            assert!(again.warnings.is_empty(), "{:?}", again.warnings);
        }
        // Shared strings in the input can be written once each in the rebuilt heap and
        // overflow 64 KiB; nothing else may fail.
        Err(ibft::BuildError::TooLarge { .. }) => {}
        Err(e) => panic!("parsed table does not rebuild: {e}"),
    }
}
