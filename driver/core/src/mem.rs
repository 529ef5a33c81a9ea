// SPDX-License-Identifier: BSD-2-Clause
//! Allocation that can fail, and growth that cannot allocate.
//!
//! The session runs in the kernel on paths where memory may be short (a reconnect of the disk
//! the system pages to), and malloc(9) with `M_NOWAIT` then returns NULL. Rust's infallible
//! collections (`Vec::push` beyond capacity, `vec!`, `to_vec`, `format!`) turn that into a
//! panic, so the network-facing modules never call them: they reserve with `try_reserve` when a
//! session starts or logs in (a failure is [`NoMemory`], a failed attempt retried with backoff),
//! and afterwards only fill what was reserved ([`push`], [`push_back`]), which cannot allocate.
//! `driver/core/clippy.toml` lists the infallible methods as disallowed; this module is where the
//! few uses that provably stay within a reservation are, each with its reason.
#![allow(
    clippy::disallowed_methods,
    reason = "the helpers below reserve first (fallibly) or check the capacity themselves"
)]

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt;

/// An allocation failed (the platform's allocator returned nothing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoMemory;

impl fmt::Display for NoMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("out of memory")
    }
}

impl core::error::Error for NoMemory {}

/// A vector of `n` copies of `value`, or `NoMemory`.
pub fn try_vec<T: Clone>(n: usize, value: T) -> Result<Vec<T>, NoMemory> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| NoMemory)?;
    // Within the reservation: resizing cannot reallocate.
    v.resize(n, value);
    Ok(v)
}

/// An empty vector with room for `n` items, or `NoMemory`.
pub fn try_with_capacity<T>(n: usize) -> Result<Vec<T>, NoMemory> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| NoMemory)?;
    Ok(v)
}

/// An empty deque with room for `n` items, or `NoMemory`.
pub fn try_deque<T>(n: usize) -> Result<VecDeque<T>, NoMemory> {
    let mut v = VecDeque::new();
    v.try_reserve_exact(n).map_err(|_| NoMemory)?;
    Ok(v)
}

/// Makes room for `n` items in all (not `n` more), or `NoMemory`; never shrinks.
pub fn reserve_total<T>(v: &mut Vec<T>, n: usize) -> Result<(), NoMemory> {
    let more = n.saturating_sub(v.len());
    v.try_reserve_exact(more).map_err(|_| NoMemory)
}

/// As [`reserve_total`] for a deque.
pub fn reserve_total_deque<T>(v: &mut VecDeque<T>, n: usize) -> Result<(), NoMemory> {
    let more = n.saturating_sub(v.len());
    v.try_reserve_exact(more).map_err(|_| NoMemory)
}

/// Appends `item` if it fits the capacity reserved before; gives it back otherwise. Never
/// allocates.
pub fn push<T>(v: &mut Vec<T>, item: T) -> Result<(), T> {
    if v.len() < v.capacity() {
        v.push(item);
        Ok(())
    } else {
        Err(item)
    }
}

/// As [`push`] for the back of a deque.
pub fn push_back<T>(v: &mut VecDeque<T>, item: T) -> Result<(), T> {
    if v.len() < v.capacity() {
        v.push_back(item);
        Ok(())
    } else {
        Err(item)
    }
}

/// Sets the length of a byte vector to `n` (new bytes zero) if `n` fits its capacity; `false`
/// (and no change) otherwise. Never allocates.
#[inline]
pub fn set_len_within(v: &mut Vec<u8>, n: usize) -> bool {
    if n <= v.capacity() {
        v.resize(n, 0);
        true
    } else {
        false
    }
}

/// Replaces the contents of `v` with `src`, growing it fallibly: `NoMemory` leaves `v` empty.
#[inline]
pub fn try_copy_into(v: &mut Vec<u8>, src: &[u8]) -> Result<(), NoMemory> {
    v.clear();
    v.try_reserve(src.len()).map_err(|_| NoMemory)?;
    v.extend_from_slice(src);
    Ok(())
}

