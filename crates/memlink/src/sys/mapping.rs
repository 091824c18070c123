//! Mapped views, the same on every platform: the OS maps from a boundary
//! it chooses (a page on Unix, the 64 KiB allocation granularity on
//! Windows), and the view starts `lead` bytes after it.

use std::ptr::NonNull;

#[cfg(unix)]
use super::unix::unmap;
#[cfg(windows)]
use super::windows::unmap;

/// A mapped view of `len` bytes; the OS mapping starts `lead` bytes before
/// it and is `map_len` bytes long.
#[derive(Debug)]
pub(crate) struct Mapping {
    base: NonNull<u8>,
    map_len: usize,
    lead: usize,
    len: usize,
}

// SAFETY: a Mapping is an address range owned by this value alone; the
// memory behind it is shared memory, valid from any thread until unmapped.
unsafe impl Send for Mapping {}
// SAFETY: &Mapping gives only the address; access rules are the caller's.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps the `len` bytes at `offset` of an object: `map(start, map_len)`
    /// makes the OS mapping of `map_len` bytes from `start`, the multiple of
    /// `granularity` at or below `offset`. `too_large` is the error for a
    /// view whose mapping would not fit in the address space.
    ///
    /// # Safety
    ///
    /// What `map` returns must be the base of a fresh OS mapping of
    /// `map_len` bytes that nothing else unmaps: the `Mapping` unmaps it
    /// when dropped.
    pub(super) unsafe fn new<E>(
        offset: u64,
        len: usize,
        granularity: u64,
        too_large: impl FnOnce() -> E,
        map: impl FnOnce(u64, usize) -> Result<NonNull<u8>, E>,
    ) -> Result<Mapping, E> {
        let start = offset - offset % granularity;
        let lead = (offset - start) as usize;
        let map_len = len.checked_add(lead).ok_or_else(too_large)?;
        let base = map(start, map_len)?;
        Ok(Mapping {
            base,
            map_len,
            lead,
            len,
        })
    }

    /// The first byte of the view.
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        // SAFETY: lead + len == map_len, so the result stays inside the
        // mapping (or one past its end, for an empty view).
        unsafe { self.base.as_ptr().add(self.lead) }
    }

    /// The length of the view in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: base/map_len are the OS mapping `new` was given (its
        // caller promised it is ours alone), and nothing can use the range
        // after the Mapping is gone.
        unsafe { unmap(self.base, self.map_len) };
    }
}
