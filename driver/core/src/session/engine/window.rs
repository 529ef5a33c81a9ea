// SPDX-License-Identifier: BSD-2-Clause
//! The command window (RFC 7143 §4.2.2.1) and the StatSN we acknowledge (§4.2.2.2): every
//! sequence number a target PDU's [`TargetSns`] moves. [`CmdWindow::on_target_pdu`] does the
//! bookkeeping once for every received PDU, before the PDU's own handler runs (as FreeBSD's
//! `iscsi_pdu_update_statsn`), so no handler can forget it.

use crate::pdu::{Pdu, TargetSns, RESERVED_TAG};
use crate::sn::Sn;

/// CmdSN, the window `[ExpCmdSN, MaxCmdSN]` the target admits, and ExpStatSN.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct CmdWindow {
    /// The CmdSN the next non-immediate command takes.
    cmd_sn: Sn,
    exp_cmd_sn: Sn,
    max_cmd_sn: Sn,
    /// The next StatSN we expect (sent as ExpStatSN).
    exp_stat_sn: Sn,
}

impl CmdWindow {
    /// The window the final Login Response opens.
    pub(super) fn after_login(sns: TargetSns) -> Self {
        CmdWindow {
            cmd_sn: sns.exp_cmd_sn,
            exp_cmd_sn: sns.exp_cmd_sn,
            max_cmd_sn: sns.max_cmd_sn,
            exp_stat_sn: sns.stat_sn.next(),
        }
    }

    /// ExpCmdSN, MaxCmdSN and StatSN of one received PDU.
    pub(super) fn on_target_pdu(&mut self, pdu: &Pdu) {
        if let Some(sns) = pdu.target_sns() {
            self.update(sns.exp_cmd_sn, sns.max_cmd_sn);
        }
        if let Some(stat_sn) = acknowledged_stat_sn(pdu) {
            if stat_sn.is_after_or_eq(self.exp_stat_sn) {
                self.exp_stat_sn = stat_sn.next();
            }
        }
    }

    fn update(&mut self, exp: Sn, max: Sn) {
        // MaxCmdSN < ExpCmdSN - 1: both ignored.
        if max.next().is_before(exp) {
            return;
        }
        if exp.is_after(self.exp_cmd_sn) {
            // A target cannot expect a command we have not sent; clamp so the next CmdSN is
            // not taken for a duplicate.
            self.exp_cmd_sn = if exp.is_after(self.cmd_sn) {
                self.cmd_sn
            } else {
                exp
            };
        }
        if max.is_after(self.max_cmd_sn) {
            self.max_cmd_sn = max;
        }
    }

    /// How many commands the window admits: 0 when MaxCmdSN = ExpCmdSN - 1 (closed) or when
    /// MaxCmdSN lies behind ExpCmdSN in serial arithmetic.
    pub(super) fn size(&self) -> u32 {
        let n = self.exp_cmd_sn.distance(self.max_cmd_sn).wrapping_add(1);
        if n > 1 << 31 {
            0
        } else {
            n
        }
    }

    /// Whether the next command may go (its CmdSN lies inside the window).
    pub(super) fn admits(&self) -> bool {
        self.cmd_sn.is_within(self.exp_cmd_sn, self.max_cmd_sn)
    }

    /// The CmdSN for the next non-immediate command; advances it.
    pub(super) fn take_cmd_sn(&mut self) -> Sn {
        let sn = self.cmd_sn;
        self.cmd_sn = sn.next();
        sn
    }

    /// The CmdSN immediate PDUs carry (the next one, not taken).
    pub(super) fn cmd_sn(&self) -> Sn {
        self.cmd_sn
    }

    pub(super) fn exp_stat_sn(&self) -> Sn {
        self.exp_stat_sn
    }

    /// `(ExpCmdSN, MaxCmdSN, CmdSN)`.
    pub(super) fn bounds(&self) -> (Sn, Sn, Sn) {
        (self.exp_cmd_sn, self.max_cmd_sn, self.cmd_sn)
    }
}

/// The StatSN a target PDU acknowledges, if it carries a status: Data-In only with the S bit,
/// NOP-In only as the answer to our ping (an unsolicited one repeats the current StatSN
/// without advancing it), R2T never (RFC 7143 §11.7.4, §11.8.3, §11.19.3).
fn acknowledged_stat_sn(pdu: &Pdu) -> Option<Sn> {
    let sns = pdu.target_sns()?;
    let counted = match pdu {
        Pdu::DataIn(d) => d.status.is_some(),
        Pdu::NopIn(n) => n.itt != RESERVED_TAG,
        Pdu::R2t(_) => false,
        _ => true,
    };
    counted.then_some(sns.stat_sn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdu::{DataIn, NopIn, R2t, ScsiResponse};

    fn sns(stat: u32, exp: u32, max: u32) -> TargetSns {
        TargetSns {
            stat_sn: Sn(stat),
            exp_cmd_sn: Sn(exp),
            max_cmd_sn: Sn(max),
        }
    }

    #[test]
    fn only_status_bearing_pdus_advance_exp_stat_sn() {
        let mut w = CmdWindow::after_login(sns(9, 1, 4));
        assert_eq!(w.exp_stat_sn(), Sn(10));
        let unsolicited_ping = NopIn {
            itt: RESERVED_TAG,
            sns: sns(10, 1, 4),
            ..NopIn::default()
        };
        let r2t = R2t {
            sns: sns(10, 1, 4),
            ..R2t::default()
        };
        let data_without_status = DataIn {
            sns: sns(10, 1, 4),
            ..DataIn::default()
        };
        for p in [
            unsolicited_ping.into(),
            r2t.into(),
            data_without_status.into(),
        ] {
            w.on_target_pdu(&p);
            assert_eq!(w.exp_stat_sn(), Sn(10), "{p:?}");
        }
        w.on_target_pdu(&Pdu::ScsiResponse(ScsiResponse {
            sns: sns(10, 1, 4),
            ..ScsiResponse::default()
        }));
        assert_eq!(w.exp_stat_sn(), Sn(11));
        // An old StatSN (a retransmission) does not move it back.
        w.on_target_pdu(&Pdu::ScsiResponse(ScsiResponse {
            sns: sns(3, 1, 4),
            ..ScsiResponse::default()
        }));
        assert_eq!(w.exp_stat_sn(), Sn(11));
    }

    #[test]
    fn window_opens_and_never_shrinks_or_runs_ahead() {
        let mut w = CmdWindow::after_login(sns(0, 10, 9));
        assert_eq!(w.size(), 0, "MaxCmdSN = ExpCmdSN - 1: closed");
        assert!(!w.admits());
        w.update(Sn(10), Sn(11));
        assert_eq!(w.size(), 2);
        assert!(w.admits());
        assert_eq!(w.take_cmd_sn(), Sn(10));
        // ExpCmdSN past anything we sent is clamped to our next CmdSN.
        w.update(Sn(50), Sn(60));
        assert_eq!(w.bounds(), (Sn(11), Sn(60), Sn(11)));
        // MaxCmdSN below ExpCmdSN - 1 is ignored, and a smaller MaxCmdSN never shrinks it.
        w.update(Sn(11), Sn(5));
        w.update(Sn(11), Sn(20));
        assert_eq!(w.bounds(), (Sn(11), Sn(60), Sn(11)));
        assert_eq!(CmdWindow::after_login(sns(0, 10, 0x8000_0010)).size(), 0);
    }
}
