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
//! Data-In never passes through a buffer of ours: while a read command waits for data, headers
//! are read exactly (BHS first, then AHS and digest), so the bytes after a header are its data
//! segment and go from the transport straight into the request's buffer, piece by piece; the
//! read of a segment's last piece also takes up to one BHS behind it (padding, digest, the next
//! header: never payload). Only when no Data-In can come (writes, commands without data, control
//! traffic) do reads go further through [`ReadAhead`], one transport read for a burst of small
//! PDUs (R2Ts, responses).
//!
//! One exception saves a system call per Data-In where reads are system calls (the host, not
//! the module): while the session holds a single command, a read waiting for data, the first
//! read of a header also takes the segment it most likely carries, straight into that read's
//! buffer at its next offset, and a short look-ahead ([`DataGuess`]). What the header then
//! does not claim is copied into [`ReadAhead`] in stream order and read from there as above.
//!
//! Buffers are allocated when the session starts ([`Rx::try_new`]) and kept across
//! connections: the read-ahead buffer, and a scratch buffer for the data segments that are not
//! Data-In (sense data, NOP-In data, Reject headers), which grows fallibly when a target sends a
//! larger one (up to our MaxRecvDataSegmentLength) and then stays.

use alloc::vec::Vec;
use core::task::{Context, Poll};

use isboot_crc32c::Crc32c;
use isboot_executor::Instant;

use super::engine::{Disconnect, Engine, RxSink, Violation, TASK_GONE};
use crate::mem::{self, NoMemory};
use crate::pdu::{self, Digests, HeaderInfo, BHS_LEN, DIGEST_LEN, MAX_AHS_LEN};
use crate::port::{IoError, Level, Log, Transport};
use crate::scsi::DataBuf;

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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
struct Io<'a, 'c, 'w, T, G, B> {
    cx: &'a mut Context<'w>,
    t: &'a mut T,
    engine: &'a mut Engine<B>,
    now: Instant,
    trace: Option<&'c G>,
    digests: Digests,
}

/// The receive path of one connection.
pub(crate) struct Rx {
    ahead: ReadAhead,
    /// BHS, AHS and header digest of the PDU being read ([`HDR_MAX`] bytes; on the heap, so
    /// that the session's future stays small to move).
    hdr: Vec<u8>,
    have: usize,
    info: Option<HeaderInfo>,
    stage: RxStage,
    scratch: Vec<u8>,
    crc: Crc32c,
    trailer: [u8; 3 + DIGEST_LEN],
    guess: DataGuess,
}

/// Reading a header together with the Data-In segment it most likely carries, in one transport
/// call (one `readv` on a host instead of two: the header alone, then its data), for
/// transports that opt in ([`Transport::guess_data_in`]).
///
/// Only when the session holds exactly one command, a read still waiting for data
/// ([`Engine::rx_guess`]): whatever PDU comes is then that read's or a control PDU, so bytes
/// placed on a wrong guess can never be another request's data. The header goes into `hdr`,
/// the guess straight into the read's buffer at the offset its next Data-In must start at, and
/// [`GUESS_LOOK`] bytes more into the (empty) read-ahead buffer, so that a read that drains the
/// socket comes back short and the transport knows it is drained. Once the header is parsed
/// and its sink is that read at that offset, the bytes in place count as its data, up to the
/// segment's length.
///
/// A miss (a NOP-In, Reject, Async Message or SCSI Response first; a shorter segment than
/// guessed) costs a copy of at most the guess: every byte not validly in place moves into the
/// read-ahead buffer in stream order, ahead of the look-ahead bytes, and the normal stages
/// read it from there. The guess is at most the read's remaining transfer and the largest
/// Data-In segment seen on this connection (no guess before one is seen), and never more than
/// the read-ahead buffer can take beside the look-ahead ([`GUESS_MAX`]), so a miss can always
/// be parked. A segment expected to be longer than that is guessed in part and without the
/// look-ahead, which would only take payload: the data stage reads the rest.
#[derive(Clone, Copy, Debug, Default)]
struct DataGuess {
    /// The largest Data-In segment seen on this connection (0: none yet, no guess).
    seg: usize,
    /// The slot of the last Data-In: the read to look at first.
    hint: u16,
    /// Bytes read into a task's buffer that its header has not claimed yet.
    placed: Option<Placed>,
}

