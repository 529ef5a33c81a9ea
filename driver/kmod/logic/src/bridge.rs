// SPDX-License-Identifier: BSD-2-Clause
//! Between CAM's view of a command ([`crate::cam`]) and the session's request model
//! (`isboot_core::scsi`): building a [`ScsiRequest`] from a translated CCB, reading a
//! [`Completion`] back as a [`Finish`], and the tags that tie the two together (see [`crate::cam::Tag`]).
//!
//! A request's buffer is the CCB's own memory (the glue's `CcbData`, any [`DataBuf`] here): the
//! session receives Data-In into it and sends Data-Out from it, so nothing is allocated, cleared
//! or copied per command.

use core::time::Duration;

use isboot_core::scsi::{self, Cdb, Completion, DataBuf, ScsiRequest, TransportError};

use crate::cam::{Command, Finish, Refusal, Residual};

/// The session request for a translated CCB with its buffer `data` (`transfer_len` bytes; an
/// empty buffer without a data phase).
pub fn request<B: DataBuf + Default>(
    cmd: &Command<'_>,
    tag: u64,
    data: B,
) -> Result<ScsiRequest<B>, Refusal> {
    let len = u8::try_from(cmd.cdb.len()).unwrap_or(u8::MAX);
    let cdb = Cdb::new(cmd.cdb).map_err(|e| match e {
        isboot_core::pdu::Error::NoMemory => Refusal::NoMemory,
        _ => Refusal::CdbLength(len),
    })?;
    let direction = cmd.direction;
    if direction != scsi::Direction::None && data.len() != cmd.transfer_len as usize {
        return Err(Refusal::NoBuffer);
    }
    Ok(ScsiRequest {
        tag,
        lun: cmd.lun,
        cdb,
        direction,
        data: if direction == scsi::Direction::None {
            B::default()
        } else {
            data
        },
        attr: cmd.attr,
        timeout: cmd
            .timeout_ms
            .map(|ms| Duration::from_millis(u64::from(ms))),
    })
}

