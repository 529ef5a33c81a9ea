// SPDX-License-Identifier: BSD-2-Clause
//! The operational keys (RFC 7143 §13) as one table: each [`Key`]'s name, result function,
//! range and RFC default are declared once, in `keys!` below, and both value sets are indexed by
//! it: what we [`Offer`] and the negotiated [`Params`] the full feature phase obeys. Adding a
//! key is one line of the table; the offer's text, its validation, the negotiation's result
//! functions and the defaults for keys the target never answers all follow from it.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use super::{bool_str, Error, TextBuilder};
use crate::pdu::Digests;

/// The largest 24-bit length (MaxRecvDataSegmentLength, MaxBurstLength, FirstBurstLength).
const MAX_24: u32 = (1 << 24) - 1;

/// How a key's result is computed (RFC 7143 §6.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// HeaderDigest/DataDigest: list of CRC32C/None.
    Digest,
    /// Boolean AND (ImmediateData).
    And,
    /// Boolean OR (InitialR2T, DataPDUInOrder, DataSequenceInOrder).
    Or,
    /// Numerical minimum in `lo..=hi`.
    Min(u32, u32),
    /// Numerical maximum in `lo..=hi`.
    Max(u32, u32),
    /// Declarative, `lo..=hi` (MaxRecvDataSegmentLength: each side declares its own).
    Declare(u32, u32),
}

impl Kind {
    /// The values a key of this kind may take (booleans and digests as 0/1).
    pub(super) fn range(self) -> (u32, u32) {
        match self {
            Kind::Min(lo, hi) | Kind::Max(lo, hi) | Kind::Declare(lo, hi) => (lo, hi),
            Kind::Digest | Kind::And | Kind::Or => (0, 1),
        }
    }
}

/// Declares [`Key`] with its name, result function and RFC 7143 default, in the order the keys
/// are offered.
macro_rules! keys {
    ($($(#[$m:meta])* $key:ident = $name:literal, $kind:expr, $default:expr;)*) => {
        /// An operational key (RFC 7143 §13).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum Key {
            $($(#[$m])* $key,)*
        }

        impl Key {
            /// Every operational key, in the order they are offered.
            pub const ALL: [Key; Key::COUNT] = [$(Key::$key,)*];
            pub const COUNT: usize = [$($name,)*].len();

            /// The key's name on the wire.
            pub fn name(self) -> &'static str {
                match self {
                    $(Key::$key => $name,)*
                }
            }

            /// From a table, not a `match`: the kinds carry their ranges, so a `match` is
            /// a jump table and code to build each.
            #[expect(
                clippy::indexing_slicing,
                reason = "a Key's discriminant is below Key::COUNT, the array's length"
            )]
            pub(super) fn kind(self) -> Kind {
                const KINDS: [Kind; Key::COUNT] = [$($kind,)*];
                KINDS[self as usize]
            }

            /// The value RFC 7143 §13 gives a key that was not negotiated (booleans and
            /// digests as 0/1).
            pub fn rfc_default(self) -> u32 {
                match self {
                    $(Key::$key => $default,)*
                }
            }
        }
    };
}

keys! {
    HeaderDigest = "HeaderDigest", Kind::Digest, 0;
    DataDigest = "DataDigest", Kind::Digest, 0;
    /// Declared by each side for what it receives.
    MaxRecvDataSegmentLength = "MaxRecvDataSegmentLength", Kind::Declare(512, MAX_24), 8192;
    MaxBurstLength = "MaxBurstLength", Kind::Min(512, MAX_24), 262_144;
    FirstBurstLength = "FirstBurstLength", Kind::Min(512, MAX_24), 65_536;
    InitialR2T = "InitialR2T", Kind::Or, 1;
    ImmediateData = "ImmediateData", Kind::And, 1;
    MaxOutstandingR2T = "MaxOutstandingR2T", Kind::Min(1, 65535), 1;
    DataPduInOrder = "DataPDUInOrder", Kind::Or, 1;
    DataSequenceInOrder = "DataSequenceInOrder", Kind::Or, 1;
    DefaultTime2Wait = "DefaultTime2Wait", Kind::Max(0, 3600), 2;
    DefaultTime2Retain = "DefaultTime2Retain", Kind::Min(0, 3600), 20;
    ErrorRecoveryLevel = "ErrorRecoveryLevel", Kind::Min(0, 2), 0;
    MaxConnections = "MaxConnections", Kind::Min(1, 65535), 1;
}

