// SPDX-License-Identifier: BSD-2-Clause
//! The login phase as a sans-IO state machine (RFC 7143 §6.3, §11.12–11.13).
//!
//! [`Login::start`] gives the first Login Request; each Login Response goes to
//! [`Login::handle`], which answers with the next request ([`Step::Send`]), the end of the login
//! ([`Step::Done`] with the negotiated parameters and sequence numbers), or a redirect.
//!
//! Paths:
//! - No CHAP: the first PDU is in the operational stage with T=1 towards full feature phase, so
//!   one round trip suffices. A target that insists on a security stage fails that login; with
//!   [`Attempt::security_first`] the next attempt starts with `AuthMethod=None`.
//! - CHAP: security stage with `AuthMethod=CHAP,None` (one-way) or `CHAP` (mutual), then
//!   `CHAP_A=8,7,6,5`. A target that answers `CHAP_A=Reject` (or an algorithm we did not offer) is
//!   asked again with `CHAP_A=5` on the same connection; one that fails the login instead gets
//!   [`LoginError::ChapListRefused`], and [`Attempt::chap_md5_only`] retries with MD5 alone; so
//!   does one that chose a stronger algorithm and then failed the authentication (tgtd accepts
//!   SHA-256 but cannot decode its 32-byte response). In
//!   mutual CHAP an `AuthMethod=None` answer is refused: the target would not prove itself.
//! - InitiatorName (and SessionType, TargetName) go only in the first PDU: FreeBSD's ctld drops
//!   the connection when they come again.
//!
//! Every response is checked: ISID, ITT, version, stages, status class, text syntax, each
//! operational answer against its range and result function and the strict rules for
//! Reject/Irrelevant/NotUnderstood (done by [`crate::text`], whose documentation lists them),
//! and the TSIH: non-zero in the final response, never changed during the login
//! (`Login::check_tsih`).
//!
//! Failures say why: a target that answers our operational offer with a bare "initiator error"
//! ([`LoginError::OfferRefused`]) gets a line naming the digests we offered and the setting that
//! changes them, and whether the security-stage retry above already ran; a retry never replaces
//! the error that ends the login. Target text in an error is escaped ([`crate::escape`]).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::chap::{self, Algorithm, Chap, ChapConfig};
use crate::escape::Untrusted;
use crate::pdu::{self, LoginRequest, LoginResponse, Stage, TargetSns};
use crate::sn::Sn;
use crate::text::{
    self, Accumulator, DigestOffer, Key, Negotiation, Offer, Params, Reply, TargetAddress,
    TextBuilder,
};

/// Data segment limit during login (RFC 7143 §12.12: 8192 until negotiated).
pub const LOGIN_MAX_DATA: u32 = 8192;
/// Request/response exchanges before a login is given up as looping.
const MAX_ROUNDS: u32 = 32;

/// What a login needs to know.
#[derive(Clone, Debug)]
pub struct LoginConfig {
    pub initiator_name: String,
    pub target_name: String,
    /// Random per boot, the same for every connection of the session (reinstatement needs it).
    pub isid: [u8; 6],
    pub chap: Option<ChapConfig>,
    pub offer: Offer,
}

/// Choices that differ between attempts of the same session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attempt {
    /// Start with a security stage even without CHAP.
    pub security_first: bool,
    /// Offer only MD5 (old targets reject the algorithm list).
    pub chap_md5_only: bool,
    /// TSIH of the session to continue; 0 creates a new session (ERL 0 reinstatement).
    pub tsih: u16,
    /// CmdSN of the login request (the session's next CmdSN).
    pub cmd_sn: Sn,
}

/// One Login Request to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginPdu {
    pub header: LoginRequest,
    pub data: Vec<u8>,
}

/// A completed login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Established {
    pub params: Params,
    pub tsih: u16,
    pub sns: TargetSns,
}

/// What to do after a Login Response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Send(LoginPdu),
    Done(Established),
    /// Status class 1: connect to `address` and log in there.
    Redirect {
        address: TargetAddress,
        permanent: bool,
    },
}

