// SPDX-License-Identifier: BSD-2-Clause
//! Builders for the PDUs a target sends, with the defaults tests need: a test names only what
//! it is about (`scsi_response(itt, 100, GOOD).window(11, 42)`), not the dozen other fields.
//!
//! Every builder leaves the sequence numbers at zero; [`TargetPdu`] sets them on any target
//! PDU. Tags default to the reserved tag where RFC 7143 says "none".

use crate::lun::Lun;
use crate::pdu::{
    AsyncEvent, AsyncMessage, DataIn, LoginResponse, LogoutResponse, LogoutResponseCode, NopIn,
    R2t, Reject, RejectReason, Residual, ScsiResponse, Stage, TargetSns, TaskMgmtResponse,
    TextResponse, TmfResponse, RESERVED_TAG,
};
use crate::sn::Sn;

/// StatSN, ExpCmdSN and MaxCmdSN.
pub fn sns(stat_sn: u32, exp_cmd_sn: u32, max_cmd_sn: u32) -> TargetSns {
    TargetSns {
        stat_sn: Sn(stat_sn),
        exp_cmd_sn: Sn(exp_cmd_sn),
        max_cmd_sn: Sn(max_cmd_sn),
    }
}

/// Setting the sequence numbers of a target PDU.
pub trait TargetPdu: Sized {
    fn sns_mut(&mut self) -> &mut TargetSns;

    fn with_sns(mut self, sns: TargetSns) -> Self {
        *self.sns_mut() = sns;
        self
    }

    fn stat_sn(mut self, stat_sn: u32) -> Self {
        self.sns_mut().stat_sn = Sn(stat_sn);
        self
    }

    /// ExpCmdSN and MaxCmdSN: the command window the PDU announces.
    fn window(mut self, exp_cmd_sn: u32, max_cmd_sn: u32) -> Self {
        let s = self.sns_mut();
        s.exp_cmd_sn = Sn(exp_cmd_sn);
        s.max_cmd_sn = Sn(max_cmd_sn);
        self
    }
}

macro_rules! target_pdus {
    ($($t:ty),*) => {
        $(impl TargetPdu for $t {
            fn sns_mut(&mut self) -> &mut TargetSns {
                &mut self.sns
            }
        })*
    };
}
target_pdus!(
    AsyncMessage,
    DataIn,
    LoginResponse,
    LogoutResponse,
    NopIn,
    R2t,
    Reject,
    ScsiResponse,
    TaskMgmtResponse,
    TextResponse
);

/// Data-In for `itt` at `offset` with DataSN `data_sn`: not final, no status.
pub fn data_in(itt: u32, data_sn: u32, offset: u32) -> DataIn {
    DataIn {
        itt,
        ttt: RESERVED_TAG,
        data_sn: Sn(data_sn),
        buffer_offset: offset,
        ..DataIn::default()
    }
}

impl DataIn {
    /// The last Data-In of a read, carrying `status` (the S and F bits) and StatSN.
    pub fn with_status(self, status: u8, stat_sn: u32, residual: Residual) -> Self {
        DataIn {
            final_bit: true,
            status: Some(status),
            residual,
            ..self
        }
        .stat_sn(stat_sn)
    }
}

/// A SCSI Response for `itt` with `status` and StatSN `stat_sn`, command completed at target.
pub fn scsi_response(itt: u32, stat_sn: u32, status: u8) -> ScsiResponse {
    ScsiResponse {
        itt,
        status,
        ..ScsiResponse::default()
    }
    .stat_sn(stat_sn)
}

/// An R2T for `itt` asking for `len` bytes at `offset`.
pub fn r2t(itt: u32, ttt: u32, r2t_sn: u32, offset: u32, len: u32) -> R2t {
    R2t {
        itt,
        ttt,
        r2t_sn: Sn(r2t_sn),
        buffer_offset: offset,
        desired_len: len,
        ..R2t::default()
    }
}

/// The answer to our ping `itt`.
pub fn nop_in_reply(itt: u32, stat_sn: u32) -> NopIn {
    NopIn {
        itt,
        ttt: RESERVED_TAG,
        ..NopIn::default()
    }
    .stat_sn(stat_sn)
}

/// The target's own ping with `ttt` (ITT reserved: an answer is wanted when `ttt` is not).
pub fn nop_in_ping(ttt: u32, lun: Lun) -> NopIn {
    NopIn {
        lun,
        itt: RESERVED_TAG,
        ttt,
        ..NopIn::default()
    }
}

/// An Async Message announcing `event`, parameters zero.
pub fn async_message(event: AsyncEvent) -> AsyncMessage {
    AsyncMessage {
        event,
        ..AsyncMessage::default()
    }
}

impl AsyncMessage {
    /// DropConnection/DropAllConnections: Time2Wait (Parameter2).
    pub fn time2wait(self, secs: u16) -> Self {
        AsyncMessage {
            parameter2: secs,
            ..self
        }
    }

    /// LogoutRequest: the time the target gives us to log out (Parameter3).
    pub fn logout_within(self, secs: u16) -> Self {
        AsyncMessage {
            parameter3: secs,
            ..self
        }
    }
}

/// A Logout Response to `itt`.
pub fn logout_response(itt: u32, response: LogoutResponseCode) -> LogoutResponse {
    LogoutResponse {
        response,
        itt,
        ..LogoutResponse::default()
    }
}

impl LogoutResponse {
    pub fn time2wait(self, secs: u16) -> Self {
        LogoutResponse {
            time2wait: secs,
            ..self
        }
    }
}

/// A Task Management Function Response to `itt`.
pub fn tmf_response(itt: u32, response: TmfResponse) -> TaskMgmtResponse {
    TaskMgmtResponse {
        response,
        itt,
        ..TaskMgmtResponse::default()
    }
}

/// A Reject for `reason` (the rejected header goes in the data segment).
pub fn reject(reason: RejectReason) -> Reject {
    Reject {
        reason,
        ..Reject::default()
    }
}

/// A Login Response in `csg` moving to `nsg` (T bit when they differ), status success.
pub fn login_response(csg: Stage, nsg: Stage, isid: [u8; 6], itt: u32) -> LoginResponse {
    LoginResponse {
        transit: csg != nsg,
        csg,
        nsg,
        isid,
        itt,
        ..LoginResponse::default()
    }
}

impl LoginResponse {
    /// A failed (or redirecting) login: status class and detail (RFC 7143 §11.13.5).
    pub fn status(self, class: u8, detail: u8) -> Self {
        LoginResponse {
            transit: false,
            status_class: class,
            status_detail: detail,
            ..self
        }
    }
}
