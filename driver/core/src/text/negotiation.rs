// SPDX-License-Identifier: BSD-2-Clause
//! One operational negotiation (RFC 7143 §6.2, §13): our [`Offer`] against the target's pairs,
//! one pair at a time. Each value is checked against its key's range and result function;
//! the caller learns what to send back; [`Negotiation::finish`] yields the [`Params`].

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::params::{Key, Kind, Offer, Params};
use super::{
    check_list_answer, parse_bool, parse_number, select_from_list, Error, TargetAddress,
    TextBuilder, IRRELEVANT, MAX_KEYS, NOT_UNDERSTOOD, REJECT,
};

/// What to do with one pair from the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Nothing to send back (an answer to our offer, or a declaration).
    None,
    /// Send this pair back (the target offered a key, or one we do not understand).
    Send(&'static str, String),
    /// Send `key=NotUnderstood`.
    NotUnderstood(String),
}

impl Reply {
    /// Appends this reply (if any) to `out`.
    pub fn encode(&self, out: &mut TextBuilder) -> Result<(), Error> {
        match self {
            Reply::None => Ok(()),
            Reply::Send(k, v) => out.push(k, v).map(|_| ()),
            Reply::NotUnderstood(k) => out.push(k, NOT_UNDERSTOOD).map(|_| ()),
        }
    }
}

/// One operational negotiation: our [`Offer`] against the target's pairs.
#[derive(Clone, Debug)]
pub struct Negotiation {
    offer: Offer,
    params: Params,
    /// Operational keys the target has sent so far (bit `1 << key`).
    answered: u32,
    /// Every key name seen, for duplicate detection across PDUs.
    seen: Vec<String>,
    target_address: Option<TargetAddress>,
    /// Declared by the target, informational.
    target_alias: Option<String>,
    target_portal_group_tag: Option<u16>,
    /// The target answered FirstBurstLength with a number (not left out, Irrelevant or Reject).
    first_burst_from_target: bool,
    /// The target answered FirstBurstLength with Reject, Irrelevant or NotUnderstood.
    first_burst_declined: bool,
}

/// Markers were dropped by RFC 7143 but RFC 3720 targets still offer them: "No" is the AND
/// result whatever they offered, and intervals are then moot.
const MARKERS: [(&str, &str); 4] = [
    ("OFMarker", "No"),
    ("IFMarker", "No"),
    ("OFMarkInt", IRRELEVANT),
    ("IFMarkInt", IRRELEVANT),
];

/// Keys only an initiator sends (RFC 7143 §13).
const INITIATOR_ONLY: [&str; 3] = ["InitiatorName", "InitiatorAlias", "SessionType"];

impl Negotiation {
    /// Starts a negotiation; fails if the offer itself is out of range.
    pub fn new(offer: Offer) -> Result<Self, Error> {
        offer.validate()?;
        let params = Params::default().with_max_recv_dsl(offer.get(Key::MaxRecvDataSegmentLength));
        Ok(Negotiation {
            offer,
            params,
            answered: 0,
            seen: Vec::new(),
            target_address: None,
            target_alias: None,
            target_portal_group_tag: None,
            first_burst_from_target: false,
            first_burst_declined: false,
        })
    }

    pub fn offer(&self) -> &Offer {
        &self.offer
    }

    /// A TargetAddress the target sent (redirect, or with SendTargets).
    pub fn target_address(&self) -> Option<&TargetAddress> {
        self.target_address.as_ref()
    }

    /// The TargetAlias the target declared.
    pub fn target_alias(&self) -> Option<&str> {
        self.target_alias.as_deref()
    }

    /// The TargetPortalGroupTag the target declared.
    pub fn target_portal_group_tag(&self) -> Option<u16> {
        self.target_portal_group_tag
    }

