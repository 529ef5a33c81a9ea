// SPDX-License-Identifier: BSD-2-Clause
//! The CAM side of the SIM as plain values: what an `XPT_SCSI_IO` CCB asks for, and what its
//! completion must say.
//!
//! The kernel glue reads a `struct ccb_scsiio` into a [`ScsiIoView`], calls [`translate_scsi_io`],
//! and either hands the resulting [`Command`] to the session or finishes the CCB at once with
//! [`Refusal::cam_status`]. When the session is done with the command, [`complete_scsi_io`] turns
//! its [`Finish`] into the exact field values the glue writes back before `xpt_done`. Nothing here
//! touches kernel memory, so all of it is tested on the build host.
//!
//! Every constant below mirrors a value from `cam/cam.h`, `cam/cam_ccb.h` or
//! `cam/scsi/scsi_message.h`; the kernel crate asserts each one against the bindgen output.
//!
//! # Life cycle of a CCB
//! Each arrow names the decision made here; the glue (`driver/kmod/src/cam.rs`, `boot.rs`)
//! carries it out.
//! ```text
//! sim_action (caller's context, SIM mutex held)
//!   CCB ─┬─ aborted_en_route ───────────────────────► handed back unchanged (CAM's status)
//!        ├─ func::is_immediate (PATH_INQ, GET_TRAN_SETTINGS, CALC_GEOMETRY, ABORT)
//!        │    └─ answered now, status read by the caller on return (abort_status; the
//!        │       abort itself is queued to the session), never xpt_done'd later
//!        ├─ SCSI_IO refused (translate_scsi_io) ─────► xpt_done(Refusal::cam_status)
//!        └─ SCSI_IO, RESET_DEV ─► channel to the pump; full: REQUEUE_REQ, closed: DEV_NOT_THERE
//! pump task (taskqueue thread)
//!   the CCB's own buffer as the request's data (nothing allocated or copied)
//!   filed in Slots under a Tag (table full: REQUEUE_REQ)
//!   Handle::submit (inbox full: REQUEUE_REQ; session over: DEV_NOT_THERE)
//! session completion (taskqueue thread)
//!   Slots::take(tag) ─► bridge::finish ─► complete_scsi_io ─► xpt_done (DEV_QFRZN when asked)
//! teardown: Slots::take_any ─► DEV_NOT_THERE; a CCB handle dropped uncompleted goes back as
//!   REQUEUE_REQ (SCSI_IO) or REQ_ABORTED (anything else)
//! ```

use isboot_core::lun::Lun;

/// `cam_status` values and flags (`cam/cam.h`).
pub mod status {
    pub const REQ_INPROG: u32 = 0x00;
    pub const REQ_CMP: u32 = 0x01;
    pub const REQ_ABORTED: u32 = 0x02;
    pub const UA_ABORT: u32 = 0x03;
    pub const REQ_CMP_ERR: u32 = 0x04;
    pub const REQ_INVALID: u32 = 0x06;
    pub const DEV_NOT_THERE: u32 = 0x08;
    pub const CMD_TIMEOUT: u32 = 0x0b;
    pub const SCSI_STATUS_ERROR: u32 = 0x0c;
    pub const BDR_SENT: u32 = 0x17;
    pub const REQ_TOO_BIG: u32 = 0x1a;
    pub const REQUEUE_REQ: u32 = 0x1b;
    pub const RESRC_UNAVAIL: u32 = 0x34;
    pub const LUN_INVALID: u32 = 0x38;
    pub const FUNC_NOTAVAIL: u32 = 0x3a;
    /// The device queue was frozen because of this CCB's error; the peripheral releases it.
    pub const DEV_QFRZN: u32 = 0x40;
    pub const AUTOSNS_VALID: u32 = 0x80;
    pub const SIM_QUEUED: u32 = 0x200;
    pub const STATUS_MASK: u32 = 0x3f;
}

/// `ccb_h.flags` bits (`ccb_flags` in `cam/cam_ccb.h`).
pub mod flags {
    pub const CDB_POINTER: u32 = 0x0000_0001;
    pub const DIS_AUTOSENSE: u32 = 0x0000_0020;
    pub const DIR_BOTH: u32 = 0x0000_0000;
    pub const DIR_IN: u32 = 0x0000_0040;
    pub const DIR_OUT: u32 = 0x0000_0080;
    pub const DIR_NONE: u32 = 0x0000_00c0;
    pub const DIR_MASK: u32 = 0x0000_00c0;
    pub const DATA_VADDR: u32 = 0x0000_0000;
    pub const DATA_PADDR: u32 = 0x0000_0010;
    pub const DATA_SG: u32 = 0x0004_0000;
    pub const DATA_SG_PADDR: u32 = 0x0004_0010;
    pub const DATA_BIO: u32 = 0x0020_0000;
    pub const DATA_MASK: u32 = 0x0024_0010;
    pub const TAG_ACTION_VALID: u32 = 0x0000_8000;
}

/// `xpt_opcode` function codes (`cam/cam_ccb.h`).
pub mod func {
    pub const SCSI_IO: u32 = 0x01 | 0x800 | 0x100;
    pub const PATH_INQ: u32 = 0x04;
    pub const ABORT: u32 = 0x10;
    pub const RESET_DEV: u32 = 0x12 | 0x800 | 0x100;
    pub const GET_TRAN_SETTINGS: u32 = 0x15;
    pub const SET_TRAN_SETTINGS: u32 = 0x16;
    pub const CALC_GEOMETRY: u32 = 0x17;
    /// `XPT_FC_QUEUED`: set in every function code whose CCB the SIM may complete later.
    pub const FC_QUEUED: u32 = 0x100;

    /// Whether CAM treats `func_code` as immediate: `xpt_action`'s caller reads the status as
    /// soon as the action routine returns (and may free or reuse the CCB, often its own stack
    /// variable), and `xpt_done` ignores such a CCB. It must be answered before the action
    /// routine returns, never later.
    pub const fn is_immediate(func_code: u32) -> bool {
        func_code & FC_QUEUED == 0
    }
}

