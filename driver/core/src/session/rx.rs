// SPDX-License-Identifier: BSD-2-Clause
//! The receive path of a connection: one PDU at a time, through named stages (as the receive
//! states of FreeBSD's icl_soft.c), one function each.
//!
//! ```text
//!              BHS read                 AHS and header digest read (when there are any)
//!   ┌─► Header{48} ──────────► Header{full} ─────┐
//!   │                                             │ digest checked, Engine::rx_header
//!   │                                             ▼ says where the data segment goes (RxSink)
//!   │                                      Data{sink, len, have}   reads straight into the
//!   │                                             │                 request buffer or scratch,
//!   │                                             │ have == len     CRC32C on the way
//!   │                                             ▼
//!   └──── Engine::rx_finish ◄──────── Trailer{pad, need, have}   padding and data digest
//! ```
//!
//! Small PDUs come through [`ReadAhead`] (one transport read for many of them); a large data
//! segment bypasses it and goes from the transport straight into its destination.

use alloc::vec::Vec;
use core::task::{Context, Poll};

use isboot_crc32c::Crc32c;
use isboot_executor::Instant;

use super::engine::{Disconnect, Engine, RxSink, Violation, TASK_GONE};
use crate::pdu::{self, Digests, HeaderInfo, BHS_LEN, DIGEST_LEN, MAX_AHS_LEN};
use crate::port::{IoError, Level, Log, Transport};

/// BHS, the largest AHS and a header digest.
const HDR_MAX: usize = BHS_LEN + MAX_AHS_LEN + DIGEST_LEN;

/// Internal errors of the receive path: bounds the code guarantees by construction.
const HEADER_BOUNDS: &str = "header beyond its buffer";
const TRAILER_BOUNDS: &str = "padding and digest beyond their buffer";
const OVERREAD: &str = "the transport reported more bytes than it was given room for";

/// Bytes read, or return from the poll: `Pending`, or the error that ends the connection (EOF
/// included).
macro_rules! read_or_return {
    ($p:expr) => {
        match $p {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(Disconnect::Io(IoError::Closed))),
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(Disconnect::Io(e))),
            Poll::Pending => return Poll::Pending,
        }
    };
}

/// Where the receive path is within the current PDU.
#[derive(Clone, Debug, PartialEq, Eq)]
enum RxStage {
    /// Reading BHS (then AHS and header digest) into `hdr[..need]`.
    Header { need: usize },
    /// Reading the `len`-byte data segment into `sink`; `have` bytes are in.
    Data {
        sink: RxSink,
        len: usize,
        have: usize,
    },
    /// Padding and data digest.
    Trailer {
        sink: RxSink,
        pad: usize,
        need: usize,
        have: usize,
    },
}

/// What a stage achieved.
enum Progress {
    /// On to the next stage.
    Stage,
    /// A whole PDU went to the engine.
    Pdu,
}

/// What every stage works with during one [`Rx::poll`].
struct Io<'a, 'c, 'w, T, G> {
    cx: &'a mut Context<'w>,
    t: &'a mut T,
    engine: &'a mut Engine,
    now: Instant,
    trace: Option<&'c G>,
    digests: Digests,
}

/// The receive path of one connection.
pub(super) struct Rx {
    ahead: ReadAhead,
    hdr: [u8; HDR_MAX],
    have: usize,
    info: Option<HeaderInfo>,
    stage: RxStage,
    scratch: Vec<u8>,
    crc: Crc32c,
    trailer: [u8; 3 + DIGEST_LEN],
}

impl Rx {
    pub(super) fn new() -> Self {
        Rx {
            ahead: ReadAhead::new(),
            hdr: [0; HDR_MAX],
            have: 0,
            info: None,
            stage: RxStage::Header { need: BHS_LEN },
            scratch: Vec::new(),
            crc: Crc32c::new(),
            trailer: [0; 3 + DIGEST_LEN],
        }
    }

