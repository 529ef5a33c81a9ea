// SPDX-License-Identifier: BSD-2-Clause
//! The outstanding-command table: a fixed number of slots, O(1) lookup by ITT.
//!
//! A task's ITT is `generation << 16 | slot`, with bit 31 clear. The generation changes every
//! time a slot is reused (and when a task is replayed on a new connection), so a PDU naming an
//! ITT from an earlier life of the slot finds nothing instead of another command's buffer.
//! ITTs with bit 31 set belong to non-task PDUs (NOP-Out pings, task management, logout); the
//! reserved tag 0xffffffff is never produced by either scheme because the slot index stays below
//! 0xffff.

use alloc::vec::Vec;

/// Slots above this would make the low half of an ITT reach 0xffff.
pub const MAX_SLOTS: usize = 0x4000;
const GEN_MASK: u16 = 0x7fff;

/// Bit 31 marks an ITT that does not name a task slot.
pub const NON_TASK_ITT: u32 = 0x8000_0000;

#[derive(Debug)]
struct Slot<T> {
    gen: u16,
    item: Option<T>,
}

/// Fixed-capacity table of `T` indexed by slot, with free-slot reuse in O(1).
#[derive(Debug)]
pub struct Table<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u16>,
}

impl<T> Table<T> {
    /// A table of `capacity` slots (clamped to 1..=[`MAX_SLOTS`]).
    pub fn new(capacity: usize) -> Self {
        let n = capacity.clamp(1, MAX_SLOTS);
        let mut slots = Vec::with_capacity(n);
        slots.resize_with(n, || Slot { gen: 0, item: None });
        // Popped from the back: slot 0 is used first.
        let free = (0..n as u16).rev().collect();
        Table { slots, free }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub fn len(&self) -> usize {
        self.slots.len().saturating_sub(self.free.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_full(&self) -> bool {
        self.free.is_empty()
    }

    /// Stores `item`, returning its slot, or gives it back when every slot is taken.
    pub fn insert(&mut self, item: T) -> Result<u16, T> {
        let Some(slot) = self.free.pop() else {
            return Err(item);
        };
        match self.slots.get_mut(usize::from(slot)) {
            Some(s) => {
                s.gen = s.gen.wrapping_add(1) & GEN_MASK;
                s.item = Some(item);
                Ok(slot)
            }
            None => Err(item),
        }
    }

    /// The ITT naming `slot` in its current generation.
    pub fn itt(&self, slot: u16) -> u32 {
        let gen = self.slots.get(usize::from(slot)).map_or(0, |s| s.gen);
        (u32::from(gen) << 16) | u32::from(slot)
    }

    /// Gives `slot` a new generation (its old ITT stops matching).
    pub fn renew(&mut self, slot: u16) {
        if let Some(s) = self.slots.get_mut(usize::from(slot)) {
            s.gen = s.gen.wrapping_add(1) & GEN_MASK;
        }
    }

    /// The slot an ITT names, if that ITT is current.
    pub fn lookup(&self, itt: u32) -> Option<u16> {
        if itt & NON_TASK_ITT != 0 {
            return None;
        }
        let slot = (itt & 0xffff) as u16;
        let gen = (itt >> 16) as u16;
        let s = self.slots.get(usize::from(slot))?;
        (s.gen == gen && s.item.is_some()).then_some(slot)
    }

    pub fn get(&self, slot: u16) -> Option<&T> {
        self.slots.get(usize::from(slot))?.item.as_ref()
    }

    pub fn get_mut(&mut self, slot: u16) -> Option<&mut T> {
        self.slots.get_mut(usize::from(slot))?.item.as_mut()
    }

    /// Takes the item out of `slot` and frees the slot.
    pub fn remove(&mut self, slot: u16) -> Option<T> {
        let s = self.slots.get_mut(usize::from(slot))?;
        let item = s.item.take()?;
        s.gen = s.gen.wrapping_add(1) & GEN_MASK;
        self.free.push(slot);
        Some(item)
    }

    /// Occupied slots, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (u16, &T)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.item.as_ref().map(|t| (i as u16, t)))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u16, &mut T)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| s.item.as_mut().map(|t| (i as u16, t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_itt_finds_nothing_after_reuse() {
        let mut t = Table::new(2);
        let a = t.insert('a').unwrap();
        let itt_a = t.itt(a);
        assert_eq!(t.lookup(itt_a), Some(a));
        assert_eq!(t.remove(a), Some('a'));
        assert_eq!(t.lookup(itt_a), None);
        let b = t.insert('b').unwrap();
        assert_eq!(b, a, "the freed slot is reused");
        assert_ne!(t.itt(b), itt_a);
        assert_eq!(t.lookup(itt_a), None);
        assert_eq!(t.lookup(t.itt(b)), Some(b));
        t.renew(b);
        assert_eq!(t.lookup(t.itt(b)), Some(b));
    }

    #[test]
    fn bounded_and_never_reserved() {
        let mut t = Table::new(3);
        for i in 0..3 {
            t.insert(i).unwrap();
        }
        assert!(t.is_full());
        assert_eq!(t.insert(9), Err(9));
        assert_eq!(t.len(), 3);
        for _ in 0..70_000 {
            t.renew(2);
            let itt = t.itt(2);
            assert_ne!(itt, 0xffff_ffff);
            assert_eq!(itt & NON_TASK_ITT, 0);
        }
        assert_eq!(t.lookup(0xffff_ffff), None);
        assert_eq!(t.lookup(0x0000_0007), None, "slot beyond capacity");
        let big: Table<u8> = Table::new(usize::MAX);
        assert_eq!(big.capacity(), MAX_SLOTS);
    }
}