impl Key {
    /// The operational key named `name`, if it is one.
    pub fn from_name(name: &str) -> Option<Key> {
        Key::ALL.iter().copied().find(|k| k.name() == name)
    }
}

/// One value per [`Key`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Values([u32; Key::COUNT]);

impl Values {
    fn rfc_defaults() -> Values {
        let mut v = Values([0; Key::COUNT]);
        for k in Key::ALL {
            v.set(k, k.rfc_default());
        }
        v
    }

    #[expect(
        clippy::indexing_slicing,
        reason = "a Key's discriminant is below Key::COUNT, the array's length"
    )]
    fn get(&self, k: Key) -> u32 {
        self.0[k as usize]
    }

    #[expect(
        clippy::indexing_slicing,
        reason = "a Key's discriminant is below Key::COUNT, the array's length"
    )]
    fn set(&mut self, k: Key, v: u32) {
        self.0[k as usize] = v;
    }
}

/// The HeaderDigest/DataDigest values we offer, in order of preference.
///
/// The default, `None,CRC32C`, is what the C isboot offered: a target that requires CRC32C
/// picks it, one that refuses digests (or lets the initiator choose) picks None, so both boot.
/// The admin's digest setting ([`DigestOffer::from_setting`]: the kernel's `net.isboot.digests`
/// tunable, `isbootctl boot --digests`) picks one of the four.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DigestOffer {
    /// `None` only (setting `forbid`): a target that requires digests refuses the login.
    None,
    /// `CRC32C` only (setting `require`): the login fails if the target refuses digests.
    Crc32c,
    /// `CRC32C,None` (setting `prefer`).
    PreferCrc32c,
    /// `None,CRC32C` (setting `allow`, the default).
    #[default]
    PreferNone,
}

impl DigestOffer {
    const ALL: [DigestOffer; 4] = [
        DigestOffer::None,
        DigestOffer::Crc32c,
        DigestOffer::PreferCrc32c,
        DigestOffer::PreferNone,
    ];

    /// The values offered, most preferred first.
    pub fn values(self) -> &'static [&'static str] {
        match self {
            DigestOffer::None => &["None"],
            DigestOffer::Crc32c => &["CRC32C"],
            DigestOffer::PreferCrc32c => &["CRC32C", "None"],
            DigestOffer::PreferNone => &["None", "CRC32C"],
        }
    }

    /// The digest setting's words, in [`DigestOffer::SETTINGS`]' order.
    pub const SETTINGS: [&'static str; 4] = ["allow", "prefer", "require", "forbid"];

    /// The offer a digest setting names: `allow` (`None,CRC32C`, the default), `prefer`
    /// (`CRC32C,None`), `require` (`CRC32C`) or `forbid` (`None`); `None` for anything else.
    pub fn from_setting(word: &str) -> Option<DigestOffer> {
        match word {
            "allow" => Some(DigestOffer::PreferNone),
            "prefer" => Some(DigestOffer::PreferCrc32c),
            "require" => Some(DigestOffer::Crc32c),
            "forbid" => Some(DigestOffer::None),
            _ => None,
        }
    }

    /// The setting's word for this offer.
    pub fn setting(self) -> &'static str {
        match self {
            DigestOffer::PreferNone => "allow",
            DigestOffer::PreferCrc32c => "prefer",
            DigestOffer::Crc32c => "require",
            DigestOffer::None => "forbid",
        }
    }

    /// Whether `value` (`None` or `CRC32C`) is among the offered values.
    pub fn allows(self, value: &str) -> bool {
        self.values().contains(&value)
    }

    /// The value as offered on the wire: `None,CRC32C`, `CRC32C`, ...
    pub fn value_string(self) -> &'static str {
        match self {
            DigestOffer::None => "None",
            DigestOffer::Crc32c => "CRC32C",
            DigestOffer::PreferCrc32c => "CRC32C,None",
            DigestOffer::PreferNone => "None,CRC32C",
        }
    }

    /// How an [`Offer`] stores it in its table.
    fn code(self) -> u32 {
        match self {
            DigestOffer::None => 0,
            DigestOffer::Crc32c => 1,
            DigestOffer::PreferCrc32c => 2,
            DigestOffer::PreferNone => 3,
        }
    }

    fn from_code(code: u32) -> Option<DigestOffer> {
        DigestOffer::ALL.into_iter().find(|d| d.code() == code)
    }
}

