//! Linux: POSIX shared-memory objects in `/dev/shm`, with Windows lifetime
//! emulated by `flock`.
//!
//! # The protocol
//!
//! An object is the plain file `/dev/shm/NAME`; the user's bytes start at
//! offset 0 and nothing else is stored in them, so `shm_open("/NAME")` in C
//! and `multiprocessing.shared_memory.SharedMemory("NAME")` in Python see
//! the same bytes.
//!
//! **Marking.** memlink's objects carry the extended attribute
//! `user.memlink` = `KIND;LIFETIME` (`region;last-handle`, ...). tmpfs
//! supports `user.*` attributes from Linux 6.6. On older kernels the
//! fallback marks a last-handle object with the sticky bit (`S_ISVTX`,
//! which Linux ignores on regular files); a persistent object there is left
//! unmarked, which is harmless since unmarked objects are persistent anyway.
//! The fallback cannot record the kind of object; sync objects check the
//! header in their page instead, regions cannot. Objects without a mark are
//! *foreign*: never reaped, only removed on request. An object this user
//! cannot open (another user's private one) has a mark that cannot be read:
//! its origin is *unknown*.
//!
//! **Liveness.** Every handle holds a shared `flock` on its own open file
//! description. The kernel drops it when the handle is closed or the process
//! dies, so "a non-blocking exclusive `flock` succeeds" means "no live
//! handle". `flock` (not `fcntl` record locks, which a process loses when it
//! closes *any* descriptor of the file) is what makes this hold.
//!
//! **Create** makes the object nameless with `O_TMPFILE`, sets its mode,
//! mark and size (reserving the memory with `fallocate`, so a full
//! `/dev/shm` is `ENOSPC` now rather than `SIGBUS` later), takes its shared
//! lock, and only then gives it its name with `linkat`, which fails if the
//! name exists. Nobody can open a half-made object, a crash before `linkat`
//! leaves nothing behind, and of N racing creators exactly one `linkat`
//! wins. A creator that finds the name taken checks whether the holder is
//! stale (a last-handle object with no live handle): if so it removes the
//! name and tries again.
//!
//! **Close** of a last-handle object converts the shared lock to a
//! non-blocking exclusive one. Success means no other handle exists, so the
//! closer removes the name (after checking that the name still refers to
//! its inode). Two handles closing at once cannot both fail: the kernel
//! orders the two conversions, and the second sees the first one's lock
//! gone.
//!
//! **Open** first tries the exclusive lock: success on a last-handle object
//! means its holders are all dead, so it is removed and the open reports
//! `NotFound`, as on Windows. Otherwise it takes the shared lock and then
//! checks `st_nlink` with `fstat`: an opener that raced a closer (opened the
//! file just before the closer removed the name) finds a link count of 0
//! and starts again, so it never holds an object that no name refers to.
//!
//! **The rule that keeps all this sound**: whoever wins the exclusive lock
//! on a last-handle object removes its name before letting go (closer,
//! opener, creator, reaper alike). A prober that let go of a stale object
//! without removing it could hand an opener that was waiting for the lock
//! a dead object as if it were alive. So `list` and `inspect` read
//! liveness from `/proc/locks` (every handle's shared lock is there) and do
//! not probe; only `reap` probes, and removes. A creator that finds the
//! lock briefly held by such a process waits it out with a shared lock and
//! looks again, rather than reporting the name as taken.
//!
//! **Other users.** `/dev/shm` is sticky: only a file's owner (or root)
//! may unlink it. A user who wins the exclusive lock on another user's
//! last-handle object (its last closer, an opener finding it stale) may
//! not be able to remove the name; the object is gone all the same: opens
//! say `NotFound`, a create says which user's stale object keeps the name
//! and why it cannot take it (`PermissionDenied`), `reap` reports it as
//! skipped, and the first process that may remove it does.
//!
//! Known limits: `/proc/locks` shows only the locks of processes in the
//! caller's pid namespace, so a holder in another container sharing
//! `/dev/shm` makes `list` call a live object stale (reaping still checks
//! with the lock, and leaves it). Between a closer's check that the name
//! still refers to its inode and its `unlinkat`, a third process that
//! removes the name by force and creates a new object under it can lose
//! that new object; Linux has no conditional unlink. On kernels without
//! `user.*` xattrs on tmpfs, a foreign object that happens to carry the
//! sticky bit is taken for a memlink last-handle object. An opener that
//! waits out the exclusive lock of a closer who may not unlink the name
//! (see *Other users*) can open the dead object as if it were alive: the
//! rule above cannot be kept by a process the kernel does not let remove
//! the name.
//!
//! A handle must not be shared with a child made by `fork` (the child's
//! copy of the descriptor shares the lock); handles are close-on-exec.

mod doorbell;
mod messaging;
#[cfg(any(feature = "tokio", feature = "async-io"))]
mod reactor;
mod sync;

