// SPDX-License-Identifier: BSD-2-Clause
//! The CAM SIM: one bus, one target, the LUNs the target reports.
//!
//! The action routine runs with the SIM mutex held, in the caller's context. It answers the
//! immediate CCBs (`XPT_PATH_INQ`, `XPT_GET_TRAN_SETTINGS`, `XPT_CALC_GEOMETRY`, `XPT_ABORT`:
//! no `XPT_FC_QUEUED` bit, so CAM reads their status when the routine returns) at once,
//! refuses what cannot be sent, and queues the rest (`XPT_SCSI_IO`, `XPT_RESET_DEV`, and the
//! abort request behind an `XPT_ABORT`) into a bounded executor [`Channel`], whose `try_send` wakes the CAM pump task
//! (and so calls the pender); the pump, on the taskqueue thread, builds the session's requests
//! (allocating their buffers there, never in the action routine). It never does I/O. Decisions (what a CCB asks for, which status a
//! completion gets, when the device queue freezes) are `isboot_kmod_logic::cam`'s, tested on the
//! host; this file only reads and writes the CCB.
//!
//! # Invariants
//! - A [`CcbRef`] is the only handle to a CCB CAM gave us; it is consumed by exactly one
//!   completion (`xpt_done`). Dropping an uncompleted one completes it, an `XPT_SCSI_IO` with
//!   `CAM_REQUEUE_REQ` and anything else with `CAM_REQ_ABORTED`, so a CCB is never lost or
//!   completed twice. The whole life cycle is drawn in `isboot_kmod_logic::cam`.
//! - `SimShared` is reference counted; the SIM's `softc` holds one reference from `cam_sim_alloc`
//!   until `cam_sim_free` in [`Sim::detach`], so the action routine never sees freed memory.

use alloc::sync::Arc;
use core::cell::Cell;
use core::ffi::{c_int, c_void};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, Ordering};

use isboot_core::scsi::DataBuf;
use isboot_executor::{Channel, TrySendError};
use isboot_kmod_logic::cam::{self as logic, flags, func, status, CcbShape, Finish, PathInq};
use isboot_kmod_logic::slots::Slots;

use crate::bindings as sys;
use crate::exec::{KSpin, Mtx};
use crate::sock::Errno;

// The logic crate mirrors CAM's numbers so it can be tested without kernel headers; a mismatch
// with the headers this module is built against stops the build here.
const _: () = {
    assert!(status::REQ_CMP == sys::cam_status_CAM_REQ_CMP);
    assert!(status::REQ_ABORTED == sys::cam_status_CAM_REQ_ABORTED);
    assert!(status::UA_ABORT == sys::cam_status_CAM_UA_ABORT);
    assert!(status::REQ_CMP_ERR == sys::cam_status_CAM_REQ_CMP_ERR);
    assert!(status::REQ_INVALID == sys::cam_status_CAM_REQ_INVALID);
    assert!(status::DEV_NOT_THERE == sys::cam_status_CAM_DEV_NOT_THERE);
    assert!(status::CMD_TIMEOUT == sys::cam_status_CAM_CMD_TIMEOUT);
    assert!(status::SCSI_STATUS_ERROR == sys::cam_status_CAM_SCSI_STATUS_ERROR);
    assert!(status::BDR_SENT == sys::cam_status_CAM_BDR_SENT);
    assert!(status::REQ_TOO_BIG == sys::cam_status_CAM_REQ_TOO_BIG);
    assert!(status::REQUEUE_REQ == sys::cam_status_CAM_REQUEUE_REQ);
    assert!(status::RESRC_UNAVAIL == sys::cam_status_CAM_RESRC_UNAVAIL);
    assert!(status::LUN_INVALID == sys::cam_status_CAM_LUN_INVALID);
    assert!(status::FUNC_NOTAVAIL == sys::cam_status_CAM_FUNC_NOTAVAIL);
    assert!(status::DEV_QFRZN == sys::cam_status_CAM_DEV_QFRZN);
    assert!(status::AUTOSNS_VALID == sys::cam_status_CAM_AUTOSNS_VALID);
    assert!(status::SIM_QUEUED == sys::cam_status_CAM_SIM_QUEUED);
    assert!(status::STATUS_MASK == sys::cam_status_CAM_STATUS_MASK);
    assert!(flags::CDB_POINTER == sys::ccb_flags_CAM_CDB_POINTER);
    assert!(flags::DIS_AUTOSENSE == sys::ccb_flags_CAM_DIS_AUTOSENSE);
    assert!(flags::DIR_IN == sys::ccb_flags_CAM_DIR_IN);
    assert!(flags::DIR_OUT == sys::ccb_flags_CAM_DIR_OUT);
    assert!(flags::DIR_NONE == sys::ccb_flags_CAM_DIR_NONE);
    assert!(flags::DIR_MASK == sys::ccb_flags_CAM_DIR_MASK);
    assert!(flags::DATA_PADDR == sys::ccb_flags_CAM_DATA_PADDR);
    assert!(flags::DATA_SG == sys::ccb_flags_CAM_DATA_SG);
    assert!(flags::DATA_SG_PADDR == sys::ccb_flags_CAM_DATA_SG_PADDR);
    assert!(flags::DATA_BIO == sys::ccb_flags_CAM_DATA_BIO);
    assert!(flags::DATA_MASK == sys::ccb_flags_CAM_DATA_MASK);
    assert!(flags::TAG_ACTION_VALID == sys::ccb_flags_CAM_TAG_ACTION_VALID);
    assert!(func::SCSI_IO == sys::xpt_opcode_XPT_SCSI_IO);
    assert!(func::PATH_INQ == sys::xpt_opcode_XPT_PATH_INQ);
    assert!(func::ABORT == sys::xpt_opcode_XPT_ABORT);
    assert!(func::RESET_DEV == sys::xpt_opcode_XPT_RESET_DEV);
    assert!(func::GET_TRAN_SETTINGS == sys::xpt_opcode_XPT_GET_TRAN_SETTINGS);
    assert!(func::SET_TRAN_SETTINGS == sys::xpt_opcode_XPT_SET_TRAN_SETTINGS);
    assert!(func::CALC_GEOMETRY == sys::xpt_opcode_XPT_CALC_GEOMETRY);
    assert!(func::FC_QUEUED == sys::xpt_opcode_XPT_FC_QUEUED);
    assert!(logic::tag::SIMPLE as u32 == sys::MSG_SIMPLE_Q_TAG);
    assert!(logic::tag::HEAD_OF_QUEUE as u32 == sys::MSG_HEAD_OF_Q_TAG);
    assert!(logic::tag::ORDERED as u32 == sys::MSG_ORDERED_Q_TAG);
    assert!(logic::tag::ACA as u32 == sys::MSG_ACA_TASK);
    assert!(logic::SENSE_BUF_LEN as u32 == sys::SSD_FULL_SIZE);
    assert!(logic::PI_TAG_ABLE as u32 == sys::pi_inqflag_PI_TAG_ABLE);
    assert!(logic::PIM_EXTLUNS == sys::pi_miscflag_PIM_EXTLUNS);
    assert!(logic::PIM_NOBUSRESET == sys::pi_miscflag_PIM_NOBUSRESET);
    assert!(logic::CDB_INLINE_LEN == core::mem::size_of::<sys::cdb_t>());
};