/// Bytes a guess read into `slot`'s buffer at `at..at + len`.
#[derive(Clone, Copy, Debug)]
struct Placed {
    slot: u16,
    at: usize,
    len: usize,
}

/// The look-ahead behind a guessed segment: the SCSI Response that may follow it.
const GUESS_LOOK: usize = BHS_LEN;
/// The largest guess: a miss must fit the read-ahead buffer beside the look-ahead bytes.
const GUESS_MAX: usize = READ_AHEAD - GUESS_LOOK;

/// The scratch buffer's first size: sense data, NOP-In data and Reject headers are far smaller.
const SCRATCH: usize = 8 * 1024;

impl Rx {
    /// The receive path's buffers; `NoMemory` if they cannot be allocated.
    pub(crate) fn try_new() -> Result<Self, NoMemory> {
        Ok(Rx {
            ahead: ReadAhead::try_new()?,
            hdr: mem::try_vec(HDR_MAX, 0)?,
            have: 0,
            info: None,
            stage: RxStage::Header { need: BHS_LEN },
            scratch: mem::try_with_capacity(SCRATCH)?,
            crc: Crc32c::new(),
            trailer: [0; 3 + DIGEST_LEN],
            guess: DataGuess::default(),
        })
    }

    /// Starts over for a new connection (the buffers stay).
    pub(crate) fn reset(&mut self) {
        self.ahead.clear();
        self.have = 0;
        self.info = None;
        self.stage = RxStage::Header { need: BHS_LEN };
        // What it learned was this connection's; `placed` is cleared where a header begins.
        self.guess.seg = 0;
    }