pub(crate) use doorbell::{Doorbell, WAIT_ANY_MAX};
pub(crate) use messaging::{messaging_supported, Claim};
pub(crate) use sync::{RawEvent, RawMutex, RawSemaphore};

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use rustix::fs::{self, AtFlags, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

pub(crate) use super::unix::Handle;
use super::unix::{for_each_entry, map_fd, os_err, reserve_error, Mark, RACE_RETRIES};
use super::Mapping;
use super::{list_error, CreateSpec};
use crate::error::{Error, ErrorKind, ObjectKind, Operation, Result};
use crate::name::Name;
use crate::types::{Access, Lifetime, ObjectInfo, Origin, ReapReport, State};

/// The character that cannot be in a name: names are file names in
/// `/dev/shm`.
pub(crate) const NAME_SEPARATOR: char = '/';
/// `/proc/locks` tells who holds each object.
pub(crate) const HOLDERS_KNOWN: bool = true;
/// `unlink` takes a name from its holders.
pub(crate) const REMOVE_WHILE_HELD: bool = true;

/// Which object a name referred to: its device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    dev: u64,
    ino: u64,
}

impl Identity {
    fn of(st: &fs::Stat) -> Identity {
        Identity {
            dev: st.st_dev,
            ino: st.st_ino,
        }
    }
}

const SHM_DIR: &str = "/dev/shm";
const MARK_ATTR: &str = "user.memlink";
const SHORTAGE: &str = "more than /dev/shm has free";

fn shm_dir() -> io::Result<BorrowedFd<'static>> {
    static DIR: OnceLock<OwnedFd> = OnceLock::new();
    if let Some(dir) = DIR.get() {
        return Ok(dir.as_fd());
    }
    let fd = fs::open(
        SHM_DIR,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(DIR.get_or_init(|| fd).as_fd())
}