/// Why a login failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginError {
    /// Status class 2 (RFC 7143 §11.13.5).
    Initiator(InitiatorError),
    /// Status class 3.
    Target(TargetError),
    /// A status class RFC 7143 does not define.
    UnknownStatus { class: u8, detail: u8 },
    /// The Login Response itself is malformed.
    Pdu(pdu::Error),
    /// The text data is malformed or an answer is out of range.
    Text(text::Error),
    /// CHAP failed (bad challenge, target's name or response wrong in mutual CHAP, ...).
    Chap(chap::Error),
    /// Mutual CHAP is configured but the target chose `AuthMethod=None`.
    MutualChapRefused,
    /// The target chose `AuthMethod=None` although we only offered CHAP, or another method.
    AuthMethod(String),
    /// The target failed the login after our CHAP_A list: retry with MD5 alone.
    ChapListRefused,
    /// The target refused an operational-stage start: retry with a security stage first.
    SecurityStageRequired,
    /// Status class 2 in answer to our operational offer, with a detail that names no cause
    /// of its own (initiator error, missing parameter, invalid during login): the target
    /// could not accept a key of the offer. `digests` is what we offered for HeaderDigest and
    /// DataDigest, the keys targets most often insist on; `security_first` says the login
    /// already had a security stage (the retry for targets that require one did not help).
    OfferRefused {
        detail: InitiatorError,
        digests: (DigestOffer, DigestOffer),
        security_first: bool,
    },
    /// A response whose ISID, ITT, version or stages do not fit our request.
    Unexpected(&'static str),
    /// A redirect without a usable TargetAddress.
    BadRedirect,
    /// More exchanges than any sane login needs.
    TooManyRounds,
}

/// Status class 2 details.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitiatorError {
    Generic,
    AuthenticationFailed,
    AuthorizationFailed,
    TargetNotFound,
    TargetRemoved,
    UnsupportedVersion,
    TooManyConnections,
    MissingParameter,
    CannotIncludeInSession,
    SessionTypeNotSupported,
    SessionDoesNotExist,
    InvalidDuringLogin,
    Other(u8),
}

impl InitiatorError {
    /// The status detail (RFC 7143 §11.13.5).
    pub fn code(self) -> u8 {
        match self {
            Self::Generic => 0x00,
            Self::AuthenticationFailed => 0x01,
            Self::AuthorizationFailed => 0x02,
            Self::TargetNotFound => 0x03,
            Self::TargetRemoved => 0x04,
            Self::UnsupportedVersion => 0x05,
            Self::TooManyConnections => 0x06,
            Self::MissingParameter => 0x07,
            Self::CannotIncludeInSession => 0x08,
            Self::SessionTypeNotSupported => 0x09,
            Self::SessionDoesNotExist => 0x0a,
            Self::InvalidDuringLogin => 0x0b,
            Self::Other(d) => d,
        }
    }

    /// What the detail means, for a message ("initiator error" for a detail RFC 7143 does not
    /// define).
    pub fn words(self) -> &'static str {
        match self {
            InitiatorError::Generic | InitiatorError::Other(_) => "initiator error",
            InitiatorError::AuthenticationFailed => {
                "authentication failed (check the CHAP name and secret)"
            }
            InitiatorError::AuthorizationFailed => {
                "not authorized for this target (check the target's ACL)"
            }
            InitiatorError::TargetNotFound => "target name not found on this portal",
            InitiatorError::TargetRemoved => "target removed",
            InitiatorError::UnsupportedVersion => "iSCSI version not supported",
            InitiatorError::TooManyConnections => "too many connections",
            InitiatorError::MissingParameter => "missing parameter",
            InitiatorError::CannotIncludeInSession => "cannot include in session",
            InitiatorError::SessionTypeNotSupported => "session type not supported",
            InitiatorError::SessionDoesNotExist => "session does not exist",
            InitiatorError::InvalidDuringLogin => "invalid request during login",
        }
    }

    #[inline(never)]
    fn from_detail(d: u8) -> Self {
        match d {
            0x00 => Self::Generic,
            0x01 => Self::AuthenticationFailed,
            0x02 => Self::AuthorizationFailed,
            0x03 => Self::TargetNotFound,
            0x04 => Self::TargetRemoved,
            0x05 => Self::UnsupportedVersion,
            0x06 => Self::TooManyConnections,
            0x07 => Self::MissingParameter,
            0x08 => Self::CannotIncludeInSession,
            0x09 => Self::SessionTypeNotSupported,
            0x0a => Self::SessionDoesNotExist,
            0x0b => Self::InvalidDuringLogin,
            other => Self::Other(other),
        }
    }
}