/// `CAM_TARGET_WILDCARD` / `CAM_LUN_WILDCARD` (cast expressions bindgen does not evaluate).
const TARGET_WILDCARD: sys::target_id_t = !0;
const LUN_WILDCARD: sys::lun_id_t = !0u32 as sys::lun_id_t;

/// Most commands the session tracks at once; the CAM queue depth never exceeds it.
pub const MAX_TAGS: u32 = 128;
/// Channel room: every tag plus aborts and resets, which CAM sends outside the tag count.
pub const QUEUE_LEN: usize = MAX_TAGS as usize + 8;

/// The CCB CAM handed to the SIM; see the module invariants.
pub struct CcbRef(NonNull<sys::ccb>);

// SAFETY: a CCB queued to a SIM belongs to the SIM until `xpt_done`, whichever thread runs it.
unsafe impl Send for CcbRef {}

impl core::fmt::Debug for CcbRef {
    #[optimize(size)]
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("CcbRef").field(&self.0).finish()
    }
}

/// Where a CCB's data lives (see [`CcbData`]).
#[derive(Clone, Copy, Debug, Default)]
enum Pieces {
    /// No data phase.
    #[default]
    None,
    /// `CAM_DATA_VADDR`: one kernel virtual buffer.
    One(NonNull<u8>),
    /// `CAM_DATA_SG` with virtual addresses: `count` segments.
    List {
        segs: NonNull<sys::bus_dma_segment>,
        count: usize,
    },
}

/// A CCB's data buffer as a session request's [`DataBuf`]: Data-In is received straight into
/// it and Data-Out sent straight from it, piece by piece (no copy of ours, no clearing).
///
/// # Invariants
/// Made by [`CcbRef::data`] for a CCB that [`CcbRef::command`] accepted (so `len` is the
/// transfer length and the pieces add up to it) and that is then filed in the pending table.
/// The session owns the request holding it until the request's completion comes back, and
/// only that completion completes the CCB (`boot::KEvents`). So while the session uses the
/// buffer, the CCB is ours and its memory the peripheral's, valid and touched by nobody else;
/// after the completion the `CcbData` is only dropped (it frees nothing).
#[derive(Debug, Default)]
pub struct CcbData {
    pieces: Pieces,
    len: usize,
    /// The last piece looked up: (segment index, its offset in the buffer). Lookups go forward
    /// through a transfer, so this makes them O(1) on an S/G list.
    cursor: Cell<(usize, usize)>,
}

