//! What the messaging objects (pub/sub services, work queues) share: the
//! payload types they carry, the record of that type in their headers,
//! the cache of other participants' doorbells, making or joining the
//! object, and bit sets of participants.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytemuck::Pod;

use crate::error::Result;
use crate::sys;
use crate::sys::layout::Bell;

mod format;
pub(crate) use format::{connect, inspect, Control, Format, Header, ObjectLayout, Opened};

/// How long a joiner waits for a creator that is still writing the header
/// (only on Windows, where a section is visible before it is set up).
const SETUP_WAIT: Duration = Duration::from_secs(5);

/// The types a messaging object carries: plain old data ([`Pod`]: no
/// pointers, every bit pattern valid) and slices of it. Sealed.
pub trait Payload: sealed::Sealed {}

impl<T: Pod> Payload for T {}
impl<T: Pod> Payload for [T] {}

pub(crate) mod sealed {
    use bytemuck::Pod;

    /// What the object needs to know about a payload type.
    pub trait Sealed {
        /// Element type name, element size, alignment, whether a slice.
        fn describe() -> (&'static str, usize, usize, bool);
        /// A pointer to the payload at `ptr`, `bytes` long.
        fn from_raw(ptr: *mut u8, bytes: usize) -> *mut Self;
        /// The payload's length in bytes.
        fn byte_len(&self) -> usize;
    }

    impl<T: Pod> Sealed for T {
        fn describe() -> (&'static str, usize, usize, bool) {
            (
                std::any::type_name::<T>(),
                std::mem::size_of::<T>(),
                std::mem::align_of::<T>(),
                false,
            )
        }
        fn from_raw(ptr: *mut u8, _bytes: usize) -> *mut T {
            ptr.cast()
        }
        fn byte_len(&self) -> usize {
            std::mem::size_of::<T>()
        }
    }

    impl<T: Pod> Sealed for [T] {
        fn describe() -> (&'static str, usize, usize, bool) {
            (
                std::any::type_name::<T>(),
                std::mem::size_of::<T>(),
                std::mem::align_of::<T>(),
                true,
            )
        }
        fn from_raw(ptr: *mut u8, bytes: usize) -> *mut [T] {
            let len = bytes.checked_div(std::mem::size_of::<T>()).unwrap_or(0);
            std::ptr::slice_from_raw_parts_mut(ptr.cast(), len)
        }
        fn byte_len(&self) -> usize {
            std::mem::size_of_val(self)
        }
    }
}

pub(crate) fn payload_type<T: Payload + ?Sized>() -> PayloadType {
    let (name, size, align, slice) = T::describe();
    PayloadType::new(name, size, align, slice)
}

/// What an object carries, as recorded by its creator in its header.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct PayloadType {
    /// Size of one element (the whole type, or one slice element).
    pub(crate) size: u64,
    pub(crate) align: u32,
    /// 0: one value; 1: a slice of elements.
    pub(crate) slice: u32,
    pub(crate) name_len: u32,
    pub(crate) name: [u8; 196],
}

impl PayloadType {
    pub(crate) fn new(name: &str, size: usize, align: usize, slice: bool) -> PayloadType {
        let mut stored = [0u8; 196];
        // Longer names are cut at a character boundary; size and alignment
        // still tell most mismatches apart.
        let mut len = name.len().min(stored.len());
        while !name.is_char_boundary(len) {
            len -= 1;
        }
        stored[..len].copy_from_slice(&name.as_bytes()[..len]);
        PayloadType {
            size: size as u64,
            align: align as u32,
            slice: u32::from(slice),
            name_len: len as u32,
            name: stored,
        }
    }

    pub(crate) fn type_name(&self) -> &str {
        let len = (self.name_len as usize).min(self.name.len());
        std::str::from_utf8(&self.name[..len]).unwrap_or("?")
    }

    /// The largest payload in bytes of a new object carrying this type:
    /// the type's size, or `max_slice_len` elements (default: what fits
    /// in `default_bytes`).
    pub(crate) fn max_payload(&self, max_slice_len: Option<u64>, default_bytes: u64) -> u64 {
        if self.slice == 1 {
            let len = max_slice_len.unwrap_or_else(|| (default_bytes / self.size.max(1)).max(1));
            len.saturating_mul(self.size)
        } else {
            self.size
        }
    }
}

impl std::fmt::Display for PayloadType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.slice == 1 { "slices of " } else { "" };
        write!(
            f,
            "{what}{} ({} bytes, align {})",
            self.type_name(),
            self.size,
            self.align
        )
    }
}

impl std::fmt::Debug for PayloadType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Doorbells of other participants' places, opened when first rung.
/// A Mutex, not a RefCell, so that participants are `Sync`; it is only
/// taken to ring, which only happens when someone sleeps.
#[derive(Default)]
pub(crate) struct Bells(Mutex<Vec<Option<sys::Doorbell>>>);

impl Bells {
    /// Wakes whoever sleeps on `place` of the object `handle` refers to,
    /// whose bell in shared memory is `bell` (`sys::Doorbell::ring` bumps
    /// its count first).
    pub(crate) fn ring(&self, handle: &sys::Handle, place: u32, bell: &Bell) {
        let mut bells = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let i = place as usize;
        if bells.len() <= i {
            bells.resize_with(i + 1, || None);
        }
        if bells[i].is_none() {
            // A failure leaves the sleeper to its own re-check.
            bells[i] = sys::Doorbell::new(handle, place).ok();
        }
        if let Some(doorbell) = &bells[i] {
            doorbell.ring(bell);
        }
    }
}

/// Claims the first free place of `count` places starting at lock index
/// `base`; the index among those places.
pub(crate) fn claim_first(
    handle: &sys::Handle,
    base: u32,
    count: u32,
) -> Result<Option<(u32, sys::Claim)>> {
    for index in 0..count {
        if let Some(claim) = handle.claim(base + index)? {
            return Ok(Some((index, claim)));
        }
    }
    Ok(None)
}

/// The `(word, bit)` of participant `i` in a bit set.
pub(crate) fn bit_of(i: u32) -> (u64, u64) {
    (u64::from(i) / 64, 1u64 << (i % 64))
}

/// Calls `f` with the index of every set bit in `bits`, word `w` of a set.
pub(crate) fn for_each_bit(w: u64, mut bits: u64, mut f: impl FnMut(u32)) {
    while bits != 0 {
        let b = bits.trailing_zeros();
        bits &= bits - 1;
        f((w * 64) as u32 + b);
    }
}

/// The bits of word `w` that stand for one of `places` places (a stray bit
/// written over by someone would name a place past the table).
pub(crate) fn valid_bits(places: u64, w: u64) -> u64 {
    match places.saturating_sub(64 * w) {
        n @ 0..=63 => (1u64 << n) - 1,
        _ => u64::MAX,
    }
}

pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}