/// Status class 3 details.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetError {
    Generic,
    ServiceUnavailable,
    OutOfResources,
    Other(u8),
}

impl LoginError {
    /// Whether trying again later may succeed without a configuration change.
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            LoginError::Initiator(
                InitiatorError::AuthenticationFailed
                    | InitiatorError::AuthorizationFailed
                    | InitiatorError::TargetNotFound
                    | InitiatorError::TargetRemoved
                    | InitiatorError::UnsupportedVersion
            ) | LoginError::MutualChapRefused
                | LoginError::Chap(_)
        )
    }
}

impl fmt::Display for LoginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoginError::Initiator(InitiatorError::Other(d)) => {
                write!(f, "login refused (initiator error {d:#04x})")
            }
            LoginError::Initiator(e) => write!(f, "login refused: {}", e.words()),
            LoginError::OfferRefused {
                detail,
                digests: (h, d),
                security_first,
            } => {
                write!(
                    f,
                    "login refused: {} ({:#06x}) after our operational offer with \
                     HeaderDigest={}, DataDigest={}: ",
                    detail.words(),
                    0x0200 | u16::from(detail.code()),
                    h.value_string(),
                    d.value_string()
                )?;
                let (h, d) = (*h, *d);
                if !h.allows("CRC32C") || !d.allows("CRC32C") {
                    write!(
                        f,
                        "a target that requires digests answers this way; allow CRC32C ({})",
                        text::DIGEST_SETTING
                    )?;
                } else if !h.allows("None") || !d.allows("None") {
                    write!(
                        f,
                        "a target that refuses digests answers this way; allow None ({})",
                        text::DIGEST_SETTING
                    )?;
                } else {
                    f.write_str(
                        "the target could not accept one of its keys (both digest values \
                         were offered); its log names the key",
                    )?;
                }
                if *security_first {
                    f.write_str("; a security stage first did not help")?;
                }
                Ok(())
            }
            LoginError::Target(e) => match e {
                TargetError::Generic => f.write_str("login failed: target error"),
                TargetError::ServiceUnavailable => f.write_str("login failed: service unavailable"),
                TargetError::OutOfResources => f.write_str("login failed: target out of resources"),
                TargetError::Other(d) => write!(f, "login failed: target error {d:#04x}"),
            },
            LoginError::UnknownStatus { class, detail } => {
                write!(f, "login failed: unknown status {class:#04x}/{detail:#04x}")
            }
            LoginError::Pdu(e) => write!(f, "bad Login Response: {e}"),
            LoginError::Text(e) => write!(f, "bad login text: {e}"),
            LoginError::Chap(e) => write!(f, "CHAP: {e}"),
            LoginError::MutualChapRefused => f.write_str(
                "target chose AuthMethod=None but mutual CHAP is configured; refusing a target \
                 that does not authenticate itself",
            ),
            LoginError::AuthMethod(m) => {
                write!(
                    f,
                    "target chose AuthMethod={}, which we did not offer",
                    Untrusted(m)
                )
            }
            LoginError::ChapListRefused => {
                f.write_str("target refused the CHAP_A list, or failed the stronger algorithm it chose; retrying with MD5 only")
            }
            LoginError::SecurityStageRequired => f.write_str(
                "target refused a login that starts in the operational stage (initiator error); \
                 some targets require a security stage: retrying with AuthMethod=None first",
            ),
            LoginError::Unexpected(what) => write!(f, "unexpected Login Response: {what}"),
            LoginError::BadRedirect => f.write_str("redirect without a usable TargetAddress"),
            LoginError::TooManyRounds => f.write_str("login did not finish within 32 exchanges"),
        }
    }
}

impl core::error::Error for LoginError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            LoginError::Pdu(e) => Some(e),
            LoginError::Text(e) => Some(e),
            LoginError::Chap(e) => Some(e),
            _ => None,
        }
    }
}