// SAFETY: the buffer belongs to the CCB, which the session owns (invariants above) on
// whichever thread runs it; the cursor is only used by the owner.
unsafe impl Send for CcbData {}

impl CcbData {
    /// The piece holding `offset`: its start pointer and length from `offset` on.
    fn piece(&self, offset: usize) -> Option<(*mut u8, usize)> {
        if offset >= self.len {
            return None;
        }
        match self.pieces {
            Pieces::None => None,
            Pieces::One(p) => Some((
                p.as_ptr().wrapping_add(offset),
                self.len.saturating_sub(offset),
            )),
            Pieces::List { segs, count } => {
                // SAFETY: the S/G list of `count` segments is the peripheral's until the CCB
                // completes (invariants); `command` checked it.
                let list = unsafe { core::slice::from_raw_parts(segs.as_ptr(), count) };
                let (mut i, mut start) = self.cursor.get();
                if offset < start {
                    (i, start) = (0, 0);
                }
                while let Some(s) = list.get(i) {
                    let len = s.ds_len as usize;
                    if offset < start.saturating_add(len) {
                        self.cursor.set((i, start));
                        let into = offset.saturating_sub(start);
                        let p = s.ds_addr as usize as *mut u8;
                        return Some((p.wrapping_add(into), len.saturating_sub(into)));
                    }
                    start = start.saturating_add(len);
                    i = i.saturating_add(1);
                }
                None
            }
        }
    }
}

impl DataBuf for CcbData {
    fn len(&self) -> usize {
        self.len
    }

    fn chunk(&self, offset: usize) -> &[u8] {
        match self.piece(offset) {
            // SAFETY: the piece is `n` bytes of the CCB's buffer, valid and ours while the CCB
            // is (invariants); the borrow of `self` bounds the slice's life.
            Some((p, n)) if !p.is_null() => unsafe { core::slice::from_raw_parts(p, n) },
            _ => &[],
        }
    }

    fn chunk_mut(&mut self, offset: usize) -> &mut [u8] {
        match self.piece(offset) {
            // SAFETY: as in `chunk`; writable: a read's buffer is there to be filled, and
            // `&mut self` is the only handle on it.
            Some((p, n)) if !p.is_null() => unsafe { core::slice::from_raw_parts_mut(p, n) },
            _ => &mut [],
        }
    }
}

/// What the action routine queued for the session.
#[derive(Debug)]
pub enum CamRequest {
    /// `XPT_SCSI_IO`, already checked by [`logic::translate_scsi_io`].
    Io(CcbRef),
    /// `XPT_ABORT` of the CCB at `target` (compare with [`CcbRef::is`]; never dereferenced).
    /// The `XPT_ABORT` CCB itself was answered in the action routine: it is an immediate CCB
    /// (see [`func::is_immediate`]), so it is not ours once the action routine returns.
    Abort { target: *const sys::ccb },
    /// `XPT_RESET_DEV`: a LOGICAL UNIT RESET of the CCB's LUN.
    ResetDev(CcbRef),
}

// SAFETY: `target` is only compared, never dereferenced; `CcbRef` is `Send`.
unsafe impl Send for CamRequest {}

impl CcbRef {
    fn hdr(&self) -> &sys::ccb_hdr {
        // SAFETY: every CCB starts with its header; we own the CCB (module invariant).
        unsafe { &self.0.as_ref().ccb_h }
    }

    /// Whether this is the CCB an `XPT_ABORT` names.
    pub fn is(&self, other: *const sys::ccb) -> bool {
        ptr::eq(self.0.as_ptr(), other)
    }

    /// CAM's LUN id (`ccb_h.target_lun`).
    pub fn lun(&self) -> u64 {
        self.hdr().target_lun
    }

    /// Buffer bytes the request for this `XPT_SCSI_IO` CCB will need (0 without a data phase).
    pub fn buffer_len(&self) -> usize {
        let h = self.hdr();
        match h.flags & flags::DIR_MASK {
            flags::DIR_IN | flags::DIR_OUT => {
                // SAFETY: an `XPT_SCSI_IO` CCB is a `ccb_scsiio`.
                unsafe { self.0.as_ref().csio.dxfer_len as usize }
            }
            _ => 0,
        }
    }

