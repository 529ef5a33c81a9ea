// SPDX-License-Identifier: BSD-2-Clause
//! A fixed-size table of in-flight items keyed by [`Tag`]: the SIM files each CCB it hands to the
//! session here and finds it again by the request's tag.
//!
//! The table is the core's [`GenSlab`] with its key encoded as a CAM-side [`Tag`]: every slot is
//! allocated up front, so filing and taking never allocate (they run under a spin lock), and a
//! stale tag (a late completion or abort for an old request) finds nothing instead of the
//! slot's new occupant.

use isboot_core::slab::{GenSlab, Key};

use crate::cam::Tag;

/// The table; `T` is the kernel's CCB handle (plain values in tests).
#[derive(Debug)]
pub struct Slots<T> {
    slab: GenSlab<T>,
}

fn tag(k: Key) -> u64 {
    Tag {
        slot: k.slot,
        generation: k.generation,
    }
    .encode()
}

impl<T> Slots<T> {
    /// A table of `n` slots.
    pub fn new(n: u32) -> Self {
        Slots {
            slab: GenSlab::new(n),
        }
    }

    /// Slots in use.
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    /// Files `item` and returns its tag, or gives it back when every slot is taken.
    pub fn insert(&mut self, item: T) -> Result<u64, T> {
        self.slab.insert(item).map(tag)
    }

    /// Removes and returns the item filed under `tag`; `None` for unknown or stale tags.
    pub fn take(&mut self, tag: u64) -> Option<T> {
        let t = Tag::decode(tag);
        self.slab.take(Key {
            slot: t.slot,
            generation: t.generation,
        })
    }

    /// The tag of the first item `pred` accepts.
    pub fn find(&self, pred: impl FnMut(&T) -> bool) -> Option<u64> {
        self.slab.find(pred).map(tag)
    }

    /// Removes some item (teardown drains one at a time, nothing allocated under the lock).
    pub fn take_any(&mut self) -> Option<T> {
        self.slab.take_any()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn filed_items_come_back_by_tag_once() {
        let mut s = Slots::new(4);
        let a = s.insert('a').unwrap();
        let b = s.insert('b').unwrap();
        assert_ne!(a, b);
        assert_eq!(s.len(), 2);
        assert_eq!(s.take(b), Some('b'));
        assert_eq!(s.take(b), None, "a tag is good for one take");
        assert_eq!(s.take(a), Some('a'));
        assert!(s.is_empty());
    }

    #[test]
    fn a_full_table_hands_the_item_back() {
        let mut s = Slots::new(2);
        s.insert(1).unwrap();
        s.insert(2).unwrap();
        assert_eq!(s.insert(3), Err(3));
    }

    #[test]
    fn a_stale_tag_never_reaches_the_slots_next_occupant() {
        let mut s = Slots::new(1);
        let old = s.insert("old").unwrap();
        assert_eq!(s.take(old), Some("old"));
        let new = s.insert("new").unwrap();
        assert_eq!(Tag::decode(old).slot, Tag::decode(new).slot);
        assert_eq!(s.take(old), None);
        assert_eq!(s.take(new), Some("new"));
    }

    #[test]
    fn unknown_tags_find_nothing() {
        let mut s: Slots<u8> = Slots::new(2);
        assert_eq!(s.take(u64::MAX), None);
        assert_eq!(
            s.take(
                Tag {
                    slot: 1,
                    generation: 0
                }
                .encode()
            ),
            None
        );
    }

    #[test]
    fn find_and_drain() {
        let mut s = Slots::new(8);
        let tags: Vec<u64> = (10..15).map(|v| s.insert(v).unwrap()).collect();
        assert_eq!(s.find(|&v| v == 12), Some(tags[2]));
        assert_eq!(s.find(|&v| v == 99), None);
        let mut drained = Vec::new();
        while let Some(v) = s.take_any() {
            drained.push(v);
        }
        drained.sort_unstable();
        assert_eq!(drained, [10, 11, 12, 13, 14]);
        assert!(s.is_empty());
        // Every slot is free again and usable.
        for v in 0..8 {
            s.insert(v).unwrap();
        }
    }
}
