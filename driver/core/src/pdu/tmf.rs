// SPDX-License-Identifier: BSD-2-Clause
//! Task Management Function Request (RFC 7143 §11.5) and Response (§11.6).

use super::{
    field, u8_enum, Bhs, BhsMut, Error, Header, Opcode, TargetSns, FINAL_BIT, RESERVED_TAG,
};
use crate::lun::Lun;
use crate::sn::Sn;

const FUNCTION_MASK: u8 = 0x7f;

u8_enum! {
    /// Task management function codes (RFC 7143 §11.5.1).
    pub enum TmfFunction {
        #[default]
        AbortTask = 1,
        AbortTaskSet = 2,
        ClearAca = 3,
        ClearTaskSet = 4,
        LogicalUnitReset = 5,
        TargetWarmReset = 6,
        TargetColdReset = 7,
        TaskReassign = 8,
    }
}

u8_enum! {
    /// Task management response codes (RFC 7143 §11.6.1).
    pub enum TmfResponse {
        #[default]
        Complete = 0,
        TaskDoesNotExist = 1,
        LunDoesNotExist = 2,
        TaskStillAllegiant = 3,
        ReassignmentNotSupported = 4,
        NotSupported = 5,
        AuthorizationFailed = 6,
        Rejected = 255,
    }
}

/// Task Management Function Request (initiator → target).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskMgmtRequest {
    pub immediate: bool,
    pub function: TmfFunction,
    pub lun: Lun,
    pub itt: u32,
    /// ITT of the task to abort (ABORT TASK), else [`RESERVED_TAG`].
    pub referenced_task_tag: u32,
    pub cmd_sn: Sn,
    pub exp_stat_sn: Sn,
    /// CmdSN of the referenced task (ABORT TASK).
    pub ref_cmd_sn: Sn,
    pub exp_data_sn: Sn,
}

impl Default for TaskMgmtRequest {
    #[inline]
    fn default() -> Self {
        TaskMgmtRequest {
            immediate: true,
            function: TmfFunction::AbortTask,
            lun: Lun::default(),
            itt: 0,
            referenced_task_tag: RESERVED_TAG,
            cmd_sn: Sn(0),
            exp_stat_sn: Sn(0),
            ref_cmd_sn: Sn(0),
            exp_data_sn: Sn(0),
        }
    }
}

impl TaskMgmtRequest {
    #[inline]
    pub fn parse(bhs: &Bhs<'_>) -> Result<Self, Error> {
        bhs.expect_opcode(Opcode::TaskMgmtRequest)?;
        Ok(TaskMgmtRequest {
            immediate: bhs.immediate(),
            function: TmfFunction::from(bhs.u8_at(field::TMF_FUNCTION) & FUNCTION_MASK),
            lun: bhs.lun(),
            itt: bhs.itt(),
            referenced_task_tag: bhs.u32_at(field::REFERENCED_TASK_TAG),
            cmd_sn: bhs.cmd_sn(),
            exp_stat_sn: bhs.exp_stat_sn(),
            ref_cmd_sn: bhs.sn_at(field::REF_CMD_SN),
            exp_data_sn: bhs.sn_at(field::EXP_DATA_SN),
        })
    }
}

impl Header for TaskMgmtRequest {
    #[inline]
    fn opcode(&self) -> Opcode {
        Opcode::TaskMgmtRequest
    }
    #[inline]
    fn immediate(&self) -> bool {
        self.immediate
    }
    #[inline]
    fn emit_bhs(&self, bhs: &mut BhsMut<'_>) {
        bhs.set_flags(FINAL_BIT | (u8::from(self.function) & FUNCTION_MASK));
        bhs.set_lun(self.lun);
        bhs.set_itt(self.itt);
        bhs.set_u32(field::REFERENCED_TASK_TAG, self.referenced_task_tag);
        bhs.set_cmd_sn(self.cmd_sn);
        bhs.set_exp_stat_sn(self.exp_stat_sn);
        bhs.set_sn(field::REF_CMD_SN, self.ref_cmd_sn);
        bhs.set_sn(field::EXP_DATA_SN, self.exp_data_sn);
    }
}

/// Task Management Function Response (target → initiator).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskMgmtResponse {
    pub response: TmfResponse,
    pub itt: u32,
    pub sns: TargetSns,
}

impl TaskMgmtResponse {
    #[inline]
    pub fn parse(bhs: &Bhs<'_>) -> Result<Self, Error> {
        bhs.expect_opcode(Opcode::TaskMgmtResponse)?;
        Ok(TaskMgmtResponse {
            response: TmfResponse::from(bhs.u8_at(field::RESPONSE)),
            itt: bhs.itt(),
            sns: bhs.target_sns(),
        })
    }
}

impl Header for TaskMgmtResponse {
    #[inline]
    fn opcode(&self) -> Opcode {
        Opcode::TaskMgmtResponse
    }
    #[inline]
    fn emit_bhs(&self, bhs: &mut BhsMut<'_>) {
        bhs.set_flags(FINAL_BIT);
        bhs.set_u8(field::RESPONSE, u8::from(self.response));
        bhs.set_itt(self.itt);
        bhs.set_target_sns(self.sns);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::super::Digests;
    use super::*;

    #[test]
    fn abort_task_known_bytes() {
        let req = TaskMgmtRequest {
            immediate: true,
            function: TmfFunction::AbortTask,
            lun: Lun::from_number(1).unwrap(),
            itt: 0x99,
            referenced_task_tag: 0x17,
            cmd_sn: Sn(0x30),
            exp_stat_sn: Sn(0x40),
            ref_cmd_sn: Sn(0x2e),
            exp_data_sn: Sn(0),
        };
        let wire = emit_with(&req, &[], Digests::default());
        let mut expected = [0u8; 48];
        expected[0] = 0x42;
        expected[1] = 0x81;
        expected[9] = 1;
        expected[19] = 0x99;
        expected[23] = 0x17;
        expected[27] = 0x30;
        expected[31] = 0x40;
        expected[35] = 0x2e;
        assert_eq!(wire, expected);
        round_trip(req.into());
        round_trip(
            TaskMgmtRequest {
                function: TmfFunction::LogicalUnitReset,
                ..TaskMgmtRequest::default()
            }
            .into(),
        );
        round_trip(
            TaskMgmtRequest {
                function: TmfFunction::Unknown(0x55),
                ..TaskMgmtRequest::default()
            }
            .into(),
        );
    }

    #[test]
    fn tmf_response_codes() {
        for (v, r) in [
            (0u8, TmfResponse::Complete),
            (1, TmfResponse::TaskDoesNotExist),
            (5, TmfResponse::NotSupported),
            (255, TmfResponse::Rejected),
            (77, TmfResponse::Unknown(77)),
        ] {
            assert_eq!(TmfResponse::from(v), r);
            let resp = TaskMgmtResponse {
                response: r,
                itt: 4,
                sns: TargetSns {
                    stat_sn: Sn(1),
                    exp_cmd_sn: Sn(2),
                    max_cmd_sn: Sn(3),
                },
            };
            let wire = emit_with(&resp, &[], Digests::default());
            assert_eq!(wire[2], v);
            round_trip(resp.into());
        }
    }
}