    /// Handles one pair the target sent. Returns what to send back. Not inlined into
    /// [`Negotiation::handle_all`]: 272 bytes less of the module.
    #[inline(never)]
    pub fn handle(&mut self, key: &str, value: &str) -> Result<Reply, Error> {
        if self.is_repeated_declaration(key, value) {
            return Ok(Reply::None);
        }
        if self.seen.iter().any(|k| k == key) {
            return Err(Error::DuplicateKey(key.to_string()));
        }
        if self.seen.len() >= MAX_KEYS {
            return Err(Error::TooManyKeys);
        }
        self.seen.push(key.to_string());
        if let Some(reply) = self.handle_declarative(key, value)? {
            return Ok(reply);
        }
        let Some(k) = Key::from_name(key) else {
            return Ok(Reply::NotUnderstood(key.to_string()));
        };
        self.answered |= 1 << (k as u32);
        if let Some(answer) = [REJECT, IRRELEVANT, NOT_UNDERSTOOD]
            .into_iter()
            .find(|s| *s == value)
        {
            let v = self.declined(k, answer)?;
            self.params.set(k, v);
            return Ok(Reply::None);
        }
        if k.kind() == Kind::Digest && !matches!(value, "CRC32C" | "None") {
            // A list is an offer from the target (not an answer): we pick.
            let ours = self.offer.digest(k);
            let pick =
                select_from_list(value, ours.values()).ok_or_else(|| Error::NoCommonValue {
                    key: k.name(),
                    ours: ours.value_string(),
                    theirs: value.to_string(),
                })?;
            self.params.set(k, u32::from(pick == "CRC32C"));
            return Ok(Reply::Send(k.name(), pick.to_string()));
        }
        let v = self.apply_result_function(k, value)?;
        if k == Key::FirstBurstLength {
            self.first_burst_from_target = true;
        }
        self.params.set(k, v);
        Ok(Reply::None)
    }

    /// Some targets repeat TargetAlias and TargetPortalGroupTag in every login response; only
    /// a change is suspicious.
    fn is_repeated_declaration(&self, key: &str, value: &str) -> bool {
        match key {
            "TargetAlias" => self.target_alias.as_deref() == Some(value),
            "TargetPortalGroupTag" => {
                self.target_portal_group_tag.is_some()
                    && number_in("TargetPortalGroupTag", value, 0, 65535).ok()
                        == self.target_portal_group_tag.map(u32::from)
            }
            _ => false,
        }
    }

    /// Keys that are not negotiated: the target's declarations, and RFC 3720's markers.
    /// `None` for every other key.
    fn handle_declarative(&mut self, key: &str, value: &str) -> Result<Option<Reply>, Error> {
        // Searched in tables: smaller than a `match` arm for each name.
        if let Some(&(name, answer)) = MARKERS.iter().find(|(n, _)| *n == key) {
            return Ok(Some(Reply::Send(name, answer.to_string())));
        }
        if let Some(&name) = INITIATOR_ONLY.iter().find(|n| **n == key) {
            return Err(Error::InitiatorOnlyKey(name));
        }
        match key {
            "TargetAlias" => self.target_alias = Some(value.to_string()),
            "TargetPortalGroupTag" => {
                let v = number_in("TargetPortalGroupTag", value, 0, 65535)?;
                self.target_portal_group_tag = u16::try_from(v).ok();
            }
            "TargetAddress" => self.target_address = Some(TargetAddress::parse(value)?),
            _ => return Ok(None),
        }
        Ok(Some(Reply::None))
    }