/// A short byte string kept inline when it has at most `N` bytes, on the heap beyond that.
///
/// For what travels with every command but is long only in rare cases (a CDB beyond 16
/// bytes, sense data beyond 32): inline arrays sized for the rare case made each request and
/// completion hundreds of bytes long, and they are moved by value several times per command
/// on the way between the platform and the wire. Only the long case allocates, fallibly.
#[derive(Clone, PartialEq, Eq)]
pub enum SmallBytes<const N: usize> {
    Inline { len: u8, bytes: [u8; N] },
    Heap(Vec<u8>),
}

impl<const N: usize> fmt::Debug for SmallBytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x?}", self.as_slice())
    }
}

impl<const N: usize> SmallBytes<N> {
    /// An empty string.
    pub const EMPTY: Self = SmallBytes::Inline {
        len: 0,
        bytes: [0; N],
    };

    /// A copy of `src`; `NoMemory` when it is longer than `N` and the heap has no room.
    pub fn new(src: &[u8]) -> Result<Self, NoMemory> {
        match Self::inline(src) {
            Some(s) => Ok(s),
            None => {
                let mut v = Vec::new();
                v.try_reserve_exact(src.len()).map_err(|_| NoMemory)?;
                v.extend_from_slice(src);
                Ok(SmallBytes::Heap(v))
            }
        }
    }

    /// `src` held inline, or `None` when it does not fit.
    pub fn inline(src: &[u8]) -> Option<Self> {
        let len = u8::try_from(src.len()).ok()?;
        let mut bytes = [0u8; N];
        bytes.get_mut(..src.len())?.copy_from_slice(src);
        Some(SmallBytes::Inline { len, bytes })
    }

    pub fn as_slice(&self) -> &[u8] {
        match self {
            SmallBytes::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or(&[]),
            SmallBytes::Heap(v) => v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_room_is_filled_without_growing() {
        let mut v: Vec<u32> = try_with_capacity(2).unwrap();
        let cap = v.capacity();
        assert_eq!(push(&mut v, 1), Ok(()));
        assert_eq!(push(&mut v, 2), Ok(()));
        while v.len() < cap {
            push(&mut v, 0).unwrap();
        }
        assert_eq!(push(&mut v, 3), Err(3), "full: the item comes back");
        assert_eq!(v.capacity(), cap);
        let mut d: VecDeque<u8> = try_deque(1).unwrap();
        while d.len() < d.capacity() {
            push_back(&mut d, 0).unwrap();
        }
        assert_eq!(push_back(&mut d, 9), Err(9));
        let mut b = try_vec(4, 7u8).unwrap();
        assert_eq!(b, [7; 4]);
        assert!(set_len_within(&mut b, 2));
        let too_long = b.capacity() + 1;
        assert!(!set_len_within(&mut b, too_long));
        assert_eq!(b, [7, 7]);
        reserve_total(&mut b, 100).unwrap();
        assert!(b.capacity() >= 100);
        try_copy_into(&mut b, &[1, 2, 3]).unwrap();
        assert_eq!(b, [1, 2, 3]);
    }

    #[test]
    fn small_bytes_stay_inline_up_to_n() {
        let short = SmallBytes::<4>::new(&[1, 2, 3, 4]).unwrap();
        assert!(matches!(short, SmallBytes::Inline { len: 4, .. }));
        assert_eq!(short.as_slice(), [1, 2, 3, 4]);
        let long = SmallBytes::<4>::new(&[9; 5]).unwrap();
        assert!(matches!(long, SmallBytes::Heap(_)));
        assert_eq!(long.as_slice(), [9; 5]);
        assert!(SmallBytes::<4>::inline(&[0; 5]).is_none());
        assert_eq!(SmallBytes::<4>::EMPTY.as_slice(), [0u8; 0]);
        // A length a u8 cannot hold never goes inline, whatever N is.
        assert!(SmallBytes::<300>::inline(&[0; 256]).is_none());
    }

    #[test]
    fn impossible_reservations_fail_cleanly() {
        assert_eq!(try_vec(usize::MAX, 0u8).map(|v| v.len()), Err(NoMemory));
        assert_eq!(
            try_with_capacity::<u64>(usize::MAX / 2).map(|v| v.len()),
            Err(NoMemory)
        );
        let mut v = alloc::vec![1u8];
        assert_eq!(reserve_total(&mut v, usize::MAX), Err(NoMemory));
        assert_eq!(v, [1]);
    }
}