/// Tag messages a CCB may carry in `tag_action` (`cam/scsi/scsi_message.h`).
pub mod tag {
    pub const SIMPLE: u8 = 0x20;
    pub const HEAD_OF_QUEUE: u8 = 0x21;
    pub const ORDERED: u8 = 0x22;
    pub const ACA: u8 = 0x24;
}

/// Bytes of CDB stored inside the CCB (`IOCDBLEN`); longer CDBs come by `CAM_CDB_POINTER`.
pub const CDB_INLINE_LEN: usize = 16;
/// Size of `struct scsi_sense_data` (`SSD_FULL_SIZE`): no sense copy may exceed it.
pub const SENSE_BUF_LEN: usize = 252;
/// `CAM_TIME_DEFAULT`: the SIM picks the timeout.
pub const TIME_DEFAULT: u32 = 0;
/// `CAM_TIME_INFINITY`: the command never times out.
pub const TIME_INFINITY: u32 = 0xffff_ffff;

/// The session's types for what a CCB says: data direction, task attribute and the residual of
/// a completion are the core's own, so a translated CCB needs no second conversion.
pub use isboot_core::pdu::{Residual, TaskAttr};
pub use isboot_core::scsi::Direction;

/// Where the CDB of a CCB lives, decided before the glue reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CdbSource {
    /// `cdb_io.cdb_bytes[..len]`.
    Inline(usize),
    /// `cdb_io.cdb_ptr[..len]` (`CAM_CDB_POINTER`).
    Pointer(usize),
}

/// Decides where to read the CDB from, refusing lengths the CCB cannot hold.
///
/// `cdb_len` up to 255 is legal with `CAM_CDB_POINTER`; the session carries bytes past 16 in an
/// Extended CDB AHS. Inline CDBs cannot exceed the 16-byte array (isboot read past it).
pub fn cdb_source(ccb_flags: u32, cdb_len: u8) -> Result<CdbSource, Refusal> {
    let len = usize::from(cdb_len);
    if len == 0 {
        return Err(Refusal::CdbLength(cdb_len));
    }
    if ccb_flags & flags::CDB_POINTER != 0 {
        Ok(CdbSource::Pointer(len))
    } else if len <= CDB_INLINE_LEN {
        Ok(CdbSource::Inline(len))
    } else {
        Err(Refusal::CdbLength(cdb_len))
    }
}

/// The fields of a `struct ccb_scsiio` the SIM acts on, read by the glue.
#[derive(Clone, Copy, Debug)]
pub struct ScsiIoView<'a> {
    /// `ccb_h.func_code`.
    pub func_code: u32,
    /// `ccb_h.flags`.
    pub flags: u32,
    /// `ccb_h.target_lun` (CAM's 64-bit LUN id).
    pub target_lun: u64,
    /// `ccb_h.timeout` in milliseconds.
    pub timeout_ms: u32,
    /// The CDB, read from where [`cdb_source`] said.
    pub cdb: &'a [u8],
    /// `dxfer_len`.
    pub dxfer_len: u32,
    /// `data_ptr` is not NULL.
    pub has_data_ptr: bool,
    /// `sglist_cnt`: segments behind `data_ptr` for `CAM_DATA_SG`.
    pub sg_count: u16,
    /// `tag_action`.
    pub tag_action: u8,
    /// `priority` (SAM command priority, 0 = none).
    pub priority: u8,
}

/// How the CCB's data buffer is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `CAM_DATA_VADDR`: one kernel virtual buffer at `data_ptr` (also used without data).
    Contiguous,
    /// `CAM_DATA_SG`: `data_ptr` points to this many `bus_dma_segment_t` holding kernel
    /// virtual addresses.
    Segments(u16),
}

/// Most S/G segments accepted in one CCB (a 1 MiB transfer in 4 KiB pages is 256).
pub const MAX_SG_SEGMENTS: u16 = 1024;

/// A SCSI command as the session needs it; the data buffer stays with the glue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command<'a> {
    pub lun: Lun,
    pub cdb: &'a [u8],
    pub direction: Direction,
    pub layout: Layout,
    /// Expected Data Transfer Length.
    pub transfer_len: u32,
    pub attr: TaskAttr,
    /// CmdPri (0..=15), 0 when CAM gave none.
    pub priority: u8,
    /// Milliseconds before the session gives up on the command, `None` for never.
    pub timeout_ms: Option<u32>,
}

/// Why the SIM refuses a CCB without sending anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not an `XPT_SCSI_IO` CCB.
    NotScsiIo(u32),
    /// CDB length 0, or more than 16 bytes without `CAM_CDB_POINTER`.
    CdbLength(u8),
    /// `CAM_DIR_BOTH`: bidirectional commands need a second buffer CAM does not describe here.
    Bidirectional,
    /// Physical addresses and bios are not accepted (no `PIM_UNMAPPED`).
    DataType(u32),
    /// An S/G list with no segment or more than [`MAX_SG_SEGMENTS`].
    SegmentCount(u16),
    /// The S/G segments do not add up to `dxfer_len`.
    SegmentTotal { total: u64, len: u32 },
    /// A data phase with a NULL `data_ptr`.
    NoBuffer,
    /// More data than `maxio` announced in `XPT_PATH_INQ`.
    TooBig { len: u32, max: u32 },
    /// No memory for a CDB longer than 16 bytes (the only per-command allocation, and only
    /// for such CDBs): CAM may try again later.
    NoMemory,
}

impl Refusal {
    /// CAM status for a refused CCB. Nothing is frozen. The request itself is wrong, so CAM
    /// does not retry it, except when memory for a long CDB was short: `CAM_RESRC_UNAVAIL`,
    /// which cam_periph_error retries after a delay.
    pub fn cam_status(self) -> u32 {
        match self {
            Refusal::TooBig { .. } => status::REQ_TOO_BIG,
            Refusal::NotScsiIo(_) => status::FUNC_NOTAVAIL,
            Refusal::NoMemory => status::RESRC_UNAVAIL,
            _ => status::REQ_INVALID,
        }
    }
}