    /// Reads the SCSI command out of an `XPT_SCSI_IO` CCB. The returned command borrows the CCB's
    /// CDB.
    pub fn command(&self, maxio: u32) -> Result<logic::Command<'_>, logic::Refusal> {
        let h = self.hdr();
        // SAFETY: an `XPT_SCSI_IO` CCB (checked by the caller's func code) is a `ccb_scsiio`.
        let csio = unsafe { &self.0.as_ref().csio };
        let src = logic::cdb_source(h.flags, csio.cdb_len)?;
        let cdb: &[u8] = match src {
            // SAFETY: `cdb_bytes` is the active member without CAM_CDB_POINTER; `len` <= 16.
            logic::CdbSource::Inline(len) => unsafe {
                csio.cdb_io.cdb_bytes.get(..len).unwrap_or(&[])
            },
            logic::CdbSource::Pointer(len) => {
                // SAFETY: with CAM_CDB_POINTER the peripheral stores a pointer to `cdb_len`
                // bytes that stay valid until the CCB completes.
                let p = unsafe { csio.cdb_io.cdb_ptr };
                if p.is_null() {
                    return Err(logic::Refusal::CdbLength(0));
                }
                // SAFETY: as above.
                unsafe { core::slice::from_raw_parts(p, len) }
            }
        };
        let view = logic::ScsiIoView {
            func_code: h.func_code,
            flags: h.flags,
            target_lun: h.target_lun,
            timeout_ms: h.timeout,
            cdb,
            dxfer_len: csio.dxfer_len,
            has_data_ptr: !csio.data_ptr.is_null(),
            sg_count: csio.sglist_cnt,
            tag_action: csio.tag_action,
            priority: csio.priority,
        };
        let cmd = logic::translate_scsi_io(&view, maxio)?;
        if let Some(segs) = self.segments(&cmd) {
            logic::check_segments(segs.iter().map(|s| s.ds_len), csio.dxfer_len)?;
        }
        Ok(cmd)
    }

    /// The S/G list of a `CAM_DATA_SG` command that `translate_scsi_io` accepted.
    fn segments(&self, cmd: &logic::Command<'_>) -> Option<&[sys::bus_dma_segment]> {
        let logic::Layout::Segments(n) = cmd.layout else {
            return None;
        };
        // SAFETY: an `XPT_SCSI_IO` CCB is a `ccb_scsiio`.
        let p = unsafe { self.0.as_ref().csio.data_ptr };
        if p.is_null() {
            return None;
        }
        // SAFETY: with CAM_DATA_SG, `data_ptr` points to `sglist_cnt` (= n, checked non-zero
        // and bounded by translation) `bus_dma_segment_t`s owned by the peripheral until the
        // CCB completes.
        Some(unsafe {
            core::slice::from_raw_parts(p.cast::<sys::bus_dma_segment>(), usize::from(n))
        })
    }

    /// The data buffer of an accepted command, for the session to receive into or send from
    /// in place (an empty buffer without a data phase).
    ///
    /// The buffer stays valid while this CCB waits in the pending table; see [`CcbData`].
    pub fn data(&self, cmd: &logic::Command<'_>) -> CcbData {
        // SAFETY: an `XPT_SCSI_IO` CCB is a `ccb_scsiio`.
        let csio = unsafe { &self.0.as_ref().csio };
        if cmd.direction == logic::Direction::None || cmd.transfer_len == 0 {
            return CcbData::default();
        }
        let len = cmd.transfer_len as usize;
        let pieces = match (cmd.layout, NonNull::new(csio.data_ptr)) {
            (_, None) => return CcbData::default(),
            (logic::Layout::Contiguous, Some(p)) => Pieces::One(p),
            (logic::Layout::Segments(n), Some(p)) => Pieces::List {
                segs: p.cast::<sys::bus_dma_segment>(),
                count: usize::from(n),
            },
        };
        CcbData {
            pieces,
            len,
            cursor: Cell::new((0, 0)),
        }
    }

    /// Whether this is a write (Data-Out) command.
    pub fn is_write(&self) -> bool {
        self.hdr().flags & flags::DIR_MASK == flags::DIR_OUT
    }

    /// Completes an `XPT_SCSI_IO` CCB with the session's outcome (status, sense, residual, devq
    /// freeze as CAM expects) and hands it back to CAM.
    pub fn complete_io(self, finish: &Finish<'_>) {
        let mut this = core::mem::ManuallyDrop::new(self);
        let p = this.0.as_ptr();
        // SAFETY: we own the CCB until `xpt_done` (module invariant); it is an `XPT_SCSI_IO`.
        unsafe {
            let csio = &mut (*p).csio;
            let shape = CcbShape::new(
                csio.ccb_h.flags,
                csio.dxfer_len,
                csio.sense_len,
                csio.ccb_h.status,
            );
            let r = logic::complete_scsi_io(&shape, finish);
            if let Finish::Response { sense, .. } = finish {
                let n = usize::from(r.sense_copy).min(sense.len());
                // `n` <= sense_len <= SSD_FULL_SIZE = sizeof(sense_data) (logic guarantees).
                ptr::copy_nonoverlapping(
                    sense.as_ptr(),
                    ptr::from_mut(&mut csio.sense_data).cast::<u8>(),
                    n,
                );
            }
            csio.scsi_status = r.scsi_status;
            csio.sense_resid = r.sense_resid;
            csio.resid = r.resid;
            finish_ccb(&mut this, r.status, r.freeze_devq);
        }
    }

    /// Completes a CCB with a bare status (informational CCBs, aborts, resets, refusals). A
    /// failed I/O status freezes the device queue like any other I/O error.
    pub fn complete_status(self, st: u32) {
        let mut this = core::mem::ManuallyDrop::new(self);
        let h = this.hdr();
        let (st, freeze) = logic::bare_status(h.func_code, st, h.status & status::DEV_QFRZN != 0);
        finish_ccb(&mut this, st, freeze);
    }

    /// Hands the CCB back with the status CAM already put in it (no freeze of our own).
    fn complete_unchanged(self) {
        let mut this = core::mem::ManuallyDrop::new(self);
        let st = this.hdr().status;
        finish_ccb(&mut this, st, false);
    }
}

