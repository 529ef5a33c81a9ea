// SPDX-License-Identifier: BSD-2-Clause
//! A transport over bytes in memory that hands them out in the pieces a test (or the fuzzer)
//! chooses, for driving the session's receive path read by read.

use alloc::vec::Vec;
use core::task::{Context, Poll};

use crate::port::{IoError, Transport};

/// The target's bytes, at most `pieces[i]` per read (cycling through them; empty: no limit),
/// `Pending` once all are read. Counts the reads that returned bytes.
#[derive(Debug, Default)]
pub struct Wire {
    pub bytes: Vec<u8>,
    pub pos: usize,
    pub pieces: Vec<usize>,
    pub piece: usize,
    /// Reads that returned bytes, and how many of them were three-buffer (guessed) reads.
    pub reads: usize,
    pub reads3: usize,
    /// Whether the transport opts in to the guessed Data-In read.
    pub guess: bool,
    /// Every [`Transport::awaiting`] count, in order.
    pub awaiting: Vec<usize>,
    /// Every [`Transport::awaiting`] Data-In due, in order.
    pub data_in: Vec<usize>,
}

impl Wire {
    pub fn new(guess: bool) -> Wire {
        Wire {
            guess,
            ..Wire::default()
        }
    }

    /// Whether every byte was read.
    pub fn drained(&self) -> bool {
        self.pos == self.bytes.len()
    }

    /// Forgets the bytes, read or not.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.pos = 0;
    }

    fn take(&mut self, bufs: &mut [&mut [u8]]) -> Poll<Result<usize, IoError>> {
        assert!(!bufs[0].is_empty(), "a read with nothing needed");
        let left = self.bytes.len() - self.pos;
        if left == 0 {
            return Poll::Pending;
        }
        let mut limit = match self.pieces.get(self.piece % self.pieces.len().max(1)) {
            Some(&p) => left.min(p.max(1)),
            None => left,
        };
        self.piece += 1;
        self.reads += 1;
        let mut n = 0;
        for b in bufs.iter_mut() {
            let k = b.len().min(limit);
            b[..k].copy_from_slice(&self.bytes[self.pos..self.pos + k]);
            self.pos += k;
            n += k;
            limit -= k;
            if k < b.len() {
                break;
            }
        }
        Poll::Ready(Ok(n))
    }
}

impl Transport for Wire {
    fn poll_read(&mut self, _: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize, IoError>> {
        self.take(&mut [buf])
    }

    fn poll_read_pair(
        &mut self,
        _: &mut Context<'_>,
        first: &mut [u8],
        second: &mut [u8],
    ) -> Poll<Result<usize, IoError>> {
        self.take(&mut [first, second])
    }

    fn guess_data_in(&self) -> bool {
        self.guess
    }

    fn poll_read_three(
        &mut self,
        _: &mut Context<'_>,
        first: &mut [u8],
        second: &mut [u8],
        third: &mut [u8],
    ) -> Poll<Result<usize, IoError>> {
        assert!(self.guess, "a three-buffer read without the opt-in");
        let r = self.take(&mut [first, second, third]);
        if matches!(r, Poll::Ready(Ok(_))) {
            self.reads3 += 1;
        }
        r
    }

    fn poll_write(&mut self, _: &mut Context<'_>, buf: &[u8]) -> Poll<Result<usize, IoError>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn awaiting(&mut self, answers: usize, data_in: &dyn Fn() -> usize) {
        self.awaiting.push(answers);
        self.data_in.push(data_in());
    }

    fn close(&mut self) {}
}