impl From<text::Error> for LoginError {
    fn from(e: text::Error) -> Self {
        LoginError::Text(e)
    }
}

impl From<chap::Error> for LoginError {
    fn from(e: chap::Error) -> Self {
        LoginError::Chap(e)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// First security PDU sent (AuthMethod offered).
    AuthMethod,
    /// CHAP_A sent.
    ChapA,
    /// CHAP_N/CHAP_R sent; waiting for the transit (and in mutual CHAP the target's answer).
    ChapResponse,
    /// Security done with AuthMethod=None; asked to transit.
    SecurityTransit,
    /// Operational keys offered.
    Operational,
}

const MD5_ONLY: [Algorithm; 1] = [Algorithm::Md5];

/// One login on one connection (see the module documentation).
#[derive(Debug)]
pub struct Login<'a> {
    cfg: &'a LoginConfig,
    attempt: Attempt,
    itt: u32,
    exp_stat_sn: Sn,
    state: State,
    chap: Option<Chap<'a>>,
    chap_retried: bool,
    /// The algorithm the target chose.
    chap_alg: Option<Algorithm>,
    negotiation: Negotiation,
    acc: Accumulator,
    /// Replies to operational keys the target offered, for the next PDU.
    replies: Vec<text::Reply>,
    rounds: u32,
    /// The TSIH the target named so far (see [`Login::check_tsih`]).
    tsih: Option<u16>,
    first_sent: bool,
    /// Stage and transit of the last request, to repeat while the target sends C-bit parts.
    last: (Stage, Stage, bool),
}

impl<'a> Login<'a> {
    /// Prepares a login; fails only on a configuration the RFC cannot carry. Not inlined, as
    /// [`Login::handle`] and for the same reason: into the closure that runs it (`connect.rs`).
    #[inline(never)]
    pub fn new(cfg: &'a LoginConfig, attempt: Attempt, itt: u32) -> Result<Self, LoginError> {
        let chap = match &cfg.chap {
            Some(c) if attempt.chap_md5_only => Some(Chap::with_algorithms(c, &MD5_ONLY)?),
            Some(c) => Some(Chap::new(c)?),
            None => None,
        };
        Ok(Login {
            cfg,
            attempt,
            itt,
            exp_stat_sn: Sn(0),
            state: State::Operational,
            chap,
            chap_retried: attempt.chap_md5_only,
            chap_alg: None,
            negotiation: Negotiation::new(cfg.offer.clone())?,
            acc: Accumulator::new(text::DEFAULT_MAX_TEXT_LEN),
            replies: Vec::new(),
            rounds: 0,
            tsih: None,
            first_sent: false,
            last: (Stage::Operational, Stage::FullFeature, true),
        })
    }

    #[inline(never)]
    fn mutual(&self) -> bool {
        self.cfg.chap.as_ref().is_some_and(|c| c.is_mutual())
    }

    /// The first Login Request.
    #[inline(never)]
    pub fn start(&mut self) -> Result<LoginPdu, LoginError> {
        let mut t = TextBuilder::new(LOGIN_MAX_DATA as usize);
        t.push("InitiatorName", &self.cfg.initiator_name)?;
        t.push("SessionType", "Normal")?;
        t.push("TargetName", &self.cfg.target_name)?;
        if self.chap.is_some() || self.attempt.security_first {
            let methods = if self.chap.is_none() {
                "None"
            } else if self.mutual() {
                "CHAP"
            } else {
                "CHAP,None"
            };
            t.push("AuthMethod", methods)?;
            self.state = State::AuthMethod;
            Ok(self.request(Stage::Security, Stage::Operational, self.chap.is_none(), t))
        } else {
            self.cfg.offer.encode(&mut t)?;
            self.state = State::Operational;
            Ok(self.request(Stage::Operational, Stage::FullFeature, true, t))
        }
    }

    #[inline(never)]
    fn request(&mut self, csg: Stage, nsg: Stage, transit: bool, t: TextBuilder) -> LoginPdu {
        self.first_sent = true;
        self.last = (csg, nsg, transit);
        LoginPdu {
            header: LoginRequest {
                transit,
                continue_bit: false,
                csg,
                nsg: if transit { nsg } else { Stage::Security },
                version_max: 0,
                version_min: 0,
                isid: self.cfg.isid,
                tsih: self.attempt.tsih,
                itt: self.itt,
                cid: 0,
                cmd_sn: self.attempt.cmd_sn,
                exp_stat_sn: self.exp_stat_sn,
            },
            data: t.into_bytes(),
        }
    }

