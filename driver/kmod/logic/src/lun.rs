// SPDX-License-Identifier: BSD-2-Clause
//! LUN numbering between CAM and iSCSI.
//!
//! iSCSI carries the 8-byte SAM LUN in wire order (SAM-5 §4.7, [`Lun`]). CAM numbers LUNs with
//! a 64-bit `lun_id_t` whose 16-bit levels are stored in reverse order
//! (`CAM_EXTLUN_BYTE_SWIZZLE`), so that a single-level LUN such as `00 01 00 00 00 00 00 00` is
//! plain `1` in CAM. The swizzle exchanges the first and last, and the two middle 16-bit levels;
//! applying it twice gives the input back.

use isboot_core::lun::Lun;

/// `CAM_EXTLUN_BYTE_SWIZZLE` from `cam/cam.h`.
pub const fn extlun_byte_swizzle(lun: u64) -> u64 {
    ((lun & 0xffff_0000_0000_0000) >> 48)
        | ((lun & 0x0000_ffff_0000_0000) >> 16)
        | ((lun & 0x0000_0000_ffff_0000) << 16)
        | ((lun & 0x0000_0000_0000_ffff) << 48)
}

/// The SAM LUN of CAM's `ccb_h.target_lun`.
pub const fn from_cam(lun: u64) -> Lun {
    Lun(extlun_byte_swizzle(lun).to_be_bytes())
}

/// CAM's `lun_id_t` for a SAM LUN (what `xpt_create_path` and the probe use).
pub const fn to_cam(lun: Lun) -> u64 {
    extlun_byte_swizzle(lun.to_u64())
}

/// True when CAM can only address `lun` with `PIM_EXTLUNS` (its id does not fit the 8-bit
/// "simple" LUN range of SPC-2 targets).
pub const fn needs_extluns(lun: Lun) -> bool {
    to_cam(lun) > 0xff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_level_lun_1_is_cam_lun_1() {
        // iPXE writes LUN 1 this way into the iBFT (isboot misread it as 256).
        let sam = Lun([0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(to_cam(sam), 1);
        assert_eq!(from_cam(1), sam);
        assert!(!needs_extluns(sam));
    }

    #[test]
    fn flat_space_lun_round_trips_and_needs_extluns() {
        let sam = Lun([0x41, 0x00, 0, 0, 0, 0, 0, 0]);
        assert_eq!(to_cam(sam), 0x4100);
        assert_eq!(from_cam(0x4100), sam);
        assert!(needs_extluns(sam));
    }

    #[test]
    fn every_level_survives_the_round_trip() {
        let sam = Lun([1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(from_cam(to_cam(sam)), sam);
        assert_eq!(to_cam(sam), 0x0708_0506_0304_0102);
        assert_eq!(
            extlun_byte_swizzle(extlun_byte_swizzle(0xdead_beef_1234_5678)),
            0xdead_beef_1234_5678
        );
    }
}
