// SPDX-License-Identifier: BSD-2-Clause
//! Start offsets of every BHS field (RFC 7143 §11): the one place that knows the layout.
//!
//! RFC 7143 gives a position one meaning in most PDUs that use it, and several PDU families
//! share it: TTT is at 20 wherever there is one, the sequence numbers are at 24..36, byte 36
//! holds the PDU's own sequence number (DataSN, R2TSN, ExpDataSN) or its status. Where a family
//! uses a position for something else, the constant carries the family's name.

// Every BHS (§11.2.1).
pub const OPCODE: usize = 0;
/// The F bit and opcode-specific flags; Logout, TMF and SNACK keep their function code here.
pub const FLAGS: usize = 1;
pub const TOTAL_AHS_LEN: usize = 4;
pub const DATA_SEGMENT_LEN: usize = 5;
/// Bytes 8..16: the LUN, or ISID and TSIH in Login PDUs.
pub const LUN: usize = 8;
pub const ITT: usize = 16;

// Bytes 1..4, opcode-specific.
/// Logout Request reason code (low 7 bits of the flags byte).
pub const LOGOUT_REASON: usize = 1;
/// Task Management Request function (low 7 bits of the flags byte).
pub const TMF_FUNCTION: usize = 1;
/// SNACK type (low 4 bits of the flags byte).
pub const SNACK_TYPE: usize = 1;
/// iSCSI response: SCSI Response, Task Management Response, Logout Response.
pub const RESPONSE: usize = 2;
pub const REJECT_REASON: usize = 2;
pub const VERSION_MAX: usize = 2;
/// Version-min in a Login Request, Version-active in a Login Response.
pub const VERSION_MIN: usize = 3;
/// SCSI status: SCSI Response, Data-In with the S bit.
pub const STATUS: usize = 3;

// Bytes 8..16 of Login PDUs.
pub const ISID: usize = 8;
pub const TSIH: usize = 14;

// Bytes 20..24.
/// Target Transfer Tag: Data-In, Data-Out, R2T, NOP-In/Out, Text, SNACK.
pub const TTT: usize = 20;
pub const EXPECTED_DATA_LEN: usize = 20;
pub const SNACK_TAG: usize = 20;
pub const REFERENCED_TASK_TAG: usize = 20;
/// Connection ID: Login and Logout Requests.
pub const CID: usize = 20;

// Sequence numbers at the same offsets in every PDU that carries them: CmdSN/ExpStatSN in
// initiator PDUs, StatSN/ExpCmdSN/MaxCmdSN in target PDUs.
pub const CMD_SN: usize = 24;
pub const EXP_STAT_SN: usize = 28;
pub const STAT_SN: usize = 24;
pub const EXP_CMD_SN: usize = 28;
pub const MAX_CMD_SN: usize = 32;

// Bytes 32..48.
/// SCSI Command: the first [`CDB_LEN`] CDB bytes (the rest go in an Extended CDB AHS).
pub const CDB: usize = 32;
pub const CDB_LEN: usize = 16;
pub const REF_CMD_SN: usize = 32;
/// DataSN: Data-In, Data-Out, and the DataSN/R2TSN a Reject asks to retransmit.
pub const DATA_SN: usize = 36;
pub const R2T_SN: usize = 36;
/// ExpDataSN: SCSI Response, Task Management Request.
pub const EXP_DATA_SN: usize = 36;
pub const STATUS_CLASS: usize = 36;
pub const STATUS_DETAIL: usize = 37;
pub const ASYNC_EVENT: usize = 36;
pub const ASYNC_VCODE: usize = 37;
pub const PARAMETER1: usize = 38;
pub const PARAMETER2: usize = 40;
pub const PARAMETER3: usize = 42;
/// Buffer Offset: Data-In, Data-Out, R2T.
pub const BUFFER_OFFSET: usize = 40;
pub const BIDI_RESIDUAL: usize = 40;
pub const TIME2WAIT: usize = 40;
pub const TIME2RETAIN: usize = 42;
pub const BEG_RUN: usize = 40;
pub const RUN_LENGTH: usize = 44;
pub const DESIRED_LEN: usize = 44;
/// Residual Count: SCSI Response, Data-In with the S bit.
pub const RESIDUAL: usize = 44;
