//! Layouts of the pages memlink keeps in shared memory for itself (sync
//! objects today, messaging services next), written as `#[repr(C)]` structs
//! that other processes read and write.
//!
//! Every such page starts with one [`Header`]: a magic number that says
//! what the page is, the version of that layout, and a kind code whose
//! meaning belongs to the magic. A process checks the header once, with
//! [`Header::check`], before it trusts anything else in the page, so a
//! page of another layout or another version is refused with a reason
//! instead of being misread.
//!
//! A page type implements [`SharedPage`] (every field an atomic, or bytes
//! shared with the OS through an `UnsafeCell`, so any bytes another process
//! leaves there are a valid value) and carries compile-time asserts of its
//! size and alignment beside its definition. [`page_ref`] is the one place
//! that turns an address into a `&T`, checking alignment and length.

use std::sync::atomic::{AtomicU32, Ordering};

/// The first 16 bytes of every page memlink lays out in shared memory.
///
/// The fields are atomics because other processes may write the page at
/// any time (a foreign program could scribble on it); they are set before
/// the page is published and only read afterwards.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Header {
    magic: AtomicU32,
    version: AtomicU32,
    kind: AtomicU32,
    /// Zero; room for flags a later version may need without moving fields.
    reserved: AtomicU32,
}

const _: () = assert!(size_of::<Header>() == 16);
const _: () = assert!(align_of::<Header>() == 4);

/// Why a page's header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mismatch {
    /// Another magic: not a page of this type at all.
    Magic,
    /// The right magic, another layout version (the one found).
    Version(u32),
    /// The right magic and version, another kind code (the one found).
    Kind(u32),
}

impl Mismatch {
    /// The reason in words, for an error's detail.
    pub(crate) fn describe(self, what: &str, version: u32) -> String {
        match self {
            Mismatch::Magic => format!("it is not a memlink {what}"),
            Mismatch::Version(found) => format!(
                "it is a memlink {what} of layout version {found}; this memlink reads version {version}"
            ),
            Mismatch::Kind(_) => format!("it is a memlink {what} of another kind"),
        }
    }
}

impl Header {
    /// Writes the header of a page of layout `magic`, version `version`,
    /// kind code `kind`: only while the page is not yet published, so
    /// nobody reads it half written.
    pub(crate) fn init(&self, magic: [u8; 4], version: u32, kind: u32) {
        // Relaxed: the page is private to this process until published,
        // and publishing it (a system call) orders these stores first.
        self.magic
            .store(u32::from_le_bytes(magic), Ordering::Relaxed);
        self.version.store(version, Ordering::Relaxed);
        self.kind.store(kind, Ordering::Relaxed);
        self.reserved.store(0, Ordering::Relaxed);
    }

    /// Checks that the page is of layout `magic`, version `version`, kind
    /// code `kind`.
    pub(crate) fn check(&self, magic: [u8; 4], version: u32, kind: u32) -> Result<(), Mismatch> {
        // Relaxed: the header was written before the page got its name, and
        // the name's publication (a system call) ordered it before any
        // reader could map the page.
        if self.magic.load(Ordering::Relaxed) != u32::from_le_bytes(magic) {
            return Err(Mismatch::Magic);
        }
        match self.version.load(Ordering::Relaxed) {
            v if v != version => return Err(Mismatch::Version(v)),
            _ => {}
        }
        match self.kind.load(Ordering::Relaxed) {
            k if k != kind => Err(Mismatch::Kind(k)),
            _ => Ok(()),
        }
    }
}

/// A participant's doorbell word pair in shared memory: what a ringer
/// bumps before it wakes the participant, and whether the participant
/// waits on more than the word itself.
///
/// `count` is the word a blocking waiter sleeps on (a futex on Linux; on
/// Windows the named event carries the wake-up and the word only lets a
/// ring made before the sleep be seen). `listening` is non-zero while the
/// participant also waits through a pollable descriptor (async tasks,
/// wait sets), so that a ringer knows it must signal that too; the
/// platform layer's `Doorbell` reads it.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct Bell {
    pub(crate) count: AtomicU32,
    pub(crate) listening: AtomicU32,
}

const _: () = assert!(size_of::<Bell>() == 8);

/// A type that may be laid over shared memory.
///
/// # Safety
///
/// Every bit pattern must be a valid value (other processes write the
/// bytes), and every field that others write must be an atomic or inside
/// an `UnsafeCell`, so that shared access through `&Self` is sound.
pub(crate) unsafe trait SharedPage: Sized {}

/// The `T` at `ptr`, if `len` bytes there can hold one and `ptr` is
/// aligned for it.
///
/// # Safety
///
/// `ptr..ptr + len` must be mapped, readable memory that stays mapped for
/// `'a`; if `T` has fields this process writes, it must be writable too.
pub(crate) unsafe fn page_ref<'a, T: SharedPage>(ptr: *const u8, len: usize) -> Option<&'a T> {
    if len < size_of::<T>() || ptr.align_offset(align_of::<T>()) != 0 {
        return None;
    }
    // SAFETY: aligned and in bounds (just checked), mapped for 'a (the
    // caller's promise), and any bytes are a valid T (SharedPage).
    Some(unsafe { &*ptr.cast::<T>() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_checks_magic_then_version_then_kind() {
        let header = Header {
            magic: AtomicU32::new(0),
            version: AtomicU32::new(0),
            kind: AtomicU32::new(0),
            reserved: AtomicU32::new(0),
        };
        assert_eq!(header.check(*b"MLSY", 2, 3), Err(Mismatch::Magic));
        header.init(*b"MLSY", 2, 3);
        assert_eq!(header.check(*b"MLSY", 2, 3), Ok(()));
        assert_eq!(header.check(*b"MLSV", 2, 3), Err(Mismatch::Magic));
        assert_eq!(header.check(*b"MLSY", 1, 3), Err(Mismatch::Version(2)));
        assert_eq!(header.check(*b"MLSY", 2, 1), Err(Mismatch::Kind(3)));
    }

    #[test]
    fn page_ref_refuses_short_or_misaligned_memory() {
        #[repr(C)]
        struct Page {
            header: Header,
            word: AtomicU32,
        }
        // SAFETY: atomics only.
        unsafe impl SharedPage for Page {}
        let backing = [0u64; 4];
        let ptr = backing.as_ptr().cast::<u8>();
        // SAFETY: `backing` outlives every reference made here.
        unsafe {
            assert!(page_ref::<Page>(ptr, 32).is_some());
            assert!(page_ref::<Page>(ptr, 19).is_none());
            assert!(page_ref::<Page>(ptr.add(1), 31).is_none());
        }
    }
}
