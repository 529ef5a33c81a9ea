// SPDX-License-Identifier: BSD-2-Clause
//! The outstanding-command table: a [`GenSlab`] whose keys are ITTs, O(1) lookup by ITT.
//!
//! A task's ITT is `generation << 16 | slot`, with bit 31 clear. The generation changes every
//! time a slot is reused (and when a task is replayed on a new connection), so a PDU naming an
//! ITT from an earlier life of the slot finds nothing instead of another command's buffer.
//! ITTs with bit 31 set belong to non-task PDUs (NOP-Out pings, task management, logout); the
//! reserved tag 0xffffffff is never produced by either scheme because the slot index stays below
//! 0xffff.

use crate::mem::NoMemory;
use crate::slab::GenSlab;

/// Slots above this would make the low half of an ITT reach 0xffff.
pub const MAX_SLOTS: usize = 0x4000;
/// The generation bits an ITT carries (bit 31 stays clear).
const GEN_MASK: u32 = 0x7fff;

/// Bit 31 marks an ITT that does not name a task slot.
pub const NON_TASK_ITT: u32 = 0x8000_0000;

/// Fixed-capacity table of `T` indexed by slot, named on the wire by ITT.
#[derive(Debug)]
pub struct Table<T> {
    slab: GenSlab<T>,
}

impl<T> Table<T> {
    /// A table of `capacity` slots (clamped to 1..=[`MAX_SLOTS`]).
    pub fn try_new(capacity: usize) -> Result<Self, NoMemory> {
        // MAX_SLOTS fits in a u16.
        let n = capacity.clamp(1, MAX_SLOTS) as u32;
        Ok(Table {
            slab: GenSlab::try_new(n)?,
        })
    }

    pub fn capacity(&self) -> usize {
        self.slab.capacity()
    }

    pub fn len(&self) -> usize {
        self.slab.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    #[cfg(test)]
    pub fn is_full(&self) -> bool {
        self.slab.is_full()
    }

    /// Stores `item`, returning its slot, or gives it back when every slot is taken.
    pub fn insert(&mut self, item: T) -> Result<u16, T> {
        // Slots stay below MAX_SLOTS, so they fit in a u16.
        self.slab.insert(item).map(|k| k.slot as u16)
    }

    /// The ITT naming `slot` in its current generation.
    pub fn itt(&self, slot: u16) -> u32 {
        let gen = self.slab.generation(u32::from(slot)) & GEN_MASK;
        (gen << 16) | u32::from(slot)
    }

    /// Gives `slot` a new generation (its old ITT stops matching).
    pub fn renew(&mut self, slot: u16) {
        self.slab.renew(u32::from(slot));
    }

    /// The slot an ITT names, if that ITT is current.
    pub fn lookup(&self, itt: u32) -> Option<u16> {
        if itt & NON_TASK_ITT != 0 {
            return None;
        }
        let slot = (itt & 0xffff) as u16;
        let current = self.slab.get(u32::from(slot)).is_some() && self.itt(slot) == itt;
        current.then_some(slot)
    }

    pub fn get(&self, slot: u16) -> Option<&T> {
        self.slab.get(u32::from(slot))
    }

    pub fn get_mut(&mut self, slot: u16) -> Option<&mut T> {
        self.slab.get_mut(u32::from(slot))
    }

    /// Takes the item out of `slot` and frees the slot.
    pub fn remove(&mut self, slot: u16) -> Option<T> {
        self.slab.remove(u32::from(slot))
    }

    /// Occupied slots, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (u16, &T)> {
        self.slab.iter().map(|(i, t)| (i as u16, t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_itt_finds_nothing_after_reuse() {
        let mut t = Table::try_new(2).unwrap();
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
        let mut t = Table::try_new(3).unwrap();
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
        let big: Table<u8> = Table::try_new(usize::MAX).unwrap();
        assert_eq!(big.capacity(), MAX_SLOTS);
    }
}
