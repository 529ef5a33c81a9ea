// SPDX-License-Identifier: BSD-2-Clause
//! The stateful targets' view of the fuzzer's bytes: consumed from the front, zeros once they
//! run out (so that every input is a complete run).

pub struct Input<'a>(pub &'a [u8]);

#[allow(dead_code, reason = "each fuzz target reads the widths it needs")]
impl Input<'_> {
    pub fn u8(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// `n` bytes, zero-padded when the input ends first.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let take = n.min(self.0.len());
        let (a, b) = self.0.split_at(take);
        self.0 = b;
        let mut v = a.to_vec();
        v.resize(n, 0);
        v
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