/// The operational keys we propose: one value per [`Key`] (booleans 0/1; HeaderDigest and
/// DataDigest through [`Offer::digest`]). `Default` follows open-iscsi's proven choices, with
/// ErrorRecoveryLevel 0 and one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    values: Values,
}

impl Default for Offer {
    fn default() -> Self {
        let mut o = Offer {
            values: Values::rfc_defaults(),
        };
        o.set_digests(DigestOffer::default())
            .set(Key::MaxRecvDataSegmentLength, 256 * 1024)
            .set(Key::MaxBurstLength, 16_776_192)
            .set(Key::FirstBurstLength, 256 * 1024)
            .set_flag(Key::InitialR2T, false);
        o
    }
}

impl Offer {
    /// Our value for `key` (booleans 0/1; for a digest key, 1 when CRC32C is our first choice).
    pub fn get(&self, key: Key) -> u32 {
        match key.kind() {
            Kind::Digest => u32::from(self.digest(key).values().first() == Some(&"CRC32C")),
            _ => self.values.get(key),
        }
    }

    /// Sets a numerical or boolean (0/1) key; [`Offer::validate`] checks the range.
    pub fn set(&mut self, key: Key, value: u32) -> &mut Self {
        self.values.set(key, value);
        self
    }

    pub fn set_flag(&mut self, key: Key, on: bool) -> &mut Self {
        self.set(key, u32::from(on))
    }

    /// What we offer for HeaderDigest or DataDigest (`None` for any other key).
    pub fn digest(&self, key: Key) -> DigestOffer {
        match key.kind() {
            Kind::Digest => DigestOffer::from_code(self.values.get(key)).unwrap_or_default(),
            _ => DigestOffer::None,
        }
    }

    /// Sets what we offer for HeaderDigest or DataDigest.
    pub fn set_digest(&mut self, key: Key, offer: DigestOffer) -> &mut Self {
        self.values.set(key, offer.code());
        self
    }

    /// Sets what we offer for both HeaderDigest and DataDigest (the digest setting).
    pub fn set_digests(&mut self, offer: DigestOffer) -> &mut Self {
        self.set_digest(Key::HeaderDigest, offer)
            .set_digest(Key::DataDigest, offer)
    }

    /// Our offer for `key` as it goes on the wire (`None,CRC32C`, `262144`, `Yes`).
    pub fn value_text(&self, key: Key) -> String {
        match key.kind() {
            Kind::Digest => self.digest(key).value_string().to_string(),
            Kind::And | Kind::Or => bool_str(self.get(key) != 0).to_string(),
            _ => self.get(key).to_string(),
        }
    }

    /// Checks every value against its key's range, and FirstBurstLength <= MaxBurstLength.
    pub fn validate(&self) -> Result<(), Error> {
        for key in Key::ALL {
            let bad = match key.kind() {
                Kind::Digest => DigestOffer::from_code(self.values.get(key)).is_none(),
                kind => {
                    let (lo, hi) = kind.range();
                    !(lo..=hi).contains(&self.values.get(key))
                }
            };
            if bad {
                return Err(Error::BadOffer { key: key.name() });
            }
        }
        if self.get(Key::FirstBurstLength) > self.get(Key::MaxBurstLength) {
            return Err(Error::BadOffer {
                key: Key::FirstBurstLength.name(),
            });
        }
        Ok(())
    }

    /// The pairs to send in the operational stage, in a fixed order. Every key is sent, since
    /// some targets fail when MaxConnections, ImmediateData or FirstBurstLength are missing.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        Key::ALL
            .iter()
            .map(|&key| (key.name(), self.value_text(key)))
            .collect()
    }

    /// [`Offer::pairs`] encoded as text data: each pushed as it is written, not collected in
    /// a vector of pairs first.
    pub fn encode(&self, out: &mut TextBuilder) -> Result<(), Error> {
        for key in Key::ALL {
            out.push(key.name(), &self.value_text(key))?;
        }
        Ok(())
    }
}