    #[inline(never)]
    fn operational_offer(&mut self) -> Result<LoginPdu, LoginError> {
        let mut t = TextBuilder::new(LOGIN_MAX_DATA as usize);
        self.cfg.offer.encode(&mut t)?;
        self.state = State::Operational;
        Ok(self.request(Stage::Operational, Stage::FullFeature, true, t))
    }

    /// Handles one Login Response with its data segment. `random` fills the mutual CHAP
    /// challenge.
    ///
    /// It and the steps it takes (`on_*`, `request`, ...) are `#[inline(never)]`: inlined into
    /// their one caller, the kernel module's login closure, the shared steps were compiled at
    /// each call site (768 bytes more code in isboot.ko).
    #[inline(never)]
    pub fn handle(
        &mut self,
        resp: &LoginResponse,
        data: &[u8],
        random: &mut dyn FnMut(&mut [u8]),
    ) -> Result<Step, LoginError> {
        self.rounds = self.rounds.saturating_add(1);
        if self.rounds > MAX_ROUNDS {
            return Err(LoginError::TooManyRounds);
        }
        // The status comes first: targets fill the other fields of a failure carelessly (tgtd
        // zeroes the ISID), and the status is what the log must say.
        match resp.status_class {
            0 => {}
            1 => return self.redirect(resp, data),
            2 => {
                let e = InitiatorError::from_detail(resp.status_detail);
                // Refusing the list, or choosing an algorithm from it and then failing to check
                // it (tgtd picks SHA-256 but decodes at most 20 bytes): MD5 alone may work.
                let stronger = self.chap_alg.is_some_and(|a| a != Algorithm::Md5);
                if (self.state == State::ChapA || (self.state == State::ChapResponse && stronger))
                    && !self.chap_retried
                {
                    return Err(LoginError::ChapListRefused);
                }
                if self.state == State::Operational
                    && self.chap.is_none()
                    && !self.attempt.security_first
                    && self.rounds == 1
                    && matches!(
                        e,
                        InitiatorError::Generic
                            | InitiatorError::InvalidDuringLogin
                            | InitiatorError::MissingParameter
                            | InitiatorError::AuthenticationFailed
                    )
                {
                    return Err(LoginError::SecurityStageRequired);
                }
                if self.state == State::Operational
                    && matches!(
                        e,
                        InitiatorError::Generic
                            | InitiatorError::InvalidDuringLogin
                            | InitiatorError::MissingParameter
                    )
                {
                    return Err(LoginError::OfferRefused {
                        detail: e,
                        digests: (
                            self.cfg.offer.digest(Key::HeaderDigest),
                            self.cfg.offer.digest(Key::DataDigest),
                        ),
                        security_first: self.attempt.security_first,
                    });
                }
                return Err(LoginError::Initiator(e));
            }
            3 => {
                return Err(LoginError::Target(match resp.status_detail {
                    0 => TargetError::Generic,
                    1 => TargetError::ServiceUnavailable,
                    2 => TargetError::OutOfResources,
                    d => TargetError::Other(d),
                }))
            }
            class => {
                return Err(LoginError::UnknownStatus {
                    class,
                    detail: resp.status_detail,
                })
            }
        }
        if resp.isid != self.cfg.isid {
            return Err(LoginError::Unexpected("ISID differs from ours"));
        }
        if resp.itt != self.itt {
            return Err(LoginError::Unexpected("ITT differs from ours"));
        }
        self.exp_stat_sn = resp.sns.stat_sn.next();
        if resp.version_active != 0 {
            return Err(LoginError::Unexpected("Version-active is not 0"));
        }
        if resp.csg != self.last.0 {
            return Err(LoginError::Unexpected("CSG differs from our current stage"));
        }
        if resp.transit && !self.last.2 {
            return Err(LoginError::Unexpected(
                "T bit set although we did not ask to transit",
            ));
        }
        if resp.transit && resp.nsg != self.last.1 {
            return Err(LoginError::Unexpected(
                "NSG differs from the stage we asked for",
            ));
        }
        if resp.continue_bit && resp.transit {
            return Err(LoginError::Unexpected("both C and T bits set"));
        }
        self.check_tsih(resp)?;
        if !self.acc.push(data, resp.continue_bit)? {
            // More text follows: ask for it with an empty request in the same stage, without
            // T (RFC 7143 §11.12.2); our wish to transit stands for the final part.
            let saved = self.last;
            let (csg, nsg, _) = saved;
            let pdu = self.request(csg, nsg, false, TextBuilder::new(0));
            self.last = saved;
            return Ok(Step::Send(pdu));
        }
        let text = core::mem::take(&mut self.acc);
        self.acc = Accumulator::new(text::DEFAULT_MAX_TEXT_LEN);
        let pairs = text.pairs()?;
        match self.state {
            State::AuthMethod => self.on_auth_method(resp, &pairs),
            State::ChapA => self.on_chap_a(&pairs, random),
            State::ChapResponse => self.on_chap_done(resp, &pairs),
            State::SecurityTransit => {
                if resp.transit {
                    self.operational_offer().map(Step::Send)
                } else {
                    let (csg, nsg, tr) = self.last;
                    Ok(Step::Send(self.request(csg, nsg, tr, TextBuilder::new(0))))
                }
            }
            State::Operational => self.on_operational(resp, &pairs),
        }
    }