    /// Advances through one PDU: `Ready(Ok)` once a whole PDU went to the engine, `Pending`
    /// when the transport has nothing more now.
    pub(super) fn poll<T: Transport, G: Log>(
        &mut self,
        cx: &mut Context<'_>,
        t: &mut T,
        engine: &mut Engine,
        now: Instant,
        trace: Option<&G>,
    ) -> Poll<Result<(), Disconnect>> {
        let mut io = Io {
            cx,
            t,
            digests: engine.params().digests(),
            engine,
            now,
            trace,
        };
        loop {
            let step = match self.stage.clone() {
                RxStage::Header { need } => self.read_header(&mut io, need),
                RxStage::Data { sink, len, have } => self.read_data(&mut io, sink, len, have),
                RxStage::Trailer {
                    sink,
                    pad,
                    need,
                    have,
                } => self.read_trailer(&mut io, sink, pad, need, have),
            };
            match step {
                Poll::Ready(Ok(Progress::Stage)) => {}
                Poll::Ready(Ok(Progress::Pdu)) => return Poll::Ready(Ok(())),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// BHS, then AHS and header digest; the header goes to [`Engine::rx_header`].
    fn read_header<T: Transport, G: Log>(
        &mut self,
        io: &mut Io<'_, '_, '_, T, G>,
        need: usize,
    ) -> Poll<Result<Progress, Disconnect>> {
        if self.have < need {
            let Some(buf) = self.hdr.get_mut(self.have..need) else {
                return Poll::Ready(Err(Disconnect::internal(HEADER_BOUNDS)));
            };
            let n = read_or_return!(self.ahead.read(io.cx, io.t, buf));
            self.have = self.have.saturating_add(n);
            return Poll::Ready(Ok(Progress::Stage));
        }
        let bad = |e| Disconnect::Violation(Violation::Pdu(e));
        let info = match self.info {
            Some(i) => i,
            None => {
                let info = HeaderInfo::parse(&self.hdr).map_err(bad)?;
                info.check_data_len(io.engine.params().max_recv_dsl())
                    .map_err(bad)?;
                self.info = Some(info);
                let full = info.header_len().saturating_add(if io.digests.header {
                    DIGEST_LEN
                } else {
                    0
                });
                if full > need {
                    self.stage = RxStage::Header { need: full };
                    return Poll::Ready(Ok(Progress::Stage));
                }
                info
            }
        };
        let hl = info.header_len();
        let Some(header) = self.hdr.get(..hl) else {
            return Poll::Ready(Err(Disconnect::internal(HEADER_BOUNDS)));
        };
        if io.digests.header {
            let d = self.hdr.get(hl..hl.saturating_add(DIGEST_LEN));
            let d = d.ok_or_else(|| Disconnect::internal(HEADER_BOUNDS))?;
            pdu::check_header_digest(header, d).map_err(bad)?;
        }
        if let Some(log) = io.trace {
            trace_pdu(log, "<-", header);
        }
        let sink = io.engine.rx_header(io.now, header)?;
        let len = info.data_len as usize;
        if matches!(sink, RxSink::Scratch) && self.scratch.len() < len {
            self.scratch.resize(len, 0);
        }
        self.crc = Crc32c::new();
        self.stage = RxStage::Data { sink, len, have: 0 };
        Poll::Ready(Ok(Progress::Stage))
    }

    /// The data segment, into the request's buffer or the scratch buffer.
    fn read_data<T: Transport, G: Log>(
        &mut self,
        io: &mut Io<'_, '_, '_, T, G>,
        sink: RxSink,
        len: usize,
        have: usize,
    ) -> Poll<Result<Progress, Disconnect>> {
        if have < len {
            let buf = match &sink {
                RxSink::Task { slot, range } => io
                    .engine
                    .rx_task_buf(*slot, range.clone())
                    .ok_or_else(|| Disconnect::internal(TASK_GONE))?,
                RxSink::Scratch => self
                    .scratch
                    .get_mut(..len)
                    .ok_or_else(|| Disconnect::internal("scratch buffer below the segment"))?,
            };
            // have < len and the buffer is the segment's length.
            let dst = buf
                .get_mut(have..len)
                .ok_or_else(|| Disconnect::internal("data segment beyond its buffer"))?;
            let n = read_or_return!(self.ahead.read(io.cx, io.t, dst));
            let Some(got) = dst.get(..n) else {
                return Poll::Ready(Err(Disconnect::internal(OVERREAD)));
            };
            if io.digests.data {
                self.crc = self.crc.update(got);
            }
            self.stage = RxStage::Data {
                sink,
                len,
                have: have.saturating_add(n),
            };
            return Poll::Ready(Ok(Progress::Stage));
        }
        let pad = pdu::pad_len(len);
        let dd = if io.digests.data && len > 0 {
            DIGEST_LEN
        } else {
            0
        };
        self.stage = RxStage::Trailer {
            sink,
            pad,
            need: pad.saturating_add(dd),
            have: 0,
        };
        Poll::Ready(Ok(Progress::Stage))
    }

    /// Padding and data digest; then the PDU goes to [`Engine::rx_finish`].
    fn read_trailer<T: Transport, G: Log>(
        &mut self,
        io: &mut Io<'_, '_, '_, T, G>,
        sink: RxSink,
        pad: usize,
        need: usize,
        have: usize,
    ) -> Poll<Result<Progress, Disconnect>> {
        if have < need {
            let Some(buf) = self.trailer.get_mut(have..need) else {
                return Poll::Ready(Err(Disconnect::internal(TRAILER_BOUNDS)));
            };
            let n = read_or_return!(self.ahead.read(io.cx, io.t, buf));
            self.stage = RxStage::Trailer {
                sink,
                pad,
                need,
                have: have.saturating_add(n),
            };
            return Poll::Ready(Ok(Progress::Stage));
        }
        let info = self.info.take();
        let len = info.map_or(0, |i| i.data_len as usize);
        if need > pad {
            let (Some(padding), Some(&[a, b, c, d])) =
                (self.trailer.get(..pad), self.trailer.get(pad..need))
            else {
                return Poll::Ready(Err(Disconnect::internal(TRAILER_BOUNDS)));
            };
            let crc = self.crc.update(padding).finish();
            let received = u32::from_le_bytes([a, b, c, d]);
            if received != crc {
                return Poll::Ready(Err(Disconnect::Violation(Violation::Pdu(
                    pdu::Error::DataDigestMismatch {
                        received,
                        computed: crc,
                    },
                ))));
            }
        }
        self.have = 0;
        self.stage = RxStage::Header { need: BHS_LEN };
        let data = match sink {
            RxSink::Scratch => self
                .scratch
                .get(..len)
                .ok_or_else(|| Disconnect::internal("scratch buffer below the segment"))?,
            RxSink::Task { .. } => &[],
        };
        Poll::Ready(io.engine.rx_finish(io.now, data).map(|()| Progress::Pdu))
    }
}

/// Bytes read from the transport ahead of need, so that a burst of small PDUs (responses, R2Ts,
/// short Data-In) costs one transport read instead of two or three per PDU. Large data segments
/// bypass it and go straight from the transport into the request buffer.
struct ReadAhead {
    buf: Vec<u8>,
    pos: usize,
    end: usize,
}

/// Size of the read-ahead buffer.
const READ_AHEAD: usize = 64 * 1024;
/// Reads at least this large go directly into their destination when nothing is buffered.
const DIRECT_READ: usize = 16 * 1024;

impl ReadAhead {
    fn new() -> Self {
        ReadAhead {
            buf: Vec::new(),
            pos: 0,
            end: 0,
        }
    }

    /// Fills a prefix of `dst` (never empty): from the buffer if it holds anything, else from
    /// the transport. `Ok(0)` only on end of stream.
    fn read<T: Transport>(
        &mut self,
        cx: &mut Context<'_>,
        t: &mut T,
        dst: &mut [u8],
    ) -> Poll<Result<usize, IoError>> {
        if self.pos >= self.end {
            if dst.len() >= DIRECT_READ {
                return t.poll_read(cx, dst);
            }
            if self.buf.is_empty() {
                self.buf.resize(READ_AHEAD, 0);
            }
            self.pos = 0;
            self.end = 0;
            match t.poll_read(cx, &mut self.buf) {
                Poll::Ready(Ok(n)) => self.end = n.min(self.buf.len()),
                other => return other,
            }
            if self.end == 0 {
                return Poll::Ready(Ok(0));
            }
        }
        // pos < end <= buf.len(): `end` was clamped to the buffer when it was read.
        let avail = self.buf.get(self.pos..self.end);
        debug_assert!(avail.is_some(), "read-ahead window outside its buffer");
        let avail = avail.unwrap_or_default();
        let n = avail.len().min(dst.len());
        if let (Some(d), Some(s)) = (dst.get_mut(..n), avail.get(..n)) {
            d.copy_from_slice(s);
        }
        self.pos = self.pos.saturating_add(n);
        Poll::Ready(Ok(n))
    }
}

/// One line per PDU at `net.isboot.debug=3`: direction, opcode, ITT, data length.
pub(super) fn trace_pdu<G: Log>(log: &G, dir: &str, bytes: &[u8]) {
    if let Ok(info) = HeaderInfo::parse(bytes) {
        let itt = pdu::Bhs::new_checked(bytes).map_or(0, |b| b.itt());
        log.log(
            Level::Trace,
            format_args!(
                "isboot: {dir} {:?} ITT {itt:#010x} DSL {}",
                info.opcode, info.data_len
            ),
        );
    }
}
