//! The sidecar of each object: the per-user directory that holds them, the
//! mark written in each, and the `flock`s on them that say who holds the
//! object (see the protocol in the module above).

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Mutex, PoisonError};

use rustix::fs::{self, AtFlags, FlockOperation, Mode, OFlags};
use rustix::io::Errno;
use rustix::shm;

use crate::error::{Error, ObjectKind, Operation, Result};
use crate::name::Name;
use crate::sys::unix::Mark;

/// Where the per-user sidecar directory `memlink-UID` is made.
const SIDECAR_PARENT: &str = "/tmp";

pub(super) fn sidecar_dir_path() -> String {
    format!(
        "{SIDECAR_PARENT}/memlink-{}",
        rustix::process::geteuid().as_raw()
    )
}

/// The sidecar directory.
///
/// The descriptor is cached, but checked on each use against the path (one
/// `lstat`): a `/tmp` cleaner may delete the directory while a process runs
/// (macOS's removes empty directories left untouched for days), and after
/// `seteuid` the path is another user's. Then it is made and opened again.
pub(super) fn sidecar_dir() -> io::Result<BorrowedFd<'static>> {
    /// The open directory and its (device, inode).
    static DIR: Mutex<Option<(&'static OwnedFd, (u64, u64))>> = Mutex::new(None);
    let path = sidecar_dir_path();
    let mut cached = DIR.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((dir, id)) = *cached {
        if fs::lstat(path.as_str()).is_ok_and(|st| file_id(&st) == id) {
            return Ok(dir.as_fd());
        }
    }
    let dir = open_sidecar_dir()?;
    let id = file_id(&fs::fstat(&dir)?);
    // Leaked, never closed: other threads may still be using a descriptor
    // borrowed from it. One descriptor per re-opening, which is rare.
    let dir: &'static OwnedFd = Box::leak(Box::new(dir));
    *cached = Some((dir, id));
    Ok(dir.as_fd())
}

/// (device, inode) of a file, to tell whether two paths or descriptors are
/// the same file.
#[allow(clippy::unnecessary_cast)] // dev_t is i32 on macOS, u64 on FreeBSD
pub(super) fn file_id(st: &fs::Stat) -> (u64, u64) {
    (st.st_dev as u64, st.st_ino as u64)
}

/// Makes (if needed) and opens `/tmp/memlink-UID`, refusing anything that is
/// not a directory owned by this user: `/tmp` is shared, and another user
/// could have put a symbolic link or their own directory there.
fn open_sidecar_dir() -> io::Result<OwnedFd> {
    let uid = rustix::process::geteuid().as_raw();
    let parent = fs::open(
        SIDECAR_PARENT,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let leaf = format!("memlink-{uid}");
    match fs::mkdirat(&parent, leaf.as_str(), Mode::RWXU) {
        Ok(()) | Err(Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    // NOFOLLOW: a symbolic link in its place fails here (ELOOP, or EMLINK on
    // FreeBSD) instead of being followed.
    let dir = fs::openat(
        &parent,
        leaf.as_str(),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let st = fs::fstat(&dir)?;
    if st.st_uid != uid {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "it belongs to uid {}, not to this user (uid {uid})",
                st.st_uid
            ),
        ));
    }
    if u32::from(st.st_mode) & 0o077 != 0 {
        // Ours, but opened up to others since: make it private again.
        fs::fchmod(&dir, Mode::RWXU)?;
    }
    Ok(dir)
}

/// An error about the sidecar directory, which says which directory.
pub(super) fn dir_error(
    operation: Operation,
    kind: ObjectKind,
    given: &str,
    e: io::Error,
) -> Error {
    Error::os(operation, kind, given, e).with_detail(format!(
        "cannot use {}, where memlink keeps track of its objects",
        sidecar_dir_path()
    ))
}

pub(super) fn dir_for(
    operation: Operation,
    kind: ObjectKind,
    name: &Name,
) -> Result<BorrowedFd<'static>> {
    sidecar_dir().map_err(|e| dir_error(operation, kind, name.given(), e))
}

/// Reads the mark of a sidecar; `None` if it has no valid one.
pub(super) fn read_mark(sidecar: &OwnedFd) -> io::Result<Option<Mark>> {
    let mut buf = [0u8; 64];
    let n = rustix::io::pread(sidecar, &mut buf, 0)?;
    // A full buffer is longer than any mark: not one.
    Ok(if n < buf.len() {
        Mark::decode(&buf[..n])
    } else {
        None
    })
}

/// Replaces the content of a sidecar with `mark`.
pub(super) fn write_mark(sidecar: &OwnedFd, mark: Mark) -> io::Result<()> {
    let text = mark.encode();
    fs::ftruncate(sidecar, 0)?;
    let written = rustix::io::pwrite(sidecar, text.as_bytes(), 0)?;
    if written != text.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short write to a sidecar file",
        ));
    }
    Ok(())
}

/// Whether the path `file` in `dir` still names the sidecar open as
/// `sidecar` (a closer or reaper may have removed it since it was opened).
pub(super) fn is_current(dir: BorrowedFd<'_>, file: &str, sidecar: &OwnedFd) -> io::Result<bool> {
    let ours = fs::fstat(sidecar)?;
    match fs::statat(dir, file, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(named) => Ok(file_id(&named) == file_id(&ours)),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A non-blocking exclusive `flock`: `Ok(false)` if another open file
/// description holds a lock on the file.
pub(super) fn try_lock_exclusive(fd: &OwnedFd) -> io::Result<bool> {
    match fs::flock(fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// A blocking shared `flock` (also converts an exclusive lock held through
/// `fd` into a shared one). Blocks only while another process holds the
/// exclusive lock, which it does for a few system calls.
pub(super) fn lock_shared(fd: &OwnedFd) -> io::Result<()> {
    loop {
        match fs::flock(fd, FlockOperation::LockShared) {
            Err(Errno::INTR) => continue,
            result => return result.map_err(Into::into),
        }
    }
}

/// Whether a shared-memory object named `shm_name` exists.
pub(super) fn shm_exists(shm_name: &str) -> io::Result<bool> {
    match shm::open(shm_name, shm::OFlags::RDONLY, Mode::empty()) {
        Ok(_) => Ok(true),
        Err(Errno::NOENT) => Ok(false),
        // It exists; we just may not read it.
        Err(Errno::ACCESS) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

pub(super) fn remove_sidecar(dir: BorrowedFd<'_>, file: &str) -> io::Result<()> {
    match fs::unlinkat(dir, file, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Removes an object and then its sidecar. The caller holds the exclusive
/// lock on the sidecar and has checked [`is_current`], so no handle exists
/// and no other memlink process can touch the name meanwhile.
pub(super) fn remove_locked(dir: BorrowedFd<'_>, file: &str, shm_name: &str) -> io::Result<()> {
    match shm::unlink(shm_name) {
        Ok(()) | Err(Errno::NOENT) => {}
        Err(e) => return Err(e.into()),
    }
    remove_sidecar(dir, file)
}