impl core::fmt::Display for Refusal {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // By value: integers formatted through references would instantiate the reference's
        // `Display` in the module at opt-level 2 (~250 bytes each) beside core's own.
        match *self {
            Refusal::NotScsiIo(code) => write!(f, "function code {code:#x} is not XPT_SCSI_IO"),
            Refusal::CdbLength(len) => write!(f, "CDB length {len} is not supported"),
            Refusal::Bidirectional => f.write_str("bidirectional data transfer is not supported"),
            Refusal::DataType(t) => write!(f, "CCB data type {t:#x} is not virtual memory"),
            Refusal::SegmentCount(n) => write!(f, "S/G list of {n} segments is not supported"),
            Refusal::SegmentTotal { total, len } => {
                write!(f, "S/G segments hold {total} bytes, the transfer is {len}")
            }
            Refusal::NoBuffer => f.write_str("data phase without a data buffer"),
            Refusal::NoMemory => f.write_str("no memory for a CDB longer than 16 bytes"),
            Refusal::TooBig { len, max } => {
                write!(f, "transfer of {len} bytes exceeds maxio {max}")
            }
        }
    }
}

/// Translates a SCSI I/O CCB into the command the session sends, or says why it cannot be sent.
///
/// `maxio` is the limit announced in `XPT_PATH_INQ`.
pub fn translate_scsi_io<'a>(ccb: &ScsiIoView<'a>, maxio: u32) -> Result<Command<'a>, Refusal> {
    if ccb.func_code != func::SCSI_IO {
        return Err(Refusal::NotScsiIo(ccb.func_code));
    }
    let cdb_len = u8::try_from(ccb.cdb.len()).map_err(|_| Refusal::CdbLength(u8::MAX))?;
    cdb_source(ccb.flags, cdb_len)?;
    let direction = match ccb.flags & flags::DIR_MASK {
        flags::DIR_IN => Direction::In,
        flags::DIR_OUT => Direction::Out,
        flags::DIR_NONE => Direction::None,
        _ => return Err(Refusal::Bidirectional),
    };
    // Without a data phase `dxfer_len` and the data type mean nothing (CAM leaves them stale).
    let mut layout = Layout::Contiguous;
    let transfer_len = if direction == Direction::None {
        0
    } else {
        match ccb.flags & flags::DATA_MASK {
            flags::DATA_VADDR => {}
            flags::DATA_SG => {
                if ccb.sg_count == 0 || ccb.sg_count > MAX_SG_SEGMENTS {
                    return Err(Refusal::SegmentCount(ccb.sg_count));
                }
                layout = Layout::Segments(ccb.sg_count);
            }
            other => return Err(Refusal::DataType(other)),
        }
        if ccb.dxfer_len > maxio {
            return Err(Refusal::TooBig {
                len: ccb.dxfer_len,
                max: maxio,
            });
        }
        if ccb.dxfer_len > 0 && !ccb.has_data_ptr {
            return Err(Refusal::NoBuffer);
        }
        ccb.dxfer_len
    };
    let attr = if ccb.flags & flags::TAG_ACTION_VALID == 0 {
        TaskAttr::Untagged
    } else {
        match ccb.tag_action {
            tag::HEAD_OF_QUEUE => TaskAttr::HeadOfQueue,
            tag::ORDERED => TaskAttr::Ordered,
            tag::ACA => TaskAttr::Aca,
            // CAM_TAG_ACTION_NONE with the valid bit, and anything unknown, run as SIMPLE,
            // the attribute every target supports.
            _ => TaskAttr::Simple,
        }
    };
    let timeout_ms = match ccb.timeout_ms {
        TIME_INFINITY => None,
        TIME_DEFAULT => Some(DEFAULT_TIMEOUT_MS),
        ms => Some(ms),
    };
    Ok(Command {
        lun: crate::lun::from_cam(ccb.target_lun),
        cdb: ccb.cdb,
        direction,
        layout,
        transfer_len,
        attr,
        priority: ccb.priority.min(15),
        timeout_ms,
    })
}

/// Checks that S/G segment lengths add up to exactly `dxfer_len`, so gathering and scattering
/// never run past either the segments or the request's buffer.
pub fn check_segments(lens: impl IntoIterator<Item = u64>, dxfer_len: u32) -> Result<(), Refusal> {
    let total = lens.into_iter().fold(0u64, |acc, l| acc.saturating_add(l));
    if total == u64::from(dxfer_len) {
        Ok(())
    } else {
        Err(Refusal::SegmentTotal {
            total,
            len: dxfer_len,
        })
    }
}

/// Timeout for a CCB that asked for `CAM_TIME_DEFAULT` (da(4) always sets its own, 60 s).
pub const DEFAULT_TIMEOUT_MS: u32 = 60_000;

/// How the session finished a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish<'a> {
    /// The target answered with a SCSI Response (or Data-In with S bit).
    Response {
        /// iSCSI Response field; 0 = command completed at target.
        response: u8,
        /// SCSI status byte.
        status: u8,
        /// Sense data (without the SenseLength prefix), possibly empty.
        sense: &'a [u8],
        residual: Residual,
        /// Data-In bytes actually placed into the buffer.
        received: u32,
    },
    /// Aborted by an ABORT TASK the SIM sent for it (XPT_ABORT).
    Aborted,
    /// The connection was lost or a resource ran out before the command completed: CAM must retry
    /// it once the session is back (ERL 0 reinstatement does not resume tasks).
    Requeue,
    /// The session is gone for good (teardown, or the target removed it).
    Gone,
    /// The command's timeout passed.
    TimedOut,
    /// A LUN RESET the SIM sent (XPT_RESET_DEV) terminated the command.
    Reset,
    /// The target rejected the command PDU: a protocol error, not a SCSI status.
    Failed,
    /// The command cannot be carried by iSCSI (caught by the session, not by translation).
    Invalid,
}

/// What to write into the CCB before `xpt_done`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CcbResult {
    /// `ccb_h.status` including `CAM_DEV_QFRZN` and `CAM_AUTOSNS_VALID` as they apply.
    pub status: u32,
    /// Call `xpt_freeze_devq(path, 1)`: the CCB failed and the queue was not yet frozen for it.
    pub freeze_devq: bool,
    /// `scsi_status`.
    pub scsi_status: u8,
    /// Bytes of sense to copy into `sense_data` (never more than the CCB's `sense_len`).
    pub sense_copy: u8,
    /// `sense_resid`.
    pub sense_resid: u8,
    /// `resid`.
    pub resid: u32,
}