/// How a completed request finishes its CCB.
pub fn finish<B>(c: &Completion<B>) -> Finish<'_> {
    match &c.result {
        Ok(r) => Finish::Response {
            response: 0,
            status: r.status,
            sense: r.sense.as_slice(),
            residual: if r.overflow > 0 {
                Residual::Overflow(r.overflow)
            } else if r.residual > 0 {
                Residual::Underflow(r.residual)
            } else {
                Residual::None
            },
            received: r.transferred,
        },
        Err(TransportError::TargetFailure(code)) => Finish::Response {
            response: *code,
            status: 0,
            sense: &[],
            residual: Residual::None,
            received: 0,
        },
        Err(TransportError::Timeout) => Finish::TimedOut,
        Err(TransportError::Aborted) => Finish::Aborted,
        Err(TransportError::Rejected(_)) => Finish::Failed,
        Err(TransportError::Invalid) => Finish::Invalid,
        Err(TransportError::SessionClosed) => Finish::Gone,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cam::{status, CcbShape, Direction, TaskAttr};
    use alloc::vec::Vec;
    use isboot_core::scsi::{ScsiResult, Sense};

    const READ10: [u8; 10] = [0x28, 0, 0, 0, 0, 8, 0, 0, 8, 0];

    fn cmd(dir: Direction, len: u32) -> Command<'static> {
        Command {
            lun: crate::lun::from_cam(1),
            cdb: &READ10,
            direction: dir,
            layout: crate::cam::Layout::Contiguous,
            transfer_len: len,
            attr: TaskAttr::Ordered,
            priority: 0,
            timeout_ms: Some(30_000),
        }
    }

    #[test]
    fn a_read_becomes_a_session_read_into_the_given_buffer() {
        let r = request(&cmd(Direction::In, 4096), 7, alloc::vec![0xa5u8; 4096]).unwrap();
        assert_eq!(r.tag, 7);
        assert_eq!(r.direction, scsi::Direction::In);
        assert_eq!(r.expected_len(), 4096);
        assert_eq!(r.cdb.as_slice(), &READ10);
        assert_eq!(r.lun.0, [0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(r.attr, scsi::TaskAttr::Ordered);
        assert_eq!(r.timeout, Some(Duration::from_secs(30)));
        assert!(
            r.data.iter().all(|&b| b == 0xa5),
            "the buffer is not cleared"
        );
    }

    #[test]
    fn a_write_carries_its_buffer() {
        let data = alloc::vec![0xa5u8; 512];
        let r = request(&cmd(Direction::Out, 512), 1, data.clone()).unwrap();
        assert_eq!(r.direction, scsi::Direction::Out);
        assert_eq!(r.data, data);
    }

    #[test]
    fn a_buffer_that_does_not_match_the_length_is_refused() {
        let err = request(&cmd(Direction::In, 4096), 1, alloc::vec![0u8; 512]).unwrap_err();
        assert_eq!(err, Refusal::NoBuffer);
        // Without a data phase the buffer is dropped, whatever it is.
        let r = request(&cmd(Direction::None, 0), 1, alloc::vec![0u8; 9]).unwrap();
        assert!(r.data.is_empty());
    }

    #[test]
    fn long_cdbs_pass_through_for_the_ahs() {
        let long = [0x7fu8; 32];
        let mut c = cmd(Direction::None, 0);
        c.cdb = &long;
        let r = request(&c, 1, Vec::new()).unwrap();
        assert_eq!(r.cdb.len(), 32);
    }

    fn done(result: Result<ScsiResult, TransportError>, data: Vec<u8>) -> Completion {
        Completion {
            tag: 1,
            data,
            result,
        }
    }

    fn ok(status: u8, sense: &[u8], transferred: u32, residual: u32, overflow: u32) -> ScsiResult {
        ScsiResult {
            status,
            sense: Sense::new(sense),
            transferred,
            residual,
            overflow,
        }
    }

    #[test]
    fn a_short_read_completes_with_its_residual() {
        let c = done(Ok(ok(0, &[], 1024, 3072, 0)), alloc::vec![1; 4096]);
        let f = finish(&c);
        let shape = CcbShape::new(crate::cam::flags::DIR_IN, 4096, 32, 0);
        let r = crate::cam::complete_scsi_io(&shape, &f);
        assert_eq!(r.status, status::REQ_CMP);
        assert_eq!(r.resid, 3072);
    }

    #[test]
    fn check_condition_sense_reaches_the_ccb() {
        let sense = [0x70, 0, 0x06, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x29, 0x01];
        let c = done(Ok(ok(2, &sense, 0, 512, 0)), alloc::vec![0; 512]);
        let f = finish(&c);
        let shape = CcbShape::new(crate::cam::flags::DIR_IN, 512, 32, 0);
        let r = crate::cam::complete_scsi_io(&shape, &f);
        assert_eq!(
            r.status,
            status::SCSI_STATUS_ERROR | status::AUTOSNS_VALID | status::DEV_QFRZN
        );
        assert_eq!(r.sense_copy as usize, sense.len());
    }

    #[test]
    fn overflow_is_reported_as_overflow() {
        let c = done(Ok(ok(0, &[], 512, 0, 100)), alloc::vec![0; 512]);
        assert!(matches!(
            finish(&c),
            Finish::Response {
                residual: Residual::Overflow(100),
                ..
            }
        ));
    }

    #[test]
    fn transport_errors_map_to_finishes() {
        for (e, f) in [
            (TransportError::Timeout, Finish::TimedOut),
            (TransportError::Aborted, Finish::Aborted),
            (TransportError::Rejected(4), Finish::Failed),
            (TransportError::Invalid, Finish::Invalid),
            (TransportError::SessionClosed, Finish::Gone),
        ] {
            assert_eq!(finish(&done(Err(e), Vec::new())), f, "{e:?}");
        }
        let c = done(Err(TransportError::TargetFailure(1)), Vec::new());
        assert!(matches!(finish(&c), Finish::Response { response: 1, .. }));
    }
}