    /// The TSIH rules of RFC 7143 §11.13.4, which we enforce: the target names the session
    /// in the final response of a new one, never with 0 (reserved), and a login that
    /// continues a session (`Attempt::tsih` non-zero) keeps that TSIH throughout. A target may
    /// show its TSIH before the final response, but not change it: either would leave the
    /// session we are logging in to undefined.
    #[inline(never)]
    fn check_tsih(&mut self, resp: &LoginResponse) -> Result<(), LoginError> {
        let ours = self.attempt.tsih;
        if ours != 0 && resp.tsih != ours {
            return Err(LoginError::Unexpected(
                "TSIH differs from the session we continue",
            ));
        }
        if resp.tsih != 0 {
            if self.tsih.is_some_and(|t| t != resp.tsih) {
                return Err(LoginError::Unexpected("TSIH changed during the login"));
            }
            self.tsih = Some(resp.tsih);
        }
        let last = resp.transit && resp.nsg == Stage::FullFeature;
        if last && resp.tsih == 0 {
            return Err(LoginError::Unexpected(
                "final Login Response without a TSIH (0 is reserved)",
            ));
        }
        if last && self.tsih.is_some_and(|t| t != resp.tsih) {
            return Err(LoginError::Unexpected("TSIH changed during the login"));
        }
        Ok(())
    }

    #[inline(never)]
    fn redirect(&self, resp: &LoginResponse, data: &[u8]) -> Result<Step, LoginError> {
        let pairs = text::parse_pairs(data)?;
        let value = pairs
            .iter()
            .find(|(k, _)| *k == "TargetAddress")
            .map(|(_, v)| *v)
            .ok_or(LoginError::BadRedirect)?;
        let address = TargetAddress::parse(value).map_err(|_| LoginError::BadRedirect)?;
        Ok(Step::Redirect {
            address,
            permanent: resp.status_detail == 0x02,
        })
    }

    #[inline(never)]
    fn on_auth_method(
        &mut self,
        resp: &LoginResponse,
        pairs: &[(&str, &str)],
    ) -> Result<Step, LoginError> {
        let method = pairs
            .iter()
            .find(|(k, _)| *k == "AuthMethod")
            .map(|(_, v)| *v);
        match method {
            Some("CHAP") if self.chap.is_some() => {
                let offer = self.chap.as_ref().map(|c| c.offer()).unwrap_or_default();
                let mut t = TextBuilder::new(LOGIN_MAX_DATA as usize);
                t.push("CHAP_A", &offer)?;
                self.state = State::ChapA;
                Ok(Step::Send(self.request(
                    Stage::Security,
                    Stage::Operational,
                    false,
                    t,
                )))
            }
            Some("None") if self.mutual() => Err(LoginError::MutualChapRefused),
            Some("None") => self.leave_security_stage(resp),
            // Some targets omit AuthMethod when they accept None and transit at once.
            None if resp.transit && !self.mutual() && self.chap.is_none() => {
                self.operational_offer().map(Step::Send)
            }
            Some(other) => Err(LoginError::AuthMethod(other.to_string())),
            None => Err(LoginError::AuthMethod(String::from("(missing)"))),
        }
    }