/// The parts of the original CCB the completion depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CcbShape {
    pub direction: Direction,
    pub dxfer_len: u32,
    /// `sense_len`: room CAM gave for autosense.
    pub sense_len: u8,
    /// `CAM_DIS_AUTOSENSE` was set.
    pub autosense_disabled: bool,
    /// `ccb_h.status` already carries `CAM_DEV_QFRZN`.
    pub already_frozen: bool,
}

impl CcbShape {
    /// Shape of a CCB from its `ccb_h.flags`, `dxfer_len`, `sense_len` and current status.
    pub fn new(ccb_flags: u32, dxfer_len: u32, sense_len: u8, current_status: u32) -> Self {
        let direction = match ccb_flags & flags::DIR_MASK {
            flags::DIR_IN => Direction::In,
            flags::DIR_OUT => Direction::Out,
            _ => Direction::None,
        };
        CcbShape {
            direction,
            dxfer_len: if direction == Direction::None {
                0
            } else {
                dxfer_len
            },
            sense_len,
            autosense_disabled: ccb_flags & flags::DIS_AUTOSENSE != 0,
            already_frozen: current_status & status::DEV_QFRZN != 0,
        }
    }
}

/// Maps the session's outcome to the CCB's fields.
///
/// CAM's rule: any CCB that completes with an error freezes its device queue (`CAM_DEV_QFRZN` plus
/// one `xpt_freeze_devq`), so that the peripheral's error recovery runs before the queued commands
/// behind it. Success never freezes.
pub fn complete_scsi_io(shape: &CcbShape, finish: &Finish<'_>) -> CcbResult {
    let mut out = CcbResult {
        status: status::REQ_CMP,
        freeze_devq: false,
        scsi_status: 0,
        sense_copy: 0,
        sense_resid: 0,
        resid: 0,
    };
    let error = match *finish {
        Finish::Response {
            response,
            status: scsi_status,
            sense,
            residual,
            received,
        } => {
            out.resid = residual_for(shape, residual, received);
            if response != 0 {
                Some(status::REQ_CMP_ERR)
            } else if scsi_status == 0 {
                None
            } else {
                out.scsi_status = scsi_status;
                let mut st = status::SCSI_STATUS_ERROR;
                if !sense.is_empty() && !shape.autosense_disabled {
                    let room = usize::from(shape.sense_len).min(SENSE_BUF_LEN);
                    let copy = sense.len().min(room);
                    // `copy <= room <= sense_len <= u8::MAX`, so neither conversion can fail.
                    out.sense_copy = u8::try_from(copy).unwrap_or(0);
                    out.sense_resid = shape.sense_len.saturating_sub(out.sense_copy);
                    st |= status::AUTOSNS_VALID;
                }
                Some(st)
            }
        }
        Finish::Aborted => Some(status::REQ_ABORTED),
        Finish::Requeue => Some(status::REQUEUE_REQ),
        Finish::Gone => Some(status::DEV_NOT_THERE),
        Finish::TimedOut => Some(status::CMD_TIMEOUT),
        Finish::Reset => Some(status::BDR_SENT),
        Finish::Failed => Some(status::REQ_CMP_ERR),
        Finish::Invalid => Some(status::REQ_INVALID),
    };
    if let Some(st) = error {
        // A lost device is not frozen for recovery: nothing will ever release it.
        let freeze = st != status::DEV_NOT_THERE;
        out.status = st;
        if freeze {
            out.status |= status::DEV_QFRZN;
            out.freeze_devq = !shape.already_frozen;
        }
        // Outcomes without a target response moved no data the caller may use.
        if !matches!(finish, Finish::Response { .. }) {
            out.resid = shape.dxfer_len;
        }
    }
    out
}

/// Residual to report: for reads, what was not actually placed in the buffer (a target that claims
/// a smaller residual than it delivered must not make CAM read stale bytes); for writes, the
/// target's underflow count, bounded by the transfer length.
fn residual_for(shape: &CcbShape, residual: Residual, received: u32) -> u32 {
    match shape.direction {
        Direction::None => 0,
        Direction::In => shape.dxfer_len.saturating_sub(received),
        Direction::Out => match residual {
            Residual::Underflow(n) => n.min(shape.dxfer_len),
            Residual::None | Residual::Overflow(_) => 0,
        },
    }
}

/// Status and devq freeze for a CCB finished without a target response: a refusal, a requeue,
/// an informational answer, an abort or reset result. Returns `(ccb_h.status, freeze_devq)`.
///
/// A failed `XPT_SCSI_IO` freezes its device queue like any I/O error (CAM's error path releases
/// it); one whose device is gone does not, since nothing would release it. Other function codes
/// never freeze.
pub fn bare_status(func_code: u32, st: u32, already_frozen: bool) -> (u32, bool) {
    let is_io = func_code == func::SCSI_IO;
    let error = st & status::STATUS_MASK != status::REQ_CMP;
    if is_io && error && st & status::STATUS_MASK != status::DEV_NOT_THERE {
        (st | status::DEV_QFRZN, !already_frozen)
    } else {
        (st, false)
    }
}

/// Task management functions the SIM sends for CAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TmfKind {
    /// ABORT TASK for `XPT_ABORT`.
    AbortTask,
    /// LOGICAL UNIT RESET for `XPT_RESET_DEV`.
    LunReset,
}

/// CAM status for an `XPT_ABORT` / `XPT_RESET_DEV` CCB from the Task Management Function Response
/// (RFC 7143 §11.6.1), or `None` when the request never reached the target.
///
/// Only "function complete" is success: isboot claimed success for every reset, which hid failed
/// recoveries from CAM.
pub fn tmf_status(kind: TmfKind, response: Option<u8>) -> u32 {
    match (kind, response) {
        (_, Some(0)) => status::REQ_CMP,
        // "Task does not exist": it completed before the abort arrived; nothing is left to abort.
        (TmfKind::AbortTask, Some(1)) => status::UA_ABORT,
        (_, Some(2)) => status::LUN_INVALID,
        (_, Some(5)) => status::FUNC_NOTAVAIL,
        (TmfKind::AbortTask, _) => status::UA_ABORT,
        (TmfKind::LunReset, _) => status::REQ_CMP_ERR,
    }
}