/// Sets the status, freezes the devq when asked, and calls `xpt_done`.
fn finish_ccb(ccb: &mut CcbRef, st: u32, freeze: bool) {
    let p = ccb.0.as_ptr();
    // SAFETY: we own the CCB (module invariant); its path is valid while it is queued to us.
    unsafe {
        if freeze {
            sys::xpt_freeze_devq((*p).ccb_h.path, 1);
        }
        // SIM_QUEUED is cleared by replacing the whole status.
        (*p).ccb_h.status = st;
        sys::xpt_done(p);
    }
}

impl Drop for CcbRef {
    fn drop(&mut self) {
        // Reached only when a request is dropped without a completion (e.g. a session future
        // cancelled mid-command): give the CCB back for CAM to retry rather than leak it.
        let h = self.hdr();
        let st = if h.func_code == func::SCSI_IO {
            status::REQUEUE_REQ
        } else {
            status::REQ_ABORTED
        };
        let (st, freeze) = logic::bare_status(h.func_code, st, h.status & status::DEV_QFRZN != 0);
        finish_ccb(self, st, freeze);
    }
}

/// State shared by the action routine (any context, SIM mutex held) and the session task.
pub struct SimShared {
    /// The SIM mutex given to `cam_sim_alloc`.
    mtx: Mtx,
    requests: Channel<KSpin, CamRequest, QUEUE_LEN>,
    /// Set once detaching starts: new CCBs are answered `CAM_DEV_NOT_THERE`.
    closing: AtomicBool,
    /// `XPT_PATH_INQ` answer; the link speed is filled in once the NIC is known.
    inq: isboot_executor::Mutex<KSpin, PathInq>,
}

impl core::fmt::Debug for SimShared {
    #[optimize(size)]
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SimShared")
            .field("inq", &self.inq)
            .finish_non_exhaustive()
    }
}

impl SimShared {
    /// Shared state for a SIM whose `XPT_PATH_INQ` answers `inq`.
    #[optimize(size)]
    pub fn new(inq: PathInq) -> Arc<SimShared> {
        Arc::new(SimShared {
            mtx: Mtx::new(c"isboot sim"),
            requests: Channel::new(),
            closing: AtomicBool::new(false),
            inq: isboot_executor::Mutex::new(inq),
        })
    }

    /// The largest transfer announced to CAM.
    pub fn maxio(&self) -> u32 {
        self.inq.lock(|i| i.maxio)
    }

    /// Records the boot NIC's speed (bits/s) for `base_transfer_speed`.
    #[optimize(size)]
    pub fn set_link_speed(&self, baudrate_bps: u64) {
        self.inq.lock(|i| {
            i.base_transfer_speed =
                logic::path_inq(u64::from(i.maxio), baudrate_bps).base_transfer_speed;
        });
    }

    /// Waits for the next request from CAM; `None` once the SIM is detaching and drained.
    pub async fn next(&self) -> Option<CamRequest> {
        self.requests.recv().await
    }

    /// Stops taking requests: from now on the action routine answers `CAM_DEV_NOT_THERE`
    /// without touching the channel (so it wakes no task), and the session's `next()` ends once
    /// the queue is drained. Taken under the SIM mutex, so no action routine is half-way.
    #[optimize(size)]
    pub fn close(&self) {
        self.mtx.with(|| {
            self.closing.store(true, Ordering::Release);
            self.requests.close();
        });
    }

    /// Takes a queued request without waiting.
    pub fn try_next(&self) -> Option<CamRequest> {
        self.requests.try_recv().ok()
    }
}

/// A registered SIM with its bus and wildcard path.
pub struct Sim {
    shared: Arc<SimShared>,
    sim: *mut sys::cam_sim,
    path: *mut sys::cam_path,
}

// SAFETY: the CAM objects are used under the SIM mutex or by CAM's own locking.
unsafe impl Send for Sim {}
// SAFETY: `&Sim` methods (`has_disk`, `disk_held`, `path_id`) only call CAM functions that do
// their own locking, or read the immutable path id.
unsafe impl Sync for Sim {}