/// The operational parameters of a session (RFC 7143 §13) as negotiated: one value per [`Key`]
/// (booleans and digests 0/1), the RFC default for every key that was not negotiated. The full
/// feature phase reads them through the typed views.
///
/// MaxRecvDataSegmentLength is declared by each side: the table holds the target's declaration
/// (the bound for what we send, [`Params::max_send_dsl`]); ours, the bound for what the target
/// sends, is [`Params::max_recv_dsl`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    values: Values,
    max_recv_dsl: u32,
}

impl Default for Params {
    /// The RFC 7143 defaults (§13).
    fn default() -> Self {
        Params {
            values: Values::rfc_defaults(),
            max_recv_dsl: Key::MaxRecvDataSegmentLength.rfc_default(),
        }
    }
}

impl Params {
    /// The negotiated value of `key`; for MaxRecvDataSegmentLength the target's declaration.
    pub fn get(&self, key: Key) -> u32 {
        self.values.get(key)
    }

    /// These parameters with `key` set to `value` (booleans and digests 0/1; for
    /// MaxRecvDataSegmentLength the target's declaration).
    pub fn with(mut self, key: Key, value: u32) -> Self {
        self.set(key, value);
        self
    }

    /// These parameters with our MaxRecvDataSegmentLength declaration set to `value`.
    pub fn with_max_recv_dsl(mut self, value: u32) -> Self {
        self.max_recv_dsl = value;
        self
    }

    pub(super) fn set(&mut self, key: Key, value: u32) {
        self.values.set(key, value);
    }

    /// Our MaxRecvDataSegmentLength: the largest data segment the target may send us.
    pub fn max_recv_dsl(&self) -> u32 {
        self.max_recv_dsl
    }

    /// The target's MaxRecvDataSegmentLength: the largest data segment we may send.
    pub fn max_send_dsl(&self) -> u32 {
        self.get(Key::MaxRecvDataSegmentLength)
    }

    pub fn max_burst(&self) -> u32 {
        self.get(Key::MaxBurstLength)
    }

    pub fn first_burst(&self) -> u32 {
        self.get(Key::FirstBurstLength)
    }

    pub fn initial_r2t(&self) -> bool {
        self.get(Key::InitialR2T) != 0
    }

    pub fn immediate_data(&self) -> bool {
        self.get(Key::ImmediateData) != 0
    }

    /// MaxOutstandingR2T, at least 1 (the negotiated range's floor).
    pub fn max_outstanding_r2t(&self) -> u16 {
        u16::try_from(self.get(Key::MaxOutstandingR2T).max(1)).unwrap_or(u16::MAX)
    }

    /// The digests as the PDU layer wants them.
    pub fn digests(&self) -> Digests {
        Digests {
            header: self.get(Key::HeaderDigest) != 0,
            data: self.get(Key::DataDigest) != 0,
        }
    }

    /// DefaultTime2Wait in seconds (at most 3600 once negotiated).
    pub fn default_time2wait(&self) -> u16 {
        u16::try_from(self.get(Key::DefaultTime2Wait)).unwrap_or(u16::MAX)
    }

    /// DefaultTime2Retain in seconds (at most 3600 once negotiated).
    pub fn default_time2retain(&self) -> u16 {
        u16::try_from(self.get(Key::DefaultTime2Retain)).unwrap_or(u16::MAX)
    }
}