/// Whether CAM aborted a queued CCB on its way to the SIM: an `XPT_ABORT` that finds it taken
/// off the device queue but not yet `CAM_SIM_QUEUED` sets `CAM_REQ_ABORTED | CAM_DEV_QFRZN`,
/// freezes the device queue and leaves the completion to the SIM "just before starting real
/// work". Such a CCB must go back untouched: running it and replacing its status would drop
/// `CAM_DEV_QFRZN`, so nobody would release the freeze CAM took and the disk would stall.
pub fn aborted_en_route(func_code: u32, st: u32) -> bool {
    !func::is_immediate(func_code) && st & status::STATUS_MASK != status::REQ_INPROG
}

/// What became of an `XPT_ABORT` handed to the session from the action routine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbortHandoff {
    /// Queued: the session sends ABORT TASK if the command is still outstanding; the aborted CCB
    /// completes on its own (aborted, or with its result if it finished first).
    Queued,
    /// The request channel is full (a burst of aborts and resets).
    Full,
    /// The SIM is closing: every CCB it holds completes as gone anyway.
    Closed,
}

/// The status the `XPT_ABORT` CCB itself gets, in the action routine ([`func::is_immediate`]):
/// success means the abort was started, as CAM's own abort of a CCB still in its queues does;
/// the outcome shows on the aborted CCB.
pub fn abort_status(handoff: AbortHandoff) -> u32 {
    match handoff {
        AbortHandoff::Queued => status::REQ_CMP,
        AbortHandoff::Full | AbortHandoff::Closed => status::UA_ABORT,
    }
}

/// `XPT_PATH_INQ` answer fields that depend on the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathInq {
    /// `hba_inquiry`: `PI_TAG_ABLE`.
    pub hba_inquiry: u8,
    /// `hba_misc`: `PIM_EXTLUNS` (iSCSI LUNs are 8-byte SAM LUNs) and `PIM_NOBUSRESET` (a bus reset
    /// means nothing to an iSCSI session).
    pub hba_misc: u32,
    /// `maxio` in bytes.
    pub maxio: u32,
    /// `base_transfer_speed` in KB/s (CAM's unit, 1000 bytes).
    pub base_transfer_speed: u32,
    /// `max_lun`: only consulted for SPC-2 targets without REPORT LUNS.
    pub max_lun: u32,
}

pub const PI_TAG_ABLE: u8 = 0x02;
pub const PIM_EXTLUNS: u32 = 0x100;
pub const PIM_NOBUSRESET: u32 = 0x10;

/// Largest transfer per CCB when the kernel's `maxphys` is larger: bounds the session's buffers.
pub const MAXIO_CAP: u32 = 1024 * 1024;

/// Computes the `XPT_PATH_INQ` values from the kernel's `maxphys` and the NIC's `if_baudrate`
/// (bits/s, 0 when the driver does not say).
pub fn path_inq(maxphys: u64, baudrate_bps: u64) -> PathInq {
    let maxio = u32::try_from(maxphys).unwrap_or(u32::MAX).min(MAXIO_CAP);
    // 64 KiB is the smallest maxphys FreeBSD ever had (DFLTPHYS); a nonsense 0 must not make
    // CAM split every transfer into nothing.
    let maxio = maxio.max(64 * 1024);
    let kbps = baudrate_bps / 8 / 1000;
    let speed = if kbps == 0 {
        125_000
    } else {
        u32::try_from(kbps).unwrap_or(u32::MAX)
    };
    PathInq {
        hba_inquiry: PI_TAG_ABLE,
        hba_misc: PIM_EXTLUNS | PIM_NOBUSRESET,
        maxio,
        base_transfer_speed: speed,
        max_lun: 255,
    }
}

/// Queue depth for `cam_simq_alloc` / `cam_sim_alloc` from the command window the target granted
/// at login (MaxCmdSN - ExpCmdSN + 1) and the session's task-slot limit.
///
/// At least 1 so the disk can attach even when the target opened no window yet; never more than
/// the slots the session can track, so the request channel sized to the depth cannot overflow.
pub fn queue_depth(window: u32, slot_limit: u32) -> u32 {
    window.clamp(1, slot_limit.max(1))
}

/// A request tag: the slot of the pending CCB and a generation that changes each time the slot
/// is reused, so a late completion or abort for an old request never touches a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag {
    pub slot: u32,
    pub generation: u32,
}

impl Tag {
    pub fn encode(self) -> u64 {
        u64::from(self.generation) << 32 | u64::from(self.slot)
    }