impl core::fmt::Debug for Sim {
    #[optimize(size)]
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sim")
            .field("sim", &self.sim)
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// Allocates the SIM and its queue (`depth` tagged openings), registers the bus and creates
    /// the wildcard path, then asks CAM to scan the bus.
    #[optimize(size)]
    pub fn attach(shared: Arc<SimShared>, depth: u32, unit: u32) -> Result<Sim, Errno> {
        let depth = logic::queue_depth(depth, MAX_TAGS);
        // SAFETY: plain allocation; NULL on failure.
        let devq = unsafe { sys::cam_simq_alloc(depth) };
        if devq.is_null() {
            return Err(Errno(sys::ENOMEM as c_int));
        }
        let softc = Arc::into_raw(shared.clone()).cast_mut().cast::<c_void>();
        // SAFETY: `softc` carries the reference the SIM keeps (module invariant); the mutex is
        // initialised and outlives the SIM (it lives in `shared`, kept alive by `softc`);
        // `depth` <= MAX_TAGS fits c_int.
        let sim = unsafe {
            sys::cam_sim_alloc(
                Some(sim_action),
                // No poll routine, as iscsi(4): a SIM that has one is "pollable"
                // (cam_sim_pollable), so da would offer kernel dumps to this disk
                // (scsi_da.c daregister sets d_dump) and a panic's dump would poll a session
                // that cannot run with the scheduler stopped, each write waiting out its whole
                // timeout (cam_xpt.c xpt_pollwait) before failing. Without one, da does not
                // offer dumps and polled I/O fails at once (cam_periph.c cam_periph_runccb).
                None,
                c"isboot".as_ptr(),
                softc,
                unit,
                shared.mtx.as_ptr(),
                1,
                depth as c_int,
                devq,
            )
        };
        if sim.is_null() {
            // SAFETY: the queue is unused; the softc reference taken above is returned.
            unsafe {
                sys::cam_simq_free(devq);
                drop(Arc::from_raw(softc.cast::<SimShared>()));
            }
            return Err(Errno(sys::ENOMEM as c_int));
        }
        let mut path: *mut sys::cam_path = ptr::null_mut();
        let err = shared.mtx.with(|| {
            // SAFETY: the SIM is allocated and its mutex held, as xpt_bus_register requires.
            let e = if unsafe { sys::xpt_bus_register(sim, ptr::null_mut(), 0) } != 0 {
                Some(sys::ENXIO as c_int)
            } else {
                // SAFETY: the bus is registered; `path` receives a new path.
                let st = unsafe {
                    sys::xpt_create_path(
                        &mut path,
                        ptr::null_mut(),
                        (*sim).path_id,
                        TARGET_WILDCARD,
                        LUN_WILDCARD,
                    )
                };
                if st == sys::cam_status_CAM_REQ_CMP {
                    None
                } else {
                    // SAFETY: registered above; deregistering undoes it (SIM mutex held).
                    unsafe { sys::xpt_bus_deregister((*sim).path_id) };
                    Some(sys::ENOMEM as c_int)
                }
            };
            if e.is_some() {
                // SAFETY: the SIM is not registered; cam_sim_free needs its mutex held (it may
                // sleep on it for the last reference) and frees the devq too.
                unsafe { sys::cam_sim_free(sim, 1) };
            }
            e
        });
        if let Some(e) = err {
            // SAFETY: the SIM that used `softc` is freed; return the reference it held.
            unsafe { drop(Arc::from_raw(softc.cast::<SimShared>())) };
            return Err(Errno(e));
        }
        // xpt_bus_register has queued the bus scan already (unless PIM_NOSCAN): asking for
        // another only made CAM print "rescan already queued", or scan twice.
        Ok(Sim { shared, sim, path })
    }

    /// CAM's path id of our bus.
    #[optimize(size)]
    pub fn path_id(&self) -> u32 {
        // SAFETY: the SIM is alive while `self` is.
        unsafe { (*self.sim).path_id }
    }

    /// Whether a `da` peripheral is attached to `lun` (CAM's LUN id) on our bus.
    #[optimize(size)]
    pub fn has_disk(&self, lun: u64) -> bool {
        // SAFETY: `path` is a live path of ours; the helper takes its lock around
        // cam_periph_find, which asserts it on a match, and only tests the result for NULL.
        self.at_lun(lun, |path| unsafe {
            sys::isboot_periph_attached(path, c"da".as_ptr()) != 0
        })
    }

    /// The unit of the `da` peripheral on `lun` (da0: 0), if one is attached.
    #[optimize(size)]
    pub fn disk_unit(&self, lun: u64) -> Option<u32> {
        let mut unit = None;
        self.at_lun(lun, |path| {
            // SAFETY: as in `has_disk`; the helper reads the unit number under the path lock.
            let u = unsafe { sys::isboot_periph_unit(path, c"da".as_ptr()) };
            unit = u32::try_from(u).ok();
            unit.is_some()
        });
        unit
    }

