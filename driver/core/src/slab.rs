// SPDX-License-Identifier: BSD-2-Clause
//! A fixed-capacity slab whose slots carry a generation: the one table behind the session's
//! ITTs (`session::table`) and the kernel SIM's CCB tags (`isboot-kmod-logic`'s `slots`).
//!
//! Every slot and the whole free list are allocated by [`GenSlab::new`]; inserting, looking up
//! and removing never allocate (the kernel does them under a spin lock). A [`Key`] names a slot
//! in one life: the generation changes whenever the slot is filled or emptied (and on
//! [`GenSlab::renew`]), so a key from an earlier life (a late completion, an abort for a request
//! that is gone, a PDU for a replayed command) finds nothing instead of the slot's next
//! occupant. Free slots are reused lowest index first after start-up, most recently freed
//! first afterwards.
#![cfg_attr(not(test), deny(clippy::disallowed_methods, clippy::disallowed_macros))]

use alloc::vec::Vec;

use crate::mem::{self, NoMemory};

/// A slot and the generation it had when the key was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub slot: u32,
    pub generation: u32,
}

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    item: Option<T>,
}

/// The slab (see the module documentation).
#[derive(Debug)]
pub struct GenSlab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
}

impl<T> GenSlab<T> {
    /// A slab of `capacity` slots, all allocated now; memory being short ends in the allocation
    /// error handler, as for any infallible allocation. For contexts where an allocation may
    /// wait for memory (module load); elsewhere use [`GenSlab::try_new`].
    pub fn new(capacity: u32) -> Self {
        match Self::try_new(capacity) {
            Ok(s) => s,
            Err(NoMemory) => {
                alloc::alloc::handle_alloc_error(core::alloc::Layout::new::<Slot<T>>())
            }
        }
    }