/// Reads and writes the mark as the extended attribute `user.memlink`.
trait XattrMark: Sized {
    fn write(self, fd: BorrowedFd<'_>, mode: u32) -> io::Result<()>;
    fn read(fd: BorrowedFd<'_>, st_mode: u32, expected: ObjectKind) -> Option<Self> {
        Self::read_checked(fd, st_mode, expected).ok().flatten()
    }
    fn read_checked(
        fd: BorrowedFd<'_>,
        st_mode: u32,
        expected: ObjectKind,
    ) -> Result<Option<Self>, Errno>;
}

impl XattrMark for Mark {
    fn write(self, fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
        match fs::fsetxattr(
            fd,
            MARK_ATTR,
            self.encode().as_bytes(),
            fs::XattrFlags::empty(),
        ) {
            Ok(()) => Ok(()),
            Err(Errno::OPNOTSUPP) if self.lifetime == Lifetime::LastHandle => {
                fs::fchmod(fd, Mode::from_raw_mode(mode | libc::S_ISVTX))?;
                Ok(())
            }
            Err(Errno::OPNOTSUPP) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads the mark; `Ok(None)` means a foreign object, an error that
    /// the mark cannot be read. The sticky-bit fallback cannot tell kinds
    /// apart, so it reports `expected` (sync objects still check the header
    /// in their page).
    fn read_checked(
        fd: BorrowedFd<'_>,
        st_mode: u32,
        expected: ObjectKind,
    ) -> Result<Option<Mark>, Errno> {
        let mut buf = [0u8; 64];
        match fs::fgetxattr(fd, MARK_ATTR, &mut buf) {
            Ok(n) => Ok(Mark::decode(&buf[..n])),
            Err(Errno::OPNOTSUPP) if st_mode & libc::S_ISVTX != 0 => Ok(Some(Mark {
                kind: expected,
                lifetime: Lifetime::LastHandle,
            })),
            Err(Errno::NODATA) | Err(Errno::OPNOTSUPP) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Sets up a new object's contents before it is published.
pub(super) type Initializer<'a> = &'a mut dyn FnMut(&Mapping) -> Result<()>;

impl Handle {
    pub(crate) fn create(name: &Name, kind: ObjectKind, spec: &CreateSpec) -> Result<Handle> {
        Handle::create_initialized(name, kind, spec, None)
    }

    /// Creates an object whose contents `init` sets up before the object
    /// gets its name, so no other process ever sees it uninitialized.
    pub(super) fn create_initialized(
        name: &Name,
        kind: ObjectKind,
        spec: &CreateSpec,
        init: Option<Initializer<'_>>,
    ) -> Result<Handle> {
        let op = Operation::Create;
        let err = |e: io::Error| os_err(op, kind, name, e);
        let dir = shm_dir().map_err(err)?;
        let mode = spec.mode & 0o777;
        let fd = fs::openat(
            dir,
            ".",
            OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )
        .map_err(|e| err(e.into()))?;
        // The umask may have narrowed the mode given to open.
        fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(|e| err(e.into()))?;
        let mark = Mark {
            kind,
            lifetime: spec.lifetime,
        };
        mark.write(fd.as_fd(), mode).map_err(err)?;
        let reserve = || {
            if spec.reserve {
                fs::fallocate(&fd, fs::FallocateFlags::empty(), 0, spec.size)
            } else {
                fs::ftruncate(&fd, spec.size)
            }
        };
        match reserve() {
            Ok(()) => {}
            Err(Errno::NOSPC) => {
                // The dead may hold the space: reap memlink's stale objects
                // and try again once before failing.
                let reaped = reap().map_or(0, |report| report.removed.len());
                let retried = if reaped > 0 {
                    reserve()
                } else {
                    Err(Errno::NOSPC)
                };
                if let Err(e) = retried {
                    let shortage = format!("{SHORTAGE}; {}", space_report());
                    return Err(reserve_error(name, kind, spec.size, e, &shortage));
                }
            }
            Err(e) => return Err(reserve_error(name, kind, spec.size, e, SHORTAGE)),
        }
        // Cannot block: nobody else can reach a nameless file.
        fs::flock(&fd, FlockOperation::LockShared).map_err(|e| err(e.into()))?;
        let mut handle = Handle {
            fd,
            name: name.clone(),
            kind,
            size: spec.size,
            // Not until it has a name: there is nothing to remove before.
            remove_on_last_close: false,
        };
        if let Some(init) = init {
            init(&handle.map(0, spec.size as usize, true)?)?;
        }
        for _ in 0..RACE_RETRIES {
            match publish(&handle.fd, dir, name.base()) {
                Ok(()) => {
                    handle.remove_on_last_close = spec.lifetime == Lifetime::LastHandle;
                    return Ok(handle);
                }
                Err(Errno::EXIST) => {
                    let taken = |detail: String| {
                        Error::new(op, kind, name.given(), ErrorKind::AlreadyExists)
                            .with_detail(detail)
                    };
                    match remove_if_stale(dir, name.base()).map_err(err)? {
                        Taken::Removed | Taken::Gone => {}
                        Taken::Held => {
                            return Err(Error::new(op, kind, name.given(), ErrorKind::AlreadyExists))
                        }
                        Taken::Unreadable { uid } => return Err(taken(format!(
                            "it belongs to uid {uid}, and this user cannot open it to tell whether it is still in use"
                        ))),
                        Taken::NotAnObject(what) => return Err(taken(not_an_object_detail(what))),
                        Taken::Unremovable { uid } => {
                            return Err(Error::new(op, kind, name.given(), ErrorKind::PermissionDenied)
                                .with_detail(unremovable_detail(uid)))
                        }
                    }
                }
                Err(e) => return Err(err(e.into())),
            }
        }
        Err(Error::new(op, kind, name.given(), ErrorKind::AlreadyExists)
            .with_detail("the name kept being re-created while stale copies were removed"))
    }

    pub(crate) fn open(name: &Name, kind: ObjectKind, access: Access) -> Result<Handle> {
        let op = Operation::Open;
        let err = |e: io::Error| os_err(op, kind, name, e);
        let dir = shm_dir().map_err(err)?;
        let flags = match access {
            Access::ReadOnly => OFlags::RDONLY,
            Access::ReadWrite => OFlags::RDWR,
        } | OFlags::NOFOLLOW
            | OFlags::CLOEXEC
            // Harmless on a regular file; keeps a FIFO under the name from
            // blocking the open until it is found not to be an object.
            | OFlags::NONBLOCK;
        for _ in 0..RACE_RETRIES {
            let fd = match fs::openat(dir, name.base(), flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    return Err(Error::new(op, kind, name.given(), ErrorKind::NotFound))
                }
                Err(e) => {
                    // A symbolic link (ELOOP), a socket (ENXIO), a directory
                    // (EISDIR)...: name what is there, as everywhere else.
                    if let Some(what) = not_an_object_at(dir, name.base()) {
                        return Err(not_an_object(op, kind, name, what));
                    }
                    return Err(err(e.into()));
                }
            };
            let st = fs::fstat(&fd).map_err(|e| err(e.into()))?;
            if let Some(what) = file_type_name(st.st_mode) {
                return Err(not_an_object(op, kind, name, what));
            }
            let mark = Mark::read(fd.as_fd(), st.st_mode, kind);
            let last_handle = mark.is_some_and(|m| m.lifetime == Lifetime::LastHandle);
            match fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) if last_handle => {
                    // Every holder is dead: the object is gone, as on
                    // Windows, whatever its kind. Another user's object that
                    // this user may not unlink (the sticky /dev/shm) stays
                    // on disk, but is gone all the same, until someone who
                    // may remove it comes by.
                    match unlink_if_same(dir, name.base(), &fd) {
                        Ok(_) => {}
                        Err(e) if is_refusal(&e) => {}
                        Err(e) => return Err(err(e)),
                    }
                    return Err(Error::new(op, kind, name.given(), ErrorKind::NotFound));
                }
                Ok(()) | Err(Errno::WOULDBLOCK) => {}
                Err(e) => return Err(err(e.into())),
            }
            if let Some(mark) = mark.filter(|m| m.kind != kind) {
                return Err(Error::new(op, kind, name.given(), ErrorKind::WrongKind)
                    .with_detail(format!("it is a {}", mark.kind)));
            }
            // Blocks only while another process briefly holds the exclusive
            // lock to close, probe or reap.
            fs::flock(&fd, FlockOperation::LockShared).map_err(|e| err(e.into()))?;
            let st = fs::fstat(&fd).map_err(|e| err(e.into()))?;
            if st.st_nlink == 0 {
                continue; // raced a closer that removed the name; look again
            }
            return Ok(Handle {
                fd,
                name: name.clone(),
                kind,
                size: st.st_size as u64,
                remove_on_last_close: last_handle,
            });
        }
        Err(Error::new(op, kind, name.given(), ErrorKind::NotFound)
            .with_detail("the name kept being removed and re-created"))
    }

    /// Fills `buf` from `offset` with `pread`, which reads a page never
    /// written (a hole, in a region made without reserving) as zeros
    /// without allocating it, as a fault through a mapping would.
    pub(crate) fn read_at(&self, mut offset: u64, mut buf: &mut [u8]) -> Result<()> {
        let err = |e: Errno| os_err(Operation::Read, self.kind, &self.name, e);
        while !buf.is_empty() {
            match rustix::io::pread(&self.fd, &mut *buf, offset) {
                Ok(0) => {
                    return Err(Error::new(
                        Operation::Read,
                        self.kind,
                        self.name.given(),
                        ErrorKind::InvalidArgument,
                    )
                    .with_detail(format!("the object ends before offset {offset}")))
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(Errno::INTR) => {}
                Err(e) => return Err(err(e)),
            }
        }
        Ok(())
    }

    /// Writes `data` at `offset` with `pwrite`, which reports a full
    /// `/dev/shm` as `ENOSPC` where a store through a mapping would die of
    /// `SIGBUS`.
    pub(crate) fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        let mut written = 0;
        while written < data.len() {
            match rustix::io::pwrite(&self.fd, &data[written..], offset + written as u64) {
                Ok(n) => written += n,
                Err(Errno::INTR) => {}
                Err(Errno::NOSPC) => {
                    return Err(Error::new(
                        Operation::Write,
                        self.kind,
                        self.name.given(),
                        ErrorKind::OutOfMemory,
                    )
                    .with_detail(format!(
                        "{SHM_DIR} is full: {written} of {} bytes written at offset {offset}; {}",
                        data.len(),
                        space_report()
                    )))
                }
                Err(e) => return Err(os_err(Operation::Write, self.kind, &self.name, e)),
            }
        }
        Ok(())
    }
}

/// A size in words: `700 KiB`, `3 GiB`, `512 bytes`.
fn size_words(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// What takes the space in `/dev/shm`: how much is free, and the objects
/// that hold the most memory (allocated, not their sizes), with who holds
/// them, so a shortage can be acted on.
fn space_report() -> String {
    let mut report = match fs::statvfs(SHM_DIR) {
        Ok(st) => format!(
            "{SHM_DIR} has {} free of {}",
            size_words(st.f_bavail * st.f_frsize),
            size_words(st.f_blocks * st.f_frsize)
        ),
        Err(e) => format!("the free space of {SHM_DIR} is unknown ({e})"),
    };
    let Ok(dir) = shm_dir() else {
        return report;
    };
    let mut largest: Vec<(u64, String)> = Vec::new();
    // A listing cut short by an error still names the largest objects seen.
    let _ = for_each_entry(dir, |base| {
        if let Ok(st) = fs::statat(dir, base, AtFlags::SYMLINK_NOFOLLOW) {
            let allocated = st.st_blocks as u64 * 512;
            if allocated > 0 {
                largest.push((allocated, base.to_owned()));
            }
        }
        Ok(())
    });
    largest.sort_unstable_by(|a, b| b.cmp(a));
    let holders = flock_holders();
    let users: Vec<String> = largest
        .iter()
        .take(3)
        .map(|(allocated, base)| {
            let who = match describe(dir, base, holders.as_deref()) {
                Ok(Described::Object(info)) => match (info.origin, info.state) {
                    (_, State::Stale) => "stale: its holders died".to_owned(),
                    (Origin::Memlink, _) if !info.holders.is_empty() => format!(
                        "held by pid {}",
                        info.holders
                            .iter()
                            .map(u32::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    (Origin::Memlink, _) => info.lifetime.as_str().to_owned(),
                    (Origin::Foreign, _) => "foreign, stays until removed".to_owned(),
                    (Origin::Unknown, _) => "another user's".to_owned(),
                },
                _ => "not a shared-memory object".to_owned(),
            };
            format!("\"{base}\" ({}, {who})", size_words(*allocated))
        })
        .collect();
    if !users.is_empty() {
        report.push_str("; the most is held by ");
        report.push_str(&users.join(", "));
    }
    report
}

impl Drop for Handle {
    fn drop(&mut self) {
        if !self.remove_on_last_close {
            return;
        }
        if fs::flock(&self.fd, FlockOperation::NonBlockingLockExclusive).is_ok() {
            if let Ok(dir) = shm_dir() {
                // Nothing to report to: a failure leaves a stale name, which
                // the next create/open/reap removes.
                let _ = unlink_if_same(dir, self.name.base(), &self.fd);
            }
        }
    }
}

/// Gives the nameless file `fd` the name `base` in `dir`; fails with
/// `EEXIST` if the name is taken.
///
/// `linkat(fd, "", AT_EMPTY_PATH)` is the direct way, but needs
/// `CAP_DAC_READ_SEARCH` on most kernels; the `/proc/self/fd` path works for
/// everyone and costs a procfs lookup. Which one works is learnt once.
fn publish(fd: &OwnedFd, dir: BorrowedFd<'_>, base: &str) -> Result<(), Errno> {
    // Relaxed: a cached hint guarding no other data; threads that race on
    // it at worst each try the direct way once.
    static EMPTY_PATH_REFUSED: AtomicBool = AtomicBool::new(false);
    if !EMPTY_PATH_REFUSED.load(Ordering::Relaxed) {
        match fs::linkat(fd, "", dir, base, AtFlags::EMPTY_PATH) {
            Err(Errno::NOENT) | Err(Errno::PERM) => {
                EMPTY_PATH_REFUSED.store(true, Ordering::Relaxed)
            }
            other => return other,
        }
    }
    let proc_path = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .expect("no NUL in a formatted path");
    fs::linkat(
        fs::CWD,
        proc_path.as_c_str(),
        dir,
        base,
        AtFlags::SYMLINK_FOLLOW,
    )
}

/// Removes `base` from `dir` if it still names the inode open as `fd`;
/// says whether this call removed it. The caller holds the exclusive lock,
/// so no handle can appear meanwhile.
fn unlink_if_same(dir: BorrowedFd<'_>, base: &str, fd: &OwnedFd) -> io::Result<bool> {
    let ours = fs::fstat(fd)?;
    if ours.st_nlink == 0 {
        return Ok(false);
    }
    match fs::statat(dir, base, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(named) if Identity::of(&named) == Identity::of(&ours) => {
            match fs::unlinkat(dir, base, AtFlags::empty()) {
                Ok(()) => Ok(true),
                Err(Errno::NOENT) => Ok(false),
                Err(e) => Err(e.into()),
            }
        }
        Ok(_) | Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Opens `base` read-only to look at it or lock it, never following a link
/// and never blocking (on a FIFO someone put there).
fn open_to_look(dir: BorrowedFd<'_>, base: &str) -> Result<OwnedFd, Errno> {
    fs::openat(
        dir,
        base,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    )
}

/// What a file that is not a regular file is, in words; `None` for a
/// regular file (which may be a shared-memory object).
fn file_type_name(st_mode: u32) -> Option<&'static str> {
    Some(match st_mode & libc::S_IFMT {
        libc::S_IFREG => return None,
        libc::S_IFDIR => "a directory",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFLNK => "a symbolic link",
        libc::S_IFSOCK => "a socket",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        _ => "a special file",
    })
}

/// What is at `base` if it is there and not a regular file.
fn not_an_object_at(dir: BorrowedFd<'_>, base: &str) -> Option<&'static str> {
    let st = fs::statat(dir, base, AtFlags::SYMLINK_NOFOLLOW).ok()?;
    file_type_name(st.st_mode)
}

/// The detail every operation gives for a name held by something that is
/// not a shared-memory object.
fn not_an_object_detail(what: &str) -> String {
    format!("it is {what}, not a shared-memory object")
}

fn not_an_object(op: Operation, kind: ObjectKind, name: &Name, what: &str) -> Error {
    let error_kind = if op == Operation::Create {
        ErrorKind::AlreadyExists
    } else {
        ErrorKind::WrongKind
    };
    Error::new(op, kind, name.given(), error_kind).with_detail(not_an_object_detail(what))
}

/// Whether an error is the OS refusing this user (as the sticky `/dev/shm`
/// refuses to unlink another user's file).
fn is_refusal(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES))
}

/// Why a stale object of user `uid` stays.
fn unremovable_detail(uid: u32) -> String {
    format!(
        "the name is held by a stale object (every holder died) of uid {uid}, \
         and /dev/shm lets only its owner or root remove it"
    )
}

/// What became of a name that was found taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Taken {
    /// It named a stale memlink object, which this call removed.
    Removed,
    /// The name went away meanwhile.
    Gone,
    /// A live handle holds it, or it is not a memlink last-handle object.
    Held,
    /// It belongs to user `uid`, and this user cannot open it to tell.
    Unreadable { uid: u32 },
    /// A stale object of user `uid`, which this user may not remove.
    Unremovable { uid: u32 },
    /// It is not a shared-memory object: a directory, a FIFO...
    NotAnObject(&'static str),
}

/// If `base` names a memlink last-handle object with no live handle,
/// removes it.
fn remove_if_stale(dir: BorrowedFd<'_>, base: &str) -> io::Result<Taken> {
    let fd = match open_to_look(dir, base) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(Taken::Gone),
        Err(e) => {
            return match fs::statat(dir, base, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => Ok(match file_type_name(st.st_mode) {
                    Some(what) => Taken::NotAnObject(what),
                    None if e == Errno::ACCESS => Taken::Unreadable { uid: st.st_uid },
                    None => Taken::Held,
                }),
                Err(Errno::NOENT) => Ok(Taken::Gone),
                Err(_) => Err(e.into()),
            }
        }
    };
    let st = fs::fstat(&fd)?;
    if let Some(what) = file_type_name(st.st_mode) {
        return Ok(Taken::NotAnObject(what));
    }
    let mark = Mark::read(fd.as_fd(), st.st_mode, ObjectKind::Region);
    if !mark.is_some_and(|m| m.lifetime == Lifetime::LastHandle) {
        return Ok(Taken::Held);
    }
    match fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(Errno::WOULDBLOCK) => {
            // A live handle, or another process's brief exclusive lock on a
            // stale object (a reaper, an opener, a closer). Wait that out
            // with a shared lock, then look again: converting to exclusive
            // succeeds only if no handle is left.
            fs::flock(&fd, FlockOperation::LockShared)?;
            if fs::fstat(&fd)?.st_nlink == 0 {
                return Ok(Taken::Gone);
            }
            match fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => {}
                Err(Errno::WOULDBLOCK) => return Ok(Taken::Held),
                Err(e) => return Err(e.into()),
            }
        }
        Err(e) => return Err(e.into()),
    }
    match unlink_if_same(dir, base, &fd) {
        Ok(_) => Ok(Taken::Removed),
        // Stale all the same: opens say NotFound (see `Handle::open`).
        Err(e) if is_refusal(&e) => Ok(Taken::Unremovable { uid: st.st_uid }),
        Err(e) => Err(e),
    }
}

/// The holders of every shared flock in the system (every live handle has
/// one), keyed by (device, inode), from `/proc/locks`. Exclusive locks are
/// brief probes, not handles, and are left out.
fn flock_holders() -> Option<Vec<((u64, u64), u32)>> {
    let text = std::fs::read_to_string("/proc/locks").ok()?;
    // "1: FLOCK  ADVISORY  READ  1234 00:1a:5678 0 EOF"; blocked waiters
    // have a "->" after the number and are not holders.
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            fields.next()?;
            if fields.next()? != "FLOCK" {
                return None;
            }
            fields.next()?; // ADVISORY
            if fields.next()? != "READ" {
                return None;
            }
            let pid: u32 = fields.next()?.parse().ok()?;
            let mut dev_ino = fields.next()?.rsplitn(2, ':');
            let ino: u64 = dev_ino.next()?.parse().ok()?;
            let (major, minor) = dev_ino.next()?.split_once(':')?;
            let major = u32::from_str_radix(major, 16).ok()?;
            let minor = u32::from_str_radix(minor, 16).ok()?;
            Some(((libc::makedev(major, minor), ino), pid))
        })
        .collect::<Vec<_>>()
        .into()
}

/// What is known about the object `base`, without changing anything it
/// can avoid changing: liveness comes from `/proc/locks` (a handle's shared
/// lock), not from an exclusive probe, which could make an opener waiting
/// on it take a stale object for a live one. Only where `/proc/locks`
/// cannot be read does it probe, and then removes a stale object at once.
fn describe(
    dir: BorrowedFd<'_>,
    base: &str,
    holders: Option<&[((u64, u64), u32)]>,
) -> io::Result<Described> {
    let st = match fs::statat(dir, base, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(Described::Nothing),
        Err(e) => return Err(e.into()),
    };
    if let Some(what) = file_type_name(st.st_mode) {
        return Ok(Described::NotAnObject(what));
    }
    let mut info = ObjectInfo::named(base);
    info.size = st.st_size as u64;
    info.mode = Some(st.st_mode & 0o7777);
    info.path = Some(format!("{SHM_DIR}/{base}"));
    info.identity = Some(Identity::of(&st));
    let fd = match open_to_look(dir, base) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(Described::Nothing),
        // Another user's private object: who made it cannot be told.
        Err(_) => return Ok(Described::Object(info)),
    };
    let st = fs::fstat(&fd)?;
    info.identity = Some(Identity::of(&st));
    let key = (st.st_dev, st.st_ino);
    let holders_of = |all: &[((u64, u64), u32)]| {
        let mut pids: Vec<u32> = all
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|&(_, pid)| pid)
            .collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    };
    if let Some(all) = holders {
        info.holders = holders_of(all);
    }
    match Mark::read_checked(fd.as_fd(), st.st_mode, ObjectKind::Region) {
        Ok(Some(mark)) => {
            info.origin = Origin::Memlink;
            info.kind = Some(mark.kind);
            info.lifetime = mark.lifetime;
            if mark.kind != ObjectKind::Region {
                info.detail = map_fd(&fd, 0, info.size.min(4096) as usize, false)
                    .ok()
                    .and_then(|page| sync::describe_state(mark.kind, fd.as_fd(), &page));
            }
        }
        Ok(None) => info.origin = Origin::Foreign,
        Err(_) => return Ok(Described::Object(info)),
    }
    if info.origin == Origin::Foreign || info.lifetime == Lifetime::Persistent {
        info.state = State::Alive;
        return Ok(Described::Object(info));
    }
    info.state = match holders {
        Some(_) if !info.holders.is_empty() => State::Alive,
        // No handle in the snapshot: look again now, since a creator may
        // have published the object after the snapshot (it takes its lock
        // before the name appears, so a fresh look sees it).
        Some(_) => match flock_holders() {
            Some(now) if holders_of(&now).is_empty() => State::Stale,
            Some(now) => {
                info.holders = holders_of(&now);
                State::Alive
            }
            None => State::Unknown,
        },
        None => match fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {
                match unlink_if_same(dir, base, &fd) {
                    Ok(_) => {}
                    Err(e) if is_refusal(&e) => {}
                    Err(e) => return Err(e),
                }
                State::Stale
            }
            Err(Errno::WOULDBLOCK) => State::Alive,
            Err(_) => State::Unknown,
        },
    };
    Ok(Described::Object(info))
}