    /// Whether the `da` disk on `lun` is held: open, mounted, or a partition of it open
    /// (GEOM access counts). Sleeps on the GEOM topology lock: thread context, no mutex held.
    #[optimize(size)]
    pub fn disk_held(&self, lun: u64) -> bool {
        // SAFETY: as in `has_disk`; the helper reads the provider under the topology lock.
        self.at_lun(lun, |path| unsafe { sys::isboot_disk_held(path) != 0 })
    }

    /// Runs `f` with a path to (our bus, target 0, `lun`), freed afterwards; false if no path.
    #[optimize(size)]
    fn at_lun(&self, lun: u64, f: impl FnOnce(*mut sys::cam_path) -> bool) -> bool {
        let mut path: *mut sys::cam_path = ptr::null_mut();
        // SAFETY: creates a path to (our bus, target 0, lun), freed below.
        let st =
            unsafe { sys::xpt_create_path(&mut path, ptr::null_mut(), self.path_id(), 0, lun) };
        if st != sys::cam_status_CAM_REQ_CMP {
            return false;
        }
        let r = f(path);
        // SAFETY: the path was created above and is no longer used.
        unsafe { sys::xpt_free_path(path) };
        r
    }

    /// Detaches: new CCBs are refused, queued ones complete as gone, the device is announced
    /// lost, and the bus, path and SIM are freed. Called after the session stopped (teardown step
    /// "deregister from CAM").
    #[optimize(size)]
    pub fn detach(self) {
        self.shared.close();
        while let Some(req) = self.shared.try_next() {
            fail_request(req, status::DEV_NOT_THERE);
        }
        let sim = self.sim;
        let path = self.path;
        self.shared.mtx.with(|| {
            // SAFETY: the SIM and path are alive and its mutex is held, as CAM requires for
            // deregistration; after `cam_sim_free` CAM no longer calls our action routine.
            unsafe {
                sys::xpt_async(sys::ac_code_AC_LOST_DEVICE, path, ptr::null_mut());
                sys::xpt_free_path(path);
                sys::xpt_bus_deregister((*sim).path_id);
                sys::cam_sim_free(sim, 1);
            }
        });
        // SAFETY: the SIM that held the softc reference is freed; return that reference.
        unsafe { drop(Arc::from_raw(Arc::as_ptr(&self.shared))) };
    }
}

/// Completes a request that will never be sent.
#[optimize(size)]
pub fn fail_request(req: CamRequest, st: u32) {
    match req {
        CamRequest::Io(c) | CamRequest::ResetDev(c) => c.complete_status(st),
        // Its XPT_ABORT CCB was answered in the action routine; nothing is left to complete.
        CamRequest::Abort { .. } => {}
    }
}

/// Copies `s` into a fixed C char array, NUL-terminated and truncated to fit.
#[optimize(size)]
fn set_cstr(dst: &mut [core::ffi::c_char], s: &str) {
    let n = s.len().min(dst.len().saturating_sub(1));
    for (d, b) in dst.iter_mut().zip(s.as_bytes().iter().take(n)) {
        *d = *b as core::ffi::c_char;
    }
    if let Some(z) = dst.get_mut(n) {
        *z = 0;
    }
}