    /// A slab of `capacity` slots, all allocated now; `NoMemory` if that fails.
    pub fn try_new(capacity: u32) -> Result<Self, NoMemory> {
        let n = usize::try_from(capacity).map_err(|_| NoMemory)?;
        let mut slots = mem::try_with_capacity(n)?;
        let mut free = mem::try_with_capacity(n)?;
        for _ in 0..capacity {
            let s = Slot {
                generation: 0,
                item: None,
            };
            // Within the capacity reserved above.
            let _ = mem::push(&mut slots, s);
        }
        // Popped from the back: slot 0 is used first.
        for slot in (0..capacity).rev() {
            let _ = mem::push(&mut free, slot);
        }
        Ok(GenSlab { slots, free })
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Occupied slots.
    pub fn len(&self) -> usize {
        self.slots.len().saturating_sub(self.free.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_full(&self) -> bool {
        self.free.is_empty()
    }

    /// Stores `item` in a free slot and returns its key, or gives the item back when every slot
    /// is taken.
    pub fn insert(&mut self, item: T) -> Result<Key, T> {
        let Some(slot) = self.free.pop() else {
            return Err(item);
        };
        let Some(s) = self.slot_mut(slot) else {
            // Only slots of this slab are ever on the free list.
            debug_assert!(false, "free slot {slot} outside the slab");
            return Err(item);
        };
        s.generation = s.generation.wrapping_add(1);
        s.item = Some(item);
        Ok(Key {
            slot,
            generation: s.generation,
        })
    }

    /// The generation `slot` has now (0 for a slot outside the slab).
    pub fn generation(&self, slot: u32) -> u32 {
        self.slot(slot).map_or(0, |s| s.generation)
    }

    /// Gives an occupied `slot` a new generation: keys made before stop matching it.
    pub fn renew(&mut self, slot: u32) {
        if let Some(s) = self.slot_mut(slot) {
            s.generation = s.generation.wrapping_add(1);
        }
    }

    /// Whether `key` names an occupied slot in its current generation.
    pub fn contains(&self, key: Key) -> bool {
        self.slot(key.slot)
            .is_some_and(|s| s.generation == key.generation && s.item.is_some())
    }

    pub fn get(&self, slot: u32) -> Option<&T> {
        self.slot(slot)?.item.as_ref()
    }

    pub fn get_mut(&mut self, slot: u32) -> Option<&mut T> {
        self.slot_mut(slot)?.item.as_mut()
    }

    /// Takes the item out of `slot` and frees the slot.
    pub fn remove(&mut self, slot: u32) -> Option<T> {
        let s = self.slot_mut(slot)?;
        let item = s.item.take()?;
        s.generation = s.generation.wrapping_add(1);
        // The free list was allocated for every slot, so this push always fits.
        let _ = mem::push(&mut self.free, slot);
        Some(item)
    }

    /// Takes the item `key` names, if it is still current.
    pub fn take(&mut self, key: Key) -> Option<T> {
        if self.contains(key) {
            self.remove(key.slot)
        } else {
            None
        }
    }

    /// The key of the first item (in slot order) that `pred` accepts.
    pub fn find(&self, mut pred: impl FnMut(&T) -> bool) -> Option<Key> {
        self.iter().find(|(_, t)| pred(t)).map(|(slot, _)| Key {
            slot,
            generation: self.generation(slot),
        })
    }

    /// Removes some item (teardown drains one at a time, allocating nothing).
    pub fn take_any(&mut self) -> Option<T> {
        let slot = self.iter().map(|(slot, _)| slot).next()?;
        self.remove(slot)
    }

    /// Occupied slots, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        (0u32..)
            .zip(self.slots.iter())
            .filter_map(|(i, s)| s.item.as_ref().map(|t| (i, t)))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u32, &mut T)> {
        (0u32..)
            .zip(self.slots.iter_mut())
            .filter_map(|(i, s)| s.item.as_mut().map(|t| (i, t)))
    }

    fn slot(&self, slot: u32) -> Option<&Slot<T>> {
        self.slots.get(usize::try_from(slot).ok()?)
    }

    fn slot_mut(&mut self, slot: u32) -> Option<&mut Slot<T>> {
        self.slots.get_mut(usize::try_from(slot).ok()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_good_until_its_slot_changes_life() {
        let mut s = GenSlab::try_new(2).unwrap();
        let a = s.insert('a').unwrap();
        assert!(s.contains(a));
        assert_eq!(s.take(a), Some('a'));
        assert_eq!(s.take(a), None, "a key is good for one take");
        let b = s.insert('b').unwrap();
        assert_eq!(b.slot, a.slot, "the freed slot is reused");
        assert_ne!(b, a);
        assert!(!s.contains(a));
        s.renew(b.slot);
        assert!(!s.contains(b), "renew retires the old key");
        assert_eq!(s.get(b.slot), Some(&'b'), "but keeps the item");
    }

    #[test]
    fn bounded_and_preallocated() {
        let mut s = GenSlab::try_new(3).unwrap();
        for i in 0..3 {
            assert_eq!(s.insert(i).unwrap().slot, i, "lowest slot first");
        }
        assert!(s.is_full());
        assert_eq!(s.insert(9), Err(9));
        assert_eq!(s.len(), 3);
        assert!(!s.contains(Key {
            slot: 7,
            generation: 1
        }));
        assert_eq!(s.get(7), None);
        let cap = s.free.capacity();
        while s.take_any().is_some() {}
        assert!(s.is_empty());
        assert_eq!(s.free.capacity(), cap, "draining never reallocates");
    }

    #[test]
    fn find_and_iterate_in_slot_order() {
        let mut s = GenSlab::try_new(8).unwrap();
        let keys: Vec<Key> = (10..15).map(|v| s.insert(v).unwrap()).collect();
        assert_eq!(s.find(|&v| v == 12), Some(keys[2]));
        assert_eq!(s.find(|&v| v == 99), None);
        s.remove(1);
        let left: Vec<(u32, i32)> = s.iter().map(|(k, v)| (k, *v)).collect();
        assert_eq!(left, [(0, 10), (2, 12), (3, 13), (4, 14)]);
        for (_, v) in s.iter_mut() {
            *v += 1;
        }
        assert_eq!(s.get(4), Some(&15));
    }
}