/// What `describe` found under a name.
enum Described {
    Nothing,
    NotAnObject(&'static str),
    Object(ObjectInfo),
}

fn for_each_object(
    operation: Operation,
    mut visit: impl FnMut(BorrowedFd<'_>, &str, ObjectInfo) -> io::Result<()>,
) -> Result<()> {
    let err = |e: io::Error| list_error(operation, e);
    let dir = shm_dir().map_err(err)?;
    let holders = flock_holders();
    for_each_entry(dir, |base| match describe(dir, base, holders.as_deref())? {
        Described::Object(info) => visit(dir, base, info),
        _ => Ok(()),
    })
    .map_err(err)
}

pub(crate) fn list() -> Result<Vec<ObjectInfo>> {
    let mut out = Vec::new();
    for_each_object(Operation::List, |_, _, info| {
        out.push(info);
        Ok(())
    })?;
    Ok(out)
}

pub(crate) fn inspect(name: &Name) -> Result<ObjectInfo> {
    let op = Operation::Inspect;
    let err = |e: io::Error| os_err(op, ObjectKind::Region, name, e).of_any_kind();
    let dir = shm_dir().map_err(err)?;
    match describe(dir, name.base(), flock_holders().as_deref()).map_err(err)? {
        Described::Object(info) => Ok(info),
        Described::NotAnObject(what) => {
            Err(not_an_object(op, ObjectKind::Region, name, what).of_any_kind())
        }
        Described::Nothing => {
            Err(Error::new(op, ObjectKind::Region, name.given(), ErrorKind::NotFound).of_any_kind())
        }
    }
}

/// The kind memlink's mark gives the object `fd`, if it can be read.
fn kind_of(fd: &OwnedFd, st: &fs::Stat) -> Option<ObjectKind> {
    Mark::read(fd.as_fd(), st.st_mode, ObjectKind::Region).map(|m| m.kind)
}

/// Unlinks `base`, a directory or not, with errors naming `kind`.
fn unlink_any(
    dir: BorrowedFd<'_>,
    name: &Name,
    st: &fs::Stat,
    kind: Option<ObjectKind>,
) -> Result<()> {
    let flags = if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        AtFlags::REMOVEDIR
    } else {
        AtFlags::empty()
    };
    match fs::unlinkat(dir, name.base(), flags) {
        Ok(()) => Ok(()),
        Err(Errno::NOENT) => Err(Error::new(
            Operation::Remove,
            ObjectKind::Region,
            name.given(),
            ErrorKind::NotFound,
        )
        .of_kind(kind)),
        Err(e) => {
            let e = io::Error::from(e);
            let refused = is_refusal(&e);
            let error = os_err(Operation::Remove, ObjectKind::Region, name, e).of_kind(kind);
            Err(if refused {
                error.with_detail(format!(
                    "it belongs to uid {}, and /dev/shm lets only its owner or root remove it",
                    st.st_uid
                ))
            } else {
                error
            })
        }
    }
}

pub(crate) fn remove(name: &Name) -> Result<()> {
    let op = Operation::Remove;
    let err = |e: io::Error| os_err(op, ObjectKind::Region, name, e).of_any_kind();
    let dir = shm_dir().map_err(err)?;
    let st = match fs::statat(dir, name.base(), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => {
            return Err(
                Error::new(op, ObjectKind::Region, name.given(), ErrorKind::NotFound).of_any_kind(),
            )
        }
        Err(e) => return Err(err(e.into())),
    };
    let kind = match file_type_name(st.st_mode) {
        Some(_) => None,
        None => open_to_look(dir, name.base())
            .ok()
            .and_then(|fd| kind_of(&fd, &st)),
    };
    unlink_any(dir, name, &st, kind)
}

pub(crate) fn remove_unheld(name: &Name, seen: &ObjectInfo) -> Result<()> {
    let op = Operation::Remove;
    let kind = seen.kind;
    let err = |e: io::Error| os_err(op, ObjectKind::Region, name, e).of_kind(kind);
    let gone = |detail: &str| {
        Error::new(op, ObjectKind::Region, name.given(), ErrorKind::NotFound)
            .of_kind(kind)
            .with_detail(detail.to_owned())
    };
    let dir = shm_dir().map_err(err)?;
    let st = match fs::statat(dir, name.base(), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Err(gone("it was removed meanwhile")),
        Err(e) => return Err(err(e.into())),
    };
    let changed = "the object looked at was removed meanwhile, and another has its name now";
    if seen.identity.is_some_and(|id| id != Identity::of(&st)) {
        return Err(gone(changed));
    }
    if file_type_name(st.st_mode).is_some() {
        return unlink_any(dir, name, &st, kind);
    }
    let fd = match open_to_look(dir, name.base()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Err(gone("it was removed meanwhile")),
        // Cannot be locked: removed only if it is an object that needs no
        // proof (as `seen` says), and then by name.
        Err(_) if !(seen.is_memlink() && seen.lifetime == Lifetime::LastHandle) => {
            return unlink_any(dir, name, &st, kind)
        }
        Err(e) => return Err(err(e.into())),
    };
    let st = fs::fstat(&fd).map_err(|e| err(e.into()))?;
    if seen.identity.is_some_and(|id| id != Identity::of(&st)) {
        return Err(gone(changed));
    }
    let mark = Mark::read(fd.as_fd(), st.st_mode, ObjectKind::Region);
    let kind = mark.map(|m| m.kind).or(kind);
    if mark.is_some_and(|m| m.lifetime == Lifetime::LastHandle) {
        // The proof: no handle can exist while this lock is held, and no
        // memlink process removes the name without taking it first.
        match fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => {
                return Err(
                    Error::new(op, ObjectKind::Region, name.given(), ErrorKind::InUse)
                        .of_kind(kind),
                )
            }
            Err(e) => return Err(err(e.into())),
        }
    }
    match unlink_if_same(dir, name.base(), &fd) {
        Ok(true) => Ok(()),
        Ok(false) => Err(gone(changed)),
        Err(e) if is_refusal(&e) => Err(os_err(op, ObjectKind::Region, name, e)
            .of_kind(kind)
            .with_detail(format!(
                "it belongs to uid {}, and /dev/shm lets only its owner or root remove it",
                st.st_uid
            ))),
        Err(e) => Err(err(e)),
    }
}

pub(crate) fn reap() -> Result<ReapReport> {
    let mut report = ReapReport::default();
    for_each_object(Operation::Reap, |dir, base, info| {
        if info.state != State::Stale {
            return Ok(());
        }
        // The exclusive lock in remove_if_stale is the proof; the listing
        // only says where to look. One object's failure stops nothing.
        let kind = info.kind.unwrap_or(ObjectKind::Region);
        let skip = |error: Error| (info.clone(), error);
        match remove_if_stale(dir, base) {
            Ok(Taken::Removed) => report.removed.push(info),
            Ok(Taken::Unremovable { uid }) => report.skipped.push(skip(
                Error::new(Operation::Reap, kind, base, ErrorKind::PermissionDenied)
                    .with_detail(unremovable_detail(uid)),
            )),
            Ok(_) => {}
            Err(e) => report
                .skipped
                .push(skip(Error::os(Operation::Reap, kind, base, e))),
        }
        Ok(())
    })?;
    Ok(report)
}