/// The SIM action routine.
///
/// # Safety
/// Called by CAM with the SIM mutex held; `sim` is our SIM (softc = `SimShared`, alive per the
/// module invariants) and `ccb` a CCB CAM hands to us.
unsafe extern "C" fn sim_action(sim: *mut sys::cam_sim, ccb: *mut sys::ccb) {
    // SAFETY: per the contract above.
    let shared = unsafe { &*(*sim).softc.cast::<SimShared>() };
    let Some(ccb) = NonNull::new(ccb) else {
        return;
    };
    // INVARIANT: CAM handed us this CCB; it is completed exactly once through `CcbRef`.
    let c = CcbRef(ccb);
    let code = c.hdr().func_code;
    if logic::aborted_en_route(code, c.hdr().status) {
        // CAM aborted it between its device queue and us, froze the queue and expects the CCB
        // back with the status it set (see `aborted_en_route`).
        c.complete_unchanged();
        return;
    }
    if shared.closing.load(Ordering::Acquire) {
        c.complete_status(status::DEV_NOT_THERE);
        return;
    }
    match code {
        func::SCSI_IO => {
            if let Err(refusal) = c.command(shared.maxio()) {
                crate::klog!(2, "refusing CCB: {}", refusal);
                c.complete_status(refusal.cam_status());
                return;
            }
            // SAFETY: we own the CCB until completion.
            unsafe { (*ccb.as_ptr()).ccb_h.status = status::REQ_INPROG | status::SIM_QUEUED };
            queue(shared, CamRequest::Io(c));
        }
        func::ABORT => {
            // XPT_ABORT is immediate: its caller reads the status when we return and may then
            // free or reuse the CCB (pass(4) copies it out at once; in-kernel callers keep it on
            // their stack), and xpt_done ignores immediate CCBs. Completing it later from the
            // taskqueue, as this routine did, wrote the status into memory the caller no longer
            // owned. So it is answered here; the abort itself goes to the session.
            // SAFETY: an XPT_ABORT CCB is a `ccb_abort`.
            let target = unsafe { (*ccb.as_ptr()).cab.abort_ccb }.cast_const();
            let handoff = match shared.requests.try_send(CamRequest::Abort { target }) {
                Ok(()) => logic::AbortHandoff::Queued,
                Err(TrySendError::Full(_)) => logic::AbortHandoff::Full,
                Err(TrySendError::Closed(_)) => logic::AbortHandoff::Closed,
            };
            c.complete_status(logic::abort_status(handoff));
        }
        func::RESET_DEV => queue(shared, CamRequest::ResetDev(c)),
        func::PATH_INQ => {
            let inq = shared.inq.lock(|i| *i);
            // SAFETY: an XPT_PATH_INQ CCB is a `ccb_pathinq`; `sim` is live.
            unsafe { fill_path_inq(&mut (*ccb.as_ptr()).cpi, &*sim, &inq) };
            c.complete_status(status::REQ_CMP);
        }
        func::GET_TRAN_SETTINGS => {
            // SAFETY: an XPT_GET_TRAN_SETTINGS CCB is a `ccb_trans_settings`.
            let cts = unsafe { &mut (*ccb.as_ptr()).cts };
            cts.protocol = sys::cam_proto_PROTO_SCSI;
            cts.protocol_version = sys::SCSI_REV_SPC3;
            cts.transport = sys::cam_xport_XPORT_ISCSI;
            cts.transport_version = 0;
            // SAFETY: for PROTO_SCSI the `scsi` member of the union is the one CAM reads.
            let scsi = unsafe { &mut cts.proto_specific.scsi };
            scsi.valid = sys::CTS_SCSI_VALID_TQ;
            scsi.flags = sys::CTS_SCSI_FLAGS_TAG_ENB;
            c.complete_status(status::REQ_CMP);
        }
        func::CALC_GEOMETRY => {
            // SAFETY: an XPT_CALC_GEOMETRY CCB is a `ccb_calc_geometry`.
            unsafe { sys::cam_calc_geometry(&mut (*ccb.as_ptr()).ccg, 1) };
            c.complete_status(status::REQ_CMP);
        }
        _ => c.complete_status(status::FUNC_NOTAVAIL),
    }
}

/// Hands a request to the session; a full or closed channel completes it at once.
fn queue(shared: &SimShared, req: CamRequest) {
    match shared.requests.try_send(req) {
        Ok(()) => {}
        // CAM never has more than the devq depth of I/O outstanding, so a full channel means a
        // burst of aborts/resets: ask CAM to retry.
        Err(TrySendError::Full(req)) => fail_request(req, status::REQUEUE_REQ),
        Err(TrySendError::Closed(req)) => fail_request(req, status::DEV_NOT_THERE),
    }
}

#[optimize(size)]
fn fill_path_inq(cpi: &mut sys::ccb_pathinq, sim: &sys::cam_sim, inq: &PathInq) {
    cpi.version_num = 1;
    cpi.hba_inquiry = inq.hba_inquiry;
    cpi.target_sprt = 0;
    cpi.hba_misc = inq.hba_misc;
    cpi.hba_eng_cnt = 0;
    cpi.max_target = 0;
    cpi.max_lun = inq.max_lun;
    cpi.initiator_id = !0;
    set_cstr(&mut cpi.sim_vid, "FreeBSD");
    set_cstr(&mut cpi.hba_vid, "iSCSI");
    set_cstr(&mut cpi.dev_name, "isboot");
    cpi.unit_number = sim.unit_number;
    cpi.bus_id = sim.bus_id;
    cpi.base_transfer_speed = inq.base_transfer_speed;
    cpi.transport = sys::cam_xport_XPORT_ISCSI;
    cpi.transport_version = 0;
    cpi.protocol = sys::cam_proto_PROTO_SCSI;
    cpi.protocol_version = sys::SCSI_REV_SPC3;
    cpi.maxio = inq.maxio;
}

/// CCBs handed to the session, by request tag (slot and generation; see
/// `isboot_kmod_logic::slots`). Sized for every request CAM can have queued.
pub type Pending = Slots<CcbRef>;

/// An empty table with room for [`QUEUE_LEN`] CCBs.
#[optimize(size)]
pub fn pending_table() -> Pending {
    Slots::new(QUEUE_LEN as u32)
}