    /// The result of `k` when the target answered our offer with `value`, checked against the
    /// key's range and result function.
    fn apply_result_function(&self, k: Key, value: &str) -> Result<u32, Error> {
        let ours = self.offer.get(k);
        let kind = k.kind();
        let violates = |answered: u32| Error::AnswerViolatesResultFunction {
            key: k.name(),
            offered: u64::from(ours),
            answered: u64::from(answered),
        };
        match kind {
            Kind::Digest => {
                check_list_answer(k.name(), self.offer.digest(k).values(), value)?;
                Ok(u32::from(value == "CRC32C"))
            }
            Kind::And | Kind::Or => {
                let theirs = u32::from(parse_bool(k.name(), value)?);
                let result = if kind == Kind::And {
                    ours & theirs
                } else {
                    ours | theirs
                };
                // The answer is the result of the function, so it cannot differ from what our
                // offer already determined.
                if theirs == result {
                    Ok(result)
                } else {
                    Err(violates(theirs))
                }
            }
            Kind::Min(lo, hi) | Kind::Max(lo, hi) | Kind::Declare(lo, hi) => {
                let v = number_in(k.name(), value, lo, hi)?;
                let ok = match kind {
                    Kind::Min(..) => v <= ours,
                    Kind::Max(..) => v >= ours,
                    _ => true,
                };
                if ok {
                    Ok(v)
                } else {
                    Err(violates(v))
                }
            }
        }
    }

    /// The value of `k` after the target answered `answer` (Reject, Irrelevant or
    /// NotUnderstood) to our offer, or the login's end when no value is safe: the decisions
    /// of the module documentation's table.
    fn declined(&mut self, k: Key, answer: &'static str) -> Result<u32, Error> {
        match k {
            Key::HeaderDigest | Key::DataDigest | Key::MaxRecvDataSegmentLength => {
                Err(Error::Declined {
                    key: k.name(),
                    offered: self.offer.value_text(k),
                    answer,
                })
            }
            // The values that need nothing from the target: we send no unsolicited data,
            // which is right whatever the target assumed.
            Key::ImmediateData => Ok(0),
            Key::InitialR2T => Ok(1),
            Key::FirstBurstLength => {
                self.first_burst_declined = true;
                Ok(self.fallback(k))
            }
            _ => Ok(self.fallback(k)),
        }
    }

    /// Value for a key the target declined or never answered: the result function applied to
    /// our offer and the RFC default (as if the target had answered its default).
    fn fallback(&self, k: Key) -> u32 {
        let ours = self.offer.get(k);
        let dflt = k.rfc_default();
        match k.kind() {
            Kind::And => ours & dflt,
            Kind::Or => ours | dflt,
            Kind::Min(..) => ours.min(dflt),
            Kind::Max(..) => ours.max(dflt),
            Kind::Digest | Kind::Declare(..) => dflt,
        }
    }

    /// Handles every pair of a complete text, collecting the replies to send.
    pub fn handle_all(&mut self, pairs: &[(&str, &str)]) -> Result<Vec<Reply>, Error> {
        let mut out = Vec::new();
        for (k, v) in pairs {
            match self.handle(k, v)? {
                Reply::None => {}
                r => out.push(r),
            }
        }
        Ok(out)
    }

    /// Ends the negotiation: keys the target never answered get the result function of our
    /// offer and the RFC default, then FirstBurstLength <= MaxBurstLength is checked. A
    /// FirstBurstLength the target did not give (it is irrelevant with InitialR2T=Yes and
    /// ImmediateData=No) is lowered to MaxBurstLength instead; one it gave is its error.
    pub fn finish(mut self) -> Result<Params, Error> {
        self.finish_in_place()
    }

    /// [`Negotiation::finish`] for a caller that keeps the negotiation (the login, whose
    /// field it is: taking it out meant building a fresh one in its place).
    pub(crate) fn finish_in_place(&mut self) -> Result<Params, Error> {
        for k in Key::ALL {
            if self.answered & (1 << (k as u32)) == 0 {
                if k.kind() == Kind::Digest && !self.offer.digest(k).allows("None") {
                    // The default (None) is outside what we offered.
                    return Err(Error::Unanswered {
                        key: k.name(),
                        offered: self.offer.value_text(k),
                    });
                }
                let v = self.fallback(k);
                self.params.set(k, v);
            }
        }
        let mut p = self.params;
        if self.first_burst_declined && (p.immediate_data() || !p.initial_r2t()) {
            // How much unsolicited data the target takes is unknown: send none.
            p.set(Key::ImmediateData, 0);
            p.set(Key::InitialR2T, 1);
        }
        let (first, max) = (p.first_burst(), p.max_burst());
        if !self.first_burst_from_target {
            p.set(Key::FirstBurstLength, first.min(max));
        } else if first > max {
            return Err(Error::FirstBurstAboveMaxBurst { first, max });
        }
        Ok(p)
    }
}

