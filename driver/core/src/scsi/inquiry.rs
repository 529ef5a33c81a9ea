// SPDX-License-Identifier: BSD-2-Clause
//! Standard INQUIRY data (SPC-5 §6.6.2): the one decoder for the host block API, `isbootctl
//! boot` and the tests.
// Decoded for the host tools (isbootctl, the tests); the kernel module leaves INQUIRY to CAM.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_macros,
    reason = "host-side decoding into owned strings"
)]

use alloc::format;
use alloc::string::{String, ToString};
use core::fmt;

/// Bytes of standard INQUIRY data that hold every field decoded here.
pub const STANDARD_INQUIRY_LEN: usize = 36;

/// Standard INQUIRY data, decoded. The text fields have non-printable bytes replaced by `?`
/// and trailing blanks removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inquiry {
    /// Peripheral qualifier: 0 when a device is connected at this LUN.
    pub qualifier: u8,
    /// Peripheral device type: 0 for a direct access block device (a disk).
    pub device_type: u8,
    pub removable: bool,
    /// The SPC version the device claims (byte 2).
    pub version: u8,
    pub vendor: String,
    pub product: String,
    pub revision: String,
}

/// INQUIRY data too short for the standard fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShortInquiry {
    pub got: usize,
}

impl fmt::Display for ShortInquiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "INQUIRY returned {} bytes, standard data needs {STANDARD_INQUIRY_LEN}",
            self.got
        )
    }
}

impl core::error::Error for ShortInquiry {}

impl Inquiry {
    pub fn parse(d: &[u8]) -> Result<Inquiry, ShortInquiry> {
        let short = ShortInquiry { got: d.len() };
        let head = d.get(..STANDARD_INQUIRY_LEN).ok_or(short)?;
        let byte = |i: usize| head.get(i).copied().unwrap_or(0);
        let text = |at: usize, len: usize| {
            let field = at
                .checked_add(len)
                .and_then(|end| head.get(at..end))
                .unwrap_or_default();
            field
                .iter()
                .map(|&b| {
                    if b.is_ascii_graphic() || b == b' ' {
                        char::from(b)
                    } else {
                        '?'
                    }
                })
                .collect::<String>()
                .trim_end()
                .to_string()
        };
        Ok(Inquiry {
            qualifier: byte(0) >> 5,
            device_type: byte(0) & 0x1f,
            removable: byte(1) & 0x80 != 0,
            version: byte(2),
            vendor: text(8, 8),
            product: text(16, 16),
            revision: text(32, 4),
        })
    }

    /// CAM's wording (`scsi_print_inquiry`): "\<VENDOR PRODUCT REV\> Fixed Direct Access SPC-3
    /// SCSI device".
    pub fn describe(&self) -> String {
        let kind = match self.device_type {
            0x00 => "Direct Access",
            0x05 => "CD-ROM",
            0x0c => "Storage Array",
            0x0d => "Enclosure Services",
            0x1f => "Unknown or no device",
            _ => "Other",
        };
        let version = match self.version {
            0 => "SCSI".to_string(),
            3 => "SCSI-3".to_string(),
            v @ 4..=8 => format!("SPC-{} SCSI", v.saturating_sub(2)),
            v => format!("version {v:#04x} SCSI"),
        };
        format!(
            "<{} {} {}> {} {kind} {version} device",
            self.vendor,
            self.product,
            self.revision,
            if self.removable { "Removable" } else { "Fixed" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(device_type: u8, version: u8) -> [u8; 36] {
        let mut d = [b' '; 36];
        d[..8].copy_from_slice(&[device_type, 0, version, 0x02, 31, 0, 0, 0x02]);
        d[8..14].copy_from_slice(b"ISBOOT");
        d[16..24].copy_from_slice(b"VDISK\x01 X");
        d[32..36].copy_from_slice(b"0001");
        d
    }

    #[test]
    fn fields_and_cam_wording() {
        let i = Inquiry::parse(&data(0, 5)).unwrap();
        assert_eq!((i.qualifier, i.device_type, i.removable), (0, 0, false));
        assert_eq!(i.vendor, "ISBOOT");
        assert_eq!(i.product, "VDISK? X", "non-printable bytes show as ?");
        assert_eq!(i.revision, "0001");
        assert_eq!(
            i.describe(),
            "<ISBOOT VDISK? X 0001> Fixed Direct Access SPC-3 SCSI device"
        );
        let mut cd = data(0x05, 0x42);
        cd[1] = 0x80;
        cd[0] |= 0x20;
        let i = Inquiry::parse(&cd).unwrap();
        assert_eq!((i.qualifier, i.device_type, i.removable), (1, 5, true));
        assert!(i
            .describe()
            .ends_with("Removable CD-ROM version 0x42 SCSI device"));
    }

    #[test]
    fn short_data_is_refused_by_length() {
        let e = Inquiry::parse(&data(0, 5)[..35]).unwrap_err();
        assert_eq!(e, ShortInquiry { got: 35 });
        assert_eq!(
            e.to_string(),
            "INQUIRY returned 35 bytes, standard data needs 36"
        );
    }
}