    pub fn decode(tag: u64) -> Tag {
        Tag {
            slot: tag as u32,
            generation: (tag >> 32) as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_ccb_cam_aborted_on_its_way_is_handed_back_as_is() {
        let aborted = status::REQ_ABORTED | status::DEV_QFRZN;
        assert!(aborted_en_route(func::SCSI_IO, aborted));
        assert!(aborted_en_route(func::RESET_DEV, aborted));
        assert!(!aborted_en_route(func::SCSI_IO, status::REQ_INPROG));
        // Immediate CCBs are never on a device queue; their status is ours to set.
        assert!(!aborted_en_route(func::PATH_INQ, aborted));
    }

    #[test]
    fn abort_is_immediate_and_answered_in_the_action_routine() {
        assert!(func::is_immediate(func::ABORT));
        assert!(func::is_immediate(func::PATH_INQ));
        assert!(func::is_immediate(func::GET_TRAN_SETTINGS));
        assert!(func::is_immediate(func::CALC_GEOMETRY));
        assert!(!func::is_immediate(func::SCSI_IO));
        assert!(!func::is_immediate(func::RESET_DEV));
        assert_eq!(abort_status(AbortHandoff::Queued), status::REQ_CMP);
        assert_eq!(abort_status(AbortHandoff::Full), status::UA_ABORT);
        assert_eq!(abort_status(AbortHandoff::Closed), status::UA_ABORT);
    }

    const READ10: [u8; 10] = [0x28, 0, 0, 0, 0, 8, 0, 0, 8, 0];

    fn read(len: u32) -> ScsiIoView<'static> {
        ScsiIoView {
            func_code: func::SCSI_IO,
            flags: flags::DIR_IN | flags::DATA_VADDR | flags::TAG_ACTION_VALID,
            target_lun: 1,
            timeout_ms: 30_000,
            cdb: &READ10,
            dxfer_len: len,
            has_data_ptr: true,
            sg_count: 0,
            tag_action: tag::SIMPLE,
            priority: 0,
        }
    }

    fn shape(dir: Direction, len: u32) -> CcbShape {
        CcbShape {
            direction: dir,
            dxfer_len: len,
            sense_len: 32,
            autosense_disabled: false,
            already_frozen: false,
        }
    }

    #[test]
    fn a_read_ccb_becomes_a_simple_read_command_on_its_lun() {
        let cmd = translate_scsi_io(&read(4096), MAXIO_CAP).unwrap();
        assert_eq!(cmd.direction, Direction::In);
        assert_eq!(cmd.transfer_len, 4096);
        assert_eq!(cmd.attr, TaskAttr::Simple);
        assert_eq!(cmd.cdb, &READ10);
        assert_eq!(cmd.lun.0, [0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(cmd.timeout_ms, Some(30_000));
    }

    #[test]
    fn tag_actions_map_to_iscsi_task_attributes() {
        let mut ccb = read(512);
        for (t, attr) in [
            (tag::SIMPLE, TaskAttr::Simple),
            (tag::ORDERED, TaskAttr::Ordered),
            (tag::HEAD_OF_QUEUE, TaskAttr::HeadOfQueue),
            (tag::ACA, TaskAttr::Aca),
            (0, TaskAttr::Simple),
        ] {
            ccb.tag_action = t;
            assert_eq!(
                translate_scsi_io(&ccb, MAXIO_CAP).unwrap().attr,
                attr,
                "tag {t:#x}"
            );
        }
        ccb.flags &= !flags::TAG_ACTION_VALID;
        ccb.tag_action = tag::ORDERED;
        assert_eq!(
            translate_scsi_io(&ccb, MAXIO_CAP).unwrap().attr,
            TaskAttr::Untagged
        );
    }

    #[test]
    fn no_data_phase_ignores_stale_length_and_data_type() {
        let mut ccb = read(4096);
        ccb.flags = flags::DIR_NONE | flags::DATA_BIO;
        ccb.has_data_ptr = false;
        let cmd = translate_scsi_io(&ccb, MAXIO_CAP).unwrap();
        assert_eq!(cmd.direction, Direction::None);
        assert_eq!(cmd.transfer_len, 0);
    }

    #[test]
    fn virtual_sg_lists_are_accepted_within_bounds() {
        let mut ccb = read(4096);
        ccb.flags |= flags::DATA_SG;
        ccb.sg_count = 3;
        assert_eq!(
            translate_scsi_io(&ccb, MAXIO_CAP).unwrap().layout,
            Layout::Segments(3)
        );
        ccb.sg_count = 0;
        assert_eq!(
            translate_scsi_io(&ccb, MAXIO_CAP),
            Err(Refusal::SegmentCount(0))
        );
        ccb.sg_count = MAX_SG_SEGMENTS + 1;
        let err = translate_scsi_io(&ccb, MAXIO_CAP).unwrap_err();
        assert_eq!(err, Refusal::SegmentCount(MAX_SG_SEGMENTS + 1));
        assert_eq!(err.cam_status(), status::REQ_INVALID);
        assert_eq!(
            translate_scsi_io(&read(4096), MAXIO_CAP).unwrap().layout,
            Layout::Contiguous
        );
    }

    #[test]
    fn sg_segments_must_add_up_to_the_transfer() {
        assert_eq!(check_segments([1024, 2048, 1024], 4096), Ok(()));
        assert_eq!(
            check_segments([1024, 2048], 4096),
            Err(Refusal::SegmentTotal {
                total: 3072,
                len: 4096
            })
        );
        assert_eq!(
            check_segments([u64::MAX, 1], 4096),
            Err(Refusal::SegmentTotal {
                total: u64::MAX,
                len: 4096
            })
        );
    }

    #[test]
    fn non_virtual_data_types_are_refused_as_invalid() {
        for dt in [flags::DATA_PADDR, flags::DATA_SG_PADDR, flags::DATA_BIO] {
            let mut ccb = read(512);
            ccb.flags |= dt;
            let err = translate_scsi_io(&ccb, MAXIO_CAP).unwrap_err();
            assert_eq!(err, Refusal::DataType(dt));
            assert_eq!(err.cam_status(), status::REQ_INVALID);
        }
    }

    #[test]
    fn bidirectional_and_bufferless_transfers_are_refused() {
        let mut ccb = read(512);
        ccb.flags = (ccb.flags & !flags::DIR_MASK) | flags::DIR_BOTH;
        assert_eq!(
            translate_scsi_io(&ccb, MAXIO_CAP),
            Err(Refusal::Bidirectional)
        );
        let mut ccb = read(512);
        ccb.has_data_ptr = false;
        assert_eq!(translate_scsi_io(&ccb, MAXIO_CAP), Err(Refusal::NoBuffer));
        // A zero-length read needs no buffer.
        ccb.dxfer_len = 0;
        assert!(translate_scsi_io(&ccb, MAXIO_CAP).is_ok());
    }

    #[test]
    fn transfers_beyond_maxio_are_too_big() {
        let err = translate_scsi_io(&read(MAXIO_CAP + 512), MAXIO_CAP).unwrap_err();
        assert_eq!(
            err,
            Refusal::TooBig {
                len: MAXIO_CAP + 512,
                max: MAXIO_CAP
            }
        );
        assert_eq!(err.cam_status(), status::REQ_TOO_BIG);
        assert!(translate_scsi_io(&read(MAXIO_CAP), MAXIO_CAP).is_ok());
    }

    #[test]
    fn memory_short_for_a_long_cdb_is_a_resource_shortage() {
        // CAM retries CAM_RESRC_UNAVAIL after a delay; CAM_REQ_INVALID would fail the I/O.
        assert_eq!(Refusal::NoMemory.cam_status(), status::RESRC_UNAVAIL);
        assert_eq!(Refusal::CdbLength(0).cam_status(), status::REQ_INVALID);
    }

    #[test]
    fn cdb_longer_than_16_needs_the_pointer_flag() {
        assert_eq!(cdb_source(0, 16), Ok(CdbSource::Inline(16)));
        assert_eq!(cdb_source(0, 17), Err(Refusal::CdbLength(17)));
        assert_eq!(
            cdb_source(flags::CDB_POINTER, 32),
            Ok(CdbSource::Pointer(32))
        );
        assert_eq!(
            cdb_source(flags::CDB_POINTER, 0),
            Err(Refusal::CdbLength(0))
        );
        let long = [0x7fu8; 32];
        let mut ccb = read(0);
        ccb.cdb = &long;
        assert_eq!(
            translate_scsi_io(&ccb, MAXIO_CAP),
            Err(Refusal::CdbLength(32))
        );
        ccb.flags |= flags::CDB_POINTER;
        assert_eq!(translate_scsi_io(&ccb, MAXIO_CAP).unwrap().cdb.len(), 32);
    }

    #[test]
    fn other_function_codes_are_not_available() {
        let mut ccb = read(512);
        ccb.func_code = func::PATH_INQ;
        let err = translate_scsi_io(&ccb, MAXIO_CAP).unwrap_err();
        assert_eq!(err.cam_status(), status::FUNC_NOTAVAIL);
    }

    #[test]
    fn timeouts_default_and_infinity() {
        let mut ccb = read(512);
        ccb.timeout_ms = TIME_DEFAULT;
        assert_eq!(
            translate_scsi_io(&ccb, MAXIO_CAP).unwrap().timeout_ms,
            Some(DEFAULT_TIMEOUT_MS)
        );
        ccb.timeout_ms = TIME_INFINITY;
        assert_eq!(translate_scsi_io(&ccb, MAXIO_CAP).unwrap().timeout_ms, None);
    }

    #[test]
    fn priority_is_clamped_to_four_bits() {
        let mut ccb = read(512);
        ccb.priority = 200;
        assert_eq!(translate_scsi_io(&ccb, MAXIO_CAP).unwrap().priority, 15);
    }

    fn good(received: u32, residual: Residual) -> Finish<'static> {
        Finish::Response {
            response: 0,
            status: 0,
            sense: &[],
            residual,
            received,
        }
    }

    #[test]
    fn good_status_completes_without_freezing() {
        let r = complete_scsi_io(&shape(Direction::In, 4096), &good(4096, Residual::None));
        assert_eq!(r.status, status::REQ_CMP);
        assert!(!r.freeze_devq);
        assert_eq!(r.resid, 0);
    }

    #[test]
    fn read_residual_is_what_was_not_delivered_whatever_the_target_claims() {
        // Target claims underflow of 1024 but only delivered 2048 of 4096.
        let r = complete_scsi_io(
            &shape(Direction::In, 4096),
            &good(2048, Residual::Underflow(1024)),
        );
        assert_eq!(r.resid, 2048);
        assert_eq!(r.status, status::REQ_CMP);
    }

    #[test]
    fn write_residual_follows_the_underflow_bounded_by_the_length() {
        let sh = shape(Direction::Out, 4096);
        assert_eq!(
            complete_scsi_io(&sh, &good(0, Residual::Underflow(512))).resid,
            512
        );
        assert_eq!(
            complete_scsi_io(&sh, &good(0, Residual::Underflow(1 << 30))).resid,
            4096
        );
        assert_eq!(
            complete_scsi_io(&sh, &good(0, Residual::Overflow(512))).resid,
            0
        );
    }

    #[test]
    fn check_condition_carries_sense_and_freezes() {
        let sense = [0x70, 0, 0x05, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0];
        let f = Finish::Response {
            response: 0,
            status: 0x02,
            sense: &sense,
            residual: Residual::None,
            received: 0,
        };
        let r = complete_scsi_io(&shape(Direction::In, 512), &f);
        assert_eq!(
            r.status,
            status::SCSI_STATUS_ERROR | status::AUTOSNS_VALID | status::DEV_QFRZN
        );
        assert!(r.freeze_devq);
        assert_eq!(r.scsi_status, 0x02);
        assert_eq!(r.sense_copy, 14);
        assert_eq!(r.sense_resid, 32 - 14);
        assert_eq!(r.resid, 512);
    }

    #[test]
    fn sense_is_truncated_to_the_room_cam_gave() {
        let sense = [0x72u8; 200];
        let f = Finish::Response {
            response: 0,
            status: 0x02,
            sense: &sense,
            residual: Residual::None,
            received: 0,
        };
        let mut sh = shape(Direction::None, 0);
        sh.sense_len = 18;
        let r = complete_scsi_io(&sh, &f);
        assert_eq!((r.sense_copy, r.sense_resid), (18, 0));
        sh.sense_len = 255;
        let f = Finish::Response {
            response: 0,
            status: 0x02,
            sense: &[0x70; 300],
            residual: Residual::None,
            received: 0,
        };
        let r = complete_scsi_io(&sh, &f);
        assert_eq!(usize::from(r.sense_copy), SENSE_BUF_LEN);
        assert_eq!(r.sense_resid, 255 - 252);
    }

    #[test]
    fn autosense_disabled_reports_status_without_sense() {
        let f = Finish::Response {
            response: 0,
            status: 0x02,
            sense: &[0x70; 18],
            residual: Residual::None,
            received: 0,
        };
        let mut sh = shape(Direction::None, 0);
        sh.autosense_disabled = true;
        let r = complete_scsi_io(&sh, &f);
        assert_eq!(r.status, status::SCSI_STATUS_ERROR | status::DEV_QFRZN);
        assert_eq!(r.sense_copy, 0);
    }

    #[test]
    fn busy_without_sense_is_a_scsi_status_error() {
        let f = Finish::Response {
            response: 0,
            status: 0x08,
            sense: &[],
            residual: Residual::None,
            received: 0,
        };
        let r = complete_scsi_io(&shape(Direction::None, 0), &f);
        assert_eq!(r.status, status::SCSI_STATUS_ERROR | status::DEV_QFRZN);
        assert_eq!(r.scsi_status, 0x08);
    }

    #[test]
    fn target_failure_response_is_a_completion_error() {
        let f = Finish::Response {
            response: 1,
            status: 0,
            sense: &[],
            residual: Residual::None,
            received: 0,
        };
        let r = complete_scsi_io(&shape(Direction::Out, 512), &f);
        assert_eq!(r.status, status::REQ_CMP_ERR | status::DEV_QFRZN);
        assert!(r.freeze_devq);
    }

    #[test]
    fn an_already_frozen_queue_is_not_frozen_twice() {
        let mut sh = shape(Direction::In, 512);
        sh.already_frozen = true;
        let r = complete_scsi_io(&sh, &Finish::Requeue);
        assert_eq!(r.status, status::REQUEUE_REQ | status::DEV_QFRZN);
        assert!(!r.freeze_devq);
    }

    #[test]
    fn session_outcomes_map_to_cam_status() {
        let sh = shape(Direction::In, 512);
        for (f, st, frozen) in [
            (Finish::Aborted, status::REQ_ABORTED, true),
            (Finish::Requeue, status::REQUEUE_REQ, true),
            (Finish::TimedOut, status::CMD_TIMEOUT, true),
            (Finish::Reset, status::BDR_SENT, true),
            (Finish::Failed, status::REQ_CMP_ERR, true),
            (Finish::Invalid, status::REQ_INVALID, true),
            (Finish::Gone, status::DEV_NOT_THERE, false),
        ] {
            let r = complete_scsi_io(&sh, &f);
            assert_eq!(r.status & status::STATUS_MASK, st, "{f:?}");
            assert_eq!(r.freeze_devq, frozen, "{f:?}");
            assert_eq!(r.resid, 512, "{f:?}: nothing counts as transferred");
        }
    }

    #[test]
    fn shape_reads_direction_autosense_and_freeze_from_the_ccb() {
        let s = CcbShape::new(
            flags::DIR_OUT | flags::DIS_AUTOSENSE,
            4096,
            18,
            status::DEV_QFRZN,
        );
        assert_eq!(s.direction, Direction::Out);
        assert!(s.autosense_disabled && s.already_frozen);
        let s = CcbShape::new(flags::DIR_NONE, 4096, 18, status::REQ_INPROG);
        assert_eq!((s.direction, s.dxfer_len), (Direction::None, 0));
    }

    #[test]
    fn bare_statuses_freeze_only_failed_io_of_a_present_device() {
        assert_eq!(
            bare_status(func::SCSI_IO, status::REQUEUE_REQ, false),
            (status::REQUEUE_REQ | status::DEV_QFRZN, true)
        );
        assert_eq!(
            bare_status(func::SCSI_IO, status::REQ_INVALID, true),
            (status::REQ_INVALID | status::DEV_QFRZN, false),
            "already frozen: flag kept, no second freeze"
        );
        assert_eq!(
            bare_status(func::SCSI_IO, status::DEV_NOT_THERE, false),
            (status::DEV_NOT_THERE, false)
        );
        assert_eq!(
            bare_status(func::SCSI_IO, status::REQ_CMP, false),
            (status::REQ_CMP, false)
        );
        assert_eq!(
            bare_status(func::ABORT, status::UA_ABORT, false),
            (status::UA_ABORT, false)
        );
        assert_eq!(
            bare_status(func::PATH_INQ, status::REQ_CMP, false),
            (status::REQ_CMP, false)
        );
    }

    #[test]
    fn task_management_responses_are_not_all_success() {
        assert_eq!(tmf_status(TmfKind::AbortTask, Some(0)), status::REQ_CMP);
        assert_eq!(tmf_status(TmfKind::AbortTask, Some(1)), status::UA_ABORT);
        assert_eq!(tmf_status(TmfKind::AbortTask, None), status::UA_ABORT);
        assert_eq!(tmf_status(TmfKind::LunReset, Some(0)), status::REQ_CMP);
        assert_eq!(
            tmf_status(TmfKind::LunReset, Some(5)),
            status::FUNC_NOTAVAIL
        );
        assert_eq!(
            tmf_status(TmfKind::LunReset, Some(255)),
            status::REQ_CMP_ERR
        );
        assert_eq!(tmf_status(TmfKind::LunReset, None), status::REQ_CMP_ERR);
        assert_eq!(tmf_status(TmfKind::LunReset, Some(2)), status::LUN_INVALID);
    }

    #[test]
    fn path_inq_bounds_maxio_and_derives_speed_from_the_link() {
        let p = path_inq(1 << 20, 10_000_000_000);
        assert_eq!(p.maxio, 1 << 20);
        assert_eq!(p.base_transfer_speed, 1_250_000);
        assert_eq!(p.hba_misc & PIM_EXTLUNS, PIM_EXTLUNS);
        assert_eq!(p.hba_inquiry, PI_TAG_ABLE);
        assert_eq!(path_inq(8 << 20, 0).maxio, MAXIO_CAP);
        assert_eq!(path_inq(128 << 10, 0).maxio, 128 << 10);
        assert_eq!(path_inq(0, 0).maxio, 64 << 10);
        assert_eq!(path_inq(1 << 20, 0).base_transfer_speed, 125_000);
    }

    #[test]
    fn tags_round_trip_and_generations_differ() {
        let t = Tag {
            slot: 5,
            generation: 9,
        };
        assert_eq!(Tag::decode(t.encode()), t);
        assert_ne!(
            t.encode(),
            Tag {
                slot: 5,
                generation: 10
            }
            .encode()
        );
    }

    #[test]
    fn queue_depth_follows_the_window_within_limits() {
        assert_eq!(queue_depth(0, 128), 1);
        assert_eq!(queue_depth(32, 128), 32);
        assert_eq!(queue_depth(1000, 128), 128);
        assert_eq!(queue_depth(5, 0), 1);
    }
}
