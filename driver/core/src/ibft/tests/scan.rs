// SPDX-License-Identifier: BSD-2-Clause
//! Finding the table in a memory image.

use super::*;

// ---- memory-image scan -------------------------------------------------------------------------

pub(super) const MIB: usize = 0x10_0000;

pub(super) fn image_with(tables: &[(usize, &[u8])]) -> Vec<u8> {
    let mut image = vec![0u8; MIB];
    for &(at, bytes) in tables {
        image[at..at + bytes.len()].copy_from_slice(bytes);
    }
    image
}

#[test]
fn scan_skips_decoys_and_finds_the_table() {
    let mut stale = TWO.to_vec();
    stale[0x190] ^= 1; // an old copy whose checksum no longer matches
    let mut bad_revision = NOCHAP.to_vec();
    bad_revision[8] = 2;
    set_checksum(&mut bad_revision);
    let image = image_with(&[
        (0x8_0000, b"iBFT"),                 // bare string, garbage length 0
        (0x8_1000, b"iBFT\x89\x67\x45\xc5"), // code bytes: length runs past 1 MiB
        (0x8_2008, NOCHAP),                  // valid but not 16-byte aligned
        (0x9_0000, &stale),
        (0x9_1000, &bad_revision),
        (0xa_0000, CHAP), // in the VGA hole: never scanned
        (0x9_e620, TWO),
        (0xc_0000, MUTUAL),
        (0xf_ff00, &MUTUAL[..0x100]), // would run past 1 MiB
    ]);
    let hits: Vec<_> = scan_all(&image, 0).collect();
    assert_eq!(
        hits,
        [
            ScanHit {
                phys_addr: 0x9_e620,
                offset: 0x9_e620,
                length: 665
            },
            ScanHit {
                phys_addr: 0xc_0000,
                offset: 0xc_0000,
                length: 626
            },
        ]
    );
    let first = scan(&image, 0).unwrap();
    assert_eq!(parse_ok(first.table(&image).unwrap()), parse_ok(TWO));
}

#[test]
fn scan_honours_the_image_base_address() {
    let image = image_with(&[(0x9_e620, TWO)]);
    // The same memory given as the slice [0x80000, 0x100000).
    let hit = scan(&image[0x8_0000..], 0x8_0000).unwrap();
    assert_eq!(hit.phys_addr, 0x9_e620);
    assert_eq!(hit.offset, 0x1_e620);
    assert_eq!(hit.table(&image[0x8_0000..]).unwrap(), TWO);
    // An image starting mid-way (unaligned base) still scans physical 16-byte boundaries.
    let hit = scan(&image[0x9_e000 - 3..], 0x9_e000 - 3).unwrap();
    assert_eq!(hit.phys_addr, 0x9_e620);
    // An image that ends inside the table finds nothing; one beyond the scan window neither.
    assert_eq!(scan(&image[..0x9_e700], 0), None);
    assert_eq!(scan(&image, 0x10_0000), None);
    assert_eq!(scan(&image, u64::MAX - 3), None);
    assert_eq!(scan(&[], 0), None);
}

#[test]
fn scan_finds_the_table_in_a_real_low_memory_layout() {
    // As in iPXE's pmemsave dumps: the table at 0x9e620, and iBFT strings elsewhere.
    let mut image = image_with(&[(0x9_e620, MUTUAL)]);
    for at in [0x8_8000usize, 0xd_0000, 0xf_0010] {
        image[at..at + 8].copy_from_slice(b"iBFT\xff\xff\xff\xff");
    }
    assert_eq!(scan(&image, 0).map(|h| h.phys_addr), Some(0x9_e620));
}