fn number_in(key: &'static str, value: &str, lo: u32, hi: u32) -> Result<u32, Error> {
    let v = parse_number(key, value)?;
    match u32::try_from(v) {
        Ok(n) if n >= lo && n <= hi => Ok(n),
        _ => Err(Error::OutOfRange {
            key,
            value: v,
            min: u64::from(lo),
            max: u64::from(hi),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::{parse_pairs, DigestOffer};
    use alloc::vec;

    /// The default offer, changed by `f`.
    fn offer(f: impl FnOnce(&mut Offer)) -> Offer {
        let mut o = Offer::default();
        f(&mut o);
        o
    }

    /// A tgtd-like answer to our default offer.
    const TGTD_ANSWER: &[u8] = b"HeaderDigest=None\0DataDigest=None\0\
MaxRecvDataSegmentLength=65536\0MaxBurstLength=262144\0FirstBurstLength=65536\0\
InitialR2T=Yes\0ImmediateData=Yes\0MaxOutstandingR2T=1\0DataPDUInOrder=Yes\0\
DataSequenceInOrder=Yes\0DefaultTime2Wait=2\0DefaultTime2Retain=20\0\
ErrorRecoveryLevel=0\0MaxConnections=1\0TargetPortalGroupTag=1\0TargetAlias=disk0\0";

    #[test]
    fn negotiates_a_typical_answer() {
        let mut n = Negotiation::new(Offer::default()).unwrap();
        let pairs = parse_pairs(TGTD_ANSWER).unwrap();
        assert_eq!(n.handle_all(&pairs).unwrap(), vec![]);
        assert_eq!(n.target_portal_group_tag(), Some(1));
        assert_eq!(n.target_alias(), Some("disk0"));
        let p = n.finish().unwrap();
        assert_eq!(p.max_recv_dsl(), 262_144);
        assert_eq!(p.max_send_dsl(), 65_536);
        assert_eq!(p.max_burst(), 262_144);
        assert_eq!(p.first_burst(), 65_536);
        assert!(p.initial_r2t());
        assert!(p.immediate_data());
        assert!(!p.digests().header);
        assert_eq!(p.digests(), crate::pdu::Digests::default());
    }

    #[test]
    fn missing_answers_combine_offer_and_default() {
        // tgtd omits MaxRecvDataSegmentLength when it is 8192; other keys missing too.
        let mut n = Negotiation::new(Offer::default()).unwrap();
        n.handle("MaxBurstLength", "1048576").unwrap();
        let p = n.finish().unwrap();
        assert_eq!(p.max_send_dsl(), 8192);
        assert_eq!(p.max_burst(), 1_048_576);
        // min(offer 256 KiB, default 64 KiB)
        assert_eq!(p.first_burst(), 65_536);
        // OR(offer No, default Yes)
        assert!(p.initial_r2t());
        assert!(p.immediate_data());
        assert_eq!(p.default_time2wait(), 2);
        assert_eq!(p.get(Key::ErrorRecoveryLevel), 0);
    }

    #[test]
    fn answers_breaking_the_result_function_are_refused() {
        let mut n = Negotiation::new(Offer::default()).unwrap();
        assert_eq!(
            n.handle("MaxBurstLength", "16777215"),
            Err(Error::AnswerViolatesResultFunction {
                key: "MaxBurstLength",
                offered: 16_776_192,
                answered: 16_777_215
            })
        );
        let mut n = Negotiation::new(offer(|o| {
            o.set_flag(Key::ImmediateData, false);
        }))
        .unwrap();
        assert!(matches!(
            n.handle("ImmediateData", "Yes"),
            Err(Error::AnswerViolatesResultFunction { .. })
        ));
        let mut n = Negotiation::new(offer(|o| {
            o.set_flag(Key::InitialR2T, true);
        }))
        .unwrap();
        assert!(matches!(
            n.handle("InitialR2T", "No"),
            Err(Error::AnswerViolatesResultFunction { .. })
        ));
        let mut n = Negotiation::new(Offer::default()).unwrap();
        assert!(matches!(
            n.handle("DefaultTime2Wait", "1"),
            Err(Error::AnswerViolatesResultFunction { .. })
        ));
        assert_eq!(n.handle("DefaultTime2Retain", "0"), Ok(Reply::None));
        let mut n = Negotiation::new(offer(|o| {
            o.set_digests(DigestOffer::None);
        }))
        .unwrap();
        let e = n.handle("HeaderDigest", "CRC32C").unwrap_err();
        assert_eq!(
            e,
            Error::AnswerNotOffered {
                key: "HeaderDigest",
                offered: "None".into(),
                value: "CRC32C".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "HeaderDigest: target answered CRC32C, outside our offer None (the digest setting: \
             net.isboot.digests, isbootctl boot --digests)",
            "one line naming the key, our offer, the answer and the setting"
        );
    }

    #[test]
    fn range_checks_for_every_key() {
        let cases: &[(&str, &str, u64, u64)] = &[
            ("MaxRecvDataSegmentLength", "511", 512, 16_777_215),
            ("MaxRecvDataSegmentLength", "16777216", 512, 16_777_215),
            ("MaxBurstLength", "511", 512, 16_777_215),
            ("FirstBurstLength", "100", 512, 16_777_215),
            ("MaxOutstandingR2T", "0", 1, 65535),
            ("MaxConnections", "0", 1, 65535),
            ("DefaultTime2Wait", "3601", 0, 3600),
            ("DefaultTime2Retain", "4000", 0, 3600),
            ("ErrorRecoveryLevel", "3", 0, 2),
            ("TargetPortalGroupTag", "65536", 0, 65535),
        ];
        for &(key, value, min, max) in cases {
            let mut n = Negotiation::new(offer(|o| {
                o.set(Key::DefaultTime2Wait, 0);
            }))
            .unwrap();
            match n.handle(key, value) {
                Err(Error::OutOfRange {
                    min: lo, max: hi, ..
                }) => assert_eq!((lo, hi), (min, max), "{key}"),
                other => panic!("{key}={value}: {other:?}"),
            }
        }
        let mut n = Negotiation::new(Offer::default()).unwrap();
        assert!(matches!(
            n.handle("MaxBurstLength", "lots"),
            Err(Error::BadNumber { .. })
        ));
        assert!(matches!(
            n.handle("ImmediateData", "Maybe"),
            Err(Error::BadBoolean { .. })
        ));
    }

    #[test]
    fn first_burst_above_max_burst_is_refused() {
        let mut n = Negotiation::new(Offer::default()).unwrap();
        n.handle("MaxBurstLength", "4096").unwrap();
        n.handle("FirstBurstLength", "8192").unwrap();
        assert_eq!(
            n.finish(),
            Err(Error::FirstBurstAboveMaxBurst {
                first: 8192,
                max: 4096
            })
        );
    }

    #[test]
    fn first_burst_the_target_left_out_is_clamped_to_its_small_max_burst() {
        // FirstBurstLength is irrelevant with InitialR2T=Yes and ImmediateData=No, so a target
        // may leave it out (or answer Irrelevant) while declaring a MaxBurstLength below the
        // RFC default FirstBurstLength of 65536: that must not fail the login.
        for first in [None, Some(IRRELEVANT), Some(REJECT)] {
            let mut n = Negotiation::new(Offer::default()).unwrap();
            n.handle("MaxBurstLength", "16384").unwrap();
            n.handle("InitialR2T", "Yes").unwrap();
            n.handle("ImmediateData", "No").unwrap();
            if let Some(v) = first {
                n.handle("FirstBurstLength", v).unwrap();
            }
            let p = n.finish().unwrap();
            assert_eq!(
                (p.first_burst(), p.max_burst()),
                (16384, 16384),
                "{first:?}"
            );
        }
    }

    #[test]
    fn duplicates_are_refused() {
        let mut n = Negotiation::new(Offer::default()).unwrap();
        n.handle("MaxBurstLength", "4096").unwrap();
        assert_eq!(
            n.handle("MaxBurstLength", "4096"),
            Err(Error::DuplicateKey("MaxBurstLength".into()))
        );
        n.handle("X-vendor", "1").unwrap();
        assert_eq!(
            n.handle("X-vendor", "1"),
            Err(Error::DuplicateKey("X-vendor".into()))
        );
    }

    /// The decisions of the module documentation's table, for every key and every special
    /// answer: the login fails with the key, our offer and the answer, or the key takes the
    /// value that needs nothing from the target.
    #[test]
    fn special_answers_follow_the_documented_table() {
        for answer in [REJECT, IRRELEVANT, NOT_UNDERSTOOD] {
            for k in Key::ALL {
                let mut n = Negotiation::new(Offer::default()).unwrap();
                let r = n.handle(k.name(), answer);
                let fails = matches!(
                    k,
                    Key::HeaderDigest | Key::DataDigest | Key::MaxRecvDataSegmentLength
                );
                if fails {
                    let e = r.unwrap_err();
                    assert_eq!(
                        e,
                        Error::Declined {
                            key: k.name(),
                            offered: Offer::default().value_text(k),
                            answer
                        }
                    );
                    let line = e.to_string();
                    assert!(
                        line.starts_with(&alloc::format!(
                            "{}: target answered {answer} to our offer ",
                            k.name()
                        )),
                        "{line}"
                    );
                    assert!(!line.contains('\n'));
                    continue;
                }
                assert_eq!(r, Ok(Reply::None), "{k:?}={answer}");
                let p = n.finish().unwrap();
                let want = match k {
                    Key::ImmediateData => 0,
                    Key::InitialR2T => 1,
                    Key::MaxBurstLength => 262_144,
                    Key::FirstBurstLength => 65_536,
                    Key::MaxOutstandingR2T | Key::MaxConnections => 1,
                    Key::DataPduInOrder | Key::DataSequenceInOrder => 1,
                    Key::DefaultTime2Wait => 2,
                    Key::DefaultTime2Retain => 20,
                    Key::ErrorRecoveryLevel => 0,
                    Key::HeaderDigest | Key::DataDigest | Key::MaxRecvDataSegmentLength => {
                        unreachable!()
                    }
                };
                assert_eq!(p.get(k), want, "{k:?}={answer}");
                if k == Key::FirstBurstLength {
                    // How much unsolicited data the target takes is unknown: none is sent.
                    assert!(!p.immediate_data() && p.initial_r2t(), "{answer}");
                }
            }
        }
    }

    #[test]
    fn digests_the_target_leaves_unanswered() {
        // The default None is part of every offer but `require`: it applies.
        for setting in ["allow", "prefer", "forbid"] {
            let o = offer(|o| {
                o.set_digests(DigestOffer::from_setting(setting).unwrap());
            });
            let p = Negotiation::new(o).unwrap().finish().unwrap();
            assert_eq!(p.digests(), crate::pdu::Digests::default(), "{setting}");
        }
        let o = offer(|o| {
            o.set_digests(DigestOffer::Crc32c);
        });
        let mut n = Negotiation::new(o).unwrap();
        n.handle("DataDigest", "CRC32C").unwrap();
        assert_eq!(
            n.finish(),
            Err(Error::Unanswered {
                key: "HeaderDigest",
                offered: "CRC32C".into()
            })
        );
    }

    #[test]
    fn digest_negotiation() {
        let mut n = Negotiation::new(offer(|o| {
            o.set_digest(Key::HeaderDigest, DigestOffer::PreferCrc32c)
                .set_digest(Key::DataDigest, DigestOffer::PreferCrc32c);
        }))
        .unwrap();
        n.handle("HeaderDigest", "CRC32C").unwrap();
        n.handle("DataDigest", "None").unwrap();
        let p = n.finish().unwrap();
        assert!(p.digests().header);
        assert!(!p.digests().data);
        // The target offers a list to us: we pick its first that we support.
        let mut n = Negotiation::new(offer(|o| {
            o.set_digest(Key::HeaderDigest, DigestOffer::Crc32c);
        }))
        .unwrap();
        assert_eq!(
            n.handle("HeaderDigest", "None,CRC32C"),
            Ok(Reply::Send("HeaderDigest", "CRC32C".into()))
        );
        assert!(n.finish().unwrap().digests().header);
    }

    #[test]
    fn target_offers_and_unknown_keys_get_replies() {
        let mut n = Negotiation::new(Offer::default()).unwrap();
        let replies = n
            .handle_all(&[
                ("OFMarker", "Yes"),
                ("IFMarkInt", "2048~8192"),
                ("X-com.example.thing", "1"),
                ("TargetAddress", "[fe80::1]:3261,7"),
            ])
            .unwrap();
        assert_eq!(
            replies,
            vec![
                Reply::Send("OFMarker", "No".into()),
                Reply::Send("IFMarkInt", IRRELEVANT.into()),
                Reply::NotUnderstood("X-com.example.thing".into()),
            ]
        );
        let mut b = TextBuilder::default();
        for r in &replies {
            r.encode(&mut b).unwrap();
        }
        assert_eq!(
            b.as_bytes(),
            b"OFMarker=No\0IFMarkInt=Irrelevant\0X-com.example.thing=NotUnderstood\0"
        );
        assert_eq!(
            n.target_address(),
            Some(&TargetAddress {
                host: "fe80::1".into(),
                port: Some(3261),
                portal_group_tag: Some(7)
            })
        );
    }

    #[test]
    fn repeated_declarations_are_tolerated_changes_are_not() {
        let mut n = Negotiation::new(Offer::default()).unwrap();
        n.handle("TargetPortalGroupTag", "1").unwrap();
        n.handle("TargetPortalGroupTag", "1").unwrap();
        n.handle("TargetAlias", "a").unwrap();
        n.handle("TargetAlias", "a").unwrap();
        assert_eq!(
            n.handle("TargetPortalGroupTag", "2"),
            Err(Error::DuplicateKey("TargetPortalGroupTag".into()))
        );
        assert_eq!(
            n.handle("TargetAlias", "b"),
            Err(Error::DuplicateKey("TargetAlias".into()))
        );
    }

    #[test]
    fn keys_only_an_initiator_sends_fail_the_login() {
        // Found by the login fuzz target: these were answered NotUnderstood, which sent our
        // own InitiatorName back in a later request as if we did not know the key.
        for key in ["InitiatorName", "InitiatorAlias", "SessionType"] {
            let mut n = Negotiation::new(Offer::default()).unwrap();
            let e = n.handle(key, "iqn.2026-01.org.example:x").unwrap_err();
            assert_eq!(e, Error::InitiatorOnlyKey(key));
            assert_eq!(
                e.to_string(),
                alloc::format!("the target sent {key}, a key only an initiator sends")
            );
        }
    }

    #[test]
    fn too_many_keys() {
        let mut n = Negotiation::new(Offer::default()).unwrap();
        for i in 0..MAX_KEYS {
            n.handle(&alloc::format!("X-k{i}"), "1").unwrap();
        }
        assert_eq!(n.handle("X-last", "1"), Err(Error::TooManyKeys));
    }
}