    /// Advances through one PDU: `Ready(Ok)` once a whole PDU went to the engine, `Pending`
    /// when the transport has nothing more now.
    pub(crate) fn poll<T: Transport, G: Log, B: DataBuf>(
        &mut self,
        cx: &mut Context<'_>,
        t: &mut T,
        engine: &mut Engine<B>,
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
            let step = match self.stage {
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
    fn read_header<T: Transport, G: Log, B: DataBuf>(
        &mut self,
        io: &mut Io<'_, '_, '_, T, G, B>,
        need: usize,
    ) -> Poll<Result<Progress, Disconnect>> {
        if self.have < need {
            let engine = &*io.engine;
            io.t.awaiting(engine.outstanding(), &|| engine.data_in_due());
            let mut guess = None;
            if io.t.guess_data_in() && self.have == 0 {
                // Nothing is placed before a header's first read (an error may have left
                // something from the last connection).
                self.guess.placed = None;
                if self.ahead.is_empty() {
                    guess = self.guess_for(io.engine);
                }
            }
            if let Some((slot, at, len, look)) = guess {
                match self.read_guessed(io, slot, at, len, look) {
                    Poll::Ready(Ok(n)) => self.have = n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            } else {
                let Some(buf) = self.hdr.get_mut(self.have..need) else {
                    return Poll::Ready(Err(Disconnect::internal(HEADER_BOUNDS)));
                };
                let ahead = ahead_of(io.engine.expects_data_in());
                let n = read_or_return!(self.ahead.read(io.cx, io.t, buf, ahead));
                self.have = self.have.saturating_add(n);
            }
            if self.have < need {
                return Poll::Ready(Ok(Progress::Stage));
            }
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
                if io.t.guess_data_in() && full > self.have {
                    // An AHS follows: what a guess placed is AHS and beyond.
                    self.park(io.engine, 0)?;
                }
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
        let mut have = 0;
        if io.t.guess_data_in() {
            have = self.claim_guess(io.engine, sink)?;
        }
        if matches!(sink, RxSink::Scratch) && self.scratch.len() < len {
            // At most our MaxRecvDataSegmentLength (checked above); grown once and kept.
            mem::reserve_total(&mut self.scratch, len).map_err(|_| Disconnect::NoMemory)?;
            if !mem::set_len_within(&mut self.scratch, len) {
                return Poll::Ready(Err(Disconnect::NoMemory));
            }
        }
        self.crc = Crc32c::new();
        if have > 0 && io.digests.data {
            if let RxSink::Task { slot, start, end } = sink {
                let got = io.engine.rx_task_chunk(slot, start..end, start);
                let got = got.and_then(|c| c.get(..have));
                let got = got.ok_or_else(|| Disconnect::internal(TASK_GONE))?;
                self.crc = self.crc.update(got);
            }
        }
        self.stage = RxStage::Data { sink, len, have };
        Poll::Ready(Ok(Progress::Stage))
    }

    /// What [`DataGuess`] guesses now: the read's slot, its next offset, the guess and the
    /// look-ahead; `None` when it does not guess.
    fn guess_for<B: DataBuf>(&self, engine: &Engine<B>) -> Option<(u16, usize, usize, usize)> {
        if self.guess.seg == 0 {
            return None;
        }
        let (slot, at, left) = engine.rx_guess(self.guess.hint)?;
        let want = left.min(self.guess.seg);
        let len = want.min(GUESS_MAX);
        let look = if len < want { 0 } else { GUESS_LOOK };
        Some((slot, at, len, look))
    }

    /// One transport call for the header (with its digest), `len` bytes of the guessed segment
    /// into `slot`'s buffer at `at`, and `look` bytes into the read-ahead buffer.
    /// Returns the header bytes read; the rest is `placed` or read ahead.
    fn read_guessed<T: Transport, G: Log, B: DataBuf>(
        &mut self,
        io: &mut Io<'_, '_, '_, T, G, B>,
        slot: u16,
        at: usize,
        len: usize,
        look: usize,
    ) -> Poll<Result<usize, Disconnect>> {
        let hl = BHS_LEN.saturating_add(if io.digests.header { DIGEST_LEN } else { 0 });
        let hdr = self.hdr.get_mut(..hl);
        let hdr = hdr.ok_or_else(|| Disconnect::internal(HEADER_BOUNDS));
        let dst = io
            .engine
            .rx_task_chunk(slot, at..at.saturating_add(len), at);
        let dst = dst.ok_or_else(|| Disconnect::internal(TASK_GONE));
        let (hdr, dst) = match (hdr, dst) {
            (Ok(h), Ok(d)) => (h, d),
            (Err(e), _) | (_, Err(e)) => return Poll::Ready(Err(e)),
        };
        let guessed = dst.len();
        let n = read_or_return!(self.ahead.read_three(io.cx, io.t, hdr, dst, look));
        let h = n.min(hl);
        let placed = n.saturating_sub(h).min(guessed);
        if placed > 0 {
            self.guess.placed = Some(Placed {
                slot,
                at,
                len: placed,
            });
        }
        Poll::Ready(Ok(h))
    }

    /// Settles a guess once the header's `sink` is known: the bytes that are the start of this
    /// PDU's segment stay where they are (their count is returned), the rest is parked. Learns
    /// the segment length of every Data-In.
    fn claim_guess<B: DataBuf>(
        &mut self,
        engine: &mut Engine<B>,
        sink: RxSink,
    ) -> Result<usize, Disconnect> {
        let mut valid = 0;
        if let RxSink::Task { slot, start, end } = sink {
            let seg = end.saturating_sub(start);
            self.guess.seg = self.guess.seg.max(seg);
            self.guess.hint = slot;
            if let Some(p) = self.guess.placed {
                if p.slot == slot && p.at == start {
                    valid = p.len.min(seg);
                }
            }
        }
        self.park(engine, valid)?;
        Ok(valid)
    }

    /// Moves what a guess placed beyond its first `valid` bytes into the read-ahead buffer,
    /// ahead of what was read behind it: a copy of at most the guess, on a miss only.
    fn park<B: DataBuf>(&mut self, engine: &mut Engine<B>, valid: usize) -> Result<(), Disconnect> {
        let Some(p) = self.guess.placed.take() else {
            return Ok(());
        };
        if valid >= p.len {
            return Ok(());
        }
        let end = p.at.saturating_add(p.len);
        let from = p.at.saturating_add(valid);
        let misplaced = engine.rx_task_chunk(p.slot, p.at..end, from);
        let misplaced = misplaced.filter(|m| m.len() == end.saturating_sub(from));
        let misplaced = misplaced.ok_or_else(|| Disconnect::internal(TASK_GONE))?;
        if self.ahead.park_front(misplaced) {
            Ok(())
        } else {
            Err(Disconnect::internal(
                "a missed guess beyond the read-ahead buffer",
            ))
        }
    }

    /// The data segment, into the request's buffer or the scratch buffer.
    fn read_data<T: Transport, G: Log, B: DataBuf>(
        &mut self,
        io: &mut Io<'_, '_, '_, T, G, B>,
        sink: RxSink,
        len: usize,
        have: usize,
    ) -> Poll<Result<Progress, Disconnect>> {
        if have < len {
            let dst = match sink {
                // The piece of the request's buffer the next bytes go to.
                RxSink::Task { slot, start, end } => io
                    .engine
                    .rx_task_chunk(slot, start..end, start.saturating_add(have))
                    .ok_or_else(|| Disconnect::internal(TASK_GONE))?,
                // have < len and the scratch buffer is at least the segment's length.
                RxSink::Scratch => self
                    .scratch
                    .get_mut(have..len)
                    .ok_or_else(|| Disconnect::internal("scratch buffer below the segment"))?,
            };
            // At most a BHS more (the padding, digest and header that follow the segment): no
            // payload ever passes through the buffer, as a BHS is the most that follows a
            // segment before the next one begins.
            let n = read_or_return!(self.ahead.read(io.cx, io.t, dst, BHS_LEN));
            let Some(got) = dst.get(..n) else {
                return Poll::Ready(Err(Disconnect::internal(OVERREAD)));
            };
            if io.digests.data {
                self.crc = self.crc.update(got);
            }
            let have = have.saturating_add(n);
            if have < len {
                self.stage = RxStage::Data { sink, len, have };
                return Poll::Ready(Ok(Progress::Stage));
            }
        }
        let pad = pdu::pad_len(len);
        let dd = if io.digests.data && len > 0 {
            DIGEST_LEN
        } else {
            0
        };
        let need = pad.saturating_add(dd);
        if need == 0 {
            // Nothing follows the segment: the PDU is complete (the usual case without digests).
            return self.finish_pdu(io, sink, pad, need);
        }
        self.stage = RxStage::Trailer {
            sink,
            pad,
            need,
            have: 0,
        };
        Poll::Ready(Ok(Progress::Stage))
    }

    /// Padding and data digest; then the PDU goes to [`Engine::rx_finish`].
    fn read_trailer<T: Transport, G: Log, B: DataBuf>(
        &mut self,
        io: &mut Io<'_, '_, '_, T, G, B>,
        sink: RxSink,
        pad: usize,
        need: usize,
        have: usize,
    ) -> Poll<Result<Progress, Disconnect>> {
        if have < need {
            let Some(buf) = self.trailer.get_mut(have..need) else {
                return Poll::Ready(Err(Disconnect::internal(TRAILER_BOUNDS)));
            };
            let ahead = ahead_of(io.engine.expects_data_in());
            let n = read_or_return!(self.ahead.read(io.cx, io.t, buf, ahead));
            self.stage = RxStage::Trailer {
                sink,
                pad,
                need,
                have: have.saturating_add(n),
            };
            return Poll::Ready(Ok(Progress::Stage));
        }
        self.finish_pdu(io, sink, pad, need)
    }

    /// Checks the padding's data digest (in `trailer[pad..need]`, if any) and hands the PDU to
    /// [`Engine::rx_finish`]; the next read is a header.
    fn finish_pdu<T: Transport, G: Log, B: DataBuf>(
        &mut self,
        io: &mut Io<'_, '_, '_, T, G, B>,
        sink: RxSink,
        pad: usize,
        need: usize,
    ) -> Poll<Result<Progress, Disconnect>> {
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

/// Bytes read from the transport ahead of need, so that a burst of small PDUs (responses, R2Ts)
/// costs one transport read instead of two or three per PDU. Data segments are read straight
/// into their buffer (with at most the next BHS behind them), and while Data-In may follow
/// nothing is read past a header.
struct ReadAhead {
    buf: Vec<u8>,
    pos: usize,
    end: usize,
}

/// Size of the read-ahead buffer.
const READ_AHEAD: usize = 64 * 1024;

impl ReadAhead {
    fn is_empty(&self) -> bool {
        self.pos >= self.end
    }

    /// One transport call into `hdr`, `guess` and up to `look` bytes of the (empty) buffer:
    /// the read of [`DataGuess`]. Returns the bytes read into all three.
    fn read_three<T: Transport>(
        &mut self,
        cx: &mut Context<'_>,
        t: &mut T,
        hdr: &mut [u8],
        guess: &mut [u8],
        look: usize,
    ) -> Poll<Result<usize, IoError>> {
        self.pos = 0;
        self.end = 0;
        let limit = look.min(self.buf.len());
        let next = self.buf.get_mut(..limit).unwrap_or_default();
        let before = hdr.len().saturating_add(guess.len());
        match t.poll_read_three(cx, hdr, guess, next) {
            Poll::Ready(Ok(n)) => {
                self.end = n.saturating_sub(before).min(limit);
                Poll::Ready(Ok(n.min(before.saturating_add(limit))))
            }
            other => other,
        }
    }

    /// Puts `bytes` in front of what the buffer holds: the bytes a missed guess placed come
    /// before those read behind them. False if they do not fit (the guess is bounded so that
    /// they do) or the buffer was read from since.
    fn park_front(&mut self, bytes: &[u8]) -> bool {
        let m = bytes.len();
        let end = self.end.saturating_add(m);
        if self.pos != 0 || end > self.buf.len() {
            return false;
        }
        self.buf.copy_within(0..self.end, m);
        match self.buf.get_mut(..m) {
            Some(front) => front.copy_from_slice(bytes),
            None => return false,
        }
        self.end = end;
        true
    }

    fn try_new() -> Result<Self, NoMemory> {
        Ok(ReadAhead {
            buf: mem::try_vec(READ_AHEAD, 0)?,
            pos: 0,
            end: 0,
        })
    }

    /// Forgets what was read ahead (a new connection).
    fn clear(&mut self) {
        self.pos = 0;
        self.end = 0;
    }

    /// Fills a prefix of `dst` (never empty): from the buffer if it holds anything, else from
    /// the transport straight into `dst`, reading up to `ahead` bytes more into the (then empty)
    /// buffer in the same call. `dst` is what is needed now, so a transport that wakes its
    /// reader only once enough bytes are in (the kernel's receive low-water mark) counts what
    /// completes this piece of the PDU; a read that comes back short tells it the stream is
    /// drained. `Ok(0)` only on end of stream.
    fn read<T: Transport>(
        &mut self,
        cx: &mut Context<'_>,
        t: &mut T,
        dst: &mut [u8],
        ahead: usize,
    ) -> Poll<Result<usize, IoError>> {
        if self.pos >= self.end {
            self.pos = 0;
            self.end = 0;
            let want = dst.len();
            let limit = ahead.min(self.buf.len());
            let next = self.buf.get_mut(..limit).unwrap_or_default();
            return match t.poll_read_pair(cx, dst, next) {
                Poll::Ready(Ok(n)) => {
                    self.end = n.saturating_sub(want).min(limit);
                    Poll::Ready(Ok(n.min(want)))
                }
                other => other,
            };
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

/// How far past a header or trailer the receive path reads: all the buffer takes, unless
/// Data-In may follow, whose data must go straight into its request's buffer.
fn ahead_of(data_in_may_follow: bool) -> usize {
    if data_in_may_follow {
        0
    } else {
        READ_AHEAD
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