    #[inline(never)]
    fn on_chap_a(
        &mut self,
        pairs: &[(&str, &str)],
        random: &mut dyn FnMut(&mut [u8]),
    ) -> Result<Step, LoginError> {
        let chap_a = pairs.iter().find(|(k, _)| *k == "CHAP_A").map(|(_, v)| *v);
        let Some(chap) = self.chap.as_mut() else {
            return Err(LoginError::Unexpected(
                "CHAP answer without CHAP configured",
            ));
        };
        let offered = chap::parse_algorithm(chap_a.unwrap_or("Reject"), &chap::DEFAULT_ALGORITHMS);
        if offered.is_err() && !self.chap_retried {
            // Old targets reject the list: ask again with MD5 alone on this connection.
            let Some(cfg) = self.cfg.chap.as_ref() else {
                return Err(LoginError::Unexpected(
                    "CHAP answer without CHAP configured",
                ));
            };
            *chap = Chap::with_algorithms(cfg, &MD5_ONLY)?;
            self.chap_retried = true;
            let mut t = TextBuilder::new(LOGIN_MAX_DATA as usize);
            t.push("CHAP_A", "5")?;
            return Ok(Step::Send(self.request(
                Stage::Security,
                Stage::Operational,
                false,
                t,
            )));
        }
        self.chap_alg = offered.ok();
        let answer = chap.answer_pairs(pairs, |b| random(b))?;
        let mut t = TextBuilder::new(LOGIN_MAX_DATA as usize);
        for (k, v) in &answer {
            t.push(k, v)?;
        }
        self.state = State::ChapResponse;
        Ok(Step::Send(self.request(
            Stage::Security,
            Stage::Operational,
            true,
            t,
        )))
    }

    #[inline(never)]
    fn on_chap_done(
        &mut self,
        resp: &LoginResponse,
        pairs: &[(&str, &str)],
    ) -> Result<Step, LoginError> {
        if let Some(chap) = &self.chap {
            if chap.expects_target_response() {
                chap.verify_target_pairs(pairs)?;
            }
        }
        self.leave_security_stage(resp)
    }

    /// The security stage is done on our side: on to the operational offer if the target
    /// transited, else ask to transit again with an empty request (it wants another round
    /// trip without keys).
    #[inline(never)]
    fn leave_security_stage(&mut self, resp: &LoginResponse) -> Result<Step, LoginError> {
        if resp.transit {
            return self.operational_offer().map(Step::Send);
        }
        self.state = State::SecurityTransit;
        Ok(Step::Send(self.request(
            Stage::Security,
            Stage::Operational,
            true,
            TextBuilder::new(0),
        )))
    }

    #[inline(never)]
    fn on_operational(
        &mut self,
        resp: &LoginResponse,
        pairs: &[(&str, &str)],
    ) -> Result<Step, LoginError> {
        // Each reply straight into ours: `handle_all` would collect them in a vector of its
        // own first, to be appended and dropped here.
        for (k, v) in pairs {
            match self.negotiation.handle(k, v)? {
                Reply::None => {}
                r => self.replies.push(r),
            }
        }
        if resp.transit && resp.nsg == Stage::FullFeature {
            let params = self.negotiation.finish_in_place()?;
            return Ok(Step::Done(Established {
                params,
                tsih: resp.tsih,
                sns: resp.sns,
            }));
        }
        let mut t = TextBuilder::new(LOGIN_MAX_DATA as usize);
        // Encoded in place, then cleared: a drain's iterator and drop glue for this one loop.
        // On an error the login ends, and the replies with it.
        for r in &self.replies {
            r.encode(&mut t)?;
        }
        self.replies.clear();
        Ok(Step::Send(self.request(
            Stage::Operational,
            Stage::FullFeature,
            true,
            t,
        )))
    }
}

#[cfg(test)]
mod tests;
