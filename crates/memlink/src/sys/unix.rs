//! What the Linux and the other POSIX backends share: the mark that says an
//! object is memlink's, mapped views, error helpers.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use rustix::fs::{self, Mode, OFlags};
use rustix::mm::{MapFlags, ProtFlags};

use super::mapping::Mapping;
use crate::error::{Error, ErrorKind, ObjectKind, Operation};
use crate::name::Name;
use crate::types::Lifetime;

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
        let kind = match kind {
            "region" => ObjectKind::Region,
            "mutex" => ObjectKind::Mutex,
            "semaphore" => ObjectKind::Semaphore,
            "event" => ObjectKind::Event,
            "service" => ObjectKind::Service,
            "queue" => ObjectKind::Queue,
            "rpc" => ObjectKind::RequestResponse,
            _ => return None,
        };
        Some(Mark { kind, lifetime })
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
    let prot = if writable {
        ProtFlags::READ | ProtFlags::WRITE
    } else {
        ProtFlags::READ
    };
    let page = rustix::param::page_size() as u64;
    let too_large = || io::Error::from(io::ErrorKind::InvalidInput);
    let map = |start, map_len| {
        // SAFETY: a fresh mapping at an address the kernel chooses cannot
        // alias any Rust object; the descriptor is valid for the call.
        let base = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                map_len,
                prot,
                MapFlags::SHARED,
                fd,
                start,
            )
        }?;
        Ok(NonNull::new(base.cast::<u8>()).expect("mmap never returns null on success"))
    };
    // SAFETY: `map` returns a fresh mapping of `map_len` bytes, which only
    // the Mapping unmaps.
    unsafe { Mapping::new(offset, len, page, too_large, map) }
}

/// Unmaps what `map_fd` mapped.
///
/// # Safety
///
/// `base` and `len` are a mapping made by `mmap` that nothing uses any more.
pub(super) unsafe fn unmap(base: NonNull<u8>, len: usize) {
    // SAFETY: as the caller promises. Nothing to report a failure to.
    let _ = unsafe { rustix::mm::munmap(base.as_ptr().cast(), len) };
}

/// Calls `visit` with the name of each entry of the directory `dir` but `.`
/// and `..`, and those that are not UTF-8 (memlink makes none), as it reads
/// them.
pub(super) fn for_each_entry(
    dir: BorrowedFd<'_>,
    mut visit: impl FnMut(&str) -> io::Result<()>,
) -> io::Result<()> {
    let listing = fs::openat(
        dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut entries = fs::Dir::new(listing)?;
    while let Some(entry) = entries.read() {
        match entry?.file_name().to_str() {
            Ok("." | "..") | Err(_) => {}
            Ok(name) => visit(name)?,
        }
    }
    Ok(())
}

/// An open named object: the object's descriptor, and what the handle knows
/// of it. Each backend makes handles its own way and closes them in its own
/// `Drop`: Linux keeps the liveness lock on `fd` itself, BSD on a sidecar.
#[derive(Debug)]
pub(crate) struct Handle {
    pub(super) fd: OwnedFd,
    /// macOS and FreeBSD: this handle's own open of the object's sidecar,
    /// holding the shared `flock`; `None` for a foreign object, which has
    /// no sidecar.
    #[cfg(not(target_os = "linux"))]
    pub(super) sidecar: Option<OwnedFd>,
    pub(super) name: Name,
    pub(super) kind: ObjectKind,
    /// The size asked for by the creator's handle, and what the kernel
    /// reports for an opened one (rounded up to a whole page on macOS).
    pub(super) size: u64,
    /// Whether this is a memlink last-handle object, whose name goes with
    /// the last handle.
    pub(super) remove_on_last_close: bool,
}

impl Handle {
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn map(&self, offset: u64, len: usize, writable: bool) -> Result<Mapping, Error> {
        map_view(&self.fd, offset, len, writable, self.kind, &self.name)
    }
}

/// Maps a view for `Handle::map`, with the error naming the object.
fn map_view(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_round_trip() {
        let kinds = [
            ObjectKind::Region,
            ObjectKind::Mutex,
            ObjectKind::Semaphore,
            ObjectKind::Event,
            ObjectKind::Service,
            ObjectKind::Queue,
            ObjectKind::RequestResponse,
        ];
        for kind in kinds {
            for lifetime in [Lifetime::LastHandle, Lifetime::Persistent] {
                let mark = Mark { kind, lifetime };
                assert_eq!(Mark::decode(mark.encode().as_bytes()), Some(mark));
            }
        }
        assert_eq!(Mark::decode(b""), None);
        assert_eq!(Mark::decode(b"region;last-handlex"), None);
        assert_eq!(Mark::decode(b"mailbox;last-handle"), None);
    }
}
