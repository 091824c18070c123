//! What the Linux and the other POSIX backends share: the mark that says an
//! object is memlink's, mapped views, error helpers.

use std::io;
use std::os::fd::AsFd;
use std::ptr::NonNull;

use rustix::mm::{MapFlags, ProtFlags};

use crate::error::{Error, ErrorKind, ObjectKind, Operation};
use crate::name::Name;
use crate::object::Lifetime;

/// How often create/open start over after losing a race before giving up.
pub(super) const RACE_RETRIES: usize = 1000;

/// What memlink records about an object it made: its kind and lifetime,
/// encoded as `KIND;LIFETIME` (`region;last-handle`, `mutex;persistent`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Mark {
    pub(super) kind: ObjectKind,
    pub(super) lifetime: Lifetime,
}

impl Mark {
    pub(super) fn encode(self) -> String {
        format!("{};{}", self.kind.as_str(), self.lifetime.as_str())
    }

    pub(super) fn decode(value: &[u8]) -> Option<Mark> {
        let text = std::str::from_utf8(value).ok()?;
        let (kind, lifetime) = text.split_once(';')?;
        let lifetime = match lifetime {
            "last-handle" => Lifetime::LastHandle,
            "persistent" => Lifetime::Persistent,
            _ => return None,
        };
        Some(Mark {
            kind: ObjectKind::from_str(kind)?,
            lifetime,
        })
    }
}

pub(super) fn os_err(
    operation: Operation,
    kind: ObjectKind,
    name: &Name,
    e: impl Into<io::Error>,
) -> Error {
    Error::os(operation, kind, name.given(), e.into())
}

/// The error for a failed `fallocate`/`ftruncate` of `size` bytes;
/// `shortage` says what there is too little of.
pub(super) fn reserve_error(
    name: &Name,
    kind: ObjectKind,
    size: u64,
    e: rustix::io::Errno,
    shortage: &str,
) -> Error {
    use rustix::io::Errno;
    let op = Operation::Create;
    let os = io::Error::from(e);
    match e {
        Errno::NOSPC | Errno::NOMEM => Error::new(op, kind, name.given(), ErrorKind::OutOfMemory)
            .with_detail(format!("{size} bytes asked, {shortage} ({os})")),
        Errno::FBIG | Errno::INVAL => {
            Error::new(op, kind, name.given(), ErrorKind::InvalidArgument)
                .with_detail(format!("a size of {size} bytes is too large ({os})"))
        }
        _ => Error::os(op, kind, name.given(), os),
    }
}

/// Maps `len` bytes of `fd` from `offset` (any offset: the OS mapping starts
/// at the page boundary below it).
pub(super) fn map_fd(
    fd: impl AsFd,
    offset: u64,
    len: usize,
    writable: bool,
) -> io::Result<Mapping> {
    let page = rustix::param::page_size() as u64;
    let aligned = offset - offset % page;
    let lead = (offset - aligned) as usize;
    let map_len = len
        .checked_add(lead)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    let prot = if writable {
        ProtFlags::READ | ProtFlags::WRITE
    } else {
        ProtFlags::READ
    };
    // SAFETY: a fresh mapping at an address the kernel chooses cannot alias
    // any Rust object; the descriptor is valid for the call.
    let base = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            map_len,
            prot,
            MapFlags::SHARED,
            fd,
            aligned,
        )
    }?;
    let base = NonNull::new(base.cast::<u8>()).expect("mmap never returns null on success");
    Ok(Mapping {
        base,
        map_len,
        lead,
        len,
    })
}

/// Maps a view for `Handle::map`, with the error naming the object.
pub(super) fn map_view(
    fd: impl AsFd,
    offset: u64,
    len: usize,
    writable: bool,
    kind: ObjectKind,
    name: &Name,
) -> Result<Mapping, Error> {
    map_fd(fd, offset, len, writable).map_err(|e| {
        if e.kind() == io::ErrorKind::InvalidInput {
            Error::new(
                Operation::Map,
                kind,
                name.given(),
                ErrorKind::InvalidArgument,
            )
        } else {
            Error::os(Operation::Map, kind, name.given(), e)
        }
    })
}

/// A mapped view. The OS mapping starts `lead` bytes before the view, at
/// the page boundary the kernel requires.
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
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        // SAFETY: lead < map_len, so the result stays inside the mapping.
        unsafe { self.base.as_ptr().add(self.lead) }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: base/map_len are exactly what mmap returned, and nothing
        // can use the range after the Mapping is gone.
        let _ = unsafe { rustix::mm::munmap(self.base.as_ptr().cast(), self.map_len) };
    }
}