/// The form the session's "negotiated" log line, `isbootctl boot` and the tests share.
impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.digests();
        write!(
            f,
            "MaxRecvDataSegmentLength {}/{} (ours/target's), MaxBurstLength {}, FirstBurstLength {}, \
             InitialR2T {}, ImmediateData {}, MaxOutstandingR2T {}, HeaderDigest {}, DataDigest {}",
            self.max_recv_dsl(),
            self.max_send_dsl(),
            self.max_burst(),
            self.first_burst(),
            self.initial_r2t(),
            self.immediate_data(),
            self.max_outstanding_r2t(),
            d.header,
            d.data,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_pairs;
    use super::*;
    use alloc::vec;

    #[test]
    fn the_table_names_every_key_once_with_its_rfc_default() {
        assert_eq!(Key::ALL.len(), 14);
        for (i, k) in Key::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i, "{k:?}");
            assert_eq!(Key::from_name(k.name()), Some(*k));
            let (lo, hi) = k.kind().range();
            assert!((lo..=hi).contains(&k.rfc_default()), "{k:?}");
        }
        assert_eq!(Key::from_name("TargetAlias"), None);
        let p = Params::default();
        assert_eq!(
            (
                p.max_recv_dsl(),
                p.max_send_dsl(),
                p.max_burst(),
                p.first_burst()
            ),
            (8192, 8192, 262_144, 65_536)
        );
        assert!(p.initial_r2t() && p.immediate_data());
        assert_eq!((p.default_time2wait(), p.default_time2retain()), (2, 20));
        assert_eq!(p.digests(), Digests::default());
    }

    #[test]
    fn default_offer_pairs() {
        let o = Offer::default();
        o.validate().unwrap();
        let mut b = TextBuilder::default();
        o.encode(&mut b).unwrap();
        let text = b.into_bytes();
        let pairs = parse_pairs(&text).unwrap();
        assert_eq!(
            pairs,
            vec![
                ("HeaderDigest", "None,CRC32C"),
                ("DataDigest", "None,CRC32C"),
                ("MaxRecvDataSegmentLength", "262144"),
                ("MaxBurstLength", "16776192"),
                ("FirstBurstLength", "262144"),
                ("InitialR2T", "No"),
                ("ImmediateData", "Yes"),
                ("MaxOutstandingR2T", "1"),
                ("DataPDUInOrder", "Yes"),
                ("DataSequenceInOrder", "Yes"),
                ("DefaultTime2Wait", "2"),
                ("DefaultTime2Retain", "20"),
                ("ErrorRecoveryLevel", "0"),
                ("MaxConnections", "1"),
            ]
        );
        let mut o = Offer::default();
        o.set_digest(Key::HeaderDigest, DigestOffer::PreferCrc32c)
            .set_digest(Key::DataDigest, DigestOffer::Crc32c);
        let p = o.pairs();
        assert_eq!(p[0], ("HeaderDigest", "CRC32C,None".to_string()));
        assert_eq!(p[1], ("DataDigest", "CRC32C".to_string()));
        // encode writes the pairs as they are listed.
        let mut b = TextBuilder::default();
        o.encode(&mut b).unwrap();
        let text = b.into_bytes();
        let encoded = parse_pairs(&text).unwrap();
        assert!(encoded
            .iter()
            .map(|&(k, v)| (k, v))
            .eq(p.iter().map(|(k, v)| (*k, v.as_str()))));
        assert_eq!(o.digest(Key::MaxBurstLength), DigestOffer::None);
    }

    #[test]
    fn bad_offers_are_refused() {
        let with = |f: &dyn Fn(&mut Offer)| {
            let mut o = Offer::default();
            f(&mut o);
            o
        };
        for o in [
            with(&|o| {
                o.set(Key::MaxRecvDataSegmentLength, 511);
            }),
            with(&|o| {
                o.set(Key::MaxBurstLength, 1 << 24);
            }),
            with(&|o| {
                o.set(Key::FirstBurstLength, 1 << 20)
                    .set(Key::MaxBurstLength, 1 << 19);
            }),
            with(&|o| {
                o.set(Key::ErrorRecoveryLevel, 3);
            }),
            with(&|o| {
                o.set(Key::MaxConnections, 0);
            }),
            with(&|o| {
                o.set(Key::DefaultTime2Wait, 3601);
            }),
            with(&|o| {
                o.set(Key::InitialR2T, 2);
            }),
            with(&|o| {
                o.set(Key::DataDigest, 4);
            }),
        ] {
            assert!(matches!(o.validate(), Err(Error::BadOffer { .. })), "{o:?}");
        }
    }

    #[test]
    fn typed_views_narrow_without_wrapping() {
        let p = Params::default()
            .with(Key::MaxOutstandingR2T, 0)
            .with(Key::DefaultTime2Wait, 70_000)
            .with(Key::HeaderDigest, 1)
            .with_max_recv_dsl(65_536);
        assert_eq!(p.max_outstanding_r2t(), 1);
        assert_eq!(p.default_time2wait(), u16::MAX);
        assert_eq!(
            p.digests(),
            Digests {
                header: true,
                data: false
            }
        );
        assert_eq!(p.max_recv_dsl(), 65_536);
        assert_eq!(p.max_send_dsl(), 8192);
        assert_eq!(
            Params::default()
                .with(Key::MaxOutstandingR2T, 1 << 20)
                .max_outstanding_r2t(),
            u16::MAX
        );
    }
}
